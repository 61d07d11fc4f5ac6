"""The demo's images, built in memory without any container tool, and pushed with our client.

Every byte is deterministic (tar and gzip timestamps are zero, JSON is compact with sorted
keys), so the same image has the same digest on every machine and in every run; the digests in
``docs/demo.md`` are the ones a reader gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgctl.oci import mediatypes as mt
from imgctl.oci.build import Blob, canonical_json, image_config, image_manifest, layer_of_files
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Platform
from imgctl.oci.reference import Reference
from imgctl.remote import RegistryClient

__all__ = ["Blob", "DemoImage", "build_image", "push_image"]

PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


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


def build_image(repository: str, tag: str, message: str) -> DemoImage:
    """An OCI index for linux/amd64 and linux/arm64, each a config and one hello.txt layer."""
    blobs: list[Blob] = []
    manifests: list[Blob] = []
    entries: list[dict[str, object]] = []
    for os_name, arch in PLATFORMS:
        layer = layer_of_files({"hello.txt": f"{message} ({os_name}/{arch})\n".encode()})
        config = image_config(
            Platform(os_name, arch),
            [layer.diff_id],
            config={
                "Cmd": ["cat", "/hello.txt"],
                "Labels": {"org.opencontainers.image.title": repository},
            },
            created="2026-01-01T00:00:00Z",
        )
        manifest = image_manifest(config, [layer.blob.descriptor(mt.OCI_LAYER_GZIP)])
        blobs += [config, layer.blob]
        manifests.append(manifest)
        entries.append(
            manifest.descriptor(mt.OCI_MANIFEST, platform={"os": os_name, "architecture": arch})
        )
    index = Blob(
        canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries})
    )
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
