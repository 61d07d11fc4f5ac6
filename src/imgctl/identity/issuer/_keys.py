"""The issuer's RS256 signing keys: persisted 0600, rotated, published until their tokens expire.

Layout of the keys directory (0700)::

    keys.json      {"keys": [{"kid": ..., "created": epoch, "retired": epoch | null}, ...]}
    <kid>.pem      the private key, PKCS#8 PEM, 0600

The newest key without ``retired`` signs. A retired key stays in the JWKS for the token
lifetime plus the clock skew, so tokens it signed keep verifying, then it is deleted. A
running issuer notices a rotation made by ``imgctl idp rotate-key`` (it re-reads
``keys.json`` when the file changes), so rotating needs no restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from imgctl.errors import UsageError

__all__ = ["KeyStore", "SigningKey"]

_INDEX = "keys.json"


def _b64(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One RSA key with its id and lifetime marks."""

    kid: str
    private_key: rsa.RSAPrivateKey
    created: float
    retired: float | None = None

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (RS256, use sig)."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, retired={self.retired!r})"


def _thumbprint(key: rsa.RSAPrivateKey) -> str:
    """RFC 7638 JWK thumbprint: a kid that anyone can recompute from the public key."""
    numbers = key.public_key().public_numbers()
    canonical = json.dumps(
        {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class KeyStore:
    """Signing keys in a directory; see the module docstring for the layout."""

    def __init__(
        self,
        directory: Path,
        *,
        token_ttl: int,
        clock_skew: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self._keep = token_ttl + clock_skew
        self._clock = clock
        self._keys: list[SigningKey] = []
        self._seen: tuple[int, int] | None = None

    # ------------------------------------------------------------------ reading

    def _index_path(self) -> Path:
        return self.directory / _INDEX

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._index_path().stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def load(self, *, create: bool = True) -> None:
        """Read the keys; with ``create``, make the directory and a first key when empty."""
        if self._stamp() is None:
            if not create:
                raise UsageError(
                    f"no signing keys in {self.directory}",
                    hint="start `imgctl idp serve` once, or run `imgctl idp rotate-key`",
                )
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            self._add_key([])
        self._read()

    def _read(self) -> None:
        stamp = self._stamp()
        try:
            index = json.loads(self._index_path().read_text())
            entries: list[dict[str, Any]] = index["keys"]
            keys = []
            for entry in entries:
                pem = (self.directory / f"{entry['kid']}.pem").read_bytes()
                private = serialization.load_pem_private_key(pem, password=None)
                if not isinstance(private, rsa.RSAPrivateKey):
                    raise ValueError(f"{entry['kid']}.pem is not an RSA key")
                keys.append(
                    SigningKey(
                        str(entry["kid"]), private, float(entry["created"]), entry.get("retired")
                    )
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"the signing keys in {self.directory} are damaged: {type(exc).__name__}: {exc}",
                hint="restore the directory from a backup, or move it away to start with new keys",
            ) from None
        if not any(k.retired is None for k in keys):
            raise UsageError(f"{self.directory}/{_INDEX} has no active signing key")
        self._keys = keys
        self._seen = stamp

    def _refresh(self) -> None:
        if self._stamp() != self._seen:
            self._read()

    # ------------------------------------------------------------------ using

    def signing_key(self) -> SigningKey:
        """The key that signs new tokens (the newest active one)."""
        self._refresh()
        active = [k for k in self._keys if k.retired is None]
        return max(active, key=lambda k: k.created)

    def published(self) -> list[SigningKey]:
        """Keys whose tokens may still be valid: active ones and recently retired ones."""
        self._refresh()
        now = self._clock()
        return [k for k in self._keys if k.retired is None or now < k.retired + self._keep]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document served at ``/keys``."""
        return {"keys": [k.public_jwk() for k in self.published()]}

    # ------------------------------------------------------------------ rotating

    def rotate(self) -> SigningKey:
        """Make a new signing key; the old one retires now and is deleted once unneeded."""
        self.load(create=True)
        now = self._clock()
        kept = []
        for key in self._keys:
            retired = key.retired if key.retired is not None else now
            if now < retired + self._keep:
                kept.append(SigningKey(key.kid, key.private_key, key.created, retired))
            else:
                (self.directory / f"{key.kid}.pem").unlink(missing_ok=True)
        new = self._add_key(kept)
        self._read()
        return new

    def _add_key(self, existing: list[SigningKey]) -> SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key = SigningKey(_thumbprint(private), private, self._clock())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # The key file lands before the index names it, so a reader never finds a missing key.
        _write_private(self.directory / f"{key.kid}.pem", pem)
        index = {
            "keys": [
                {"kid": k.kid, "created": k.created, "retired": k.retired} for k in [*existing, key]
            ]
        }
        _write_private(self._index_path(), json.dumps(index, indent=2).encode())
        return key
