"""The demo's images, built in memory without any container tool, and pushed with our client.

Every byte is deterministic (tar and gzip timestamps are zero, JSON is compact with sorted
keys), so the same image has the same digest on every machine and in every run; the digests in
``docs/demo.md`` are the ones a reader gets.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

from imgctl.oci import mediatypes as mt
from imgctl.oci.digest import Digest
from imgctl.oci.reference import Reference
from imgctl.remote import RegistryClient

__all__ = ["Blob", "DemoImage", "build_image", "push_image"]

PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


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
class DemoImage:
    """A multi-arch image: the blobs, one manifest per platform, and the index over them."""

    repository: str
    tag: str
    blobs: tuple[Blob, ...]
    manifests: tuple[Blob, ...]
    index: Blob
    platforms: tuple[str, ...]

    @property
    def digest(self) -> Digest:
        """The index digest: what the tag points at."""
        return self.index.digest

    @property
    def size(self) -> int:
        """Bytes of every blob and manifest."""
        parts = (*self.blobs, *self.manifests, self.index)
        return sum(len(part.data) for part in parts)


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _layer(text: str) -> tuple[Blob, str]:
    """A gzipped tar with one file, and the diff id (digest of the uncompressed tar)."""
    payload = text.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    # mtime=0 keeps the gzip header, and so the layer digest, the same on every run.
    compressed = gzip.compress(tar_bytes, compresslevel=9, mtime=0)
    return Blob(compressed), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def build_image(repository: str, tag: str, message: str) -> DemoImage:
    """An OCI index for linux/amd64 and linux/arm64, each a config and one hello.txt layer."""
    blobs: list[Blob] = []
    manifests: list[Blob] = []
    entries: list[dict[str, object]] = []
    for os_name, arch in PLATFORMS:
        layer, diff_id = _layer(f"{message} ({os_name}/{arch})\n")
        config = Blob(
            _json(
                {
                    "architecture": arch,
                    "os": os_name,
                    "created": "2026-01-01T00:00:00Z",
                    "config": {
                        "Cmd": ["cat", "/hello.txt"],
                        "Labels": {"org.opencontainers.image.title": repository},
                    },
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                }
            )
        )
        manifest = Blob(
            _json(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "config": config.descriptor(mt.OCI_CONFIG),
                    "layers": [layer.descriptor(mt.OCI_LAYER_GZIP)],
                }
            )
        )
        blobs += [config, layer]
        manifests.append(manifest)
        entries.append(
            manifest.descriptor(mt.OCI_MANIFEST, platform={"os": os_name, "architecture": arch})
        )
    index = Blob(_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}))
    return DemoImage(
        repository,
        tag,
        tuple(blobs),
        tuple(manifests),
        index,
        tuple(f"{os_name}/{arch}" for os_name, arch in PLATFORMS),
    )


async def push_image(client: RegistryClient, registry: str, image: DemoImage) -> Digest:
    """Push blobs, then the platform manifests by digest, then the index under its tag."""
    ref = Reference.parse(f"{registry}/{image.repository}:{image.tag}")
    for blob in image.blobs:
        await client.push_blob(ref, blob.digest, blob.data, len(blob.data))
    for manifest in image.manifests:
        await client.put_manifest(ref.with_digest(manifest.digest), manifest.data, mt.OCI_MANIFEST)
    return await client.put_manifest(ref, image.index.data, mt.OCI_INDEX)
