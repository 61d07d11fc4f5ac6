"""SSH keys that can sign: ssh-agent's first, then key files (OpenSSH or PEM, maybe encrypted).

Which keys to try and in what order, why a key is skipped (security keys and certificates
cannot be verified by Dex's SSH connector), and signing in the form INTEROP section 1 wants:
no SSH wrapper, RSA as ``ssh-rsa`` (SHA-1).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from imgctl.errors import IdentityError
from imgctl.identity import _agent
from imgctl.identity._agent import WireError, WireReader, ssh_mpint
from imgctl.identity._sshpublic import (
    ECDSA_CURVES,
    KEY_TYPE_RE,
    SUPPORTED_KEY_TYPES,
    blob_key_type,
    fingerprint,
    parse_authorized_key,
)

__all__ = [
    "CERT_REASON",
    "SK_REASON",
    "SSHKey",
    "Skipped",
    "agent_keys",
    "candidate_keys",
    "default_key_files",
    "load_key_file",
    "public_key_line",
]

SK_REASON = "security-key signatures cannot be verified by Dex's SSH connector"
CERT_REASON = (
    "SSH certificates cannot be verified by Dex's SSH connector "
    "(the certificate's plain key is used when the agent holds it)"
)

MAX_KEY_FILE_SIZE = 1024 * 1024

_ECDSA_BY_CURVE = {
    "secp256r1": "ecdsa-sha2-nistp256",
    "secp384r1": "ecdsa-sha2-nistp384",
    "secp521r1": "ecdsa-sha2-nistp521",
}

_OPENSSH_MAGIC = b"openssh-key-v1\x00"
_OPENSSH_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"

_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


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


def public_key_line(key: SSHKey) -> str:
    """The key in ``authorized_keys`` form: ``TYPE BASE64 [COMMENT]``."""
    line = f"{key.key_type} {base64.b64encode(key.public_blob).decode('ascii')}"
    # A comment with a line break would turn one configured key into two lines.
    comment = " ".join(key.comment.split())
    return f"{line} {comment}" if comment else line


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
            hash_type = ECDSA_CURVES[self.key_type][2]
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
            key_type = blob_key_type(identity.blob)
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
    elif KEY_TYPE_RE.match(data.lstrip().decode("ascii", "replace")):
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
        return blob_key_type(blob)
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
    return blob_key_type(blob), blob


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
