"""The copy engine: move images between repositories with their digests unchanged.

Rules it keeps, whatever goes wrong:

* manifests are pushed as the exact bytes fetched, so every digest is preserved;
* children go before parents (blobs, then platform manifests, then the index), then the
  image's referrers (signatures, attestations, SBOMs: ``_referrers``), and the tag is written
  last, so a failed copy never leaves a tag pointing at an incomplete or unsigned image;
* blobs already in the destination are skipped, blobs on the same registry are mounted, and the
  rest stream from source to destination with the digest checked on the fly — the last chunk is
  held back until the digest matches, so a corrupt stream never completes an upload.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from imgctl.errors import (
    DigestMismatchError,
    ImgctlError,
    NotFoundError,
    RegistryError,
    TransportError,
    UsageError,
)
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Descriptor, Index, Manifest, Platform
from imgctl.oci.platform import describe, matches
from imgctl.oci.reference import Reference
from imgctl.remote._client import FetchedManifest, RegistryClient
from imgctl.remote._gather import gather_all
from imgctl.remote._http import transfer_retryable
from imgctl.remote._referrers import (
    Found,
    ReferrerCopier,
    ReferrerCopy,
    ReferrerFinder,
    Selection,
)
from imgctl.remote._upload import upload_resumable, wants_chunks

__all__ = [
    "CopyOptions",
    "CopyProgress",
    "CopyResult",
    "copies_onto_itself",
    "copy_image",
    "copy_images",
    "plan_referrers",
    "resolve_destination",
]


# How many times one blob's transfer is tried (copy, append) when it fails in a retryable way.
BLOB_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """Concurrency and retry knobs of a copy run."""

    image_concurrency: int = 8
    blob_concurrency: int = 8
    chunk_size: int | None = None
    blob_attempts: int = BLOB_ATTEMPTS
    # Copy only this platform's manifest (by its own digest) instead of the whole index.
    platform: Platform | None = None
    # Referrers copied with each image: all, signatures only (.sig tags, signature
    # artifact types), or none.
    referrers: Selection = "all"


# A config blob is small JSON; bound what --platform reads to check a single manifest.
_MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class CopyResult:
    """What happened to one source -> destination pair."""

    source: Reference
    destination: Reference
    digest: Digest | None = None
    media_type: str | None = None
    status: str = "pending"  # copied | unchanged | failed
    manifests_pushed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    error: ImgctlError | None = None
    platform: Platform | None = None
    referrers: list[ReferrerCopy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True unless the copy failed."""
        return self.status != "failed"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        out: dict[str, object] = {
            "source": str(self.source),
            "destination": str(self.destination),
            "digest": str(self.digest) if self.digest else None,
            "mediaType": self.media_type,
            "status": self.status,
            "manifestsPushed": self.manifests_pushed,
            "blobsCopied": self.blobs_copied,
            "blobsMounted": self.blobs_mounted,
            "blobsSkipped": self.blobs_skipped,
            "bytesCopied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
        }
        if self.platform is not None:
            out["platform"] = str(self.platform)
        out["referrers"] = [r.as_dict() for r in self.referrers]
        if self.error is not None:
            out["error"] = str(self.error)
        return out


@dataclass(slots=True)
class CopyProgress:
    """Running totals a progress display can read; ``on_change`` fires after each update."""

    images_total: int = 0
    images_done: int = 0
    bytes_copied: int = 0
    on_change: Callable[[CopyProgress], None] | None = field(default=None, repr=False)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


async def copy_image(
    client: RegistryClient,
    source: Reference,
    destination: Reference,
    options: CopyOptions | None = None,
) -> CopyResult:
    """Copy one image (or index, with all its platforms); raise on failure."""
    [result] = await copy_images(client, [(source, destination)], options)
    if result.error is not None:
        raise result.error
    return result


async def copy_images(
    client: RegistryClient,
    pairs: Sequence[tuple[Reference, Reference]],
    options: CopyOptions | None = None,
    progress: CopyProgress | None = None,
) -> list[CopyResult]:
    """Copy many pairs sharing connections, limits and blob work; failures are per pair."""
    engine = _Engine(client, options or CopyOptions(), progress or CopyProgress())
    engine.progress.images_total = len(pairs)
    try:
        return list(await asyncio.gather(*(engine.copy(src, dst) for src, dst in pairs)))
    except BaseException:
        # Cancelled (Ctrl-C): the shared transfers run shielded from their callers; stop them
        # now, so that their connections close and their upload sessions are deleted before
        # the client is closed, not after.
        await engine.abort()
        raise


async def plan_referrers(
    client: RegistryClient,
    pairs: Sequence[tuple[Reference, Reference]],
    selection: Selection = "all",
    *,
    concurrency: int = 16,
) -> list[list[ReferrerCopy] | ImgctlError]:
    """What copying each pair would do to its referrers, writing nothing (a dry run).

    Each answer lists the referrers with the status a copy would give them, or is the error
    that kept them from being read. A source that no longer holds the image has none.
    """
    engine = _Engine(client, CopyOptions(referrers=selection), CopyProgress(), dry_run=True)
    gate = asyncio.Semaphore(concurrency)

    async def one(source: Reference, destination: Reference) -> list[ReferrerCopy] | ImgctlError:
        async with gate:
            return await engine.plan_referrers(source, destination)

    return list(await asyncio.gather(*(one(s, d) for s, d in pairs)))


def resolve_destination(source: Reference, destination: Reference) -> Reference:
    """A destination without tag or digest takes the source's tag (or digest)."""
    if destination.tag is None and destination.digest is None:
        if source.tag is not None:
            return destination.with_tag(source.tag)
        return destination.with_digest(source.digest) if source.digest else destination
    return destination


def copies_onto_itself(source: Reference, destination: Reference) -> bool:
    """Whether copying ``source`` to ``destination`` would name the very same image."""
    target = resolve_destination(source, destination)
    return source.name == target.name and source.identifier == target.identifier


class _Engine:
    def __init__(
        self,
        client: RegistryClient,
        options: CopyOptions,
        progress: CopyProgress,
        *,
        dry_run: bool = False,
    ):
        self.client = client
        self.options = options
        self.progress = progress
        self._images = asyncio.Semaphore(options.image_concurrency)
        self._blobs = asyncio.Semaphore(options.blob_concurrency)
        # One transfer per (destination repository, digest) in a run, shared by every image.
        self._blob_work: dict[tuple[str, str, Digest], asyncio.Task[str]] = {}
        self._manifest_work: dict[tuple[str, str, Digest], asyncio.Task[None]] = {}
        # Repositories of a destination registry known to hold a blob, to mount from.
        self._held: dict[tuple[str, Digest], str] = {}
        self._finder = ReferrerFinder(client, options.referrers)
        self._copier = ReferrerCopier(client, self, dry_run=dry_run)
        # Referrers found per source image, and copied per (source, destination repository,
        # image): two tags of one image share the work.
        self._found: dict[tuple[str, str, Digest], asyncio.Task[list[Found]]] = {}
        self._referrer_work: dict[tuple[str, ...], asyncio.Task[_Referrers]] = {}

    async def abort(self) -> None:
        """Cancel every transfer, manifest and referrer task still running, and wait for them."""
        tasks = [
            task
            for work in (self._blob_work, self._manifest_work, self._found, self._referrer_work)
            for task in work.values()
            if not task.done()
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def copy(self, source: Reference, destination: Reference) -> CopyResult:
        destination = resolve_destination(source, destination)
        result = CopyResult(source, destination)
        started = time.monotonic()
        async with self._images:
            try:
                await self._copy(result)
            except ImgctlError as exc:
                result.status = "failed"
                result.error = exc
            except httpx.HTTPError as exc:
                result.status = "failed"
                result.error = TransportError(f"copying {source}: {exc or type(exc).__name__}")
        result.seconds = time.monotonic() - started
        self.progress.images_done += 1
        self.progress._changed()
        return result

    async def _copy(self, result: CopyResult) -> None:
        source, destination = result.source, result.destination
        if copies_onto_itself(source, destination):
            raise UsageError(f"source and destination are the same: {source}")
        fetched = await self.client.get_manifest(source)
        if self.options.platform is not None:
            result.platform = self.options.platform
            fetched = await self._select_platform(source, fetched, self.options.platform)
        result.digest, result.media_type = fetched.digest, fetched.media_type
        if destination.digest is not None and destination.digest != fetched.digest:
            raise UsageError(
                f"destination {destination} pins digest {destination.digest}, but the source "
                f"is {fetched.digest}",
                hint="drop the digest from the destination or copy the matching source",
            )
        # Found while the image is copied; copied once it is in place, before its tag.
        found = self._find(source, fetched)
        # REPO:TAG@DIGEST (checked above) means: write the tag, pointing at exactly that digest.
        target = destination.with_tag(destination.tag) if destination.tag else destination
        existing = await self.client.head_manifest(target)
        if existing is not None and existing.digest == fetched.digest:
            result.status = "unchanged"
            await self._copy_referrers(result, fetched, found, stage="present")
            return
        self.client.want_push(destination.registry, destination.repository)
        await self.copy_content(source, destination, fetched, result)
        if target.digest is not None:
            # No tag: the manifest by digest is the image's last write, its referrers follow.
            await self.client.put_manifest(target, fetched.data, fetched.media_type)
            result.manifests_pushed += 1
            await self._copy_referrers(result, fetched, found, stage="present")
            result.status = "copied"
            return
        if await self._has_referrers(result, found):
            # The subject in place by digest first, so its referrers never precede it.
            pinned = destination.with_digest(fetched.digest)
            await self.client.put_manifest(pinned, fetched.data, fetched.media_type)
            result.manifests_pushed += 1
            await self._copy_referrers(result, fetched, found, stage="untagged")
        # The tag goes last: everything it points at (referrers too) is already in place.
        await self.client.put_manifest(target, fetched.data, fetched.media_type)
        result.manifests_pushed += 1
        result.status = "copied"

    # ------------------------------------------------------------------ referrers

    def _find(self, source: Reference, fetched: FetchedManifest) -> asyncio.Task[list[Found]]:
        """Start finding the referrers of an image and of its index's children (once a run)."""
        key = (source.registry, source.repository, fetched.digest)
        task = self._found.get(key)
        if task is None:
            subjects = [fetched.digest]
            if isinstance(fetched.parsed, Index):
                subjects += [child.digest for child in fetched.parsed.manifests]
            task = asyncio.ensure_future(self._finder.find(source, subjects))
            # Whoever awaits sees a failure; an image whose copy failed first never does.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._found[key] = task
        return task

    async def _has_referrers(self, result: CopyResult, found: asyncio.Task[list[Found]]) -> bool:
        try:
            return bool(await asyncio.shield(found))
        except ImgctlError as exc:
            raise _referrer_failure(result, exc, stage="unwritten") from None

    async def _copy_referrers(
        self,
        result: CopyResult,
        fetched: FetchedManifest,
        found: asyncio.Task[list[Found]],
        *,
        stage: str,
    ) -> None:
        """Copy the referrers found (the image is in place); a failure fails the pair."""
        source, destination = result.source, result.destination
        key = (
            source.registry,
            source.repository,
            destination.registry,
            destination.repository,
            str(fetched.digest),
        )
        task = self._referrer_work.get(key)
        if task is None:
            task = asyncio.ensure_future(self._referrers(result, found))
            self._referrer_work[key] = task
        outcome = await asyncio.shield(task)
        result.referrers.extend(outcome.copies)
        if outcome.error is not None:
            raise _referrer_failure(result, outcome.error, stage=stage)

    async def _referrers(self, result: CopyResult, found: asyncio.Task[list[Found]]) -> _Referrers:
        outcome = _Referrers()
        try:
            items = await asyncio.shield(found)
            failures = await self._copier.copy(
                result.source, result.destination, items, result, outcome.copies
            )
        except ImgctlError as exc:
            outcome.error = exc
        except httpx.HTTPError as exc:
            outcome.error = TransportError(f"{exc or type(exc).__name__}")
        else:
            if failures:
                item, first = failures[0]
                more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
                outcome.error = _reworded(first, f"referrer {item.label}: {first.message}{more}")
        return outcome

    async def plan_referrers(
        self, source: Reference, destination: Reference
    ) -> list[ReferrerCopy] | ImgctlError:
        """What copying would do to the referrers of ``source`` (pinned); writes nothing."""
        if self.options.referrers == "none":
            return []
        destination = resolve_destination(source, destination)
        result = CopyResult(source, destination)
        try:
            subjects = [source.digest] if source.digest is not None else []
            if subjects and not await self._finder.may_have(source, subjects[0]):
                # Neither a digest tag nor the referrers API: nothing to find or copy (asking
                # the finder again below doubled what a plan spends on each such edge).
                return []
            # The manifest only when referrers may exist: its children may have some too.
            fetched = await self.client.get_manifest(source)
            subjects = [fetched.digest]
            if isinstance(fetched.parsed, Index):
                subjects += [child.digest for child in fetched.parsed.manifests]
            found = await self._finder.find(source, subjects) if subjects else []
            failures = await self._copier.copy(source, destination, found, result, result.referrers)
        except NotFoundError:
            return []  # the source no longer has it: nothing of it to copy
        except ImgctlError as exc:
            return exc
        except httpx.HTTPError as exc:
            return TransportError(f"reading referrers of {source}: {exc or type(exc).__name__}")
        if failures:
            item, first = failures[0]
            return _reworded(first, f"referrer {item.label} of {source}: {first.message}")
        return result.referrers

    async def _select_platform(
        self, source: Reference, fetched: FetchedManifest, wanted: Platform
    ) -> FetchedManifest:
        """The manifest of ``wanted`` in an index, or the single manifest if it is that platform."""
        parsed = fetched.parsed
        if isinstance(parsed, Index):
            platforms = [d.platform for d in parsed.manifests]
            chosen = [d for d in parsed.manifests if d.platform and matches(wanted, d.platform)]
            if not chosen:
                raise UsageError(
                    f"{source} has no platform {wanted}; it has: {describe(platforms)}",
                    hint="pick one of the platforms the index lists",
                )
            if len(chosen) > 1:
                raise UsageError(
                    f"{source} has {len(chosen)} manifests for {wanted}: "
                    f"{describe([d.platform for d in chosen])}",
                    hint="add the variant (os/arch/variant) to pick one",
                )
            child = await self.client.get_manifest(source.with_digest(chosen[0].digest))
            if not isinstance(child.parsed, Manifest):
                raise UsageError(
                    f"{source}: the entry for {wanted} ({chosen[0].digest}) is an index itself",
                    hint="copy it without --platform",
                )
            return child
        have = await self._config_platform(source, parsed)
        if not matches(wanted, have):
            raise UsageError(
                f"{source} is a single manifest for {have}, not {wanted}",
                hint=f"use --platform {have}, or copy it without --platform",
            )
        return fetched

    async def _config_platform(self, source: Reference, manifest: Manifest) -> Platform:
        """Read the platform a single manifest's config blob declares (bounded, digest-checked)."""
        config = manifest.config
        if config is None:
            raise UsageError(f"{source} has no config blob to say its platform")
        if config.size > _MAX_CONFIG_BYTES:
            raise UsageError(
                f"{source}: config blob is {config.size} bytes, more than the "
                f"{_MAX_CONFIG_BYTES} read to find its platform"
            )
        data = await self.read_blob(source, config, _MAX_CONFIG_BYTES)
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            value = None
        os_ = value.get("os") if isinstance(value, dict) else None
        arch = value.get("architecture") if isinstance(value, dict) else None
        if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
            raise UsageError(
                f"{source} is a single manifest whose config names no os/architecture",
                hint="copy it without --platform",
            )
        variant = value.get("variant") if isinstance(value, dict) else None
        return Platform(os_, arch, variant if isinstance(variant, str) and variant else None)

    async def copy_content(
        self,
        source: Reference,
        destination: Reference,
        fetched: FetchedManifest,
        result: CopyResult,
    ) -> None:
        """Put everything ``fetched`` points at (blobs, child manifests) into the destination."""
        parsed = fetched.parsed
        if isinstance(parsed, Index):
            await gather_all(
                self._copy_child_manifest(source, destination, child, result)
                for child in parsed.manifests
            )
        else:
            await self.copy_blobs(source, destination, parsed.blobs, result)

    async def _copy_child_manifest(
        self, source: Reference, destination: Reference, child: Descriptor, result: CopyResult
    ) -> None:
        key = (destination.registry, destination.repository, child.digest)
        task = self._manifest_work.get(key)
        if task is None:
            task = asyncio.ensure_future(
                self._push_child_manifest(source, destination, child, result)
            )
            self._manifest_work[key] = task
        await asyncio.shield(task)

    async def _push_child_manifest(
        self, source: Reference, destination: Reference, child: Descriptor, result: CopyResult
    ) -> None:
        target = destination.with_digest(child.digest)
        if await self.client.head_manifest(target) is not None:
            return
        fetched = await self.client.get_manifest(source.with_digest(child.digest))
        await self.copy_content(source, destination, fetched, result)
        await self.client.put_manifest(target, fetched.data, fetched.media_type)
        result.manifests_pushed += 1

    async def copy_blobs(
        self,
        source: Reference,
        destination: Reference,
        descriptors: Sequence[Descriptor],
        result: CopyResult,
    ) -> None:
        """Put these blobs into the destination (skipped, mounted or streamed), counting them."""
        blobs = [d for d in descriptors if d.distributable]
        outcomes = await gather_all(self._blob(source, destination, d) for d in blobs)
        for outcome, desc in zip(outcomes, blobs, strict=True):
            if outcome == "copied":
                result.blobs_copied += 1
                result.bytes_copied += desc.size
            elif outcome == "mounted":
                result.blobs_mounted += 1
            else:
                result.blobs_skipped += 1

    async def _blob(self, source: Reference, destination: Reference, desc: Descriptor) -> str:
        key = (destination.registry, destination.repository, desc.digest)
        task = self._blob_work.get(key)
        if task is None:
            task = asyncio.ensure_future(self._transfer_blob(source, destination, desc))
            self._blob_work[key] = task
            return await asyncio.shield(task)
        await asyncio.shield(task)
        return "shared"

    async def _transfer_blob(
        self, source: Reference, destination: Reference, desc: Descriptor
    ) -> str:
        async with self._blobs:
            outcome = await self._transfer_blob_locked(source, destination, desc)
        self._held.setdefault((destination.registry, desc.digest), destination.repository)
        return outcome

    async def _transfer_blob_locked(
        self, source: Reference, destination: Reference, desc: Descriptor
    ) -> str:
        client = self.client
        registry = destination.registry
        mount_from = None
        if source.registry == registry:
            mount_from = source.repository
        else:
            mount_from = self._held.get((registry, desc.digest))
        attempt = 0
        while True:
            attempt += 1
            try:
                if self.client.self_mounts.get(registry):
                    # One request instead of HEAD + POST: a registry that mounts a blob into
                    # the repository that already holds it answers 201, else opens an upload.
                    location = await client.start_upload(
                        destination,
                        mount=desc.digest,
                        mount_from=mount_from or destination.repository,
                    )
                    if location is None:
                        return "mounted" if mount_from else "skipped"
                else:
                    if await client.head_blob(destination, desc.digest) is not None:
                        return "skipped"
                    location = await client.start_upload(
                        destination,
                        mount=desc.digest if mount_from else None,
                        mount_from=mount_from,
                    )
                    if location is None:
                        self.client.self_mounts[registry] = True
                        return "mounted"
                if wants_chunks(desc.size, self.options.chunk_size, attempt):
                    # Big blobs (and a retry of a cut PUT): PATCH chunks that resume (_upload).
                    await upload_resumable(
                        client,
                        source,
                        destination,
                        location,
                        desc,
                        self.options.chunk_size,
                        self._sent,
                    )
                else:
                    try:
                        async with client.open_blob(source, desc.digest) as response:
                            length = response.headers.get("content-length")
                            if length is not None and int(length) != desc.size:
                                raise DigestMismatchError(
                                    f"blob {desc.digest} in {source.name} is {length} bytes, "
                                    f"the manifest says {desc.size}"
                                )
                            await client.upload_blob(
                                destination,
                                location,
                                desc.digest,
                                self._verified(source, response.aiter_raw(), desc),
                                desc.size,
                            )
                    except Exception:
                        # The registry keeps what a failed PUT sent: abandon the session (a
                        # retry opens another). On Ctrl-C the client deletes every open session
                        # at once as it closes (RegistryClient.cancel_open_uploads).
                        await client.discard_upload(destination, location)
                        raise
                if registry not in self.client.self_mounts:
                    await self._probe_self_mount(destination, desc.digest)
                return "copied"
            except (TransportError, RegistryError) as exc:
                if not transfer_retryable(exc) or attempt >= self.options.blob_attempts:
                    raise
                mount_from = None
                await asyncio.sleep(client.backoff(attempt))

    def _sent(self, size: int) -> None:
        """Count bytes a chunked upload had confirmed into the progress."""
        self.progress.bytes_copied += size
        self.progress._changed()

    async def _probe_self_mount(self, destination: Reference, digest: Digest) -> None:
        """Learn once per registry whether mounting a blob it holds answers 201."""
        self.client.self_mounts[destination.registry] = False
        try:
            location = await self.client.start_upload(
                destination, mount=digest, mount_from=destination.repository
            )
            if location is None:
                self.client.self_mounts[destination.registry] = True
            else:
                await self.client.cancel_upload(destination, location)
        except (TransportError, RegistryError):
            pass  # only an optimisation: without it, presence is checked with HEAD

    async def read_blob(self, ref: Reference, desc: Descriptor, limit: int) -> bytes:
        """A small blob's bytes (at most ``limit``), checked against its digest and size."""
        if desc.size > limit:
            raise UsageError(f"blob {desc.digest} is {desc.size} bytes; reading at most {limit}")
        digester = desc.digest.digester()
        chunks: list[bytes] = []
        async for chunk in self.client.iter_blob(ref, desc.digest):
            digester.update(chunk)
            if digester.size > desc.size:
                raise DigestMismatchError(
                    f"blob {desc.digest} is longer than the {desc.size} bytes its manifest says"
                )
            chunks.append(chunk)
        if digester.size != desc.size or digester.digest() != desc.digest:
            raise DigestMismatchError(
                f"blob {desc.digest} of {ref.name} arrived with another digest"
            )
        return b"".join(chunks)

    async def _verified(
        self, source: Reference, chunks: AsyncIterator[bytes], desc: Descriptor
    ) -> AsyncIterator[bytes]:
        """Pass chunks through, hashing them; the last chunk waits until the digest matches."""
        digester = desc.digest.digester()
        pending: bytes | None = None
        stats = self.client.stats
        progress = self.progress
        async for chunk in _source_errors(source, desc, chunks):
            if not chunk:
                continue
            digester.update(chunk)
            stats.bytes_downloaded += len(chunk)
            if digester.size > desc.size:
                raise DigestMismatchError(
                    f"blob {desc.digest} is longer than the {desc.size} bytes its manifest says"
                )
            if pending is not None:
                yield pending
                progress.bytes_copied += len(pending)
                progress._changed()
            pending = chunk
        if digester.size != desc.size:
            raise DigestMismatchError(
                f"blob {desc.digest} ended after {digester.size} of {desc.size} bytes"
            )
        actual = digester.digest()
        if actual != desc.digest:
            raise DigestMismatchError(
                f"blob {desc.digest} arrived with digest {actual}; refusing to store it",
                hint="the source registry served corrupt content",
            )
        if pending is not None:
            yield pending
            progress.bytes_copied += len(pending)
            progress._changed()


async def _source_errors(
    source: Reference, desc: Descriptor, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """Name the source when reading its blob fails mid-stream (not the upload it feeds)."""
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.HTTPError as exc:
        raise TransportError(
            f"reading blob {desc.digest} from {source.registry} failed: {exc or type(exc).__name__}"
        ) from None


@dataclass(slots=True)
class _Referrers:
    """The referrers one image's copy wrote (or would write), and the first failure."""

    copies: list[ReferrerCopy] = field(default_factory=list)
    error: ImgctlError | None = None


def _reworded(exc: ImgctlError, message: str) -> ImgctlError:
    """The same error (class, status, hint) with another message."""
    out = exc.__class__.__new__(exc.__class__)
    out.__dict__.update(exc.__dict__)
    out.args = (message,)
    out.message = message
    return out


def _referrer_failure(result: CopyResult, exc: ImgctlError, *, stage: str) -> ImgctlError:
    """A referrer failure as the pair's error: what is in place, what is not, what to do.

    ``stage``: ``present`` (the image is complete at the destination), ``untagged`` (in place
    by digest, its tag not written) or ``unwritten`` (its manifest not written at all).
    """
    if stage == "present":
        done = f"{result.destination} holds {result.digest}, but its referrers were not copied"
    elif stage == "untagged":
        done = (
            f"copied {result.destination.name}@{result.digest} but did not tag it, because its "
            "referrers were not copied"
        )
    else:
        done = f"did not write {result.destination}: the referrers of {result.source} were not read"
    failure = _reworded(exc, f"{done}: {exc.message}")
    if failure.hint is None:
        failure.hint = "run again to finish, or copy with --referrers signatures (or none)"
    return failure
