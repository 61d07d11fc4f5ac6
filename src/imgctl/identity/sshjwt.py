"""SSH keys and the SSH-signed JWT that Dex's SSH connector verifies (INTEROP sections 1 and 3).

Client side: find keys (ssh-agent first, then key files), build the claims, sign the token.
Server side: parse a token and verify its signature against an ``authorized_keys`` line.

The token is ``b64url(header) "." b64url(payload) "." b64url(b64std(blob))``: the signature
segment is encoded twice, and ``blob`` is the raw signature without its SSH wrapper, because
the connector rebuilds the wrapper with the key's own type as the format. That is also why RSA
signs with SHA-1 (``ssh-rsa``) and why security-key (``sk-*``) keys cannot be used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from imgctl.errors import IdentityError, InvalidTokenError
from imgctl.identity import _agent
from imgctl.identity._agent import WireError, WireReader, ssh_mpint

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

SUPPORTED_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    }
)
"""Key types imgctl signs and verifies with (those whose signatures Dex's connector accepts)."""

SK_REASON = "security-key signatures cannot be verified by Dex's SSH connector"
CERT_REASON = (
    "SSH certificates cannot be verified by Dex's SSH connector "
    "(the certificate's plain key is used when the agent holds it)"
)

_HEADER: dict[str, str] = {"alg": "SSH", "typ": "JWT"}
# A real token is well under 4 KiB (RSA-16384 signature included); cap what we parse.
MAX_TOKEN_LENGTH = 64 * 1024
MAX_KEY_FILE_SIZE = 1024 * 1024
# OpenSSH refuses smaller RSA keys (RequiredRSASize) and larger moduli than this.
_RSA_MIN_BITS = 1024
_RSA_MAX_BITS = 16384

_ECDSA_CURVES: dict[str, tuple[str, type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    "ecdsa-sha2-nistp256": ("nistp256", ec.SECP256R1, hashes.SHA256),
    "ecdsa-sha2-nistp384": ("nistp384", ec.SECP384R1, hashes.SHA384),
    "ecdsa-sha2-nistp521": ("nistp521", ec.SECP521R1, hashes.SHA512),
}
_ECDSA_BY_CURVE = {
    "secp256r1": "ecdsa-sha2-nistp256",
    "secp384r1": "ecdsa-sha2-nistp384",
    "secp521r1": "ecdsa-sha2-nistp521",
}

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_KEY_TYPE_RE = re.compile(r"(ssh-|ecdsa-|sk-)[A-Za-z0-9@.+_-]+")
_OPENSSH_MAGIC = b"openssh-key-v1\x00"
_OPENSSH_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"

_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class SSHKey(Protocol):
    """A key that can sign: from ssh-agent or from a key file."""

    @property
    def key_type(self) -> str:
        """The SSH key type, e.g. ``ssh-ed25519`` or ``ecdsa-sha2-nistp256``."""
        ...

    @property
    def public_blob(self) -> bytes:
        """The SSH wire encoding of the public key."""
        ...

    @property
    def comment(self) -> str:
        """The key's comment (may be empty)."""
        ...

    @property
    def source(self) -> str:
        """``ssh-agent`` or the key file's path."""
        ...

    async def sign(self, data: bytes) -> bytes:
        """Sign ``data``; returns the raw signature blob of INTEROP section 1 (no SSH wrapper)."""
        ...


@dataclass(frozen=True, slots=True)
class Skipped:
    """A key source or key that cannot be used, and why (shown when no key works)."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParsedSSHJWT:
    """An SSH-signed JWT split into its parts; nothing in it is trusted until verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


# -- keys -------------------------------------------------------------------------------------


def fingerprint(public_blob: bytes) -> str:
    """The SHA-256 fingerprint of a public key, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(public_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_key_line(key: SSHKey) -> str:
    """The key in ``authorized_keys`` form: ``TYPE BASE64 [COMMENT]``."""
    line = f"{key.key_type} {base64.b64encode(key.public_blob).decode('ascii')}"
    # A comment with a line break would turn one configured key into two lines.
    comment = " ".join(key.comment.split())
    return f"{line} {comment}" if comment else line


def _blob_key_type(blob: bytes) -> str:
    try:
        return WireReader(blob).string().decode("ascii")
    except UnicodeDecodeError:
        raise WireError("key type is not ASCII") from None


def _describe(key_type: str, blob: bytes, comment: str) -> str:
    described = f"{key_type} key {fingerprint(blob)}"
    return f"{described} ({comment})" if comment else described


def _unusable_reason(key_type: str) -> str | None:
    if key_type.startswith("sk-"):
        return SK_REASON
    if key_type.endswith("-cert-v01@openssh.com"):
        return CERT_REASON
    if key_type not in SUPPORTED_KEY_TYPES:
        return (
            f"unsupported key type {key_type}; "
            "imgctl uses ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa keys"
        )
    return None


class _AgentKey:
    """A key held by ssh-agent; signing is a round trip to the agent."""

    __slots__ = ("comment", "key_type", "public_blob", "socket_path", "source")

    def __init__(self, socket_path: str, key_type: str, public_blob: bytes, comment: str):
        self.socket_path = socket_path
        self.key_type = key_type
        self.public_blob = public_blob
        self.comment = comment
        self.source = "ssh-agent"

    def __repr__(self) -> str:
        return f"<SSHKey {self.key_type} {fingerprint(self.public_blob)} from ssh-agent>"

    async def sign(self, data: bytes) -> bytes:
        """Sign through the agent with flags 0, so RSA keys sign ``ssh-rsa`` (SHA-1)."""
        described = _describe(self.key_type, self.public_blob, self.comment)
        wrapper = await _agent.sign(self.socket_path, self.public_blob, data, flags=0)
        try:
            wire = WireReader(wrapper)
            sig_format = wire.string().decode("ascii")
            blob = wire.string()
            wire.finish()
        except (WireError, UnicodeDecodeError):
            raise IdentityError(f"ssh-agent sent a malformed signature for {described}") from None
        expected = _signature_format(self.key_type)
        if sig_format != expected:
            if self.key_type == "ssh-rsa":
                raise IdentityError(
                    f"ssh-agent signed RSA {described} with {sig_format}, not ssh-rsa (SHA-1)",
                    hint="Dex's SSH connector verifies RSA keys only as ssh-rsa; use an agent "
                    "that honours sign flags 0 (OpenSSH's does) or an ed25519 or ECDSA key",
                )
            raise IdentityError(
                f"ssh-agent returned a {sig_format} signature for {described}, expected {expected}"
            )
        return blob


def _signature_format(key_type: str) -> str:
    # Plain keys sign with their own type as the format; certificates with the inner key's.
    suffix = "-cert-v01@openssh.com"
    return key_type[: -len(suffix)] if key_type.endswith(suffix) else key_type


class _FileKey:
    """A private key loaded from a file; the private half never leaves this object."""

    __slots__ = ("_private", "comment", "key_type", "public_blob", "source")

    def __init__(
        self, private: _PrivateKey, key_type: str, public_blob: bytes, comment: str, source: str
    ):
        self._private = private
        self.key_type = key_type
        self.public_blob = public_blob
        self.comment = comment
        self.source = source

    def __repr__(self) -> str:
        return f"<SSHKey {self.key_type} {fingerprint(self.public_blob)} from {self.source}>"

    async def sign(self, data: bytes) -> bytes:
        """Sign locally: ed25519 raw, ECDSA as ``mpint r, mpint s``, RSA PKCS#1 v1.5 SHA-1."""
        key = self._private
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            hash_type = _ECDSA_CURVES[self.key_type][2]
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_type())))
            return ssh_mpint(r) + ssh_mpint(s)
        # SHA-1 is what the connector verifies for ssh-rsa keys; see the module docstring.
        return key.sign(data, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303


async def agent_keys(socket_path: str) -> list[SSHKey]:
    """The keys ssh-agent at ``socket_path`` holds, in the agent's order."""
    identities = await _agent.list_identities(socket_path)
    keys: list[SSHKey] = []
    for identity in identities:
        try:
            key_type = _blob_key_type(identity.blob)
        except WireError:
            raise IdentityError(f"ssh-agent at {socket_path} listed a malformed key") from None
        keys.append(_AgentKey(socket_path, key_type, identity.blob, identity.comment))
    return keys


def _openssh_header(data: bytes) -> tuple[str, bytes] | None:
    """The cipher name and public key blob of an OpenSSH private key file, if it is one.

    Both sit before the (possibly encrypted) private section, so they are readable without
    the passphrase.
    """
    lines = data.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _OPENSSH_BEGIN:
        return None
    try:
        raw = base64.b64decode(b"".join(line.strip() for line in lines[1:-1]))
        if not raw.startswith(_OPENSSH_MAGIC):
            return None
        wire = WireReader(raw[len(_OPENSSH_MAGIC) :])
        cipher = wire.string().decode("ascii")
        wire.string()  # kdf name
        wire.string()  # kdf options
        if wire.uint32() != 1:
            return None
        return cipher, wire.string()
    except (binascii.Error, WireError, UnicodeDecodeError):
        return None


def _key_paths(path: Path) -> tuple[Path, Path, bool]:
    """(private key path, public key path, whether ``path`` named the public key)."""
    if path.name.endswith(".pub"):
        return path.with_name(path.name[: -len(".pub")]), path, True
    return path, path.with_name(path.name + ".pub"), False


def _read_public_file(pub_path: Path) -> tuple[str, bytes, str]:
    try:
        text = pub_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise IdentityError(
            f"cannot read SSH public key {pub_path}: {exc.strerror or type(exc).__name__}"
        ) from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise IdentityError(f"SSH public key file {pub_path} is empty")
    try:
        return parse_authorized_key(lines[0])
    except IdentityError as exc:
        raise IdentityError(f"{pub_path}: {exc.message}", hint=exc.hint) from None


def _peek_public_blob(path: Path) -> bytes | None:
    """The public key of a key file without decrypting anything, when that is possible."""
    private_path, pub_path, _ = _key_paths(path)
    try:
        return _read_public_file(pub_path)[1]
    except IdentityError:
        pass
    try:
        with private_path.open("rb") as handle:
            header = _openssh_header(handle.read(MAX_KEY_FILE_SIZE))
    except OSError:
        return None
    return header[1] if header else None


def _encrypted_error(private_path: Path) -> IdentityError:
    return IdentityError(
        f"SSH key {private_path} is encrypted and no passphrase was given",
        hint=f"add it to ssh-agent once with `ssh-add {private_path}` (imgctl then uses the "
        "agent), or run imgctl in a terminal so it can ask for the passphrase",
    )


def _read_private_file(private_path: Path, named_public: bool, pub_path: Path) -> bytes:
    try:
        size = private_path.stat().st_size
        if size > MAX_KEY_FILE_SIZE:
            raise IdentityError(f"{private_path} is too large to be an SSH private key")
        return private_path.read_bytes()
    except FileNotFoundError:
        if named_public:
            raise IdentityError(
                f"no private key beside {pub_path} (looked for {private_path})",
                hint="add the key to ssh-agent with `ssh-add`, or pass the private key's path",
            ) from None
        raise IdentityError(f"SSH key file {private_path} does not exist") from None
    except OSError as exc:
        raise IdentityError(
            f"cannot read SSH key file {private_path}: {exc.strerror or type(exc).__name__}"
        ) from None


def load_key_file(path: Path, passphrase: Callable[[str], str | None] | None = None) -> SSHKey:
    """Load a private key (OpenSSH or PEM); ``path`` may also name its ``.pub`` file.

    An encrypted key calls ``passphrase(prompt)``; no callback, or no answer, is an error
    that says how to use ssh-agent instead.
    """
    path = Path(path)
    private_path, pub_path, named_public = _key_paths(path)
    declared: tuple[str, bytes, str] | None = None
    if named_public or pub_path.is_file():
        try:
            declared = _read_public_file(pub_path)
        except IdentityError:
            if named_public:
                raise
            # A broken sidecar .pub only costs us the comment; the private key decides.
            declared = None
    if declared is not None and (reason := _unusable_reason(declared[0])) is not None:
        raise IdentityError(f"{path} is a {declared[0]} key: {reason}")

    data = _read_private_file(private_path, named_public, pub_path)
    header = _openssh_header(data)
    if header is not None:
        header_type = _blob_key_type_or_none(header[1])
        if header_type is not None and (reason := _unusable_reason(header_type)) is not None:
            raise IdentityError(f"{private_path} is a {header_type} key: {reason}")
        encrypted = header[0] != "none"
    elif data.lstrip().startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in data:
        encrypted = b"ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data
    elif _KEY_TYPE_RE.match(data.lstrip().decode("ascii", "replace")):
        raise IdentityError(
            f"{private_path} is a public key, not a private key",
            hint="add the private key to ssh-agent with `ssh-add`",
        )
    else:
        raise IdentityError(
            f"{private_path} is not an OpenSSH or PEM private key",
            hint="convert it with `ssh-keygen -p -f FILE` (PuTTY keys: `puttygen`)",
        )

    private = _decrypt(private_path, data, header is not None, encrypted, passphrase)
    key_type, blob = _public_of(private, private_path)
    if declared is not None and declared[1] != blob:
        raise IdentityError(
            f"{pub_path} does not match the private key {private_path}",
            hint="regenerate the .pub with `ssh-keygen -y -f PRIVATE_KEY`",
        )
    comment = declared[2] if declared is not None else ""
    return _FileKey(private, key_type, blob, comment, str(path))


def _blob_key_type_or_none(blob: bytes) -> str | None:
    try:
        return _blob_key_type(blob)
    except WireError:
        return None


def _decrypt(
    private_path: Path,
    data: bytes,
    openssh: bool,
    encrypted: bool,
    passphrase: Callable[[str], str | None] | None,
) -> _PrivateKey:
    secret: bytes | None = None
    try:
        if encrypted:
            if passphrase is None:
                raise _encrypted_error(private_path)
            answer = passphrase(f"Enter passphrase for {private_path}: ")
            if not answer:
                raise _encrypted_error(private_path)
            secret = answer.encode("utf-8")
            answer = None
        try:
            if openssh:
                loaded: object = serialization.load_ssh_private_key(data, secret)
            else:
                loaded = serialization.load_pem_private_key(data, secret)
        except TypeError:
            # cryptography saw encryption our header check missed.
            raise _encrypted_error(private_path) from None
        except UnsupportedAlgorithm as exc:
            if "bcrypt" in str(exc):
                raise IdentityError(
                    f"cannot decrypt {private_path}: encrypted OpenSSH keys need the Python "
                    "'bcrypt' package",
                    hint=f"install bcrypt, or add the key to ssh-agent with "
                    f"`ssh-add {private_path}`",
                ) from None
            raise IdentityError(
                f"{private_path} uses an unsupported key type or cipher ({exc})",
                hint="use an ed25519, ECDSA or RSA key, or add it to ssh-agent",
            ) from None
        except ValueError:
            if secret is not None:
                raise IdentityError(
                    f"wrong passphrase for SSH key {private_path}",
                    hint=f"try again, or add it to ssh-agent with `ssh-add {private_path}`",
                ) from None
            raise IdentityError(
                f"{private_path} is not a valid private key (corrupt or unsupported)"
            ) from None
    finally:
        # Tracebacks that show locals must not show the passphrase.
        secret = None
    if not isinstance(
        loaded, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    ):
        raise IdentityError(
            f"{private_path} holds an unsupported key type ({type(loaded).__name__})",
            hint="use an ed25519, ECDSA (P-256/384/521) or RSA key",
        )
    return loaded


def _public_of(private: _PrivateKey, private_path: Path) -> tuple[str, bytes]:
    if (
        isinstance(private, ec.EllipticCurvePrivateKey)
        and private.curve.name not in _ECDSA_BY_CURVE
    ):
        raise IdentityError(
            f"{private_path} is an ECDSA key on curve {private.curve.name}",
            hint="SSH uses P-256, P-384 or P-521 (ssh-keygen -t ecdsa -b 256|384|521)",
        )
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    blob = base64.b64decode(line.split()[1])
    return _blob_key_type(blob), blob


def default_key_files(home: Path, pubkey_file: Path | None = None) -> list[Path]:
    """``[pubkey_file]`` if given, else whichever of ~/.ssh/id_ed25519, id_ecdsa, id_rsa exist."""
    if pubkey_file is not None:
        return [pubkey_file]
    ssh_dir = home / ".ssh"
    return [
        ssh_dir / name
        for name in ("id_ed25519", "id_ecdsa", "id_rsa")
        if (ssh_dir / name).is_file()
    ]


async def candidate_keys(
    environ: Mapping[str, str],
    home: Path,
    pubkey_file: Path | None,
    passphrase: Callable[[str], str | None] | None,
) -> AsyncIterator[SSHKey | Skipped]:
    """Keys to try, in order: ssh-agent's (in its order), then key files; unusable ones as Skipped.

    Lazy: a key file is only read (and its passphrase only asked for) when the caller gets
    that far. A file whose key the agent already offered is left out, so it is never prompted for.
    """
    seen: set[bytes] = set()
    socket_path = environ.get("SSH_AUTH_SOCK")
    if not socket_path:
        yield Skipped("ssh-agent", "SSH_AUTH_SOCK is not set")
    else:
        try:
            keys = await agent_keys(socket_path)
        except IdentityError as exc:
            yield Skipped("ssh-agent", str(exc))
            keys = []
        for key in keys:
            seen.add(key.public_blob)
            reason = _unusable_reason(key.key_type)
            if reason is not None:
                described = _describe(key.key_type, key.public_blob, key.comment)
                yield Skipped("ssh-agent", f"{described}: {reason}")
            else:
                yield key

    files = default_key_files(home, pubkey_file)
    if not files:
        yield Skipped(str(home / ".ssh"), "none of id_ed25519, id_ecdsa, id_rsa exists")
    for path in files:
        peeked = _peek_public_blob(path)
        if peeked is not None and peeked in seen:
            continue
        try:
            file_key = load_key_file(path, passphrase)
        except IdentityError as exc:
            yield Skipped(str(path), str(exc))
            continue
        if file_key.public_blob in seen:
            continue
        seen.add(file_key.public_blob)
        yield file_key


# -- tokens -----------------------------------------------------------------------------------


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


# -- verification -----------------------------------------------------------------------------


def _load_public_key(blob: bytes) -> tuple[str, _PublicKey | None]:
    """Parse a public key blob; the key is None for types imgctl does not verify.

    Raises WireError (a ValueError) when the blob is malformed for its type.
    """
    wire = WireReader(blob)
    try:
        key_type = wire.string().decode("ascii")
    except UnicodeDecodeError:
        raise WireError("key type is not ASCII") from None
    if key_type == "ssh-ed25519":
        raw = wire.string()
        wire.finish()
        if len(raw) != 32:
            raise WireError("an ed25519 public key is 32 bytes")
        return key_type, ed25519.Ed25519PublicKey.from_public_bytes(raw)
    if key_type in _ECDSA_CURVES:
        curve_name, curve, _ = _ECDSA_CURVES[key_type]
        if wire.string() != curve_name.encode("ascii"):
            raise WireError(f"curve name does not match {key_type}")
        point = wire.string()
        wire.finish()
        try:
            return key_type, ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)
        except ValueError:
            raise WireError("not a point on the curve") from None
    if key_type == "ssh-rsa":
        exponent = wire.mpint()
        modulus = wire.mpint()
        wire.finish()
        if exponent < 3 or exponent % 2 == 0 or modulus <= 0:
            raise WireError("invalid RSA exponent or modulus")
        if not _RSA_MIN_BITS <= modulus.bit_length() <= _RSA_MAX_BITS:
            raise WireError(
                f"RSA modulus must be {_RSA_MIN_BITS} to {_RSA_MAX_BITS} bits, "
                f"not {modulus.bit_length()}"
            )
        try:
            return key_type, rsa.RSAPublicNumbers(exponent, modulus).public_key()
        except ValueError:
            raise WireError("invalid RSA public key") from None
    return key_type, None


def parse_authorized_key(line: str) -> tuple[str, bytes, str]:
    """Parse ``TYPE BASE64 [COMMENT]`` into (key type, wire blob, comment).

    Lines with ``authorized_keys`` options are refused: nothing here could enforce them.
    Key types imgctl cannot verify are returned as parsed (``verify_ssh_signature`` then
    says False); check ``SUPPORTED_KEY_TYPES`` to refuse them up front.
    """
    text = line.strip()
    if not text:
        raise IdentityError("empty SSH public key line")
    if text.startswith("#"):
        raise IdentityError("the SSH public key line is a comment, not a key")
    if text.startswith("-----BEGIN"):
        raise IdentityError(
            "this is a private key or certificate in PEM form, not an SSH public key line",
            hint="use the .pub line, e.g. from `ssh-keygen -y -f KEY`",
        )
    fields = text.split(None, 2)
    if not _KEY_TYPE_RE.fullmatch(fields[0]):
        later = [f for f in text.split()[1:] if _KEY_TYPE_RE.fullmatch(f)]
        if later:
            raise IdentityError(
                f"the {later[0]} key line starts with authorized_keys options",
                hint="remove the options: imgctl's issuer cannot enforce them",
            )
        raise IdentityError(
            "the SSH public key line does not start with a key type "
            "(ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa...)"
        )
    key_type = fields[0]
    if len(fields) < 2:
        raise IdentityError(f"the {key_type} key line has no key data after the type")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise IdentityError(f"the {key_type} key data is not valid base64") from None
    try:
        embedded, _ = _load_public_key(blob)
    except WireError as exc:
        raise IdentityError(f"the {key_type} key data is malformed: {exc}") from None
    if embedded != key_type:
        shown = embedded if _KEY_TYPE_RE.fullmatch(embedded) else "different"
        raise IdentityError(f"the key line says {key_type} but its data is a {shown} key")
    comment = fields[2].strip() if len(fields) > 2 else ""
    return key_type, blob, comment


def verify_ssh_signature(public_key: str | bytes, signing_input: bytes, signature: bytes) -> bool:
    """True when ``signature`` (a raw blob, as in the JWT) is ``public_key``'s over the input.

    ``public_key`` is an ``authorized_keys`` line or a wire blob. Never raises: a bad key,
    bad signature or unsupported key type is False. Callers should still validate their
    configured keys with ``parse_authorized_key`` so a typo is an error, not a silent False.
    """
    try:
        blob = parse_authorized_key(public_key)[1] if isinstance(public_key, str) else public_key
        key_type, key = _load_public_key(bytes(blob))
        if isinstance(key, ed25519.Ed25519PublicKey):
            if len(signature) != 64:
                return False
            key.verify(signature, signing_input)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            wire = WireReader(signature)
            r, s = wire.mpint(), wire.mpint()
            wire.finish()
            if r <= 0 or s <= 0:
                return False
            hash_type = _ECDSA_CURVES[key_type][2]
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_type()))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            # ssh-rsa means SHA-1: the connector verifies with format = key type.
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
            return True
    except (IdentityError, InvalidSignature, ValueError, OverflowError, UnsupportedAlgorithm):
        return False
    return False
