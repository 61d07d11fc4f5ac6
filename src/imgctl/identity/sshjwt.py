"""SSH keys and the SSH-signed JWT that Dex's SSH connector verifies (INTEROP sections 1 and 3).

Client side: find keys (ssh-agent first, then key files), build the claims, sign the token.
Server side: parse a token and verify its signature against an ``authorized_keys`` line.
The keys live in ``_sshkeys`` (agent and files) and ``_sshpublic`` (public keys, signature
checks); this module is the JWT and the one place to import all of it from.

The token is ``b64url(header) "." b64url(payload) "." b64url(b64std(blob))``: the signature
segment is encoded twice, and ``blob`` is the raw signature without its SSH wrapper, because
the connector rebuilds the wrapper with the key's own type as the format. That is also why RSA
signs with SHA-1 (``ssh-rsa``) and why security-key (``sk-*``) keys cannot be used.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imgctl.errors import IdentityError, InvalidTokenError
from imgctl.identity._sshkeys import (
    Skipped,
    SSHKey,
    agent_keys,
    candidate_keys,
    default_key_files,
    load_key_file,
    public_key_line,
)
from imgctl.identity._sshpublic import (
    SUPPORTED_KEY_TYPES,
    fingerprint,
    parse_authorized_key,
    verify_ssh_signature,
)

__all__ = [
    "ISSUER",
    "SUPPORTED_KEY_TYPES",
    "ParsedSSHJWT",
    "SSHKey",
    "Skipped",
    "agent_keys",
    "build_claims",
    "candidate_keys",
    "default_key_files",
    "fingerprint",
    "load_key_file",
    "parse_authorized_key",
    "parse_ssh_jwt",
    "public_key_line",
    "sign_jwt",
    "verify_ssh_signature",
]

ISSUER = "kubectl-ssh-oidc"
"""The ``iss`` kubectl-ssh-oidc puts in its tokens; Dex configs list it in ``allowed_issuers``."""

DEFAULT_LIFETIME = 300

_HEADER: dict[str, str] = {"alg": "SSH", "typ": "JWT"}
# A real token is well under 4 KiB (RSA-16384 signature included); cap what we parse.
MAX_TOKEN_LENGTH = 64 * 1024

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class ParsedSSHJWT:
    """An SSH-signed JWT split into its parts; nothing in it is trusted until verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def build_claims(
    *,
    username: str,
    issuer_url: str,
    target_audience: str,
    now: int | None = None,
    jti: str | None = None,
    lifetime: int = DEFAULT_LIFETIME,
) -> dict[str, object]:
    """The claims kubectl-ssh-oidc sends: ``aud`` is the Dex issuer URL, as a string."""
    for name, value in (
        ("username", username),
        ("issuer URL", issuer_url),
        ("target audience", target_audience),
    ):
        if not value:
            raise IdentityError(f"cannot build an SSH JWT: the {name} is empty")
    if lifetime <= 0:
        raise IdentityError(f"cannot build an SSH JWT: lifetime must be positive, not {lifetime}")
    issued = int(time.time()) if now is None else int(now)
    return {
        "iss": ISSUER,
        "sub": username,
        "aud": issuer_url,
        "target_audience": target_audience,
        "jti": secrets.token_hex(16) if jti is None else jti,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _compact_json(value: Mapping[str, object]) -> bytes:
    # Sorted compact JSON is what Go's json.Marshal of a map produces.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


async def sign_jwt(key: SSHKey, claims: Mapping[str, object]) -> str:
    """Sign ``claims`` with ``key`` as an SSH JWT (``alg: SSH``, double-encoded signature)."""
    signing_input = f"{_b64url(_compact_json(_HEADER))}.{_b64url(_compact_json(claims))}"
    blob = await key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(base64.b64encode(blob))}"


def _malformed(message: str) -> InvalidTokenError:
    return InvalidTokenError("malformed", message)


def _b64url_decode(segment: str, what: str) -> bytes:
    if not _B64URL_RE.fullmatch(segment) or len(segment) % 4 == 1:
        raise _malformed(f"the SSH JWT's {what} segment is not unpadded base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            # Two readers could disagree on which value counts; refuse instead.
            raise ValueError(f"duplicate key {name!r}")
        result[name] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _malformed(f"the SSH JWT's {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"the SSH JWT's {what} is not a JSON object")
    return value


def parse_ssh_jwt(token: str) -> ParsedSSHJWT:
    """Split and decode an SSH JWT without trusting it; verify with ``verify_ssh_signature``."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise _malformed(f"the SSH JWT is longer than {MAX_TOKEN_LENGTH} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise _malformed(f"an SSH JWT has 3 dot-separated segments, this one {len(parts)}")
    header = _json_object(_b64url_decode(parts[0], "header"), "header")
    alg = header.get("alg")
    if alg != "SSH":
        shown = repr(alg)[:40] if alg is not None else "missing"
        raise InvalidTokenError("algorithm", f"SSH JWT algorithm is {shown}, expected 'SSH'")
    claims = _json_object(_b64url_decode(parts[1], "payload"), "payload")
    outer = _b64url_decode(parts[2], "signature")
    try:
        blob = base64.b64decode(outer.decode("ascii"), validate=True)
    except (UnicodeDecodeError, binascii.Error):
        raise _malformed(
            "the SSH JWT's signature segment is not double-encoded "
            "(base64url of padded standard base64)"
        ) from None
    if not blob:
        raise _malformed("the SSH JWT's signature is empty")
    return ParsedSSHJWT(
        header=header,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=blob,
    )
