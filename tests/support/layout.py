"""Build OCI image layouts on disk without a container engine (for skopeo to push).

Layers are real, uncompressed tar archives holding one file of pseudo-random bytes, so every
image is unique and registries and skopeo treat them as ordinary images.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

DEFAULT_PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


@dataclass
class BuiltImage:
    """An OCI layout with one tagged image (index or single manifest)."""

    path: Path
    tag: str
    digest: str  # digest of the top-level manifest or index
    media_type: str
    blob_digests: list[str]
    total_bytes: int

    @property
    def oci_ref(self) -> str:
        return f"oci:{self.path}:{self.tag}"


def _write_blob(root: Path, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    if not path.exists():
        path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def make_layer(rng: random.Random, size: int, name: str) -> bytes:
    payload = rng.randbytes(size) if size < (1 << 20) else os.urandom(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def build_image(
    path: Path,
    *,
    tag: str = "latest",
    platforms: tuple[tuple[str, str], ...] | None = DEFAULT_PLATFORMS,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int | None = None,
    shared_layers: list[bytes] | None = None,
) -> BuiltImage:
    """Write an OCI layout at ``path``: an index over ``platforms`` or, with None, one manifest."""
    rng = random.Random(seed if seed is not None else os.urandom(8))
    path.mkdir(parents=True, exist_ok=True)
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    blob_digests: list[str] = []
    total = 0

    def manifest_for(os_name: str, arch: str) -> tuple[bytes, dict[str, object]]:
        nonlocal total
        layer_descs = []
        diff_ids = []
        contents = list(shared_layers or [])
        contents += [
            make_layer(rng, layer_size, f"{arch}-{i}.bin") for i in range(layers - len(contents))
        ]
        for data in contents:
            desc = _write_blob(path, data)
            layer_descs.append({"mediaType": OCI_LAYER, **desc})
            diff_ids.append(desc["digest"])
            blob_digests.append(str(desc["digest"]))
            total += len(data)
        config = json.dumps(
            {
                "architecture": arch,
                "os": os_name,
                "config": {"Labels": {"nonce": rng.getrandbits(64).__str__()}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            },
            sort_keys=True,
        ).encode()
        config_desc = _write_blob(path, config)
        blob_digests.append(str(config_desc["digest"]))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **config_desc},
                "layers": layer_descs,
            },
            indent=3,  # unusual whitespace: any re-serialisation would change the digest
        ).encode()
        desc = _write_blob(path, manifest)
        return manifest, {"mediaType": OCI_MANIFEST, **desc}

    if platforms is None:
        _, top = manifest_for("linux", "amd64")
        media_type = OCI_MANIFEST
    else:
        children = []
        for os_name, arch in platforms:
            _, desc = manifest_for(os_name, arch)
            children.append({**desc, "platform": {"os": os_name, "architecture": arch}})
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, indent=2
        ).encode()
        top = {"mediaType": OCI_INDEX, **_write_blob(path, index)}
        media_type = OCI_INDEX
    tagged = {**top, "annotations": {"org.opencontainers.image.ref.name": tag}}
    (path / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [tagged]})
    )
    return BuiltImage(path, tag, str(top["digest"]), media_type, blob_digests, total)
