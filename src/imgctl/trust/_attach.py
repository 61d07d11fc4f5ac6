"""cosign's attachment manifests (``sha256-<hex>.sig``, ``.att``): reading them bounded, appending.

Signatures and attestations are stored the same way (cosign's specs/SIGNATURE_SPEC.md and
ATTESTATION_SPEC.md): one OCI image manifest under a tag derived from the digest, one layer per
signature or attestation, a config naming each layer's digest as a diff_id. Writers append a
layer and push the manifest again, keeping every layer that was there.

The registry API has no compare-and-swap, so two writers appending at once can each push a
manifest without the other's layer: after its push a writer reads the tag back and, if its layer
is gone, appends to what is there now, up to ``APPEND_ATTEMPTS`` times. That narrows the window;
it cannot close it (a writer that read before our push and writes after our read-back still drops
our layer), as with cosign itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from imgctl.errors import InvalidManifestError, NotFoundError, SignatureError
from imgctl.oci import mediatypes as mt
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Descriptor, Manifest, parse_manifest
from imgctl.oci.reference import Reference
from imgctl.remote._client import RegistryClient
from imgctl.trust._json import Malformed, go_json, strict_json

__all__ = [
    "APPEND_ATTEMPTS",
    "MAX_ANNOTATION_BYTES",
    "MAX_ATTACHMENT_LAYERS",
    "MAX_ATTACHMENT_MANIFEST_BYTES",
    "AttachedManifest",
    "append_layer",
    "fetch_attachment_manifest",
    "fetch_for_append",
    "parse_attachment_manifest",
    "push_blob",
    "read_layer",
    "refuse_huge_annotations",
    "size_text",
]

# A signature is < 1 KiB, a certificate chain or Rekor bundle a few KiB.
MAX_ANNOTATION_BYTES = 64 * 1024
MAX_ATTACHMENT_MANIFEST_BYTES = 4 * 1024 * 1024
# cosign's own limit on the layers of a signature manifest (pkg/oci/mutate maxLayers).
MAX_ATTACHMENT_LAYERS = 1000
APPEND_ATTEMPTS = 5
# Go's zero time.Time, which cosign's attachment configs carry.
_ZERO_TIME = "0001-01-01T00:00:00Z"


def size_text(limit: int) -> str:
    """A byte limit as people read it: ``4 MiB``, ``64 KiB``."""
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


@dataclass(frozen=True, slots=True)
class AttachedManifest:
    """A ``.sig`` / ``.att`` manifest: where it is, its JSON and what it says."""

    ref: Reference
    doc: dict[str, Any]
    parsed: Manifest


def parse_attachment_manifest(
    data: bytes, where: str, kind: str = "signature"
) -> tuple[dict[str, Any], Manifest]:
    """An attachment manifest's JSON and what it says; SignatureError if it is not one.

    ``kind`` ("signature", "attestation") names the manifest in messages.
    """

    def malformed(detail: str) -> SignatureError:
        return SignatureError(
            f"{kind} manifest {where} is malformed: {detail}",
            hint=f"its {kind}s cannot be read; delete the tag or push a valid manifest there",
        )

    if len(data) > MAX_ATTACHMENT_MANIFEST_BYTES:
        raise SignatureError(
            f"{kind} manifest {where} is {len(data)} bytes; refusing more than "
            f"{size_text(MAX_ATTACHMENT_MANIFEST_BYTES)}",
            hint=f"delete the tag; no real {kind} manifest is that large",
        )
    try:
        doc = strict_json(data, "manifest")
    except Malformed as exc:
        raise malformed(str(exc)) from None
    if not isinstance(doc, dict):
        raise malformed("not a JSON object")
    try:
        # Without a mediaType the manifest is read as OCI's (what cosign writes).
        parsed = parse_manifest(data, mt.OCI_MANIFEST)
    except InvalidManifestError as exc:
        raise malformed(exc.message) from None
    if not isinstance(parsed, Manifest) or parsed.media_type not in (
        mt.OCI_MANIFEST,
        mt.DOCKER_MANIFEST,
    ):
        raise malformed(f"a {parsed.media_type}, not an image manifest")
    if len(parsed.layers) > MAX_ATTACHMENT_LAYERS:
        raise SignatureError(
            f"{kind} manifest {where} has {len(parsed.layers)} layers; refusing more than "
            f"{MAX_ATTACHMENT_LAYERS}",
            hint="cosign refuses such manifests too; delete the tag",
        )
    return doc, parsed


async def fetch_attachment_manifest(
    client: RegistryClient, ref: Reference, kind: str = "signature"
) -> AttachedManifest | None:
    """The attachment manifest at ``ref``, None if there is none; SignatureError if unreadable."""
    try:
        fetched = await client.get_manifest(ref)
    except NotFoundError:
        return None
    except InvalidManifestError as exc:
        raise SignatureError(
            f"{kind} manifest {ref} is malformed: {exc.message}",
            hint=f"its {kind}s cannot be read; delete the tag or push a valid manifest there",
        ) from None
    doc, parsed = parse_attachment_manifest(fetched.data, str(ref), kind)
    return AttachedManifest(ref, doc, parsed)


async def read_layer(
    client: RegistryClient, repository: Reference, desc: Descriptor
) -> bytes | None:
    """A layer's blob, read no further than one byte past its declared size; None if absent."""
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in client.iter_blob(repository, desc.digest):
            chunks.append(chunk)
            total += len(chunk)
            if total > desc.size:
                break
    except NotFoundError:
        return None
    return b"".join(chunks)[: desc.size + 1]


def refuse_huge_annotations(manifest: AttachedManifest, kind: str = "signature") -> None:
    """SignatureError if a layer carries an annotation no real signature or attestation has."""
    for index, desc in enumerate(manifest.parsed.layers):
        for key, value in desc.annotations.items():
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_ANNOTATION_BYTES:
                raise SignatureError(
                    f"{kind} manifest {manifest.ref}: layer {index} annotation {key[:100]} is "
                    f"{size} bytes; refusing more than {size_text(MAX_ANNOTATION_BYTES)}",
                    hint="imgctl does not append to it; delete the tag or remove that layer",
                )


def _config_blob(layers: list[dict[str, Any]]) -> bytes:
    """The image config cosign's attachment manifests carry: one diff_id and history per layer."""
    diff_ids = [layer["digest"] for layer in layers]
    return go_json(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
    )


def _manifest_bytes(
    existing: AttachedManifest | None, layers: list[dict[str, Any]], config: bytes
) -> tuple[bytes, str]:
    """The manifest with ``layers``; what was there besides config and layers stays."""
    if existing is None:
        media_type, config_type = mt.OCI_MANIFEST, mt.OCI_CONFIG
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    else:
        media_type = existing.parsed.media_type
        assert existing.parsed.config is not None
        config_type = existing.parsed.config.media_type
        doc = dict(existing.doc)
    doc["config"] = {
        "mediaType": config_type,
        "size": len(config),
        "digest": str(Digest.of(config)),
    }
    doc["layers"] = layers
    return go_json(doc), media_type


async def push_blob(client: RegistryClient, repository: Reference, data: bytes) -> None:
    """Upload ``data`` unless the repository already has that blob."""
    digest = Digest.of(data)
    if await client.head_blob(repository, digest) == len(data):
        return
    await client.push_blob(repository, digest, data, len(data))


def _has_layer(manifest: AttachedManifest | None, layer: dict[str, Any]) -> bool:
    if manifest is None:
        return False
    return any(
        str(desc.digest) == layer["digest"] and dict(desc.annotations) == layer["annotations"]
        for desc in manifest.parsed.layers
    )


async def fetch_for_append(
    client: RegistryClient, ref: Reference, kind: str = "signature"
) -> AttachedManifest | None:
    """The manifest at ``ref`` a writer is about to append to (None if there is none).

    SignatureError if it is unreadable or carries annotations no real layer has: imgctl does not
    append to such a manifest.
    """
    existing = await fetch_attachment_manifest(client, ref, kind)
    if existing is not None:
        refuse_huge_annotations(existing, kind)
    return existing


async def append_layer(
    client: RegistryClient,
    ref: Reference,
    blob: bytes,
    layer: dict[str, Any],
    *,
    existing: AttachedManifest | None,
    present: Callable[[AttachedManifest], Awaitable[bool]],
    kind: str = "signature",
) -> bool:
    """Append ``layer`` (whose blob is ``blob``) to ``existing``, the manifest tagged ``ref``.

    ``existing`` is what ``fetch_for_append`` returned (the caller has already checked it with
    ``present``). ``present`` says whether a manifest holds an equivalent layer; if one appears
    while appending, nothing more is written and the result is False. True once our layer was
    read back from the tag. The blob goes before the manifest, so a failure leaves no
    half-written layer.
    """
    await push_blob(client, ref, blob)
    for _ in range(APPEND_ATTEMPTS):
        kept = list(existing.doc.get("layers") or []) if existing is not None else []
        layers = [*kept, layer]
        if len(layers) > MAX_ATTACHMENT_LAYERS:
            raise SignatureError(
                f"{kind} manifest {ref} already has {len(kept)} layers; cosign reads no "
                f"more than {MAX_ATTACHMENT_LAYERS}",
                hint=f"delete old {kind}s before adding one",
            )
        config = _config_blob(layers)
        await push_blob(client, ref, config)
        data, media_type = _manifest_bytes(existing, layers, config)
        await client.put_manifest(ref, data, media_type)
        # Another writer may have pushed between our read and our write (see the module doc).
        after = await fetch_attachment_manifest(client, ref, kind)
        if _has_layer(after, layer):
            return True
        existing = after
        if existing is not None:
            refuse_huge_annotations(existing, kind)
            if await present(existing):
                return False
    raise SignatureError(
        f"{kind} manifest {ref} kept changing: another writer replaced it "
        f"{APPEND_ATTEMPTS} times while this {kind} was being added",
        hint="run the command again",
    )
