"""Key references: cosign key files, PEM keys and KMS URIs, as signers and public keys.

A reference is a path (cosign.key, cosign.pub, a PEM private or public key) or a KMS URI
(``awskms://...``; providers in ``_kms``). Every file is read bounded before it is parsed, and
only the key types cosign makes and verifies are accepted: ECDSA P-256/P-384/P-521, Ed25519 and
RSA of 2048 bits or more.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from imgctl.errors import KeyRefError, SignatureError

__all__ = ["PublicKey", "Signer", "generate_key_pair", "load_public_key", "load_signer"]

KeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKeyTypes = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

PASSWORD_VARIABLE = "COSIGN_PASSWORD"  # noqa: S105 (the variable's name, not a password)
COSIGN_KEY_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# Written by generate_key_pair (cosign 2.x's label; cosign reads both).
COSIGN_KEY_LABEL = COSIGN_KEY_LABELS[0]
_PLAIN_PRIVATE_LABELS = ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY")
_ENCRYPTED_PKCS8_LABEL = "ENCRYPTED PRIVATE KEY"

# The scrypt parameters go-securesystemslib's encrypted.Decrypt accepts (its CheckParams: legacy,
# standard, OWASP), and nothing else: cosign refuses other files, and this bounds what a key
# file can make us spend (N=2^17, r=8: 128 MiB and about half a second).
SCRYPT_PARAMS = frozenset({(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)})
# cosign's generate-key-pair wrote these until go-securesystemslib moved its default to 2^16;
# every cosign version reads them.
GENERATE_SCRYPT_PARAMS = (32768, 8, 1)
_SECRETBOX_KEY_BYTES = 32
_SECRETBOX_NONCE_BYTES = 24
_SALT_BYTES = 32
_MAX_SALT_BYTES = 1024

# A PEM key is a few hundred bytes (an RSA-4096 private key about 3.3 KiB); anything this large
# is not a key file and is refused before it is read whole.
MAX_KEY_FILE_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
# Larger RSA keys only make verification slow for whoever hands them to us.
MAX_RSA_BITS = 8192

# cosign picks the digest from the curve (sigstore's LoadDefaultVerifier does the same).
_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def checked_public_key(key: object, ref: str) -> KeyTypes:
    """``key`` if it is a type and size cosign signs with, else KeyRefError."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASHES:
            raise KeyRefError(
                f"{ref}: ECDSA curve {key.curve.name} is not supported",
                hint="use a P-256, P-384 or P-521 key",
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS or key.key_size > MAX_RSA_BITS:
            raise KeyRefError(
                f"{ref}: RSA key of {key.key_size} bits is not accepted",
                hint=f"use an RSA key of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, or ECDSA P-256",
            )
        return key
    raise KeyRefError(
        f"{ref}: {type(key).__name__.lstrip('_')} keys are not supported",
        hint="use an ECDSA P-256/P-384/P-521, Ed25519 or RSA (2048 bits or more) key",
    )


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key that verifies signatures the way cosign makes them."""

    key: KeyTypes
    # What the user gave (a path, a KMS URI): safe to print, never holds a password.
    ref: str

    @property
    def key_id(self) -> str:
        """sha256 hex of the DER SubjectPublicKeyInfo: the same key always has the same id."""
        return hashlib.sha256(self.der()).hexdigest()

    def der(self) -> bytes:
        """The key as DER SubjectPublicKeyInfo."""
        return self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def pem(self) -> bytes:
        """The key as PEM SubjectPublicKeyInfo (what cosign.pub holds)."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def algorithm(self) -> str:
        """A short name of the key type: ``ecdsa-p256``, ``ed25519``, ``rsa-2048``..."""
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return (
                "ecdsa-"
                + _CURVE_NAMES.get(self.key.curve.name, self.key.curve.name)
                .replace("-", "")
                .lower()
            )
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            return "ed25519"
        return f"rsa-{self.key.key_size}"

    def same_key(self, other: PublicKey) -> bool:
        """Whether ``other`` is the same key (whatever reference it came from)."""
        return self.der() == other.der()

    def verify(self, payload: bytes, signature: bytes) -> None:
        """Raise SignatureError unless ``signature`` is this key's over ``payload``.

        ECDSA: ASN.1 DER over SHA-256 of the payload (SHA-384/512 for P-384/P-521);
        Ed25519: over the payload itself; RSA: PKCS#1 v1.5 with SHA-256 (PSS accepted too).
        Ed25519ph (what cosign signs with when it uploads to a transparency log) is accepted too.
        """
        key = self.key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                algorithm = _CURVE_HASHES.get(key.curve.name)
                if algorithm is None:
                    raise SignatureError(f"{self.ref}: unsupported curve {key.curve.name}")
                key.verify(signature, payload, ec.ECDSA(algorithm()))
                return
            if isinstance(key, ed25519.Ed25519PublicKey):
                try:
                    key.verify(signature, payload)
                except InvalidSignature:
                    if not _ed25519ph_verifies(key, payload, signature):
                        raise
                return
            try:
                key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
                return
            except InvalidSignature:
                # cosign's RSA verifier takes PSS signatures too (sigstore's RSAPSSVerifier).
                key.verify(
                    signature,
                    payload,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                    hashes.SHA256(),
                )
                return
        except (InvalidSignature, ValueError) as exc:
            # ValueError: a signature that is not even well-formed (bad DER, wrong length).
            raise SignatureError(
                f"signature does not verify with {self.ref} (key {self.key_id[:12]})"
            ) from exc


def _ed25519ph_verifies(key: ed25519.Ed25519PublicKey, payload: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is Ed25519ph (RFC 8032, SHA-512 prehash, empty context) over it."""
    import nacl.bindings
    import nacl.exceptions

    if len(signature) != nacl.bindings.crypto_sign_BYTES:
        return False
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    state = nacl.bindings.crypto_sign_ed25519ph_state()
    nacl.bindings.crypto_sign_ed25519ph_update(state, payload)
    try:
        return bool(nacl.bindings.crypto_sign_ed25519ph_final_verify(state, signature, raw))
    except nacl.exceptions.BadSignatureError:
        return False


class Signer(Protocol):
    """Something that signs payloads with a private key it may never show (a KMS key)."""

    @property
    def ref(self) -> str:
        """The key reference as given, safe to print."""
        ...

    def public_key(self) -> PublicKey:
        """The matching public key."""
        ...

    def sign(self, payload: bytes) -> bytes:
        """The raw signature over ``payload`` (as ``PublicKey.verify`` checks it); blocking."""
        ...


def _read_key_file(ref: str) -> bytes:
    """The bytes of the key file ``ref``, read bounded; KeyRefError if it is not a usable file."""
    path = Path(ref).expanduser()
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            # Pipes too: process substitution (<(...)) hands a key over without a file on disk.
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                raise KeyRefError(f"{ref}: not a regular file", hint="give the path of a key file")
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyRefError(
            f"{ref}: no such key file",
            hint="give the path of a cosign.key/cosign.pub or PEM key file, or a KMS URI "
            "such as awskms:///alias/NAME",
        ) from None
    except IsADirectoryError:
        raise KeyRefError(f"{ref}: is a directory", hint="give the path of a key file") from None
    except PermissionError:
        raise KeyRefError(f"{ref}: permission denied reading the key file") from None
    except OSError as exc:
        raise KeyRefError(f"{ref}: cannot read the key file ({exc.strerror or exc})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyRefError(
            f"{ref}: larger than {MAX_KEY_FILE_BYTES // 1024} KiB, not a key file",
            hint="give the path of a PEM key file",
        )
    return data


@dataclass(frozen=True, slots=True)
class _PemBlock:
    label: str
    body: bytes  # the whole block, BEGIN to END, as cryptography's loaders want it


def _pem_block(data: bytes, ref: str) -> _PemBlock:
    """The first PEM block of ``data``; KeyRefError if there is none or it is cut short."""
    begin = data.find(b"-----BEGIN ")
    if begin < 0:
        raise KeyRefError(
            f"{ref}: not a PEM key file (no '-----BEGIN' line)",
            hint="give a cosign.key/cosign.pub or a PEM key file",
        )
    label_end = data.find(b"-----", begin + 11)
    if label_end < 0:
        raise KeyRefError(f"{ref}: malformed PEM header", hint="the key file is damaged")
    label_bytes = data[begin + 11 : label_end]
    end_marker = b"-----END " + label_bytes + b"-----"
    end = data.find(end_marker, label_end)
    if end < 0:
        raise KeyRefError(
            f"{ref}: PEM block has no matching END line (file cut short?)",
            hint="the key file is damaged; copy it again",
        )
    try:
        label = label_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise KeyRefError(f"{ref}: malformed PEM header", hint="the key file is damaged") from None
    return _PemBlock(label=label, body=data[begin : end + len(end_marker)] + b"\n")


def _public_key_from_pem(block: _PemBlock, ref: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(block.body)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyRefError(
            f"{ref}: the PEM public key cannot be parsed ({_first_line(exc)})",
            hint="the key file is damaged or not a SubjectPublicKeyInfo key",
        ) from None
    return PublicKey(key=checked_public_key(key, ref), ref=ref)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# --- private keys --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LocalSigner:
    """A private key held in memory, loaded from a key file."""

    ref: str
    private: PrivateKeyTypes = field(repr=False)

    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(key=self.private.public_key(), ref=self.ref)

    def sign(self, payload: bytes) -> bytes:
        """ECDSA (DER, digest by curve), Ed25519 (pure) or RSA PKCS#1 v1.5 with SHA-256."""
        private = self.private
        if isinstance(private, ec.EllipticCurvePrivateKey):
            return private.sign(payload, ec.ECDSA(_CURVE_HASHES[private.curve.name]()))
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(payload)
        return private.sign(payload, padding.PKCS1v15(), hashes.SHA256())


def _checked_private_key(key: object, ref: str) -> PrivateKeyTypes:
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        checked_public_key(key.public_key(), ref)
        return key
    raise KeyRefError(
        f"{ref}: {type(key).__name__.lstrip('_')} keys are not supported",
        hint="use an ECDSA P-256/P-384/P-521, Ed25519 or RSA (2048 bits or more) key",
    )


def _password(environ: Mapping[str, str], ref: str) -> bytes:
    value = environ.get(PASSWORD_VARIABLE)
    if value is None:
        raise KeyRefError(
            f"{ref} is encrypted and {PASSWORD_VARIABLE} is not set",
            hint=f"set {PASSWORD_VARIABLE} to the key's password "
            "(to an empty string for a key made without one)",
        )
    return value.encode("utf-8")


def _wrong_password(ref: str) -> KeyRefError:
    return KeyRefError(
        f"wrong password for {ref}",
        hint=f"{PASSWORD_VARIABLE} must hold the password the key was made with",
    )


def _pem_body(block: _PemBlock, ref: str) -> bytes:
    """The base64 payload of a PEM block, decoded strictly."""
    lines = block.body.decode("ascii", "replace").splitlines()[1:-1]
    if any(":" in line for line in lines):
        raise KeyRefError(f"{ref}: unexpected PEM headers in a {block.label} block")
    try:
        return base64.b64decode("".join(line.strip() for line in lines), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRefError(
            f"{ref}: the {block.label} block is not valid base64",
            hint="the key file is damaged; copy it again",
        ) from None


def _field(doc: Any, ref: str, *path: str) -> Any:
    value = doc
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise KeyRefError(
                f"{ref}: not a cosign key file (no {'.'.join(path)})",
                hint="the key file is damaged",
            )
        value = value[name]
    return value


def _b64_field(doc: Any, ref: str, *path: str) -> bytes:
    value = _field(doc, ref, *path)
    if not isinstance(value, str):
        raise KeyRefError(f"{ref}: {'.'.join(path)} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyRefError(f"{ref}: {'.'.join(path)} is not valid base64") from None


def _int_field(doc: Any, ref: str, *path: str) -> int:
    value = _field(doc, ref, *path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeyRefError(f"{ref}: {'.'.join(path)} is not an integer")
    return value


def _decrypt_cosign_key(block: _PemBlock, ref: str, password: bytes) -> bytes:
    """The PKCS#8 DER inside a cosign key file: scrypt derives the NaCl secretbox key.

    The JSON is go-securesystemslib's ``encrypted`` format: ``{"kdf": {"name": "scrypt",
    "params": {"N", "r", "p"}, "salt"}, "cipher": {"name": "nacl/secretbox", "nonce"},
    "ciphertext"}`` with standard base64 byte strings.
    """
    import nacl.exceptions
    import nacl.secret

    try:
        doc = json.loads(_pem_body(block, ref))
    except (ValueError, UnicodeDecodeError):
        raise KeyRefError(
            f"{ref}: the {block.label} block does not hold cosign's JSON",
            hint="the key file is damaged; copy it again",
        ) from None
    kdf_name = _field(doc, ref, "kdf", "name")
    cipher_name = _field(doc, ref, "cipher", "name")
    if kdf_name != "scrypt":
        raise KeyRefError(f"{ref}: unknown key derivation {str(kdf_name)[:40]!r} (not scrypt)")
    if cipher_name != "nacl/secretbox":
        raise KeyRefError(f"{ref}: unknown cipher {str(cipher_name)[:40]!r} (not nacl/secretbox)")
    params = tuple(_int_field(doc, ref, "kdf", "params", name) for name in ("N", "r", "p"))
    if params not in SCRYPT_PARAMS:
        accepted = ", ".join(f"N={n} r={r} p={p}" for n, r, p in sorted(SCRYPT_PARAMS))
        raise KeyRefError(
            f"{ref}: unsupported scrypt parameters N={params[0]} r={params[1]} p={params[2]}",
            hint=f"cosign key files use {accepted}; re-create the key with cosign or imgctl "
            "generate-key-pair",
        )
    salt = _b64_field(doc, ref, "kdf", "salt")
    nonce = _b64_field(doc, ref, "cipher", "nonce")
    ciphertext = _b64_field(doc, ref, "ciphertext")
    if not 0 < len(salt) <= _MAX_SALT_BYTES:
        raise KeyRefError(f"{ref}: scrypt salt of {len(salt)} bytes")
    if len(nonce) != _SECRETBOX_NONCE_BYTES:
        raise KeyRefError(f"{ref}: secretbox nonce of {len(nonce)} bytes, not 24")
    n, r, p = params
    key = Scrypt(salt=salt, length=_SECRETBOX_KEY_BYTES, n=n, r=r, p=p).derive(password)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(ciphertext, nonce))
    except nacl.exceptions.CryptoError:
        # The box's MAC fails: a wrong password, or a ciphertext changed after it was written.
        raise _wrong_password(ref) from None


def _encrypt_cosign_key(der: bytes, password: bytes) -> bytes:
    """A cosign key file's PEM for the PKCS#8 DER ``der`` (random salt and nonce)."""
    import nacl.secret
    import nacl.utils

    n, r, p = GENERATE_SCRYPT_PARAMS
    salt = os.urandom(_SALT_BYTES)
    nonce = nacl.utils.random(_SECRETBOX_NONCE_BYTES)
    key = Scrypt(salt=salt, length=_SECRETBOX_KEY_BYTES, n=n, r=r, p=p).derive(password)
    ciphertext = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    # Field order and compact separators as Go's encoding/json writes the same struct.
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(ciphertext),
    }
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode("ascii"))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    label = COSIGN_KEY_LABEL.encode("ascii")
    return b"".join(
        [
            b"-----BEGIN " + label + b"-----\n",
            *(line + b"\n" for line in lines),
            b"-----END " + label + b"-----\n",
        ]
    )


def _private_key_from_pem(
    block: _PemBlock, ref: str, environ: Mapping[str, str]
) -> PrivateKeyTypes:
    """The private key of a PEM block: cosign's encrypted format, PKCS#8, SEC1 or PKCS#1."""
    if block.label in COSIGN_KEY_LABELS:
        der = _decrypt_cosign_key(block, ref, _password(environ, ref))
        try:
            key: object = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyRefError(
                f"{ref}: the decrypted key cannot be parsed ({_first_line(exc)})",
                hint="the key file is damaged",
            ) from None
        return _checked_private_key(key, ref)
    # OpenSSL's traditional encryption marks the block with a Proc-Type header.
    encrypted = block.label == _ENCRYPTED_PKCS8_LABEL or b"Proc-Type: 4,ENCRYPTED" in block.body
    if block.label not in (*_PLAIN_PRIVATE_LABELS, _ENCRYPTED_PKCS8_LABEL):
        raise KeyRefError(
            f"{ref}: PEM block {block.label!r} is not a private key imgctl reads",
            hint="give a cosign.key, or a PEM PRIVATE KEY / EC PRIVATE KEY / RSA PRIVATE KEY",
        )
    password = _password(environ, ref) if encrypted else None
    try:
        key = serialization.load_pem_private_key(block.body, password=password)
    except ValueError as exc:
        text = str(exc).lower()
        if encrypted and ("password" in text or "decrypt" in text):
            raise _wrong_password(ref) from None
        raise KeyRefError(
            f"{ref}: the PEM private key cannot be parsed ({_first_line(exc)})",
            hint="the key file is damaged or not a PKCS#8, SEC1 or PKCS#1 key",
        ) from None
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise KeyRefError(
            f"{ref}: the PEM private key cannot be used ({_first_line(exc)})",
            hint="the key file is damaged or not a PKCS#8, SEC1 or PKCS#1 key",
        ) from None
    return _checked_private_key(key, ref)


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _check_ref(ref: str) -> None:
    if not ref or not ref.strip():
        raise KeyRefError(
            "empty key reference",
            hint="give a key file path (cosign.key, cosign.pub, PEM) or a KMS URI",
        )


def load_signer(ref: str, *, environ: Mapping[str, str] | None = None) -> Signer:
    """A signer for a cosign key file, a PEM private key or a KMS URI (``awskms://...``).

    Encrypted cosign keys take their password from ``COSIGN_PASSWORD`` in ``environ``.
    Raises KeyRefError saying what is wrong with the reference and what to do.
    """
    from imgctl.trust._kms import kms_scheme, load_kms_signer

    _check_ref(ref)
    env = _environ(environ)
    if kms_scheme(ref) is not None:
        return load_kms_signer(ref, env)
    block = _pem_block(_read_key_file(ref), ref)
    if block.label == "PUBLIC KEY":
        raise KeyRefError(
            f"{ref} is a public key: it cannot sign",
            hint="give the private key (cosign.key) to sign; the .pub verifies",
        )
    return _LocalSigner(ref=ref, private=_private_key_from_pem(block, ref, env))


def load_public_key(ref: str, *, environ: Mapping[str, str] | None = None) -> PublicKey:
    """The public key of a reference: cosign.pub / PEM public key, a private key file, a KMS URI."""
    from imgctl.trust._kms import kms_scheme, load_kms_signer

    _check_ref(ref)
    env = _environ(environ)
    if kms_scheme(ref) is not None:
        return load_kms_signer(ref, env).public_key()
    block = _pem_block(_read_key_file(ref), ref)
    if block.label == "PUBLIC KEY":
        return _public_key_from_pem(block, ref)
    if block.label == "CERTIFICATE":
        raise KeyRefError(
            f"{ref} is a certificate, not a key",
            hint="give the public key (cosign.pub), or use the keyless identity options",
        )
    return _LocalSigner(ref=ref, private=_private_key_from_pem(block, ref, env)).public_key()


# --- generate-key-pair -------------------------------------------------------------------


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` holding ``data`` with ``mode``, whole or not at all, never replacing.

    Written to a temporary file in the same folder, then hard-linked to its name: link(2) fails
    if the name exists, so a file that appeared meanwhile is not replaced either.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _exists_error(path: Path) -> KeyRefError:
    return KeyRefError(
        f"{path} already exists: not overwriting it",
        hint="remove it, or choose another --output-key-prefix",
    )


def write_public_key(path: Path, key: PublicKey) -> Path:
    """Write ``key`` as PEM to a new file ``path`` (0644); refuse to overwrite."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise _exists_error(path)
    if not path.parent.is_dir():
        raise KeyRefError(f"{path.parent}: no such directory")
    try:
        _write_new(path, key.pem(), 0o644)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError as exc:
        raise KeyRefError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _key_pair_paths(prefix: Path) -> tuple[Path, Path]:
    """``<prefix>.key`` and ``<prefix>.pub``, checked to be new files in an existing folder."""
    prefix = Path(prefix)
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists() or path.is_symlink():
            raise _exists_error(path)
    if not key_path.parent.is_dir():
        raise KeyRefError(f"{key_path.parent}: no such directory")
    return key_path, pub_path


def generate_key_pair(prefix: Path, password: bytes) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (cosign format, 0600) and ``<prefix>.pub``; refuse to overwrite."""
    key_path, pub_path = _key_pair_paths(prefix)
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_pem = _encrypt_cosign_key(der, password)
    pub_pem = PublicKey(key=private.public_key(), ref=str(pub_path)).pem()
    try:
        _write_new(key_path, key_pem, 0o600)
    except FileExistsError:
        raise _exists_error(key_path) from None
    except OSError as exc:
        raise KeyRefError(f"cannot write {key_path}: {exc.strerror or exc}") from None
    try:
        _write_new(pub_path, pub_pem, 0o644)
    except OSError as exc:
        # Both or neither: the private key without its .pub would be half a pair.
        key_path.unlink()
        if isinstance(exc, FileExistsError):
            raise _exists_error(pub_path) from None
        raise KeyRefError(f"cannot write {pub_path}: {exc.strerror or exc}") from None
    return key_path, pub_path
