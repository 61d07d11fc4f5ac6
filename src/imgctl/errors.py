"""The one exception hierarchy of imgctl.

Every error a user can cause or meet carries a message saying what went wrong and, where there
is one, a hint saying what to do next. The classes say what kind of failure it is, never how to
answer it: the CLI prints ``str(error)`` as one line and maps the class to an exit code
(``imgctl.cli._exit``), the server maps it to a gRPC status (``imgctl.server._status``).
Private signals a module raises and catches itself stay in that module.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConcurrentPromotionError",
    "ConfigurationError",
    "CredentialError",
    "DigestMismatchError",
    "IdentityError",
    "ImgctlError",
    "InvalidDigestError",
    "InvalidManifestError",
    "InvalidPromotionError",
    "InvalidReferenceError",
    "InvalidSpaError",
    "InvalidTokenError",
    "KeyRefError",
    "MalformedReview",
    "ManifestError",
    "NotAllowedError",
    "NotAuthenticatedError",
    "NotFoundError",
    "OAuthError",
    "PermanentConnectionError",
    "PermissionDeniedError",
    "PolicyError",
    "PromotionCancelledError",
    "PromotionError",
    "RefusedConnectionError",
    "RegistryError",
    "SignatureError",
    "SourceNotFoundError",
    "SpaNotFoundError",
    "SpaS3Error",
    "StorageRefusedError",
    "StoreError",
    "TransportError",
    "TrustError",
    "UncheckableObject",
    "UnknownHostError",
    "UnreachableError",
    "UsageError",
    "VulnerabilityReportError",
]


class ImgctlError(Exception):
    """Base class of every error imgctl raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(ImgctlError, ValueError):
    """The caller asked for something that cannot work as asked (bad flag, bad file line)."""


class ConfigurationError(UsageError):
    """Several problems of a daemon's configuration (flags, variables, files), reported at once.

    A daemon checks all of its configuration before it opens a database or a socket, so that
    one run names every variable to fix, not one per run. ``str()`` is a first line, then one
    indented line per problem (each its message and hint), then ``see`` if given.
    """

    problems: list[ImgctlError]

    def __init__(self, problems: list[ImgctlError], *, see: str | None = None) -> None:
        flat: list[ImgctlError] = []
        for problem in problems:
            flat.extend(problem.problems if isinstance(problem, ConfigurationError) else [problem])
        super().__init__(f"{len(flat)} problems in the configuration")
        self.problems = flat
        self.see = see

    def __str__(self) -> str:
        lines = [f"{self.message}:", *(f"  {problem}" for problem in self.problems)]
        if self.see:
            lines.append(self.see)
        return "\n".join(lines)


class InvalidReferenceError(ImgctlError, ValueError):
    """An image reference does not follow the distribution grammar.

    ``part`` names the offending component: ``reference``, ``registry``, ``repository``,
    ``tag`` or ``digest``.
    """

    def __init__(self, reference: str, part: str, problem: str, *, hint: str | None = None):
        super().__init__(f"invalid reference {reference!r}: {part} {problem}", hint=hint)
        self.reference = reference
        self.part = part


class InvalidDigestError(ImgctlError, ValueError):
    """A digest string is malformed or uses an algorithm imgctl cannot verify."""


class InvalidManifestError(ImgctlError, ValueError):
    """Manifest bytes are not a manifest or index imgctl understands."""


class DigestMismatchError(ImgctlError):
    """Content did not hash to the digest it was fetched or pushed by."""


class TransportError(ImgctlError):
    """A registry could not be reached (connection, TLS, timeout), even after retries.

    ``host`` is the ``host[:port]`` that could not be reached, when it is known.
    """

    def __init__(self, message: str, *, hint: str | None = None, host: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.host = host


class PermanentConnectionError(TransportError):
    """Connecting failed in a way waiting cannot change (refused, no such host); not retried."""


class RefusedConnectionError(PermanentConnectionError):
    """The host refused the connection (ECONNREFUSED): nothing listens there; not retried."""


class UnknownHostError(PermanentConnectionError):
    """The registry's host name does not resolve (no such name in DNS); not retried."""


class RegistryError(ImgctlError):
    """A registry answered with an error status.

    ``status`` is the HTTP status, ``code`` the first distribution error code in the body
    (``MANIFEST_UNKNOWN``, ``DENIED``...) when the registry sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


class AuthenticationError(RegistryError):
    """The registry refused our credentials, or asked for some and we had none."""


class PermissionDeniedError(RegistryError):
    """The credentials are valid but not allowed to do this (HTTP 403, ``DENIED``)."""


class NotFoundError(RegistryError):
    """The repository, manifest or blob does not exist."""


class CredentialError(ImgctlError):
    """A credential source is misconfigured or failed (env entry, config file, helper, cloud)."""


class IdentityError(ImgctlError):
    """Proving who the caller is failed: no usable SSH key, the issuer refused, no token."""


class InvalidTokenError(IdentityError):
    """A token failed verification; ``reason`` names the check (``expired``, ``audience``...)."""

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class OAuthError(ImgctlError):
    """The built-in issuer's OAuth2 error answer: HTTP ``status``, ``error`` code, description.

    ``error`` is RFC 6749's vocabulary (``invalid_request``, ``access_denied``...), which Dex
    answers with too; the issuer's HTTP side sends :meth:`body` with ``status``.
    """

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """The JSON error body, as Dex sends it."""
        return {"error": self.error, "error_description": self.description}


class StoreError(ImgctlError):
    """The server's database could not be reached, migrated, read or written.

    Messages name the database by its redacted URL; they never contain a password.
    """


class ManifestError(UsageError):
    """A kpromo manifest, images file or thin directory is wrong; the message names the file."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.path = path


class InvalidSpaError(UsageError):
    """An SPA reference, bucket suffix or sync option is unusable; ``part`` names which part."""

    def __init__(self, message: str, *, part: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.part = part


class SpaNotFoundError(ImgctlError):
    """A bucket does not exist, or the version has no objects; ``bucket`` names the bucket."""

    def __init__(self, message: str, *, bucket: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.bucket = bucket


class SpaS3Error(ImgctlError):
    """S3 refused or failed a request; ``code`` is the AWS error code, ``status`` HTTP's."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status


class PolicyError(ImgctlError):
    """The tags cannot be ordered under the policy (e.g. a numerical policy met 'latest')."""


class MalformedReview(ImgctlError, ValueError):
    """The body is not a well-formed AdmissionReview v1; ``path`` locates the problem."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"malformed AdmissionReview: {path} {problem}")
        self.path = path


class UncheckableObject(MalformedReview):
    """An object of a kind imgctl does not know holds containers: its images cannot be found."""

    def __init__(self, path: str, kind: str) -> None:
        ImgctlError.__init__(
            self,
            f"{path} holds containers, but {kind} is not a kind whose images imgctl knows how to "
            "find",
            hint="leave the kind out of the webhook's rules, or exempt its namespace",
        )
        self.path = path


class PromotionError(ImgctlError):
    """A promotion (or a call to the promotion server) failed; the subclass says why.

    This class itself is a failure nobody could foresee: a copy that broke, an internal error.
    """


class InvalidPromotionError(PromotionError):
    """The request cannot be carried out as given: a missing or malformed field.

    Also an unknown environment, source equal to destination, an environment without a
    registry or bucket suffix.
    """


class NotAuthenticatedError(PromotionError):
    """Who is calling could not be established: no token, or the token was rejected."""


class NotAllowedError(PromotionError):
    """The caller is known but may not do this (their groups, the destination's policy)."""


class SourceNotFoundError(PromotionError):
    """The image or bundle to promote does not exist at the source."""


class UnreachableError(PromotionError):
    """Something the promotion needs cannot be reached now; trying again later can work.

    A registry, the issuer's keys, the server's database.
    """


class StorageRefusedError(PromotionError):
    """A registry or bucket refused the server's own request (its credentials, an S3 error)."""


class ConcurrentPromotionError(PromotionError):
    """An identical promotion is still writing the destination and this one stopped waiting."""


class PromotionCancelledError(PromotionError):
    """The caller went away (deadline, disconnect) or the server stopped before the end."""


class TrustError(ImgctlError):
    """Signing or verifying failed; the subclass says whether the key or the signature failed."""


class KeyRefError(TrustError):
    """A key reference cannot be used: no such file, wrong password, unknown format or KMS key."""


class SignatureError(TrustError):
    """A signature does not verify, or a signature manifest is malformed or too large."""


class VulnerabilityReportError(ImgctlError):
    """A vulnerability report cannot be judged: malformed, too large, or its scanner failed."""
