"""Key references: cosign key files, PEM keys and KMS URIs, as signers and public keys.

INTERFACE STUB (issue 18): the signatures below are fixed; the bodies are being written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = ["PublicKey", "Signer", "generate_key_pair", "load_public_key", "load_signer"]

KeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key that verifies signatures the way cosign makes them."""

    key: KeyTypes
    # What the user gave (a path, a KMS URI): safe to print, never holds a password.
    ref: str

    @property
    def key_id(self) -> str:
        """sha256 hex of the DER SubjectPublicKeyInfo: the same key always has the same id."""
        raise NotImplementedError

    def pem(self) -> bytes:
        """The key as PEM SubjectPublicKeyInfo (what cosign.pub holds)."""
        raise NotImplementedError

    def verify(self, payload: bytes, signature: bytes) -> None:
        """Raise SignatureError unless ``signature`` is this key's over ``payload``.

        ECDSA: ASN.1 DER over SHA-256 of the payload (SHA-384/512 for P-384/P-521);
        Ed25519: over the payload itself; RSA: PKCS#1 v1.5 with SHA-256 (PSS accepted too).
        """
        raise NotImplementedError


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


def load_signer(ref: str, *, environ: Mapping[str, str] | None = None) -> Signer:
    """A signer for a cosign key file, a PEM private key or a KMS URI (``awskms://...``).

    Encrypted cosign keys take their password from ``COSIGN_PASSWORD`` in ``environ``.
    Raises KeyRefError saying what is wrong with the reference and what to do.
    """
    raise NotImplementedError


def load_public_key(ref: str, *, environ: Mapping[str, str] | None = None) -> PublicKey:
    """The public key of a reference: cosign.pub / PEM public key, a private key file, a KMS URI."""
    raise NotImplementedError


def generate_key_pair(prefix: Path, password: bytes) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (cosign format, 0600) and ``<prefix>.pub``; refuse to overwrite."""
    raise NotImplementedError
