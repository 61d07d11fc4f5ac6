"""Resumable blob uploads: big blobs go up in chunks, and a cut chunk resumes where the registry is.

A blob of at least ``RESUMABLE_THRESHOLD`` bytes (every blob with ``--chunk-size``, and a blob
whose streamed ``PUT`` already failed once) is sent as ``PATCH`` requests of ``chunk_size`` bytes
with ``Content-Range``, each chunk's body read from the source as it is sent: nothing is held in
memory but the transport's pieces. When a chunk fails (the connection to either registry is cut,
a 5xx), the upload's status (``GET`` on its location) tells how many bytes the registry holds;
the source is read again from the last chunk boundary the registry confirmed (a ``Range`` GET,
or the whole blob again, skipped up to there, where the source ignores ``Range``), hashed up to
the registry's offset, and the upload goes on from that offset. So a cut costs at most the chunk
it happened in. A registry that cannot say (``404``, ``416``, no ``Range``, an offset it cannot
have) gets a fresh upload session. The sha256 of the whole blob is computed on the way as in the
streamed copy: the hasher's state is kept at each confirmed boundary (``hashlib``'s ``copy``),
and the closing ``PUT ?digest=`` is only sent once the bytes hash to the digest. A final failure
deletes the upload session, so no partial upload is left behind.

Distribution 2.8 keeps the bytes of a cut ``PATCH`` but then refuses every request carrying the
upload's previous state (``upload resumed at wrong offset``, answered ``404 BLOB_UPLOAD_INVALID``),
so behind nothing but a TCP connection it is the "cannot say" case; behind a proxy that buffers
request bodies (nginx's default) it never sees a cut chunk and resumes. See ``docs/registry.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from imgctl.errors import (
    DigestMismatchError,
    ImgctlError,
    NotFoundError,
    RegistryError,
    TransportError,
)
from imgctl.oci.manifest import Descriptor
from imgctl.oci.reference import Reference
from imgctl.remote._client import CANCEL_UPLOAD_TIMEOUT, RegistryClient
from imgctl.remote._http import transfer_retryable

__all__ = ["CHUNK_SIZE", "RESUMABLE_THRESHOLD", "upload_resumable", "wants_chunks"]

log = logging.getLogger("imgctl.remote")

# Blobs from this size up are sent in chunks. Below it a cut costs at most this much again, and
# the streamed PUT is cheaper (no request per chunk); see docs/performance.md for the measurement.
RESUMABLE_THRESHOLD = 128 << 20
# A cut re-sends at most one chunk; each chunk costs the registry a request (and distribution a
# hash-state file) and this client a round trip.
CHUNK_SIZE = 32 << 20
# Failures of one blob's upload in a row without a chunk confirmed between them, and in all.
_MAX_STALLS = 3
_MAX_FAILURES = 16
# Failed reads of the source in a row without a byte between them.
_SOURCE_ATTEMPTS = 5
_RANGE = re.compile(r"(?:bytes=)?0-(\d+)")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# Answers to a chunk after which the upload's status is worth asking: the session may be gone
# or elsewhere than we think (404/416/400 with these codes), or the registry had a hiccup.
_LOST_SESSION_CODES = frozenset({"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "RANGE_INVALID"})


def wants_chunks(size: int, chunk_size: int | None, attempt: int) -> bool:
    """Whether a blob goes up in resumable chunks instead of one streamed PUT."""
    if chunk_size is not None:
        return True
    # A blob whose streamed PUT was cut once goes in chunks on its next attempt.
    return size >= RESUMABLE_THRESHOLD or (attempt > 1 and size > CHUNK_SIZE)


async def upload_resumable(
    client: RegistryClient,
    source: Reference,
    destination: Reference,
    location: str,
    desc: Descriptor,
    chunk_size: int | None,
    on_sent: Callable[[int], None],
) -> None:
    """Copy the blob ``desc`` from ``source`` into the open upload at ``location``, in chunks.

    ``on_sent`` is told how many bytes each confirmed chunk added. On failure the upload session
    is deleted and the last error raised.
    """
    upload = _Upload(client, source, destination, location, desc, chunk_size or CHUNK_SIZE, on_sent)
    try:
        await upload.run()
    except asyncio.CancelledError:
        # Ctrl-C: the client deletes every open session at once when it closes, within one
        # bound for all (RegistryClient.cancel_open_uploads), instead of one after the other.
        raise
    except BaseException:
        await upload.cancel()
        raise
    finally:
        await upload.source.close()


class _Upload:
    """One blob's chunked upload: the session's location, the source, what is confirmed."""

    def __init__(
        self,
        client: RegistryClient,
        source: Reference,
        destination: Reference,
        location: str,
        desc: Descriptor,
        chunk_size: int,
        on_sent: Callable[[int], None],
    ) -> None:
        self.client = client
        self.destination = destination
        self.location = location
        self.desc = desc
        self.chunk_size = chunk_size
        self.on_sent = on_sent
        self.source = _Source(client, source, desc)
        self.what = f"blob {desc.digest} to {destination.name}"

    async def run(self, confirmed: int = 0, hasher: Any = None) -> None:
        """Send the blob from ``confirmed`` on (``hasher`` holds the bytes before it), close it."""
        size = self.desc.size
        if hasher is None:
            hasher = hashlib.new(self.desc.digest.algorithm)
        stalls = failures = 0
        while True:
            end = min(confirmed + self.chunk_size, size)
            try:
                if confirmed == size:
                    break
                work = hasher.copy()
                await self._patch(confirmed, end, work)
            except (TransportError, RegistryError) as exc:
                if not _worth_resuming(exc):
                    raise
                failures += 1
                stalls += 1
                if stalls > _MAX_STALLS or failures > _MAX_FAILURES:
                    raise
                log.debug(
                    "%s: chunk %d-%d failed (%s); asking the registry",
                    self.what,
                    confirmed,
                    end - 1,
                    exc,
                )
                await asyncio.sleep(self.client.backoff(stalls))
                confirmed, hasher = await self._resume(confirmed, end, hasher)
                continue
            self.on_sent(end - confirmed)
            confirmed, hasher, stalls = end, work, 0
        actual = hasher.hexdigest()
        if actual != self.desc.digest.hex:
            raise DigestMismatchError(
                f"blob {self.desc.digest} arrived with digest {self.desc.digest.algorithm}:"
                f"{actual}; refusing to store it",
                hint="the source registry served corrupt content",
            )
        await self._finish()

    # ------------------------------------------------------------------ requests

    async def _patch(self, start: int, end: int, hasher: Any) -> None:
        """Send bytes ``start`` to ``end`` (exclusive) of the blob, streamed from the source."""
        client, ref = self.client, self.destination
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{end - 1}",
            "Content-Length": str(end - start),
        }

        async def send() -> str:
            response = await client._request(
                "PATCH",
                ref.registry,
                ref.repository,
                "",
                url=self.location,
                headers=headers,
                content=self._body(start, end, hasher),
                push=True,
            )
            await client._raise_for_status(
                response,
                f"upload chunk {start}-{end - 1} of {self.what}",
                ref.registry,
                ref.repository,
            )
            client.stats.bytes_uploaded += end - start
            return await self._absolute(response.headers.get("location"))

        self._moved(await _landing(send(), self._moved))

    async def _body(self, start: int, end: int, hasher: Any) -> AsyncIterator[bytes]:
        async for piece in self.source.read(start, end):
            hasher.update(piece)
            yield piece

    async def _status(self) -> tuple[int, str] | str:
        """The registry's offset and the location to go on with, or why there is none."""
        client, ref = self.client, self.destination
        try:
            response = await client._request(
                "GET", ref.registry, ref.repository, "", url=self.location, push=True
            )
        except TransportError as exc:
            return f"its upload status could not be read: {exc}"
        status = response.status_code
        if status not in (200, 204):
            return f"it answered {status} for the upload's status"
        match = _RANGE.fullmatch((response.headers.get("range") or "").strip())
        if match is None:
            return "it sent no Range with the upload's status"
        end = int(match[1])
        # "0-0" is both an empty upload and one of a byte (distribution's convention); a
        # wrong guess is caught by the registry's digest check and means a fresh upload.
        offset = end + 1 if end > 0 else 0
        return offset, await self._absolute(response.headers.get("location"))

    async def _resume(self, confirmed: int, attempted: int, hasher: Any) -> tuple[int, Any]:
        """Where to go on after a failed chunk: the registry's offset, or a fresh upload at 0."""
        status = await self._status()
        if isinstance(status, tuple):
            offset, location = status
            if confirmed <= offset <= attempted:
                self._moved(location)
                if offset > confirmed:
                    # The registry kept part of the cut chunk: hash it, do not send it again.
                    hasher = hasher.copy()
                    async for piece in self.source.read(confirmed, offset):
                        hasher.update(piece)
                    self.on_sent(offset - confirmed)
                log.debug("%s: resuming at byte %d of %d", self.what, offset, self.desc.size)
                return offset, hasher
            reason = f"it holds {offset} bytes, not {confirmed}-{attempted}"
        else:
            reason = status
        log.debug(
            "%s: %s cannot resume the upload (%s); starting a fresh one",
            self.what,
            self.destination.registry,
            reason,
        )
        await self.cancel()
        fresh = await self.client.start_upload(self.destination)
        assert fresh is not None  # no mount was asked for
        self.location = fresh  # start_upload noted it as open
        return 0, hashlib.new(self.desc.digest.algorithm)

    async def _finish(self) -> None:
        """Close the upload with its digest (no body: every byte went in the chunks)."""
        client, ref = self.client, self.destination
        separator = "&" if "?" in self.location else "?"
        url = self.location + separator + urlencode({"digest": str(self.desc.digest)})
        response = await client._request(
            "PUT",
            ref.registry,
            ref.repository,
            "",
            url=url,
            headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
            content=b"",
            push=True,
        )
        try:
            await client._raise_for_status(
                response, f"upload {self.what}", ref.registry, ref.repository
            )
        except NotFoundError:
            # A retried PUT whose first answer was lost finds the session gone: the blob is in.
            if await client.head_blob(ref, self.desc.digest) != self.desc.size:
                raise
        client.upload_closed(self.location)

    async def cancel(self) -> None:
        """Delete the upload session (best effort, bounded in time)."""
        await self.client.discard_upload(self.destination, self.location)

    def _moved(self, location: str) -> None:
        """Go on at ``location`` (the registry's answer names the session's next state)."""
        self.client.upload_moved(self.location, location, self.destination)
        self.location = location

    async def _absolute(self, location: str | None) -> str:
        if not location:
            return self.location
        host = await self.client._host(self.destination.registry)
        return urljoin(host.base_url + "/", location)


async def _landing(request: Awaitable[str], landed: Callable[[str], None]) -> str:
    """Await a chunk's request; on Ctrl-C give it ``CANCEL_UPLOAD_TIMEOUT`` to land first.

    A request cut in the middle of its body leaves the registry holding bytes the client cannot
    name: distribution 2.8 then refuses every request carrying the upload's last known state,
    the DELETE that would cancel it too, and keeps those bytes until its upload purge (a week
    by default). A chunk that lands tells the session's next location, which the DELETE then
    uses (``landed``). Beyond the bound, the request is cut as before.
    """
    task = asyncio.ensure_future(request)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            try:
                async with asyncio.timeout(CANCEL_UPLOAD_TIMEOUT):
                    await asyncio.shield(task)
            except TimeoutError:
                pass
            except (ImgctlError, httpx.HTTPError):
                pass  # the chunk failed: the session is deleted as it is
        if task.done() and not task.cancelled() and task.exception() is None:
            landed(task.result())
        else:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        raise


def _worth_resuming(exc: ImgctlError) -> bool:
    # What is worth another try of a whole transfer, and what a resumable upload can also
    # recover from: a range the registry did not take (416), a session it lost.
    if transfer_retryable(exc):
        return True
    if not isinstance(exc, RegistryError) or exc.status is None:
        return False
    return exc.status == 416 or (exc.status in (400, 404) and exc.code in _LOST_SESSION_CODES)


class _Source:
    """The source blob as a stream that can be read from any offset, and resumes when cut."""

    def __init__(self, client: RegistryClient, ref: Reference, desc: Descriptor) -> None:
        self.client = client
        self.ref = ref
        self.desc = desc
        self.pos = 0  # the offset of the next byte the open response (or _rest) gives
        self._response: httpx.Response | None = None
        self._pieces: AsyncIterator[bytes] | None = None
        self._rest = b""  # bytes received past the end of the last read

    async def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of the blob, in pieces."""
        position = start
        while position < end:
            piece = await self._piece(position, end - position)
            position += len(piece)
            yield piece

    async def _piece(self, position: int, limit: int) -> bytes:
        attempt = 0
        while True:
            try:
                if self._pieces is None or position != self.pos:
                    await self._open(position)
                piece = await self._next()
                break
            except (httpx.HTTPError, TransportError) as exc:
                await self.close()
                attempt += 1
                if attempt >= _SOURCE_ATTEMPTS:
                    raise TransportError(
                        f"reading blob {self.desc.digest} from {self.ref.registry} failed "
                        f"{attempt} times at byte {position}: {exc or type(exc).__name__}"
                    ) from None
                log.debug(
                    "reading blob %s from %s failed at byte %d (%s); resuming",
                    self.desc.digest,
                    self.ref.registry,
                    position,
                    exc,
                )
                await asyncio.sleep(self.client.backoff(attempt))
        if len(piece) > limit:
            piece, self._rest = piece[:limit], piece[limit:]
        self.pos += len(piece)
        return piece

    async def _next(self) -> bytes:
        if self._rest:
            piece, self._rest = self._rest, b""
            return piece
        assert self._pieces is not None
        try:
            piece = await anext(self._pieces)
        except StopAsyncIteration:
            raise DigestMismatchError(
                f"blob {self.desc.digest} from {self.ref.registry} ended after {self.pos} of "
                f"{self.desc.size} bytes"
            ) from None
        self.client.stats.bytes_downloaded += len(piece)
        return piece

    async def _open(self, position: int) -> None:
        """GET the blob from ``position`` on (Range), or from 0, skipping up to ``position``."""
        await self.close()
        client, ref, desc = self.client, self.ref, self.desc
        headers = {"Range": f"bytes={position}-"} if position else None
        response = await client._request(
            "GET",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/blobs/{desc.digest}",
            headers=headers,
            stream=True,
        )
        self._response = response
        await client._raise_for_status(
            response, f"blob {desc.digest} in {ref.name}", ref.registry, ref.repository
        )
        start = 0
        if position and response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if match is None or int(match[1]) != position:
                raise RegistryError(
                    f"blob {desc.digest} in {ref.name}: asked for bytes from {position}, got "
                    f"Content-Range {response.headers.get('content-range')!r}"
                )
            start = position
        length = response.headers.get("content-length")
        if length is not None and int(length) != desc.size - start:
            raise DigestMismatchError(
                f"blob {desc.digest} in {ref.name} is {int(length) + start} bytes, the manifest "
                f"says {desc.size}"
            )
        self._pieces, self.pos, self._rest = response.aiter_raw(), start, b""
        if start < position:
            log.debug(
                "%s ignores Range: reading blob %s again up to byte %d",
                ref.registry,
                desc.digest,
                position,
            )
        while self.pos < position:
            piece = await self._next()
            if self.pos + len(piece) > position:
                self._rest = piece[position - self.pos :]
                piece = piece[: position - self.pos]
            self.pos += len(piece)

    async def close(self) -> None:
        """Drop the open response, if any."""
        response, self._response, self._pieces, self._rest = self._response, None, None, b""
        if response is not None:
            await response.aclose()
