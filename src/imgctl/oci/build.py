"""Building images in memory: blobs, gzipped layers from tarballs, configs and manifests.

Pure (bytes in, bytes out). ``imgctl append`` and ``imgctl demo`` build their images with it.
Everything is deterministic: gzip headers carry no time or name, JSON is compact with sorted
keys, and nothing adds a timestamp, so the same tarballs give the same digest on every machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imgctl.errors import UsageError
from imgctl.oci import mediatypes as mt
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Platform

__all__ = [
    "Blob",
    "Layer",
    "canonical_json",
    "image_config",
    "image_manifest",
    "layer_from_tar",
    "layer_of_files",
]

_GZIP_MAGIC = b"\x1f\x8b"


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
    # mtime=0 keeps the gzip header, and so the layer digest, the same on every run.
    compressed = gzip.compress(tar_bytes, compresslevel=9, mtime=0)
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


def layer_from_tar(data: bytes, name: str) -> Layer:
    """A layer from a tarball's bytes, plain or gzipped (``name`` is for errors).

    A gzipped tarball is pushed as it is; a plain one is gzipped. Anything that is not a tar
    archive, or is damaged, is a UsageError naming the file.
    """
    hint = "give a tar archive (tar -cf layer.tar -C DIR .), plain or gzipped"
    compressed = data.startswith(_GZIP_MAGIC)
    try:
        tar_bytes = gzip.decompress(data) if compressed else data
    except (OSError, EOFError, zlib.error) as error:
        raise UsageError(f"layer {name}: not a valid gzip file ({error})", hint=hint) from None
    if not tar_bytes:
        raise UsageError(f"layer {name} is empty, not a tar archive", hint=hint)
    try:
        # Read every header: a truncated or corrupt archive fails here, not at a pull.
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for _member in tar:
                pass
    except (tarfile.TarError, EOFError) as error:
        what = "a gzipped file holding no tar archive" if compressed else "not a tar archive"
        raise UsageError(f"layer {name} is {what} ({error})", hint=hint) from None
    if not compressed:
        return _gzip(tar_bytes)
    return Layer(Blob(data), "sha256:" + hashlib.sha256(tar_bytes).hexdigest())


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
