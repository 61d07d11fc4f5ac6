"""How long each piece of caller-supplied text may be, named in one place, and how to cut it.

Requests are refused when a field is over its limit (:func:`check_length`), before anything is
written; what is recorded about the refusal, and anything else that reaches the audit trail or
a log, is cut to its limit with a visible mark (:func:`clip`) and written on one line
(:func:`one_line`).
"""

from __future__ import annotations

from typing import Final

from imgctl.errors import UsageError

__all__ = [
    "MAX_CATALOG_ID",
    "MAX_CATALOG_TAGS",
    "MAX_DIGEST",
    "MAX_EMAIL",
    "MAX_ENVIRONMENT",
    "MAX_ERROR",
    "MAX_ERROR_CODE",
    "MAX_GROUP",
    "MAX_GROUPS",
    "MAX_GRPC_MESSAGE_BYTES",
    "MAX_NAME",
    "MAX_PEER",
    "MAX_REFERENCE",
    "MAX_REQUEST_ID",
    "MAX_SUBJECT",
    "MAX_TAG",
    "check_length",
    "clip",
    "one_line",
]

# imgctl.oci.reference's limits: since distribution/reference v0.6.0 the 255 characters are
# the repository path's alone; the registry host has at most 253 (a DNS name), then ":65535".
# (Numbers, not an import: importing imgctl.oci here would cost every importer 20 ms; a test
# checks they agree.)
MAX_NAME: Final = 253 + len(":65535/") + 255
"""A repository name with its registry at its longest (515)."""
MAX_TAG: Final = 128
MAX_DIGEST: Final = len("sha512:") + 128  # sha512, the longest digest imgctl verifies
MAX_REFERENCE: Final = MAX_NAME + 1 + MAX_TAG + 1 + MAX_DIGEST
"""``registry/name:tag@digest`` at its longest (780); an SPA reference is much shorter."""

# Environment names are IMGCTL_REGISTRY_<NAME> suffixes; a DNS label's length is plenty.
MAX_ENVIRONMENT: Final = 63
MAX_REQUEST_ID: Final = 128
# "ipv6:[...]:port" is under 60 characters; a unix socket path is at most 108 bytes.
MAX_PEER: Final = 256
# Claims of a verified token: the issuer is trusted, but its claims are still bounded.
MAX_SUBJECT: Final = 255
MAX_EMAIL: Final = 254  # RFC 5321's longest forward path, without its angle brackets
MAX_GROUP: Final = 255
MAX_GROUPS: Final = 256
MAX_ERROR_CODE: Final = 64
# An error message quotes bounded fields; room for several, and for a registry's answer.
MAX_ERROR: Final = 2048
# The catalog API: an id is a digest or "name@digest" in practice.
MAX_CATALOG_ID: Final = MAX_NAME + 1 + MAX_DIGEST
MAX_CATALOG_TAGS: Final = 1000

MAX_GRPC_MESSAGE_BYTES: Final = 16 * 1024
"""Largest gRPC request the server reads: a PromoteRequest is three short strings."""


def check_length(field: str, value: str, limit: int) -> None:
    """Raise UsageError (a request's INVALID_ARGUMENT) when ``value`` is over ``limit``."""
    if len(value) > limit:
        raise UsageError(
            f"{field} is {len(value)} characters long; the limit is {limit}",
            hint=f"send a shorter {field}",
        )


def clip(value: str, limit: int) -> str:
    """``value``, or its start with a mark saying how long it was, in at most ``limit`` chars."""
    if len(value) <= limit:
        return value
    mark = f"…[cut: {len(value)} characters]"
    return value[: max(0, limit - len(mark))] + mark


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, as Python escapes them."""
    if text.isprintable():
        return text
    return "".join(
        character if character.isprintable() or character == " " else _escape(character)
        for character in text
    )


def _escape(character: str) -> str:
    # Also format characters (bidi overrides, zero-width): they cannot break a line, but can
    # make one read like another.
    return character.encode("unicode_escape").decode("ascii")
