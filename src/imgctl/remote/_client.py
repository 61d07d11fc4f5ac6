"""The OCI distribution API: one ``RegistryClient`` talks to any number of registries.

Manifests (byte-exact, digests verified), blobs (streamed both ways, never held whole in memory),
uploads and cross-repository mounts, tags and the catalog (paginated), and referrers (the API,
else the ``sha256-<hex>`` tag schema). Connections, retries and auth are the ``Session``'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from imgctl.errors import (
    DigestMismatchError,
    ImgctlError,
    InvalidManifestError,
    NotFoundError,
    RegistryError,
)
from imgctl.oci import mediatypes as mt
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Descriptor, Index, Manifest, parse_manifest
from imgctl.oci.reference import DEFAULT_TAG, Reference
from imgctl.remote._http import error_detail
from imgctl.remote._session import Session

__all__ = ["CANCEL_UPLOAD_TIMEOUT", "MAX_MANIFEST_BYTES", "FetchedManifest", "RegistryClient"]

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
# How long abandoning upload sessions may take in all (Ctrl-C, a failed copy): enough for a
# DELETE round trip to a far registry, short enough that an interrupted command still stops.
CANCEL_UPLOAD_TIMEOUT = 2.0

log = logging.getLogger("imgctl.remote")


def _upload_key(location: str) -> str:
    """What names an upload session across its locations: the URL without its query (_state)."""
    parts = urlsplit(location)
    return f"{parts.netloc}{parts.path}"


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """Manifest bytes exactly as the registry sent them, their digest, and what they say."""

    data: bytes
    parsed: Manifest | Index
    digest: Digest

    @property
    def media_type(self) -> str:
        """The manifest's media type."""
        return self.parsed.media_type

    @property
    def descriptor(self) -> Descriptor:
        """A descriptor pointing at these bytes."""
        return Descriptor(self.media_type, self.digest, len(self.data))


class RegistryClient(Session):
    """Async client for the OCI distribution API across many registries.

    Use as ``async with RegistryClient(keychain) as client:``.
    """

    # ------------------------------------------------------------------ API

    async def ping(self, registry: str) -> str:
        """Check that ``registry`` speaks the distribution API; return its base URL."""
        return (await self._host(registry)).base_url

    async def get_manifest(self, ref: Reference) -> FetchedManifest:
        """Fetch a manifest by tag or digest, byte-exact, verifying its digest."""
        response = await self._request(
            "GET",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            headers={"Accept": mt.MANIFEST_ACCEPT},
            stream=True,
        )
        try:
            if response.status_code == 404:
                await response.aread()
                raise manifest_not_found(ref, error_detail(response)[0])
            await self._raise_for_status(response, f"manifest {ref}", ref.registry, ref.repository)
            length = int(response.headers.get("content-length") or 0)
            if length > MAX_MANIFEST_BYTES:
                raise InvalidManifestError(
                    f"manifest {ref} is {length} bytes; refusing more than {MAX_MANIFEST_BYTES}"
                )
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_raw():
                total += len(chunk)
                if total > MAX_MANIFEST_BYTES:
                    raise InvalidManifestError(
                        f"manifest {ref} is larger than {MAX_MANIFEST_BYTES} bytes"
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        data = b"".join(chunks)
        self.stats.bytes_downloaded += len(data)
        parsed = _parse(data, response.headers.get("content-type"), str(ref))
        if ref.digest is not None:
            try:
                ref.digest.verify(data)
            except DigestMismatchError as exc:
                raise DigestMismatchError(f"manifest {ref}: {exc.message}") from None
            digest = ref.digest
        else:
            digest = Digest.of(data)
            header = response.headers.get("docker-content-digest")
            if header and header.startswith("sha256:") and header != str(digest):
                raise DigestMismatchError(
                    f"manifest {ref}: registry says {header} but the bytes hash to {digest}"
                )
        return FetchedManifest(data, parsed, digest)

    async def head_manifest(self, ref: Reference) -> Descriptor | None:
        """Descriptor of a manifest without fetching it; None when it does not exist."""
        response = await self._request(
            "HEAD",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            headers={"Accept": mt.MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            return None
        await self._raise_for_status(response, f"manifest {ref}", ref.registry, ref.repository)
        header = response.headers.get("docker-content-digest")
        media_type = (response.headers.get("content-type") or "").split(";")[0].strip()
        size = int(response.headers.get("content-length") or 0)
        if not header or not media_type or media_type == "application/json":
            # Some registries omit the digest on HEAD; the bytes are authoritative.
            fetched = await self.get_manifest(ref)
            return fetched.descriptor
        return Descriptor(media_type, Digest.parse(header), size)

    async def require_manifest(self, ref: Reference) -> Descriptor:
        """Descriptor of a manifest that must exist: NotFoundError (with its hint) when not."""
        descriptor = await self.head_manifest(ref)
        if descriptor is None:
            raise manifest_not_found(ref, None)
        return descriptor

    async def put_manifest(self, ref: Reference, data: bytes, media_type: str) -> Digest:
        """Push manifest bytes unchanged under ``ref``'s tag or digest; return their digest."""
        digest = Digest.of(data)
        if ref.digest is not None and ref.digest != digest:
            raise DigestMismatchError(f"manifest for {ref} hashes to {digest}")
        self.want_push(ref.registry, ref.repository)
        for attempt in range(1, self.options.retries + 2):
            response = await self._request(
                "PUT",
                ref.registry,
                ref.repository,
                f"/v2/{ref.repository}/manifests/{ref.identifier}",
                headers={"Content-Type": media_type},
                content=data,
                push=True,
            )
            if response.status_code != 400 or attempt > self.options.retries:
                break
            code, _ = error_detail(response)
            if code != "DIGEST_INVALID":
                break
            # These bytes hash to their digest (checked above), so the registry's complaint is
            # its own race: distribution's filesystem driver rewrites a manifest in place, and
            # two identical concurrent pushes can read each other's half-written file.
            self.stats.retries += 1
            await asyncio.sleep(self.backoff(attempt))
        await self._raise_for_status(response, f"push manifest {ref}", ref.registry, ref.repository)
        self.stats.bytes_uploaded += len(data)
        header = response.headers.get("docker-content-digest")
        if header and header.startswith("sha256:") and header != str(digest):
            raise DigestMismatchError(
                f"registry stored manifest {ref} as {header}, expected {digest}",
                hint="the registry rewrote the manifest; it cannot preserve digests",
            )
        if "oci-subject" not in response.headers:
            parsed = parse_manifest(data, media_type)
            if parsed.subject is not None:
                await self._update_referrers_fallback(
                    ref,
                    parsed.subject,
                    Descriptor(
                        media_type,
                        digest,
                        len(data),
                        artifact_type=parsed.artifact_type or _config_type(parsed),
                        annotations=dict(parsed.annotations),
                    ),
                )
        return digest

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        """Size of a blob in ``ref``'s repository, or None if it is not there."""
        response = await self._request(
            "HEAD", ref.registry, ref.repository, f"/v2/{ref.repository}/blobs/{digest}"
        )
        if response.status_code == 404:
            return None
        await self._raise_for_status(
            response, f"blob {digest} in {ref.name}", ref.registry, ref.repository
        )
        return int(response.headers.get("content-length") or 0)

    @asynccontextmanager
    async def open_blob(self, ref: Reference, digest: Digest) -> AsyncIterator[httpx.Response]:
        """Open a blob for streaming; iterate the response with ``aiter_raw()``."""
        response = await self._request(
            "GET",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/blobs/{digest}",
            stream=True,
        )
        try:
            await self._raise_for_status(
                response, f"blob {digest} in {ref.name}", ref.registry, ref.repository
            )
            yield response
        finally:
            await response.aclose()

    async def iter_blob(self, ref: Reference, digest: Digest) -> AsyncIterator[bytes]:
        """Stream a blob's bytes (raw, never content-decoded)."""
        async with self.open_blob(ref, digest) as response:
            async for chunk in response.aiter_raw():
                self.stats.bytes_downloaded += len(chunk)
                yield chunk

    async def start_upload(
        self, ref: Reference, *, mount: Digest | None = None, mount_from: str | None = None
    ) -> str | None:
        """Open an upload session (POST); None when a cross-repository mount succeeded."""
        self.want_push(ref.registry, ref.repository)
        path = f"/v2/{ref.repository}/blobs/uploads/"
        extra: tuple[str, ...] = ()
        if mount is not None and mount_from:
            path += "?" + urlencode({"mount": str(mount), "from": mount_from})
            if mount_from != ref.repository:
                extra = (self._scope(ref.registry, mount_from),)
        response = await self._request(
            "POST",
            ref.registry,
            ref.repository,
            path,
            content=b"",
            push=True,
            extra_scopes=extra,
        )
        await self._raise_for_status(
            response, f"start upload to {ref.name}", ref.registry, ref.repository
        )
        if response.status_code == 201 and mount is not None:
            return None
        location = response.headers.get("location")
        if not location:
            raise RegistryError(
                f"start upload to {ref.name}: registry sent no Location header",
                status=response.status_code,
            )
        host = await self._host(ref.registry)
        url = urljoin(host.base_url + "/", str(location))
        self.upload_moved(None, url, ref)
        return url

    def upload_moved(self, old: str | None, new: str, ref: Reference) -> None:
        """Note that an open upload session goes on at ``new`` (``old``: where it was, if known)."""
        if old is not None:
            self.open_uploads.pop(_upload_key(old), None)
        self.open_uploads[_upload_key(new)] = (ref.registry, ref.repository, new)

    def upload_closed(self, location: str) -> None:
        """Note that the upload session at ``location`` was finished or deleted."""
        self.open_uploads.pop(_upload_key(location), None)

    async def cancel_upload(self, ref: Reference, location: str) -> None:
        """Abandon an upload session (DELETE); registries answer 204, or 404 if it is gone."""
        response = await self._request(
            "DELETE", ref.registry, ref.repository, "", url=location, push=True
        )
        if response.status_code not in (204, 404):
            await self._raise_for_status(
                response, f"cancel upload to {ref.name}", ref.registry, ref.repository
            )
        self.upload_closed(location)

    async def discard_upload(
        self, ref: Reference, location: str, within: float = CANCEL_UPLOAD_TIMEOUT
    ) -> None:
        """Delete an upload session if the registry answers ``within`` seconds (best effort)."""
        try:
            async with asyncio.timeout(within):
                await self.cancel_upload(ref, location)
        except (ImgctlError, httpx.HTTPError, TimeoutError) as exc:
            log.debug("could not delete the upload session %s: %s", location, exc)

    async def cancel_open_uploads(self, within: float = CANCEL_UPLOAD_TIMEOUT) -> None:
        """DELETE every upload session still open, all at once, ``within`` seconds in all.

        The OCI distribution spec's way to abandon an upload: without it the registry keeps the
        bytes sent so far until its own purge (distribution: a week). Bounded, so Ctrl-C stays
        responsive against a registry that no longer answers.
        """
        if not self.open_uploads:
            return
        pending = list(self.open_uploads.values())

        async def one(registry: str, repository: str, location: str) -> None:
            ref = Reference(registry, repository)
            await self.discard_upload(ref, location, within)

        await asyncio.gather(*(one(*entry) for entry in pending))

    async def aclose(self) -> None:
        """Delete the upload sessions still open (bounded in time), then close every connection."""
        try:
            await self.cancel_open_uploads()
        finally:
            await super().aclose()

    async def finish_upload(
        self,
        ref: Reference,
        location: str,
        digest: Digest,
        content: bytes | AsyncIterable[bytes] = b"",
        size: int | None = None,
    ) -> None:
        """Complete an upload with a PUT carrying the (remaining) bytes and the digest."""
        headers = {"Content-Type": "application/octet-stream"}
        if size is None and isinstance(content, bytes):
            size = len(content)
        if size is not None:
            headers["Content-Length"] = str(size)
        separator = "&" if "?" in location else "?"
        url = location + separator + urlencode({"digest": str(digest)})
        response = await self._request(
            "PUT",
            ref.registry,
            ref.repository,
            "",
            url=url,
            headers=headers,
            content=content,
            push=True,
        )
        await self._raise_for_status(
            response, f"upload blob {digest} to {ref.name}", ref.registry, ref.repository
        )
        self.upload_closed(location)
        if size:
            self.stats.bytes_uploaded += size

    async def upload_chunk(self, ref: Reference, location: str, start: int, chunk: bytes) -> str:
        """Send one PATCH of a chunked upload; return the next location."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
        }
        response = await self._request(
            "PATCH",
            ref.registry,
            ref.repository,
            "",
            url=location,
            headers=headers,
            content=chunk,
            push=True,
        )
        await self._raise_for_status(
            response, f"upload chunk to {ref.name}", ref.registry, ref.repository
        )
        self.stats.bytes_uploaded += len(chunk)
        next_location = response.headers.get("location") or location
        host = await self._host(ref.registry)
        url = urljoin(host.base_url + "/", str(next_location))
        self.upload_moved(location, url, ref)
        return url

    async def push_blob(
        self,
        ref: Reference,
        digest: Digest,
        content: bytes | AsyncIterable[bytes],
        size: int,
        *,
        chunk_size: int | None = None,
    ) -> None:
        """Upload a blob: open a session, then send it (see ``upload_blob``)."""
        location = await self.start_upload(ref)
        assert location is not None
        await self.upload_blob(ref, location, digest, content, size, chunk_size=chunk_size)

    async def upload_blob(
        self,
        ref: Reference,
        location: str,
        digest: Digest,
        content: bytes | AsyncIterable[bytes],
        size: int,
        *,
        chunk_size: int | None = None,
    ) -> None:
        """Send a blob into an open session: one PUT, or PATCHes of ``chunk_size`` then a PUT."""
        if chunk_size is None:
            await self.finish_upload(ref, location, digest, content, size)
            return
        offset = 0
        async for chunk in _rechunk(content, chunk_size):
            location = await self.upload_chunk(ref, location, offset, chunk)
            offset += len(chunk)
        await self.finish_upload(ref, location, digest, b"", 0)

    async def list_tags(self, ref: Reference, page_size: int = 1000) -> list[str]:
        """Every tag of a repository, following ``Link`` pagination."""
        return [tag async for tag in self.iter_tags(ref, page_size)]

    async def iter_tags(self, ref: Reference, page_size: int = 1000) -> AsyncIterator[str]:
        """Yield tags page by page (see ``_pages``)."""
        pages = self._pages(
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/tags/list",
            "tags",
            page_size,
            f"list tags of {ref.name}",
        )
        async for tag in pages:
            yield tag

    async def iter_repositories(self, registry: str, page_size: int = 1000) -> AsyncIterator[str]:
        """Every repository of a registry (``/v2/_catalog``), page by page (see ``_pages``)."""
        pages = self._pages(
            registry,
            "",
            "/v2/_catalog",
            "repositories",
            page_size,
            f"list repositories of {registry}",
            extra_scopes=("registry:catalog:*",),
        )
        async for name in pages:
            yield name

    async def _pages(
        self,
        registry: str,
        repository: str,
        path: str,
        key: str,
        page_size: int,
        what: str,
        *,
        extra_scopes: tuple[str, ...] = (),
    ) -> AsyncIterator[str]:
        """The names under ``key`` of a paginated listing (tags or the catalog), each once.

        ``n`` asks for ``page_size`` names a page; a registry that refuses that size with 400
        (a hard maximum) gets a tenth of it. ``Link: <...>; rel="next"`` is followed; a full
        page without ``Link`` is followed with ``last=``; a registry that ignores ``n`` (as
        distribution 2.8 does) answers everything at once. A page seen before ends the listing.
        """
        host = await self._host(registry)
        url = f"{host.base_url}{path}?{urlencode({'n': page_size})}"
        visited: set[str] = set()
        seen: set[str] = set()
        while url not in visited:
            visited.add(url)
            response = await self._request(
                "GET", registry, repository, path, url=url, extra_scopes=extra_scopes
            )
            if response.status_code == 400 and page_size > 1 and not seen:
                # Registries with a hard maximum refuse larger pages outright.
                page_size = max(1, page_size // 10)
                url = f"{host.base_url}{path}?{urlencode({'n': page_size})}"
                continue
            await self._raise_for_status(response, what, registry, repository)
            body = response.json()
            listed = body.get(key) if isinstance(body, dict) else None
            items = listed if isinstance(listed, list) else []
            names = [name for name in items if isinstance(name, str)]
            fresh = [name for name in names if name not in seen]
            for name in fresh:
                seen.add(name)
                yield name
            link = _next_link(response.headers.get("link"))
            if link:
                url = urljoin(host.base_url + "/", link)
            elif fresh and len(items) >= page_size:
                # A full page and no Link: ask for what follows the last name.
                url = f"{host.base_url}{path}?{urlencode({'n': page_size, 'last': names[-1]})}"
            else:
                return

    async def referrers(self, ref: Reference, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``ref``'s digest (referrers API, else the tag schema)."""
        found = await self.referrers_from_api(ref, artifact_type)
        if found is None:
            found = await self.referrers_from_tag(ref, artifact_type)
        return found

    async def referrers_from_api(
        self, ref: Reference, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """The referrers API's list; None where the registry has no such API.

        Whether it has one is learned from its first answer and kept in ``referrers_api``, so a
        registry without the API is asked once per client, however many digests follow.
        """
        if ref.digest is None:
            raise ValueError("referrers needs a reference with a digest")
        registry = ref.registry
        if registry not in self.referrers_api:
            # The first question is the probe: others wait for its answer instead of probing too.
            lock = self._referrers_probes.setdefault(registry, asyncio.Lock())
            async with lock:
                if registry not in self.referrers_api:
                    return await self._ask_referrers(ref, artifact_type)
        if not self.referrers_api[registry]:
            return None
        return await self._ask_referrers(ref, artifact_type)

    async def _ask_referrers(
        self, ref: Reference, artifact_type: str | None
    ) -> list[Descriptor] | None:
        assert ref.digest is not None
        path = f"/v2/{ref.repository}/referrers/{ref.digest}"
        if artifact_type:
            path += "?" + urlencode({"artifactType": artifact_type})
        response = await self._request(
            "GET",
            ref.registry,
            ref.repository,
            path,
            headers={"Accept": mt.OCI_INDEX},
            stream=True,
        )
        try:
            status = response.status_code
            is_index = response.headers.get("content-type", "").startswith(mt.OCI_INDEX)
            if status == 200 and is_index:
                data = await _read_bounded(response, MAX_MANIFEST_BYTES, f"referrers of {ref}")
            elif status in (200, 400, 404, 405):
                code = None
                if status != 200:
                    await response.aread()
                    code, _ = error_detail(response)
                if code != "NAME_UNKNOWN":
                    # No referrers API (distribution 2.8 answers 404 "page not found"); a
                    # repository the registry does not know says nothing about the API.
                    self.referrers_api[ref.registry] = False
                return None
            else:
                await self._raise_for_status(
                    response, f"referrers of {ref}", ref.registry, ref.repository
                )
                return None
        finally:
            await response.aclose()
        self.referrers_api[ref.registry] = True
        self.stats.bytes_downloaded += len(data)
        index = _parse(data, mt.OCI_INDEX, f"referrers of {ref}")
        if not isinstance(index, Index):
            raise InvalidManifestError(f"referrers of {ref}: the registry sent no index")
        found = list(index.manifests)
        filtered = "artifactType" in response.headers.get("oci-filters-applied", "")
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    async def referrers_from_tag(
        self, ref: Reference, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """The referrers listed in the index under the ``sha256-<hex>`` tag (none without it)."""
        if ref.digest is None:
            raise ValueError("referrers needs a reference with a digest")
        index = await self._referrers_index(ref.with_tag(ref.digest.tag_form))
        if index is None:
            return []
        found = list(index.manifests)
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    async def _referrers_index(self, tag_ref: Reference) -> Index | None:
        try:
            fetched = await self.get_manifest(tag_ref)
        except NotFoundError:
            return None
        parsed = fetched.parsed
        if not isinstance(parsed, Index):
            raise InvalidManifestError(f"referrers tag {tag_ref} does not hold an index")
        return parsed

    async def _update_referrers_fallback(
        self, ref: Reference, subject: Descriptor, referrer: Descriptor
    ) -> None:
        """Add ``referrer`` to the ``sha256-<hex>`` index of a registry without referrers API."""
        tag_ref = ref.with_tag(subject.digest.tag_form)
        current = await self._referrers_index(tag_ref)
        entries: list[dict[str, Any]] = []
        if current is not None:
            if any(d.digest == referrer.digest for d in current.manifests):
                return
            entries = [_descriptor_json(d) for d in current.manifests]
        entries.append(_descriptor_json(referrer))
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries},
            separators=(",", ":"),
        ).encode()
        await self.put_manifest(tag_ref, body, mt.OCI_INDEX)


async def _read_bounded(response: httpx.Response, limit: int, what: str) -> bytes:
    """A streamed response's body, refusing more than ``limit`` bytes."""
    length = int(response.headers.get("content-length") or 0)
    if length > limit:
        raise InvalidManifestError(f"{what} is {length} bytes; refusing more than {limit}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_raw():
        total += len(chunk)
        if total > limit:
            raise InvalidManifestError(f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _config_type(manifest: Manifest | Index) -> str | None:
    if isinstance(manifest, Manifest) and manifest.config is not None:
        return manifest.config.media_type
    return None


def _descriptor_json(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": desc.media_type,
        "digest": str(desc.digest),
        "size": desc.size,
    }
    if desc.artifact_type:
        out["artifactType"] = desc.artifact_type
    if desc.annotations:
        out["annotations"] = dict(desc.annotations)
    return out


def _parse(data: bytes, content_type: str | None, where: str) -> Manifest | Index:
    try:
        return parse_manifest(data, content_type)
    except InvalidManifestError as exc:
        raise InvalidManifestError(f"manifest {where}: {exc.message}", hint=exc.hint) from None


def _next_link(header: str | None) -> str | None:
    """The target of ``rel="next"`` in a Link header."""
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return target.strip().removeprefix("<").removesuffix(">")
    return None


async def _rechunk(content: bytes | AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Regroup a byte stream into chunks of exactly ``size`` bytes (the last may be shorter)."""
    if isinstance(content, bytes):
        for start in range(0, len(content), size):
            yield content[start : start + size]
        return
    buffer = bytearray()
    async for piece in content:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def manifest_not_found(ref: Reference, code: str | None) -> NotFoundError:
    """The error for a missing manifest: which tag was asked for, and how to list the others."""
    if code == "NAME_UNKNOWN":
        return NotFoundError(
            f"manifest {ref} not found (NAME_UNKNOWN)",
            status=404,
            code=code,
            hint=f"the repository {ref.name} does not exist; list a registry's repositories"
            f" with: imgctl ls {ref.registry}",
        )
    shown, hint = str(ref), f"list the tags with: imgctl ls {ref.name}"
    if ref.tag is None and ref.digest is None:
        # Users who leave the tag out are rarely thinking of "latest"; say that it was asked for.
        shown = f"{ref.name}:{DEFAULT_TAG}"
        hint = f"no tag was given, so imgctl asked for '{DEFAULT_TAG}'; {hint}"
    return NotFoundError(
        f"manifest {shown} not found ({code or 404})", status=404, code=code, hint=hint
    )
