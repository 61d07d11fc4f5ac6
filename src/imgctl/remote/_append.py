"""``imgctl append``: a new image from tarball layers, on top of nothing or of a base image.

crane's ``append``: the layers are gzipped (a gzipped tarball is pushed as it is), the config
lists their diff ids and one history entry each, and the manifest is pushed under the target
tag. Without a base the image starts from scratch (an OCI manifest for ``platform``); with a
base, its layers, config and manifest kind (OCI or Docker) are kept and the new layers follow,
and the base's layers are mounted or copied into the target repository when not already there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from imgctl.errors import InvalidManifestError, RegistryError, TransportError, UsageError
from imgctl.oci import Digest, Index, Manifest, Platform, Reference
from imgctl.oci import mediatypes as mt
from imgctl.oci.build import Blob, TarLayer, image_config, image_manifest
from imgctl.oci.platform import describe, matches
from imgctl.remote._client import RegistryClient
from imgctl.remote._copy import BLOB_ATTEMPTS
from imgctl.remote._http import transfer_retryable

__all__ = ["AppendResult", "append_layers"]

# A config is a small JSON document; anything near this is not one.
_MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What was pushed: the manifest's digest and how many layers the image has."""

    reference: Reference
    digest: Digest
    layers: int


@dataclass(frozen=True, slots=True)
class _Base:
    ref: Reference
    manifest: Manifest
    raw: dict[str, Any]
    config: dict[str, Any]


async def append_layers(
    client: RegistryClient,
    target: Reference,
    layers: Sequence[tuple[TarLayer, str]],
    *,
    base: Reference | None = None,
    platform: Platform | None = None,
) -> AppendResult:
    """Push an image made of ``base`` (or nothing) and ``layers`` ((layer, comment)) to ``target``.

    ``platform`` picks the base's manifest when the base is an index, and is the new image's
    platform without a base (default linux/amd64).
    """
    history = [{"created_by": "imgctl append", "comment": comment} for _, comment in layers]
    diff_ids = [layer.diff_id for layer, _ in layers]
    if base is None:
        config = image_config(platform or Platform("linux", "amd64"), diff_ids, history=history)
        media_type, config_type, layer_type = mt.OCI_MANIFEST, mt.OCI_CONFIG, mt.OCI_LAYER_GZIP
        base_layers: list[dict[str, object]] = []
        extra: dict[str, Any] = {}
    else:
        found = await _base(client, base, platform)
        docker = found.manifest.media_type == mt.DOCKER_MANIFEST
        media_type = found.manifest.media_type
        layer_type = mt.DOCKER_LAYER if docker else mt.OCI_LAYER_GZIP
        assert found.manifest.config is not None  # _base refuses a manifest without one
        config_type = found.manifest.config.media_type
        config = Blob(_appended_config(found, diff_ids, history))
        base_layers = list(found.raw.get("layers") or [])
        extra = {k: v for k, v in found.raw.items() if k not in ("config", "layers", "subject")}
        await _bring_layers(client, found, target)
    for layer, _ in layers:
        await _push_layer(client, target, layer)
    await _push_if_missing(client, target, config)
    descriptors = [*base_layers, *(layer.descriptor(layer_type) for layer, _ in layers)]
    manifest = image_manifest(
        config, descriptors, media_type=media_type, config_media_type=config_type, extra=extra
    )
    digest = await client.put_manifest(target, manifest.data, media_type)
    return AppendResult(target, digest, len(descriptors))


async def _push_if_missing(client: RegistryClient, target: Reference, blob: Blob) -> None:
    if await client.head_blob(target, blob.digest) is None:
        await client.push_blob(target, blob.digest, blob.data, len(blob.data))


async def _push_layer(client: RegistryClient, target: Reference, layer: TarLayer) -> None:
    """Upload a layer from its file, streamed, unless the repository has it; retried as copy."""
    if await client.head_blob(target, layer.digest) is not None:
        return
    attempt = 0
    while True:
        attempt += 1
        location = await client.start_upload(target)
        assert location is not None  # no mount asked for
        try:
            await client.upload_blob(target, location, layer.digest, _read(layer), layer.size)
            return
        except (TransportError, RegistryError) as exc:
            # The registry keeps what a failed PUT sent: abandon the session (a retry opens
            # another), as the copy engine does.
            await client.discard_upload(target, location)
            if not transfer_retryable(exc) or attempt >= BLOB_ATTEMPTS:
                raise
            await asyncio.sleep(client.backoff(attempt))


async def _read(layer: TarLayer) -> AsyncIterator[bytes]:
    for piece in layer.pieces():
        yield piece


async def _base(client: RegistryClient, ref: Reference, platform: Platform | None) -> _Base:
    fetched = await client.get_manifest(ref)
    parsed: Manifest | Index = fetched.parsed
    if isinstance(parsed, Index):
        wanted = platform or Platform("linux", "amd64")
        chosen = [
            d for d in parsed.manifests if d.platform is not None and matches(wanted, d.platform)
        ]
        if not chosen:
            raise UsageError(
                f"base {ref} has no {wanted} image; it has "
                f"{describe([d.platform for d in parsed.manifests])}",
                hint="pick one with --platform",
            )
        ref = ref.with_digest(chosen[0].digest)
        fetched = await client.get_manifest(ref)
        parsed = fetched.parsed
    if (
        not isinstance(parsed, Manifest)
        or parsed.media_type not in (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)
        or parsed.config is None
        or parsed.config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG)
    ):
        raise UsageError(
            f"base {ref} is not a container image ({parsed.media_type})",
            hint="give an image (an OCI or Docker manifest, or an index of them) as --base",
        )
    if parsed.config.size > _MAX_CONFIG_BYTES:
        raise InvalidManifestError(f"base {ref}: its config is {parsed.config.size} bytes")
    data = b"".join([chunk async for chunk in client.iter_blob(ref, parsed.config.digest)])
    parsed.config.digest.verify(data)
    try:
        config = json.loads(data)
    except ValueError:
        config = None
    if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
        raise InvalidManifestError(f"base {ref}: its config is not an image config")
    return _Base(ref, parsed, json.loads(fetched.data), config)


def _appended_config(
    base: _Base, diff_ids: Sequence[str], history: Sequence[dict[str, str]]
) -> bytes:
    config = dict(base.config)
    rootfs = dict(config["rootfs"])
    rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), *diff_ids]
    config["rootfs"] = rootfs
    # History lines up with the layers (empty_layer entries aside): a base without history
    # gets none, rather than entries that would be read as describing its own layers.
    if config.get("history") or not base.manifest.layers:
        config["history"] = [*(config.get("history") or []), *history]
    return json.dumps(config, separators=(",", ":")).encode()


async def _bring_layers(client: RegistryClient, base: _Base, target: Reference) -> None:
    """Make the base's layers present in the target repository: mount, else copy."""
    if (base.ref.registry, base.ref.repository) == (target.registry, target.repository):
        return
    for layer in base.manifest.layers:
        if layer.urls or await client.head_blob(target, layer.digest) is not None:
            continue  # foreign layers stay where their URLs say
        location = await client.start_upload(
            target,
            mount=layer.digest if base.ref.registry == target.registry else None,
            mount_from=base.ref.repository,
        )
        if location is None:
            continue  # mounted from the base's repository
        blob = client.iter_blob(base.ref, layer.digest)
        await client.upload_blob(target, location, layer.digest, blob, layer.size)
