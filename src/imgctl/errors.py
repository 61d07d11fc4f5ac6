"""The one exception hierarchy of imgctl.

Every error a user can cause or meet carries a message saying what went wrong and, where there
is one, a hint saying what to do next. The CLI prints ``str(error)`` as one line and exits 1; the
server maps the classes to status codes.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CredentialError",
    "DigestMismatchError",
    "IdentityError",
    "ImgctlError",
    "InvalidDigestError",
    "InvalidManifestError",
    "InvalidReferenceError",
    "InvalidTokenError",
    "NotFoundError",
    "PermissionDeniedError",
    "RegistryError",
    "TransportError",
    "UsageError",
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
    """A registry could not be reached (connection, TLS, timeout), even after retries."""


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
