"""Key references: cosign key files, PEM keys and KMS URIs, as signers and public keys.

A reference is a path (cosign.key, cosign.pub, a PEM private or public key) or a KMS URI
(``awskms://...``; providers in ``_kms``). Every file is read bounded before it is parsed, and
only the key types cosign makes and verifies are accepted: ECDSA P-256/P-384/P-521, Ed25519 and
RSA of 2048 bits or more.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from imgctl.errors import KeyRefError, SignatureError

__all__ = ["PublicKey", "Signer", "generate_key_pair", "load_public_key", "load_signer"]

KeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

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


def _check_public_key(key: object, ref: str) -> KeyTypes:
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
                key.verify(signature, payload)
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
    return PublicKey(key=_check_public_key(key, ref), ref=ref)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def load_signer(ref: str, *, environ: Mapping[str, str] | None = None) -> Signer:
    """A signer for a cosign key file, a PEM private key or a KMS URI (``awskms://...``).

    Encrypted cosign keys take their password from ``COSIGN_PASSWORD`` in ``environ``.
    Raises KeyRefError saying what is wrong with the reference and what to do.
    """
    raise NotImplementedError


def load_public_key(ref: str, *, environ: Mapping[str, str] | None = None) -> PublicKey:
    """The public key of a reference: cosign.pub / PEM public key, a private key file, a KMS URI."""
    if not ref:
        raise KeyRefError("empty key reference", hint="give a key file path or a KMS URI")
    block = _pem_block(_read_key_file(ref), ref)
    if block.label == "PUBLIC KEY":
        return _public_key_from_pem(block, ref)
    raise KeyRefError(
        f"{ref}: PEM block {block.label!r} is not a public key",
        hint="give a PEM public key (cosign.pub)",
    )


def generate_key_pair(prefix: Path, password: bytes) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (cosign format, 0600) and ``<prefix>.pub``; refuse to overwrite."""
    raise NotImplementedError
