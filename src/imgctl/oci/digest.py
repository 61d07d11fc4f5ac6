"""Content digests (``sha256:<hex>``): parsing, computing and verifying."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from imgctl.errors import DigestMismatchError, InvalidDigestError

__all__ = ["Digest", "Digester"]

# The OCI image spec's digest grammar; algorithms imgctl can verify are listed below.
_ALGORITHM_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED_RE = re.compile(r"[a-zA-Z0-9=_-]+")
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A validated content digest such as ``sha256:9f86d0...``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse and validate ``algorithm:hex``; raise InvalidDigestError saying what is wrong."""
        if not isinstance(value, str) or ":" not in value:
            raise InvalidDigestError(
                f"invalid digest {value!r}: expected <algorithm>:<hex>, e.g. sha256:<64 hex>"
            )
        algorithm, _, encoded = value.partition(":")
        if not _ALGORITHM_RE.fullmatch(algorithm):
            raise InvalidDigestError(f"invalid digest {value!r}: bad algorithm {algorithm!r}")
        if not encoded or not _ENCODED_RE.fullmatch(encoded):
            raise InvalidDigestError(f"invalid digest {value!r}: bad encoded part {encoded!r}")
        expected = _HEX_LENGTHS.get(algorithm)
        if expected is None:
            raise InvalidDigestError(
                f"invalid digest {value!r}: unsupported algorithm {algorithm!r}",
                hint="use one of " + ", ".join(sorted(_HEX_LENGTHS)),
            )
        if len(encoded) != expected or not _LOWER_HEX_RE.fullmatch(encoded):
            raise InvalidDigestError(
                f"invalid digest {value!r}: {algorithm} needs {expected} lowercase hex characters"
                f" (got {len(encoded)})"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """Compute the digest of ``data``."""
        if algorithm not in _HEX_LENGTHS:
            raise InvalidDigestError(f"unsupported digest algorithm {algorithm!r}")
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def verify(self, data: bytes) -> None:
        """Raise DigestMismatchError unless ``data`` hashes to this digest."""
        actual = Digest.of(data, self.algorithm)
        if actual != self:
            raise DigestMismatchError(f"content has digest {actual}, expected {self}")

    def digester(self) -> Digester:
        """Return a streaming hasher for this digest's algorithm."""
        return Digester(self.algorithm)

    @property
    def tag_form(self) -> str:
        """The referrers fallback tag: ``sha256:abc`` -> ``sha256-abc``."""
        return f"{self.algorithm}-{self.hex}"

    @property
    def short(self) -> str:
        """A short form for humans: ``sha256:0123456789ab``."""
        return f"{self.algorithm}:{self.hex[:12]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class Digester:
    """Incrementally hash a stream; ``digest()`` gives the Digest of everything fed so far."""

    __slots__ = ("_hash", "algorithm", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in _HEX_LENGTHS:
            raise InvalidDigestError(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        """Feed a chunk."""
        self._hash.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        """The digest of all bytes fed."""
        return Digest(self.algorithm, self._hash.hexdigest())
