"""The exit codes of imgctl's commands: one table from what went wrong to a number.

README ("Exit codes") and docs/server.md document the numbers. Errors are matched by class
(``imgctl.errors``), answers of the promotion server by their gRPC status name (the client only
reads them; the server's own map from errors to statuses is ``imgctl.server._status``). Every
command exits EXIT_INVALID (2) for a usage error, as click does for its own, and
EXIT_INTERRUPTED (130) on Ctrl-C, with one line (the root catches what a command does not).
The registry commands (copy, digest, ls...) exit EXIT_FAILED for any failure of the registry,
as README documents.
"""

from __future__ import annotations

import sys
from typing import Final, NoReturn

from imgctl.errors import (
    AuthenticationError,
    IdentityError,
    InvalidDigestError,
    InvalidPromotionError,
    InvalidReferenceError,
    KeyRefError,
    NotAllowedError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    SignatureError,
    SourceNotFoundError,
    SpaNotFoundError,
    TransportError,
    UnreachableError,
    UsageError,
)

__all__ = [
    "EXIT_DENIED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_NOT_FOUND",
    "EXIT_UNAUTHENTICATED",
    "EXIT_UNAVAILABLE",
    "EXIT_UNVERIFIED",
    "exit_code",
    "fail",
    "interrupted",
    "status_name",
    "warn",
]

EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2
EXIT_UNAUTHENTICATED: Final = 3
EXIT_DENIED: Final = 4
EXIT_NOT_FOUND: Final = 5
EXIT_UNAVAILABLE: Final = 6
# imgctl verify (docs/signing.md): no signature verified, or the signatures cannot be read.
EXIT_UNVERIFIED: Final = 7
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it

# (exit code, error classes, gRPC status names the server answered with). First match wins;
# anything else is EXIT_FAILED.
_TABLE: Final[tuple[tuple[int, tuple[type[BaseException], ...], frozenset[str]], ...]] = (
    (
        EXIT_INVALID,
        (
            UsageError,
            InvalidReferenceError,
            InvalidDigestError,
            InvalidPromotionError,
            KeyRefError,
        ),
        frozenset({"INVALID_ARGUMENT"}),
    ),
    (
        EXIT_UNAUTHENTICATED,
        (IdentityError, AuthenticationError, NotAuthenticatedError),
        frozenset({"UNAUTHENTICATED"}),
    ),
    (EXIT_DENIED, (PermissionDeniedError, NotAllowedError), frozenset({"PERMISSION_DENIED"})),
    (
        EXIT_NOT_FOUND,
        (NotFoundError, SpaNotFoundError, SourceNotFoundError),
        frozenset({"NOT_FOUND"}),
    ),
    (
        EXIT_UNAVAILABLE,
        (TransportError, UnreachableError),
        frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"}),
    ),
    (EXIT_UNVERIFIED, (SignatureError,), frozenset()),
    (EXIT_INTERRUPTED, (KeyboardInterrupt,), frozenset()),
)


def exit_code(error: BaseException) -> int:
    """The exit code a command ends with when it stops on ``error``."""
    status = status_name(error)
    for code, classes, statuses in _TABLE:
        if isinstance(error, classes) or status in statuses:
            return code
    return EXIT_FAILED


def status_name(error: BaseException) -> str | None:
    """The gRPC status name of an answer of the promotion server (an RpcError), else None."""
    # Only a process that imported grpc can hold a gRPC error; the CLI's start-up never does.
    grpc = sys.modules.get("grpc")
    if grpc is None or not isinstance(error, grpc.RpcError):
        return None
    code = getattr(error, "code", None)
    status = code() if callable(code) else None
    name = getattr(status, "name", None)
    return name if isinstance(name, str) else None


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print one error line and exit with ``code``."""
    print(f"imgctl: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def stop(error: BaseException) -> NoReturn:
    """Print ``error`` as one line and exit with its code from the table."""
    fail(str(error), exit_code(error))


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    print(f"imgctl: warning: {message}", file=sys.stderr)


def interrupted() -> NoReturn:
    """Ctrl-C during a command: say so and exit 130, without a traceback."""
    print("imgctl: interrupted", file=sys.stderr)
    raise SystemExit(EXIT_INTERRUPTED) from None
