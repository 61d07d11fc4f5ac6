"""Referrers: what signs, attests and describes an image, found in its source, copied after it.

Two schemes are read, both in the image's own repository:

* OCI 1.1 referrers, manifests whose ``subject`` is the image: the referrers API where the
  registry serves it (learned once per registry, ``RegistryClient.referrers_from_api``), else
  the index under the fallback tag ``sha256-<hex>``;
* cosign's tag schema: ``sha256-<hex>.sig``, ``.att`` and ``.sbom``.

One tag listing per source repository per run tells, for every image and child of that
repository, which cosign tags exist and whether a fallback index does: on a registry without
the API an image without referrers costs that listing (shared by the repository's images) and
nothing else. Referrers of referrers (an SBOM's signature) are followed to ``MAX_DEPTH``; more
than ``MAX_PER_DIGEST`` referrers of one digest, or ``MAX_PER_IMAGE`` for one image, are
refused rather than copied.

At the destination (``ReferrerCopier``) a referrer that is there already is left alone; an
OCI referrer is pushed by digest (``put_manifest`` keeps the fallback index of a registry
without the API); a cosign ``.sig`` or ``.att`` tag holding other content is merged, never
replaced (cosign appends: the destination's layers first, then the source's it lacks); any
other tag holding other content is kept and reported as skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from imgctl.errors import ImgctlError, NotFoundError, UsageError
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Descriptor, Manifest
from imgctl.oci.reference import Reference
from imgctl.remote._client import FetchedManifest, RegistryClient
from imgctl.remote._gather import gather_all

if TYPE_CHECKING:
    from imgctl.remote._copy import CopyResult

__all__ = [
    "MAX_DEPTH",
    "MAX_PER_DIGEST",
    "MAX_PER_IMAGE",
    "SELECTIONS",
    "SIGNATURE_ARTIFACT_TYPES",
    "Found",
    "Merged",
    "ReferrerCopier",
    "ReferrerCopy",
    "ReferrerFinder",
    "Selection",
    "merge_signature_manifests",
]

Selection = Literal["all", "signatures", "none"]
SELECTIONS: tuple[Selection, ...] = ("all", "signatures", "none")

# Referrers that "signatures" selects besides .sig tags: cosign's simple signing (as a config
# or layer type, and as the artifactType cosign gives it in OCI 1.1 mode) and sigstore bundles.
SIGNATURE_ARTIFACT_TYPES = frozenset(
    {
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)

MAX_DEPTH = 3  # an image's referrers, theirs, and theirs
MAX_PER_DIGEST = 256
MAX_PER_IMAGE = 1024

_TAG_KINDS = {".sig": "signature", ".att": "attestation", ".sbom": "sbom"}
_MERGED_BY_APPENDING = frozenset({".sig", ".att"})  # cosign appends to these, never replaces
_DIGEST_TAG_PREFIXES = ("sha256-", "sha512-")
# A config that has never been created: what go-containerregistry writes for an empty history.
_EMPTY_HISTORY = {"created": "0001-01-01T00:00:00Z"}


@dataclass(frozen=True, slots=True)
class ReferrerCopy:
    """What happened to one referrer of an image (in a plan: what would happen).

    ``status`` is ``copied``, ``unchanged``, ``merged``, ``skipped`` or ``failed``; ``reason``
    says why for the last three (and what a merge added).
    """

    subject: Digest
    digest: Digest
    kind: str  # signature | attestation | sbom | referrer
    status: str
    tag: str | None = None
    artifact_type: str | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        """The tag of a tag-schema referrer, else its digest."""
        return self.tag or str(self.digest)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "subject": str(self.subject),
            "tag": self.tag,
            "digest": str(self.digest),
            "kind": self.kind,
            "artifactType": self.artifact_type,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(slots=True)
class Found:
    """A referrer found in the source: its manifest, and what refers to it in turn."""

    subject: Digest
    manifest: FetchedManifest
    kind: str
    tag: str | None = None
    artifact_type: str | None = None
    below: list[Found] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The tag of a tag-schema referrer, else its digest."""
        return self.tag or str(self.manifest.digest)

    def record(self, status: str, reason: str | None = None) -> ReferrerCopy:
        """The line of a copy result for this referrer."""
        return ReferrerCopy(
            self.subject,
            self.manifest.digest,
            self.kind,
            status,
            self.tag,
            self.artifact_type,
            reason,
        )

    def walk(self) -> Iterator[Found]:
        """Everything below this referrer, depth first."""
        for child in self.below:
            yield child
            yield from child.walk()


def _kind_of(artifact_type: str | None) -> str:
    """A word for an OCI referrer's artifact type (for people; selection uses the types)."""
    if artifact_type in SIGNATURE_ARTIFACT_TYPES:
        return "signature"
    text = (artifact_type or "").lower()
    if any(word in text for word in ("in-toto", "dsse", "attestation", "artifact.att")):
        return "attestation"
    if any(word in text for word in ("spdx", "cyclonedx", "sbom", "syft")):
        return "sbom"
    return "referrer"


def _artifact_type(fetched: FetchedManifest) -> str | None:
    parsed = fetched.parsed
    if parsed.artifact_type:
        return parsed.artifact_type
    if isinstance(parsed, Manifest) and parsed.config is not None:
        return parsed.config.media_type
    return None


class _Budget:
    """How many more referrers one image may have."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def take(self, count: int, where: str) -> None:
        self.left -= count
        if self.left < 0:
            raise UsageError(
                f"{where}: more than {self.limit} referrers below one image; refusing to copy them",
                hint="copy with --referrers signatures (or none), or clean up the source",
            )


class ReferrerFinder:
    """Referrers in source repositories; each listing and API answer is asked once per run."""

    def __init__(self, client: RegistryClient, selection: Selection) -> None:
        self.client = client
        self.selection = selection
        self._tags: dict[tuple[str, str], asyncio.Task[frozenset[str]]] = {}
        self._api: dict[tuple[str, str, Digest], asyncio.Task[list[Descriptor] | None]] = {}

    @staticmethod
    def _once(
        cache: dict[Any, asyncio.Task[Any]], key: object, work: Callable[[], Awaitable[Any]]
    ) -> Awaitable[Any]:
        task = cache.get(key)
        if task is None:
            task = cache[key] = asyncio.ensure_future(work())
            # A failure is seen by whoever awaits the task; none is left unretrieved.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return asyncio.shield(task)

    async def digest_tags(self, source: Reference) -> frozenset[str]:
        """The repository's tags that name a digest (``sha256-...``): one listing per run."""

        async def listing() -> frozenset[str]:
            try:
                return frozenset(
                    [
                        tag
                        async for tag in self.client.iter_tags(source)
                        if tag.startswith(_DIGEST_TAG_PREFIXES)
                    ]
                )
            except NotFoundError:
                return frozenset()

        result: frozenset[str] = await self._once(
            self._tags, (source.registry, source.repository), listing
        )
        return result

    async def from_api(self, source: Reference, subject: Digest) -> list[Descriptor] | None:
        """The referrers API's answer for ``subject`` (None: no API), asked once per run."""
        result: list[Descriptor] | None = await self._once(
            self._api,
            (source.registry, source.repository, subject),
            lambda: self.client.referrers_from_api(source.with_digest(subject)),
        )
        return result

    async def may_have(self, source: Reference, subject: Digest) -> bool:
        """False when neither tags nor the referrers API could hold a referrer of ``subject``."""
        if await self.digest_tags(source):
            return True
        return bool(await self.from_api(source, subject))

    async def find(self, source: Reference, subjects: Sequence[Digest]) -> list[Found]:
        """The referrers of ``subjects`` (an image and its children), to ``MAX_DEPTH``."""
        if self.selection == "none":
            return []
        budget = _Budget(MAX_PER_IMAGE)
        groups = await gather_all(self._below(source, s, 1, budget) for s in subjects)
        return [found for group in groups for found in group]

    async def _below(
        self, source: Reference, subject: Digest, depth: int, budget: _Budget
    ) -> list[Found]:
        tags = await self.digest_tags(source)
        suffixes = (".sig",) if self.selection == "signatures" else tuple(_TAG_KINDS)
        tagged = [subject.tag_form + s for s in suffixes if subject.tag_form + s in tags]
        descriptors = await self.from_api(source, subject)
        if descriptors is None:
            descriptors = []
            if subject.tag_form in tags:
                descriptors = await self.client.referrers_from_tag(source.with_digest(subject))
        if self.selection == "signatures":
            descriptors = [d for d in descriptors if d.artifact_type in SIGNATURE_ARTIFACT_TYPES]
        where = f"{source.name}@{subject}"
        count = len(tagged) + len(descriptors)
        if count > MAX_PER_DIGEST:
            raise UsageError(
                f"{where} has {count} referrers; imgctl copies at most {MAX_PER_DIGEST} per digest",
                hint="copy with --referrers signatures (or none), or clean up the source",
            )
        budget.take(count, where)
        manifests = await gather_all(
            [self.client.get_manifest(source.with_tag(tag)) for tag in tagged]
            + [self.client.get_manifest(source.with_digest(d.digest)) for d in descriptors]
        )
        found: list[Found] = []
        for tag, fetched in zip(tagged, manifests[: len(tagged)], strict=True):
            kind = _TAG_KINDS["." + tag.rsplit(".", 1)[1]]
            found.append(Found(subject, fetched, kind, tag, _artifact_type(fetched)))
        seen = {f.manifest.digest for f in found}
        for descriptor, fetched in zip(descriptors, manifests[len(tagged) :], strict=True):
            subject_of = fetched.parsed.subject
            if fetched.digest in seen or subject_of is None or subject_of.digest != subject:
                continue  # listed twice, or a stale index entry that refers elsewhere
            seen.add(fetched.digest)
            artifact_type = descriptor.artifact_type or _artifact_type(fetched)
            found.append(Found(subject, fetched, _kind_of(artifact_type), None, artifact_type))
        if depth < MAX_DEPTH and found:
            below = await gather_all(
                self._below(source, f.manifest.digest, depth + 1, budget) for f in found
            )
            for parent, children in zip(found, below, strict=True):
                parent.below = children
        return found


class Engine(Protocol):
    """What the copier needs of the copy engine."""

    async def copy_content(
        self,
        source: Reference,
        destination: Reference,
        fetched: FetchedManifest,
        result: CopyResult,
    ) -> None:
        """Put everything ``fetched`` points at into the destination."""

    async def copy_blobs(
        self,
        source: Reference,
        destination: Reference,
        blobs: Sequence[Descriptor],
        result: CopyResult,
    ) -> None:
        """Put these blobs into the destination."""

    async def read_blob(self, ref: Reference, desc: Descriptor, limit: int) -> bytes:
        """A small blob's bytes, bounded and digest-checked."""


# Signature configs are tiny JSON; anything larger is not worth rewriting.
_MAX_CONFIG_BYTES = 4 * 1024 * 1024


class ReferrerCopier:
    """Puts found referrers into a destination repository whose subject is in place.

    With ``dry_run`` it reads the destination and says what it would do, writing nothing.
    """

    def __init__(self, client: RegistryClient, engine: Engine, *, dry_run: bool = False):
        self.client = client
        self.engine = engine
        self.dry_run = dry_run

    async def copy(
        self,
        source: Reference,
        destination: Reference,
        found: Sequence[Found],
        result: CopyResult,
        into: list[ReferrerCopy],
    ) -> list[tuple[Found, ImgctlError]]:
        """Copy every referrer found (recording each in ``into``); return the failures."""
        failures: list[tuple[Found, ImgctlError]] = []
        by_subject: dict[Digest, list[Found]] = {}
        for item in found:
            by_subject.setdefault(item.subject, []).append(item)
        # Subjects side by side; one subject's referrers one after another, because a registry
        # without the referrers API keeps them in one index that each push reads and rewrites.
        await gather_all(
            self._subject(source, destination, items, result, into, failures)
            for items in by_subject.values()
        )
        return failures

    async def _subject(
        self,
        source: Reference,
        destination: Reference,
        items: list[Found],
        result: CopyResult,
        into: list[ReferrerCopy],
        failures: list[tuple[Found, ImgctlError]],
    ) -> None:
        listed: set[Digest] | None = None
        for item in items:
            try:
                if item.tag is not None:
                    status, reason = await self._tagged(source, destination, item, result)
                else:
                    if listed is None:
                        at = destination.with_digest(item.subject)
                        listed = {d.digest for d in await self.client.referrers(at)}
                    status, reason = await self._by_digest(
                        source, destination, item, listed, result
                    )
            except ImgctlError as exc:
                into.append(item.record("failed", exc.message))
                failures.append((item, exc))
                status, reason = "failed", None
            else:
                into.append(item.record(status, reason))
            if not item.below:
                continue
            if status in ("copied", "unchanged"):
                await self._subject(source, destination, item.below, result, into, failures)
            else:
                why = f"what it refers to, {item.label}, is not copied as it is ({status})"
                into.extend(child.record("skipped", why) for child in item.walk())

    async def _by_digest(
        self,
        source: Reference,
        destination: Reference,
        item: Found,
        listed: set[Digest],
        result: CopyResult,
    ) -> tuple[str, str | None]:
        if item.manifest.digest in listed:
            return "unchanged", None
        if not self.dry_run:
            fetched = item.manifest
            await self.engine.copy_content(source, destination, fetched, result)
            target = destination.with_digest(fetched.digest)
            await self.client.put_manifest(target, fetched.data, fetched.media_type)
            result.manifests_pushed += 1
        return "copied", None

    async def _tagged(
        self, source: Reference, destination: Reference, item: Found, result: CopyResult
    ) -> tuple[str, str | None]:
        assert item.tag is not None
        fetched = item.manifest
        target = destination.with_tag(item.tag)
        existing = await self.client.head_manifest(target)
        if existing is None:
            if not self.dry_run:
                await self.engine.copy_content(source, destination, fetched, result)
                await self.client.put_manifest(target, fetched.data, fetched.media_type)
                result.manifests_pushed += 1
            return "copied", None
        if existing.digest == fetched.digest:
            return "unchanged", None
        suffix = "." + item.tag.rsplit(".", 1)[1]
        if suffix not in _MERGED_BY_APPENDING:
            return "skipped", (
                f"the destination's {item.tag} holds other content ({existing.digest}); kept it"
            )
        current = await self.client.get_manifest(target)
        configs: tuple[bytes | None, bytes | None] = (None, None)
        if not self.dry_run:
            configs = (
                await self._config(destination, current),
                await self._config(source, fetched),
            )
        merged = merge_signature_manifests(current, fetched, *configs)
        if isinstance(merged, str):
            return "skipped", f"the destination's {item.tag} holds other content: {merged}; kept it"
        if not merged.added:
            return "unchanged", (
                f"the destination's {item.tag} already holds every layer of the source's"
            )
        if not self.dry_run:
            await self.engine.copy_blobs(source, destination, merged.added, result)
            if merged.config is not None:
                config_digest = Digest.of(merged.config)
                if await self.client.head_blob(destination, config_digest) is None:
                    await self.client.push_blob(
                        destination, config_digest, merged.config, len(merged.config)
                    )
            await self.client.put_manifest(target, merged.data, merged.media_type)
            result.manifests_pushed += 1
        return "merged", (
            f"appended {len(merged.added)} of the source's layers to the destination's "
            f"{merged.kept}"
        )

    async def _config(self, ref: Reference, fetched: FetchedManifest) -> bytes | None:
        parsed = fetched.parsed
        if not isinstance(parsed, Manifest) or parsed.config is None:
            return None
        if parsed.config.size > _MAX_CONFIG_BYTES:
            return None  # merged without rewriting the config (layers are what cosign reads)
        return await self.engine.read_blob(ref, parsed.config, _MAX_CONFIG_BYTES)


@dataclass(frozen=True, slots=True)
class Merged:
    """A signature manifest merged from two: its bytes and the layers the source added."""

    data: bytes
    media_type: str
    added: tuple[Descriptor, ...]
    kept: int  # layers the destination had
    config: bytes | None = None  # a rewritten config blob, to be pushed before the manifest


def merge_signature_manifests(
    destination: FetchedManifest,
    source: FetchedManifest,
    destination_config: bytes | None = None,
    source_config: bytes | None = None,
) -> Merged | str:
    """Append the source's layers the destination lacks to the destination's manifest.

    The destination's layers stay first and unchanged (cosign's rule: signatures are appended,
    never replaced). When the destination's config lists one diff_id (and history entry) per
    layer, as cosign's do, the added layers' entries are appended too, taken from the source's
    config or, for uncompressed layers, their digests. Returns why not, as text, when the two
    are not single manifests with layers.
    """
    docs = []
    for fetched in (destination, source):
        if not isinstance(fetched.parsed, Manifest) or fetched.parsed.config is None:
            return "not a single image manifest"
        doc = json.loads(fetched.data)
        if not isinstance(doc.get("layers"), list):
            return "a manifest without layers"
        docs.append(doc)
    dst_doc, src_doc = docs
    have = {layer.digest for layer in destination.parsed.layers}  # type: ignore[union-attr]
    src_layers = source.parsed.layers  # type: ignore[union-attr]
    added_positions: list[int] = []
    for position, layer in enumerate(src_layers):
        if layer.digest not in have:
            have.add(layer.digest)
            added_positions.append(position)
    added = tuple(src_layers[p] for p in added_positions)
    kept = len(dst_doc["layers"])
    if not added:
        return Merged(destination.data, destination.media_type, (), kept)
    merged_doc = dict(dst_doc)
    merged_doc["layers"] = list(dst_doc["layers"]) + [src_doc["layers"][p] for p in added_positions]
    config = _merged_config(
        destination_config, source_config, kept, len(src_layers), added_positions, added
    )
    if config is not None:
        merged_doc["config"] = {
            **dst_doc["config"],
            "digest": str(Digest.of(config)),
            "size": len(config),
        }
    data = json.dumps(merged_doc, separators=(",", ":")).encode()
    return Merged(data, destination.media_type, added, kept, config)


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _aligned(config: dict[str, Any] | None, key: str, count: int) -> list[Any] | None:
    """The list under ``rootfs.diff_ids`` or ``history`` when it has one entry per layer."""
    if config is None:
        return None
    holder = config.get("rootfs") if key == "diff_ids" else config
    value = holder.get(key) if isinstance(holder, dict) else None
    return value if isinstance(value, list) and len(value) == count else None


def _merged_config(
    destination: bytes | None,
    source: bytes | None,
    kept: int,
    source_count: int,
    positions: list[int],
    added: tuple[Descriptor, ...],
) -> bytes | None:
    """The destination's config with the added layers' diff_ids and history; None: unchanged."""
    dst = _json_object(destination)
    src = _json_object(source)
    dst_ids = _aligned(dst, "diff_ids", kept)
    if dst is None or dst_ids is None:
        return None
    src_ids = _aligned(src, "diff_ids", source_count)
    new_ids: list[Any] = []
    for position, layer in zip(positions, added, strict=True):
        if src_ids is not None:
            new_ids.append(src_ids[position])
        elif not any(word in layer.media_type for word in ("gzip", "zstd")):
            new_ids.append(str(layer.digest))  # an uncompressed layer's diff_id is its digest
        else:
            return None
    config = dict(dst)
    config["rootfs"] = {**dst["rootfs"], "diff_ids": [*dst_ids, *new_ids]}
    dst_history = _aligned(dst, "history", kept)
    if dst_history is not None:
        src_history = _aligned(src, "history", source_count)
        extra = [src_history[p] if src_history else dict(_EMPTY_HISTORY) for p in positions]
        config["history"] = [*dst_history, *extra]
    return json.dumps(config, separators=(",", ":")).encode()
