"""Building images: blobs, gzipped layers from tarballs, configs and manifests.

``imgctl demo`` builds its small images in memory (``Blob``, ``layer_of_files``); ``imgctl
append`` reads tarball files of any size in pieces (``layer_from_tar_file``), never whole.
Everything is deterministic: gzip headers carry no time or name, JSON is compact with sorted
keys, and nothing adds a timestamp, so the same tarballs give the same digest on every machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imgctl.errors import UsageError
from imgctl.oci import mediatypes as mt
from imgctl.oci.digest import Digest, Digester
from imgctl.oci.manifest import Platform

__all__ = [
    "Blob",
    "Layer",
    "TarLayer",
    "canonical_json",
    "image_config",
    "image_manifest",
    "layer_from_tar_file",
    "layer_of_files",
]

_GZIP_MAGIC = b"\x1f\x8b"
_PIECE = 1 << 20
_TAR_HINT = "give a tar archive (tar -cf layer.tar -C DIR .), plain or gzipped"


@dataclass(frozen=True, slots=True)
class Blob:
    """Bytes and their digest."""

    data: bytes
    digest: Digest = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", Digest.of(self.data))

    def descriptor(self, media_type: str, **extra: object) -> dict[str, object]:
        """An OCI descriptor of these bytes."""
        return {
            "mediaType": media_type,
            "digest": str(self.digest),
            "size": len(self.data),
            **extra,
        }


@dataclass(frozen=True, slots=True)
class Layer:
    """A gzipped layer blob and its diff id (the digest of the uncompressed tar)."""

    blob: Blob
    diff_id: str


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted keys: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _gzip(tar_bytes: bytes) -> Layer:
    # mtime=0 keeps the gzip header, and so the layer digest, the same on every run. zlib's own
    # gzip framing (wbits 31): gzip.compress(mtime=0) gives these very bytes, and a
    # compressobj fed in pieces too (layer_from_tar_file), so both ways give one digest.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    compressed = compressor.compress(tar_bytes) + compressor.flush()
    return Layer(Blob(compressed), "sha256:" + hashlib.sha256(tar_bytes).hexdigest())


def layer_of_files(files: Mapping[str, bytes]) -> Layer:
    """A layer holding ``files`` (name -> content), mode 0644, times zero, in the given order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(payload))
    return _gzip(raw.getvalue())


@dataclass(frozen=True, slots=True)
class TarLayer:
    """A gzipped layer blob in a file, never held in memory: its digest, size and diff id.

    ``path`` is the user's file when it was gzipped already, else a spool file that
    ``layer_from_tar_file`` wrote (and its caller removes with the spool directory).
    """

    path: Path
    digest: Digest
    size: int
    diff_id: str

    def descriptor(self, media_type: str) -> dict[str, object]:
        """An OCI descriptor of the blob."""
        return {"mediaType": media_type, "digest": str(self.digest), "size": self.size}

    def pieces(self) -> Iterator[bytes]:
        """The blob's bytes, a megabyte at a time."""
        with self.path.open("rb") as blob:
            while piece := blob.read(_PIECE):
                yield piece


class _Tap:
    """A readable stream that hands every piece it reads to ``seen`` (tarfile reads it).

    ``gunzip``: the source is a ``GzipFile``, whose errors are a damaged gzip file, not tar.
    """

    def __init__(
        self, source: IO[bytes], seen: Callable[[bytes], None], name: str, *, gunzip: bool = False
    ) -> None:
        self._source, self._seen, self._name, self._gunzip = source, seen, name, gunzip

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the source, seen on the way."""
        try:
            data = self._source.read(size)
        except (OSError, EOFError, zlib.error) as error:
            if not self._gunzip:
                raise  # the file itself could not be read: the caller says so
            raise UsageError(
                f"layer {self._name}: not a valid gzip file ({error})", hint=_TAR_HINT
            ) from None
        self._seen(data)
        return data


def _read_tar(stream: _Tap, name: str, compressed: bool) -> None:
    """Read every header of the tar archive ``stream`` holds, then the rest of the stream."""
    try:
        # A truncated or corrupt archive fails here, not at a pull; "r|" reads it in order.
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for _member in tar:
                pass
    except (tarfile.TarError, EOFError) as error:
        what = "a gzipped file holding no tar archive" if compressed else "not a tar archive"
        raise UsageError(f"layer {name} is {what} ({error})", hint=_TAR_HINT) from None
    while stream.read(_PIECE):
        pass  # the end-of-archive blocks and padding belong to the layer too


def layer_from_tar_file(path: Path, spool: Path) -> TarLayer:
    """A layer from a tarball file, plain or gzipped, read in pieces (``spool``: a directory).

    A gzipped tarball is pushed as it is; a plain one is gzipped into a file in ``spool``.
    Anything that is not a tar archive, or is damaged, is a UsageError naming the file; an
    unreadable file raises OSError.
    """
    name = str(path)
    if path.stat().st_size == 0:
        raise UsageError(f"layer {name} is empty, not a tar archive", hint=_TAR_HINT)
    # What the registry checks (the blob's digest and size) and the config lists (the tar's).
    diff, blob = Digester(), Digester()
    with path.open("rb") as source:
        compressed = source.read(2) == _GZIP_MAGIC
        source.seek(0)
        if compressed:
            hashed = _Tap(source, blob.update, name)
            with gzip.GzipFile(fileobj=hashed, mode="rb") as unzipped:  # type: ignore[call-overload]
                _read_tar(_Tap(unzipped, diff.update, name, gunzip=True), name, compressed=True)
            while hashed.read(_PIECE):
                pass  # whatever gzip left unread still is the blob's
            return TarLayer(path, blob.digest(), blob.size, str(diff.digest()))
        fd, spooled = tempfile.mkstemp(dir=spool, prefix="layer-", suffix=".tar.gz")
        with os.fdopen(fd, "wb") as out:
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # as _gzip: the same bytes

            def write(piece: bytes) -> None:
                blob.update(piece)
                out.write(piece)

            def seen(data: bytes) -> None:
                diff.update(data)
                write(compressor.compress(data))

            _read_tar(_Tap(source, seen, name), name, compressed=False)
            write(compressor.flush())
    return TarLayer(Path(spooled), blob.digest(), blob.size, str(diff.digest()))


def image_config(
    platform: Platform,
    diff_ids: Sequence[str],
    *,
    config: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    created: str | None = None,
) -> Blob:
    """An OCI image config: the platform, the runtime ``config``, the layers' diff ids."""
    document: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    if platform.variant:
        document["variant"] = platform.variant
    if history:
        document["history"] = [dict(entry) for entry in history]
    if created is not None:
        document["created"] = created
    return Blob(canonical_json(document))


def image_manifest(
    config: Blob,
    layers: Sequence[Mapping[str, object]],
    *,
    media_type: str = mt.OCI_MANIFEST,
    config_media_type: str = mt.OCI_CONFIG,
    extra: Mapping[str, Any] | None = None,
) -> Blob:
    """A manifest over ``config`` and the ``layers`` descriptors (``extra``: other fields)."""
    document: dict[str, Any] = {
        **(extra or {}),
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(config_media_type),
        "layers": [dict(layer) for layer in layers],
    }
    return Blob(canonical_json(document))
