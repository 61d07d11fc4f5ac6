"""The OCI distribution API as a raw ASGI application over ``Storage``.

Raw ASGI rather than a framework: routing must see the raw request path (a ``%2F`` must not turn
into a separator inside a repository name), and blob bodies are streamed to disk in batches
without a framework's per-chunk overhead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imgctl.oci import mediatypes as mt
from imgctl.oci.reference import valid_repository, valid_tag
from imgctl.registryd._htpasswd import Htpasswd
from imgctl.registryd._http import (
    METHODS,
    Disconnected,
    Problem,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    error_response,
    json_body,
    lifespan,
    route,
    send_response,
)
from imgctl.registryd._storage import (
    ManifestInfo,
    Storage,
    UnsafePathError,
    parse_digest,
    tag_order,
    valid_upload_id,
)

__all__ = ["RegistryApp"]

log = logging.getLogger("imgctl.registryd")

MAX_MANIFEST_BYTES = 4 << 20  # the spec asks registries to accept at least 4 MB
_MAX_PAGE = 1000
# Bodies are written and hashed in a worker thread once this much has arrived: a thread hop
# per network chunk (often 64 KiB) would cost more than the write itself.
_WRITE_BATCH = 1 << 20

_NAME_RULE = (
    "lowercase letters and digits, separated by '.', '_', '__' or dashes, in components "
    "joined by '/', at most 255 characters"
)
_TAG_RULE = "up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"

_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d{1,18})-(\d{1,18})(?:/(?:\d{1,18}|\*))?")
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
_IMAGE_MANIFESTS = frozenset({mt.OCI_MANIFEST, mt.DOCKER_MANIFEST})


@dataclass(slots=True)
class _Session:
    """In-memory state of an upload: its lock and the running hash of the bytes so far."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    hasher: Any = None  # hashlib object; None when it must be recomputed from the file
    hashed: int = 0  # how many bytes ``hasher`` has seen


def _range_header(size: int) -> str:
    # Distribution's convention: an empty upload reports 0-0, like one holding one byte.
    return f"0-{max(size - 1, 0)}"


def _write_batch(fd: int, hasher: Any, chunks: list[bytes], *, sync: bool = False) -> None:
    """Append ``chunks`` unbuffered (a failure leaves nothing buffered); fdatasync with ``sync``."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:  # a write may be short, e.g. on a nearly full disk
            view = view[os.write(fd, view) :]
        if hasher is not None:
            hasher.update(chunk)
    if sync:
        os.fdatasync(fd)


class RegistryApp:
    """The distribution API (v2, OCI 1.1) over a ``Storage``, with optional Basic auth."""

    def __init__(self, storage: Storage, auth: Htpasswd | None = None) -> None:
        self.storage = storage
        self.auth = auth
        self._sessions: dict[str, _Session] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except Problem as problem:
            response = error_response(problem.status, problem.errors, problem.headers)
        except Disconnected:
            return
        except UnsafePathError as exc:
            # Syntax checks come first; this is the storage's own refusal, kept as a backstop.
            log.warning("refused a path outside the root: %s", exc)
            response = error_response(400, [{"code": "NAME_INVALID", "message": "invalid path"}])
        except OSError as exc:  # the disk is full, a file vanished, permissions changed
            log.error("%s %s failed: %s", request.method, request.path, exc)
            response = error_response(
                500, [{"code": "UNKNOWN", "message": f"storage error: {exc.strerror}"}]
            )
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = error_response(
                500, [{"code": "UNKNOWN", "message": "internal error; see the log"}]
            )
        await send_response(send, response, head=request.method == "HEAD")

    # ------------------------------------------------------------------ routing

    async def _handle(self, request: Request) -> Response:
        if self.auth is not None and not await self.auth.check(request.header("authorization")):
            raise Problem(
                "UNAUTHORIZED",
                "authentication required",
                headers=[("www-authenticate", 'Basic realm="imgctl"')],
            )
        kind, name, arg = route(request.path)
        if request.method not in METHODS[kind]:
            raise Problem(
                "UNSUPPORTED",
                f"{request.method} is not supported here",
                headers=[("allow", ", ".join(METHODS[kind]))],
            )
        if kind == "base":
            return Response(200, [("content-type", "application/json")], b"{}")
        if kind == "catalog":
            return self._catalog(request)
        if not valid_repository(name):
            raise Problem(
                "NAME_INVALID",
                f"invalid repository name {name!r}: {_NAME_RULE}",
                detail={"name": name},
            )
        if kind == "tags":
            return self._tags(request, name)
        if kind == "manifest":
            return await self._manifest(request, name, arg or "")
        if kind == "blob":
            return await self._blob(request, name, self._digest(arg or ""))
        if kind == "referrers":
            return self._referrers(request, name, self._digest(arg or ""))
        if not arg:
            if request.method != "POST":
                raise Problem("BLOB_UPLOAD_UNKNOWN", "no upload id in the path")
            return await self._start_upload(request, name)
        if request.method == "POST" or not valid_upload_id(arg):
            raise Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {arg!r}")
        return await self._upload(request, name, arg)

    @staticmethod
    def _digest(value: str, what: str = "digest") -> str:
        # Some clients percent-encode the colon; nothing else may be encoded.
        digest = value.replace("%3A", ":").replace("%3a", ":")
        if parse_digest(digest) is None:
            raise Problem(
                "DIGEST_INVALID",
                f"invalid {what} {value!r}: expected sha256:<64 hex> or sha512:<128 hex>",
            )
        return digest

    # ------------------------------------------------------------------ listings

    @staticmethod
    def _page(
        request: Request,
        items: list[str],
        link: str,
        order: Callable[[str], Any] = str,
    ) -> tuple[list[str], str | None]:
        """Apply ``last`` and ``n`` to ``items`` sorted by ``order``; the page and next Link."""
        last = request.query.get("last")
        if last:
            # After last's own place in the order, whether or not it is one of the items.
            after = order(last)
            items = [item for item in items if order(item) > after]
        raw = request.query.get("n")
        if raw is None or raw == "":
            return items, None
        if not raw.isdigit():
            raise Problem("UNSUPPORTED", f"n must be a whole number, not {raw!r}", status=400)
        n = min(int(raw), _MAX_PAGE)
        if n == 0:
            return [], None
        page = items[:n]
        if len(items) <= n:
            return page, None
        return page, f'<{link}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'

    def _catalog(self, request: Request) -> Response:
        names, link = self._page(request, self.storage.repositories(), "/v2/_catalog")
        headers = [("content-type", "application/json")]
        if link:
            headers.append(("link", link))
        return Response(200, headers, json_body({"repositories": names}))

    def _tags(self, request: Request, name: str) -> Response:
        tags = self.storage.tags(name)
        if tags is None:
            raise Problem("NAME_UNKNOWN", f"repository {name} is not known", detail={"name": name})
        page, link = self._page(request, tags, f"/v2/{name}/tags/list", tag_order)
        headers = [("content-type", "application/json")]
        if link:
            headers.append(("link", link))
        return Response(200, headers, json_body({"name": name, "tags": page}))

    def _referrers(self, request: Request, name: str, digest: str) -> Response:
        wanted = request.query.get("artifactType") or None
        descriptors = []
        for info in self.storage.referrers(name, digest):
            if wanted is not None and info.artifact_type != wanted:
                continue
            descriptor: dict[str, object] = {
                "mediaType": info.media_type,
                "digest": info.digest,
                "size": info.size,
            }
            if info.artifact_type:
                descriptor["artifactType"] = info.artifact_type
            if info.annotations:
                descriptor["annotations"] = info.annotations
            descriptors.append(descriptor)
        headers = [("content-type", mt.OCI_INDEX)]
        if wanted is not None:
            headers.append(("oci-filters-applied", "artifactType"))
        body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
        return Response(200, headers, json_body(body))

    # ------------------------------------------------------------------ manifests

    def _unknown_manifest(self, name: str, reference: str, why: str = "") -> Problem:
        if not self.storage.repository_exists(name):
            return Problem("NAME_UNKNOWN", f"repository {name} is not known", detail={"name": name})
        return Problem(
            "MANIFEST_UNKNOWN",
            f"manifest {reference} is not in {name}{why}",
            detail={"reference": reference},
        )

    async def _manifest(self, request: Request, name: str, reference: str) -> Response:
        digest: str | None = None
        tag: str | None = None
        if ":" in reference or "%3a" in reference.lower():
            digest = self._digest(reference, "manifest digest")
        elif valid_tag(reference):
            tag = reference
        elif request.method == "PUT":
            raise Problem(
                "TAG_INVALID",
                f"invalid tag {reference!r}: {_TAG_RULE}",
                detail={"tag": reference},
            )
        else:
            # No manifest can be found by a reference that is no tag: the spec's answer for a
            # manifest that is not there is 404 (the conformance suite asks exactly this).
            raise self._unknown_manifest(
                name, reference, f": {reference!r} is not a valid tag ({_TAG_RULE})"
            )
        if request.method == "PUT":
            return await self._put_manifest(request, name, digest, tag)
        if request.method == "DELETE":
            # Storage writes fsync: in a thread, not on the event loop.
            deleted = await (
                asyncio.to_thread(self.storage.delete_manifest, name, digest)
                if digest is not None
                else asyncio.to_thread(self.storage.delete_tag, name, tag or "")
            )
            if not deleted:
                raise self._unknown_manifest(name, reference)
            return Response(202)
        if digest is None:
            digest = self.storage.resolve_tag(name, tag or "")
        info = self.storage.manifest_info(name, digest) if digest else None
        data = self.storage.read_manifest(info) if info else None
        if info is None or data is None:
            raise self._unknown_manifest(name, reference)
        return Response(
            200,
            [("content-type", info.media_type), ("docker-content-digest", info.digest)],
            data,
        )

    async def _put_manifest(
        self, request: Request, name: str, digest: str | None, tag: str | None
    ) -> Response:
        data = await request.read(MAX_MANIFEST_BYTES)
        algorithm = digest.split(":", 1)[0] if digest else "sha256"
        actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if digest is not None and actual != digest:
            raise Problem(
                "DIGEST_INVALID",
                f"manifest bytes hash to {actual}, not {digest}",
                detail={"expected": digest, "actual": actual},
            )
        info = self._check_manifest(name, data, request.header("content-type"), actual)
        await asyncio.to_thread(self.storage.put_manifest, name, info, data, tag)
        headers = [
            ("location", f"/v2/{name}/manifests/{actual}"),
            ("docker-content-digest", actual),
        ]
        if info.subject:
            headers.append(("oci-subject", info.subject))
        return Response(201, headers)

    def _check_manifest(
        self, name: str, data: bytes, content_type: str | None, digest: str
    ) -> ManifestInfo:
        """Validate a pushed manifest; what to remember about it."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem("MANIFEST_INVALID", f"manifest is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise Problem("MANIFEST_INVALID", "manifest is not a JSON object")
        declared = document.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise Problem("MANIFEST_INVALID", "mediaType must be a string")
        sent = (content_type or "").split(";", 1)[0].strip()
        if sent in ("application/json", "application/octet-stream"):
            sent = ""  # generic types say nothing about which manifest this is
        if sent and declared and sent != declared:
            raise Problem(
                "MANIFEST_INVALID",
                f"Content-Type {sent} does not match the manifest's mediaType {declared}",
            )
        media_type = sent or declared
        if not media_type:
            raise Problem(
                "MANIFEST_INVALID", "unknown manifest type: send Content-Type or a mediaType field"
            )
        if media_type in (mt.DOCKER_SCHEMA1_MANIFEST, mt.DOCKER_SCHEMA1_SIGNED_MANIFEST):
            raise Problem("MANIFEST_INVALID", "Docker schema 1 manifests are not supported")
        if not (mt.is_index(media_type) or mt.is_manifest(media_type)):
            raise Problem("MANIFEST_INVALID", f"unsupported manifest media type {media_type}")
        if media_type != mt.OCI_ARTIFACT_MANIFEST and document.get("schemaVersion") != 2:
            raise Problem("MANIFEST_INVALID", "schemaVersion must be 2")

        missing: list[str] = []
        artifact_type = document.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise Problem("MANIFEST_INVALID", "artifactType must be a string")
        if mt.is_index(media_type):
            for child in self._descriptors(document, "manifests", required=True):
                if self.storage.manifest_info(name, child["digest"]) is None:
                    missing.append(child["digest"])
        else:
            blobs: list[dict[str, Any]] = []
            if media_type in _IMAGE_MANIFESTS:
                config = document.get("config")
                if config is None:
                    raise Problem("MANIFEST_INVALID", "manifest has no config")
                blobs.append(self._descriptor(config, "config"))
                blobs += self._descriptors(
                    document, "layers", required=media_type == mt.DOCKER_MANIFEST
                )
                artifact_type = artifact_type or blobs[0]["mediaType"]
            else:
                blobs += self._descriptors(document, "blobs", required=False)
            for blob in blobs:
                # Foreign layers live elsewhere (their urls); registries do not hold them.
                if blob.get("urls") or not mt.is_distributable(blob["mediaType"]):
                    continue
                if self.storage.blob_size(name, blob["digest"]) is None:
                    missing.append(blob["digest"])
        if missing:
            problems: list[dict[str, object]] = [
                {
                    "code": "MANIFEST_BLOB_UNKNOWN",
                    "message": f"{d} is not in {name}",
                    "detail": {"digest": d},
                }
                for d in dict.fromkeys(missing)
            ]
            first = problems.pop(0)
            raise Problem(
                "MANIFEST_BLOB_UNKNOWN",
                str(first["message"]),
                detail=first["detail"],
                more=problems,
            )
        subject = document.get("subject")
        subject_digest = (
            self._descriptor(subject, "subject")["digest"] if subject is not None else None
        )
        annotations = document.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise Problem("MANIFEST_INVALID", "annotations must map strings to strings")
        return ManifestInfo(
            digest, media_type, len(data), subject_digest, artifact_type or None, annotations
        )

    def _descriptors(
        self, document: dict[str, Any], key: str, *, required: bool
    ) -> list[dict[str, Any]]:
        value = document.get(key)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise Problem("MANIFEST_INVALID", f"{key} must be a list of descriptors")
        return [self._descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]

    @staticmethod
    def _descriptor(value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Problem("MANIFEST_INVALID", f"{where} is not a descriptor object")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise Problem("MANIFEST_INVALID", f"{where} has no mediaType")
        if not isinstance(digest, str) or parse_digest(digest) is None:
            raise Problem(
                "MANIFEST_INVALID", f"{where} digest {digest!r} is not a sha256 or sha512 digest"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Problem("MANIFEST_INVALID", f"{where} size must be a whole number")
        return value

    # ------------------------------------------------------------------ blobs

    async def _blob(self, request: Request, name: str, digest: str) -> Response:
        if request.method == "DELETE":
            if not await asyncio.to_thread(self.storage.unlink_blob, name, digest):
                raise Problem(
                    "BLOB_UNKNOWN", f"blob {digest} is not in {name}", detail={"digest": digest}
                )
            return Response(202)
        size = self.storage.blob_size(name, digest)
        if size is None:
            raise Problem(
                "BLOB_UNKNOWN", f"blob {digest} is not in {name}", detail={"digest": digest}
            )
        headers = [
            ("content-type", "application/octet-stream"),
            ("docker-content-digest", digest),
            ("accept-ranges", "bytes"),
            ("etag", f'"{digest}"'),
        ]
        start, length, status = 0, size, 200
        # RFC 9110 section 14.2: range handling is defined for GET only; HEAD ignores Range.
        wanted = request.header("range") if request.method == "GET" else None
        if wanted:
            match = _RANGE.fullmatch(wanted.strip())
            if match is not None and (match[1] or match[2]):
                first, last = match[1], match[2]
                if first:
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                else:  # a suffix: the last N bytes
                    start, end = max(size - int(last), 0), size - 1
                if start >= size or end < start:
                    raise Problem(
                        "SIZE_INVALID",
                        f"range {wanted} is outside the blob's {size} bytes",
                        status=416,
                        headers=[("content-range", f"bytes */{size}")],
                    )
                length, status = end - start + 1, 206
                headers.append(("content-range", f"bytes {start}-{end}/{size}"))
        if request.method == "HEAD":
            return Response(status, headers, length=length)
        try:
            file = self.storage.blob_path(digest).open("rb")
        except FileNotFoundError:
            raise Problem("BLOB_UNKNOWN", f"blob {digest} is not in {name}") from None
        return Response(status, headers, b"", file, start, length)

    # ------------------------------------------------------------------ uploads

    def _session(self, upload_id: str) -> _Session:
        session = self._sessions.get(upload_id)
        if session is None:
            session = self._sessions[upload_id] = _Session()
        return session

    def _drop(self, upload_id: str) -> None:
        self._sessions.pop(upload_id, None)
        self.storage.remove_upload(upload_id)

    @staticmethod
    def _upload_headers(name: str, upload_id: str, size: int) -> list[tuple[str, str]]:
        return [
            ("location", f"/v2/{name}/blobs/uploads/{upload_id}"),
            ("range", _range_header(size)),
            ("docker-upload-uuid", upload_id),
        ]

    async def _start_upload(self, request: Request, name: str) -> Response:
        mount = request.query.get("mount")
        source = request.query.get("from")
        if mount is not None:
            mount = self._digest(mount, "mount digest")
            if source and not valid_repository(source):
                raise Problem("NAME_INVALID", f"invalid repository name {source!r} in from")
            # Only a blob the source repository holds is mounted: the digest alone proves
            # nothing about the caller's right to it.
            if source and self.storage.blob_size(source, mount) is not None:
                await asyncio.to_thread(self.storage.link_blob, name, mount)
                return Response(
                    201,
                    [("location", f"/v2/{name}/blobs/{mount}"), ("docker-content-digest", mount)],
                )
        digest = request.query.get("digest")
        expected = self._digest(digest) if mount is None and digest is not None else None
        upload_id = await asyncio.to_thread(
            self.storage.create_upload, name, durable=expected is None
        )
        session = self._session(upload_id)
        session.hasher = hashlib.new(expected.split(":", 1)[0] if expected else "sha256")
        try:
            async with session.lock:
                if expected is not None:  # a monolithic upload: the whole blob is in this body
                    return await self._finish(request, name, upload_id, session, expected)
                size = 0
                if mount is None:  # a body on a plain POST is the first chunk
                    path = self.storage.upload_data(name, upload_id)
                    assert path is not None
                    size = await self._append(request, path, session, 0, None)
        except BaseException:
            # The client never learnt this session's id: nobody could resume or cancel it.
            self._drop(upload_id)
            raise
        return Response(202, self._upload_headers(name, upload_id, size))

    async def _upload(self, request: Request, name: str, upload_id: str) -> Response:
        if self.storage.upload_data(name, upload_id) is None:
            raise Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {upload_id} in {name}")
        session = self._session(upload_id)
        async with session.lock:
            # Checked again under the lock: a concurrent request may have finished it.
            path = self.storage.upload_data(name, upload_id)
            if path is None:
                raise Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {upload_id} in {name}")
            if request.method == "DELETE":
                self._drop(upload_id)
                return Response(204)
            offset = path.stat().st_size
            if request.method in ("GET", "HEAD"):
                return Response(204, self._upload_headers(name, upload_id, offset))
            if request.method == "PUT":
                expected = request.query.get("digest")
                if expected is None:
                    raise Problem("DIGEST_INVALID", "the digest query parameter is required")
                return await self._finish(request, name, upload_id, session, self._digest(expected))
            size = await self._append(
                request, path, session, offset, self._chunk_length(request, name, upload_id, offset)
            )
            return Response(202, self._upload_headers(name, upload_id, offset + size))

    def _chunk_length(self, request: Request, name: str, upload_id: str, offset: int) -> int | None:
        """Bytes a chunk announces with Content-Range (None without); 416 when out of order."""
        header = request.header("content-range")
        if not header:
            return None
        match = _CONTENT_RANGE.fullmatch(header.strip())
        if match is None or int(match[2]) < int(match[1]):
            raise Problem("BLOB_UPLOAD_INVALID", f"invalid Content-Range {header!r}")
        start, end = int(match[1]), int(match[2])
        if start != offset:
            raise Problem(
                "BLOB_UPLOAD_INVALID",
                f"chunk starts at {start} but the upload holds {offset} bytes",
                status=416,
                headers=self._upload_headers(name, upload_id, offset),
            )
        length = end - start + 1
        declared = request.header("content-length")
        if declared and declared.isdigit() and int(declared) != length:
            raise Problem(
                "SIZE_INVALID", f"Content-Range is {length} bytes but Content-Length is {declared}"
            )
        return length

    async def _append(
        self, request: Request, path: Path, session: _Session, offset: int, expected: int | None
    ) -> int:
        """Write the request body at the end of an upload, durably; on any failure, undo it."""
        hasher = session.hasher if session.hashed == offset else None
        backup = hasher.copy() if hasher is not None else None
        written = 0
        pending: list[bytes] = []
        pending_size = 0
        # Unbuffered writes: a buffered file that failed to flush (a full disk) fails again when
        # closed, and the rollback after the close never ran.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            try:
                async for chunk in request.chunks():
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if expected is not None and written + pending_size > expected:
                        raise Problem(
                            "SIZE_INVALID",
                            f"chunk is longer than the {expected} bytes of its Content-Range",
                        )
                    if pending_size >= _WRITE_BATCH:
                        await asyncio.to_thread(_write_batch, fd, hasher, pending)
                        written += pending_size
                        pending, pending_size = [], 0
                if expected is not None and written + pending_size != expected:
                    raise Problem(
                        "SIZE_INVALID",
                        f"chunk has {written + pending_size} bytes, its Content-Range {expected}",
                    )
                if written + pending_size:
                    # The answer acknowledges these bytes: on disk before it goes out.
                    await asyncio.to_thread(_write_batch, fd, hasher, pending, sync=True)
                    written += pending_size
            finally:
                os.close(fd)
        except BaseException:
            self._roll_back(path, offset, session, backup)
            raise
        session.hasher, session.hashed = hasher, offset + written
        return written

    def _roll_back(self, path: Path, offset: int, session: _Session, backup: Any) -> None:
        """Cut an upload back to ``offset`` after a failed request; drop it if that fails."""
        session.hasher, session.hashed = backup, offset
        try:
            os.truncate(path, offset)
        except OSError as exc:
            # An upload that reports bytes it never acknowledged is worse than none: the client
            # gets BLOB_UPLOAD_UNKNOWN and starts again.
            upload_id = path.parent.name
            log.error(
                "cannot cut upload %s back to %d bytes, dropped it: %s", upload_id, offset, exc
            )
            self._drop(upload_id)

    async def _finish(
        self, request: Request, name: str, upload_id: str, session: _Session, digest: str
    ) -> Response:
        """Append the last chunk, verify the whole blob against ``digest``, move it into place."""
        path = self.storage.upload_data(name, upload_id)
        if path is None:
            raise Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {upload_id} in {name}")
        offset = path.stat().st_size
        await self._append(
            request, path, session, offset, self._chunk_length(request, name, upload_id, offset)
        )
        algorithm = digest.split(":", 1)[0]
        size = path.stat().st_size
        hasher = session.hasher
        if hasher is not None and session.hashed == size and hasher.name == algorithm:
            actual = f"{algorithm}:{hasher.hexdigest()}"
        else:
            actual = await asyncio.to_thread(self.storage.hash_file, path, algorithm)
        if actual != digest:
            self._drop(upload_id)
            raise Problem(
                "DIGEST_INVALID",
                f"uploaded {size} bytes hash to {actual}, not {digest}; the upload was discarded",
                detail={"expected": digest, "actual": actual},
            )
        await asyncio.to_thread(self.storage.commit_upload, name, upload_id, digest)
        self._sessions.pop(upload_id, None)
        return Response(
            201, [("location", f"/v2/{name}/blobs/{digest}"), ("docker-content-digest", digest)]
        )
