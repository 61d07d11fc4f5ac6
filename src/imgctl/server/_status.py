"""The one map from imgctl's errors to gRPC status codes, by name (grpc itself is not imported).

The servicer answers with ``grpc.StatusCode[status_name(error)]``; the audit row keeps the name
(``error_code``). docs/server.md ("gRPC status codes and exit codes") lists the same rows.
"""

from __future__ import annotations

from typing import Final

from imgctl.errors import (
    ConcurrentPromotionError,
    InvalidPromotionError,
    NotAllowedError,
    NotAuthenticatedError,
    PromotionCancelledError,
    SourceNotFoundError,
    StorageRefusedError,
    UnreachableError,
)

__all__ = ["STATUS_NAMES", "status_name"]

STATUS_NAMES: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (InvalidPromotionError, "INVALID_ARGUMENT"),
    (NotAuthenticatedError, "UNAUTHENTICATED"),
    (NotAllowedError, "PERMISSION_DENIED"),
    (SourceNotFoundError, "NOT_FOUND"),
    (UnreachableError, "UNAVAILABLE"),
    (ConcurrentPromotionError, "ABORTED"),
    (StorageRefusedError, "FAILED_PRECONDITION"),
    (PromotionCancelledError, "CANCELLED"),
)
"""(error class, gRPC status name); anything else is INTERNAL."""


def status_name(error: BaseException) -> str:
    """The name of the gRPC status that answers ``error``."""
    for kind, name in STATUS_NAMES:
        if isinstance(error, kind):
            return name
    return "INTERNAL"
