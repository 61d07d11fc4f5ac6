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
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote

from imgctl.oci import mediatypes as mt
from imgctl.registry.embedded._htpasswd import Htpasswd
from imgctl.registry.embedded._storage import (
    ManifestInfo,
    Storage,
    UnsafePathError,
    parse_digest,
    tag_order,
    valid_name,
    valid_tag,
    valid_upload_id,
)

__all__ = ["ASGIApp", "RegistryApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("imgctl.registry.embedded")

MAX_MANIFEST_BYTES = 4 << 20  # the spec asks registries to accept at least 4 MB
_MAX_PATH = 2048
_MAX_PAGE = 1000
# Bodies are written and hashed in a worker thread once this much has arrived: a thread hop
# per network chunk (often 64 KiB) would cost more than the write itself.
_WRITE_BATCH = 1 << 20
_READ_CHUNK = 1 << 20

_DEFAULT_STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    # Not in the spec's list of codes but named by it (legacy Docker codes clients may meet)
    # and accepted by the conformance suite: the only code that says the tag is at fault.
    "TAG_INVALID": 400,
    "UNAUTHORIZED": 401,
    "UNSUPPORTED": 405,
    "UNKNOWN": 500,
}
_NAME_RULE = (
    "lowercase letters and digits, separated by '.', '_', '__' or dashes, in components "
    "joined by '/', at most 255 characters"
)
_TAG_RULE = "up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"

# Tried in order against the path after /v2/; the name is everything before the endpoint, so
# a repository may be called "a/blobs" (then "/v2/a/blobs/blobs/<digest>" is one of its blobs).
_ENDPOINTS = (
    ("tags", re.compile(r"(?P<name>.+)/tags/list")),
    ("manifest", re.compile(r"(?P<name>.+)/manifests/(?P<arg>[^/]*)")),
    ("upload", re.compile(r"(?P<name>.+)/blobs/uploads(?:/(?P<arg>[^/]*))?")),
    ("blob", re.compile(r"(?P<name>.+)/blobs/(?P<arg>[^/]*)")),
    ("referrers", re.compile(r"(?P<name>.+)/referrers/(?P<arg>[^/]*)")),
)
# A path no endpoint matches, but whose reference, digest or upload id holds a literal "/"
# ("/v2/a/manifests/../../x", "/v2/a/blobs/sha256:../x"): routed to that endpoint anyway, so the
# argument is refused with the error its kind has (NAME_INVALID, DIGEST_INVALID...), not 404.
_SLASHED_ARGS = (
    ("manifest", re.compile(r"(?P<name>.+?)/manifests/(?P<arg>.*/.*)")),
    ("upload", re.compile(r"(?P<name>.+?)/blobs/uploads/(?P<arg>.*/.*)")),
    ("blob", re.compile(r"(?P<name>.+?)/blobs/(?P<arg>.*/.*)")),
    ("referrers", re.compile(r"(?P<name>.+?)/referrers/(?P<arg>.*/.*)")),
)
_METHODS = {
    "base": ("GET", "HEAD"),
    "catalog": ("GET",),
    "tags": ("GET",),
    "manifest": ("GET", "HEAD", "PUT", "DELETE"),
    "upload": ("POST", "GET", "HEAD", "PATCH", "PUT", "DELETE"),
    "blob": ("GET", "HEAD", "DELETE"),
    "referrers": ("GET",),
}
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d{1,18})-(\d{1,18})(?:/(?:\d{1,18}|\*))?")
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
_IMAGE_MANIFESTS = frozenset({mt.OCI_MANIFEST, mt.DOCKER_MANIFEST})


class _Problem(Exception):
    """An error answer: one or more distribution errors and a status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        detail: object = None,
        headers: list[tuple[str, str]] | None = None,
        more: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status or _DEFAULT_STATUS[code]
        entry: dict[str, object] = {"code": code, "message": message}
        if detail is not None:
            entry["detail"] = detail
        self.errors = [entry, *(more or [])]
        self.headers = headers or []


class _Disconnected(Exception):
    """The client went away while sending a body."""


@dataclass(slots=True)
class _Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: BinaryIO | None = None  # streamed from ``start`` for ``length`` bytes
    start: int = 0
    length: int | None = None  # None: the body's length


@dataclass(slots=True)
class _Session:
    """In-memory state of an upload: its lock and the running hash of the bytes so far."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    hasher: Any = None  # hashlib object; None when it must be recomputed from the file
    hashed: int = 0  # how many bytes ``hasher`` has seen


def _json(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _errors(
    status: int, errors: list[dict[str, object]], headers: list[tuple[str, str]] | None = None
) -> _Response:
    body = _json({"errors": errors})
    return _Response(status, [("content-type", "application/json"), *(headers or [])], body)


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


def _route(path: str) -> tuple[str, str, str | None]:
    """``(endpoint, repository name, last path part)`` of a raw request path."""
    if len(path) > _MAX_PATH:
        raise _Problem("NAME_INVALID", f"request path is longer than {_MAX_PATH} characters")
    if not path.isascii():
        raise _Problem("NAME_INVALID", "request path is not ASCII")
    if path in ("/v2", "/v2/"):
        return "base", "", None
    if path == "/v2/_catalog":
        return "catalog", "", None
    if path.startswith("/v2/"):
        for kind, pattern in (*_ENDPOINTS, *_SLASHED_ARGS):
            match = pattern.fullmatch(path, 4)
            if match is not None:
                return kind, match["name"], match.groupdict().get("arg")
    raise _Problem("UNSUPPORTED", f"no such endpoint: {path}", status=404)


class _Request:
    """One HTTP request: method, raw path, query and headers, and a way to read its body."""

    __slots__ = ("_receive", "headers", "method", "path", "query")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.method: str = scope["method"]
        raw = scope.get("raw_path")
        if raw is None:  # servers that only give the decoded path: re-quote it, conservatively
            self.path = quote(scope["path"], safe="/:@")
        else:
            self.path = raw.decode("latin-1").split("?", 1)[0]
        self.query = dict(
            reversed(
                parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            )
        )
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        self._receive = receive

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def read(self, limit: int) -> bytes:
        """The whole body, refused with 413 beyond ``limit`` bytes."""
        declared = self.header("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _Problem("SIZE_INVALID", f"body of {declared} bytes is over {limit}", status=413)
        parts: list[bytes] = []
        total = 0
        async for chunk in self.chunks():
            total += len(chunk)
            if total > limit:
                raise _Problem("SIZE_INVALID", f"body is over {limit} bytes", status=413)
            parts.append(chunk)
        return b"".join(parts)


class RegistryApp:
    """The distribution API (v2, OCI 1.1) over a ``Storage``, with optional Basic auth."""

    def __init__(self, storage: Storage, auth: Htpasswd | None = None) -> None:
        self.storage = storage
        self.auth = auth
        self._sessions: dict[str, _Session] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = _Request(scope, receive)
        try:
            response = await self._handle(request)
        except _Problem as problem:
            response = _errors(problem.status, problem.errors, problem.headers)
        except _Disconnected:
            return
        except UnsafePathError as exc:
            # Syntax checks come first; this is the storage's own refusal, kept as a backstop.
            log.warning("refused a path outside the root: %s", exc)
            response = _errors(400, [{"code": "NAME_INVALID", "message": "invalid path"}])
        except OSError as exc:  # the disk is full, a file vanished, permissions changed
            log.error("%s %s failed: %s", request.method, request.path, exc)
            response = _errors(
                500, [{"code": "UNKNOWN", "message": f"storage error: {exc.strerror}"}]
            )
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _errors(500, [{"code": "UNKNOWN", "message": "internal error; see the log"}])
        await self._send(send, response, head=request.method == "HEAD")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _send(self, send: Send, response: _Response, *, head: bool) -> None:
        length = len(response.body) if response.length is None else response.length
        headers = [
            (b"docker-distribution-api-version", b"registry/2.0"),
            (b"content-length", str(length).encode()),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers),
        ]
        try:
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            if head or response.file is None:
                await send({"type": "http.response.body", "body": b"" if head else response.body})
                return
            file = response.file
            file.seek(response.start)
            remaining = length
            while remaining > 0:
                chunk = await asyncio.to_thread(file.read, min(_READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
            if remaining > 0:  # the file shrank: end the body; the server cuts the connection
                await send({"type": "http.response.body", "body": b""})
        finally:
            if response.file is not None:
                response.file.close()

    # ------------------------------------------------------------------ routing

    async def _handle(self, request: _Request) -> _Response:
        if self.auth is not None and not await self.auth.check(request.header("authorization")):
            raise _Problem(
                "UNAUTHORIZED",
                "authentication required",
                headers=[("www-authenticate", 'Basic realm="imgctl"')],
            )
        kind, name, arg = _route(request.path)
        if request.method not in _METHODS[kind]:
            raise _Problem(
                "UNSUPPORTED",
                f"{request.method} is not supported here",
                headers=[("allow", ", ".join(_METHODS[kind]))],
            )
        if kind == "base":
            return _Response(200, [("content-type", "application/json")], b"{}")
        if kind == "catalog":
            return self._catalog(request)
        if not valid_name(name):
            raise _Problem(
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
                raise _Problem("BLOB_UPLOAD_UNKNOWN", "no upload id in the path")
            return await self._start_upload(request, name)
        if request.method == "POST" or not valid_upload_id(arg):
            raise _Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {arg!r}")
        return await self._upload(request, name, arg)

    @staticmethod
    def _digest(value: str, what: str = "digest") -> str:
        # Some clients percent-encode the colon; nothing else may be encoded.
        digest = value.replace("%3A", ":").replace("%3a", ":")
        if parse_digest(digest) is None:
            raise _Problem(
                "DIGEST_INVALID",
                f"invalid {what} {value!r}: expected sha256:<64 hex> or sha512:<128 hex>",
            )
        return digest

    # ------------------------------------------------------------------ listings

    @staticmethod
    def _page(
        request: _Request,
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
            raise _Problem("UNSUPPORTED", f"n must be a whole number, not {raw!r}", status=400)
        n = min(int(raw), _MAX_PAGE)
        if n == 0:
            return [], None
        page = items[:n]
        if len(items) <= n:
            return page, None
        return page, f'<{link}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'

    def _catalog(self, request: _Request) -> _Response:
        names, link = self._page(request, self.storage.repositories(), "/v2/_catalog")
        headers = [("content-type", "application/json")]
        if link:
            headers.append(("link", link))
        return _Response(200, headers, _json({"repositories": names}))

    def _tags(self, request: _Request, name: str) -> _Response:
        tags = self.storage.tags(name)
        if tags is None:
            raise _Problem("NAME_UNKNOWN", f"repository {name} is not known", detail={"name": name})
        page, link = self._page(request, tags, f"/v2/{name}/tags/list", tag_order)
        headers = [("content-type", "application/json")]
        if link:
            headers.append(("link", link))
        return _Response(200, headers, _json({"name": name, "tags": page}))

    def _referrers(self, request: _Request, name: str, digest: str) -> _Response:
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
        return _Response(200, headers, _json(body))

    # ------------------------------------------------------------------ manifests

    def _unknown_manifest(self, name: str, reference: str, why: str = "") -> _Problem:
        if not self.storage.repository_exists(name):
            return _Problem(
                "NAME_UNKNOWN", f"repository {name} is not known", detail={"name": name}
            )
        return _Problem(
            "MANIFEST_UNKNOWN",
            f"manifest {reference} is not in {name}{why}",
            detail={"reference": reference},
        )

    async def _manifest(self, request: _Request, name: str, reference: str) -> _Response:
        digest: str | None = None
        tag: str | None = None
        if ":" in reference or "%3a" in reference.lower():
            digest = self._digest(reference, "manifest digest")
        elif valid_tag(reference):
            tag = reference
        elif request.method == "PUT":
            raise _Problem(
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
            return _Response(202)
        if digest is None:
            digest = self.storage.resolve_tag(name, tag or "")
        info = self.storage.manifest_info(name, digest) if digest else None
        data = self.storage.read_manifest(info) if info else None
        if info is None or data is None:
            raise self._unknown_manifest(name, reference)
        return _Response(
            200,
            [("content-type", info.media_type), ("docker-content-digest", info.digest)],
            data,
        )

    async def _put_manifest(
        self, request: _Request, name: str, digest: str | None, tag: str | None
    ) -> _Response:
        data = await request.read(MAX_MANIFEST_BYTES)
        algorithm = digest.split(":", 1)[0] if digest else "sha256"
        actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if digest is not None and actual != digest:
            raise _Problem(
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
        return _Response(201, headers)

    def _check_manifest(
        self, name: str, data: bytes, content_type: str | None, digest: str
    ) -> ManifestInfo:
        """Validate a pushed manifest; what to remember about it."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Problem("MANIFEST_INVALID", f"manifest is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise _Problem("MANIFEST_INVALID", "manifest is not a JSON object")
        declared = document.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise _Problem("MANIFEST_INVALID", "mediaType must be a string")
        sent = (content_type or "").split(";", 1)[0].strip()
        if sent in ("application/json", "application/octet-stream"):
            sent = ""  # generic types say nothing about which manifest this is
        if sent and declared and sent != declared:
            raise _Problem(
                "MANIFEST_INVALID",
                f"Content-Type {sent} does not match the manifest's mediaType {declared}",
            )
        media_type = sent or declared
        if not media_type:
            raise _Problem(
                "MANIFEST_INVALID", "unknown manifest type: send Content-Type or a mediaType field"
            )
        if media_type in (mt.DOCKER_SCHEMA1_MANIFEST, mt.DOCKER_SCHEMA1_SIGNED_MANIFEST):
            raise _Problem("MANIFEST_INVALID", "Docker schema 1 manifests are not supported")
        if not (mt.is_index(media_type) or mt.is_manifest(media_type)):
            raise _Problem("MANIFEST_INVALID", f"unsupported manifest media type {media_type}")
        if media_type != mt.OCI_ARTIFACT_MANIFEST and document.get("schemaVersion") != 2:
            raise _Problem("MANIFEST_INVALID", "schemaVersion must be 2")

        missing: list[str] = []
        artifact_type = document.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise _Problem("MANIFEST_INVALID", "artifactType must be a string")
        if mt.is_index(media_type):
            for child in self._descriptors(document, "manifests", required=True):
                if self.storage.manifest_info(name, child["digest"]) is None:
                    missing.append(child["digest"])
        else:
            blobs: list[dict[str, Any]] = []
            if media_type in _IMAGE_MANIFESTS:
                config = document.get("config")
                if config is None:
                    raise _Problem("MANIFEST_INVALID", "manifest has no config")
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
            raise _Problem(
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
            raise _Problem("MANIFEST_INVALID", "annotations must map strings to strings")
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
            raise _Problem("MANIFEST_INVALID", f"{key} must be a list of descriptors")
        return [self._descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]

    @staticmethod
    def _descriptor(value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Problem("MANIFEST_INVALID", f"{where} is not a descriptor object")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise _Problem("MANIFEST_INVALID", f"{where} has no mediaType")
        if not isinstance(digest, str) or parse_digest(digest) is None:
            raise _Problem(
                "MANIFEST_INVALID", f"{where} digest {digest!r} is not a sha256 or sha512 digest"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _Problem("MANIFEST_INVALID", f"{where} size must be a whole number")
        return value

    # ------------------------------------------------------------------ blobs

    async def _blob(self, request: _Request, name: str, digest: str) -> _Response:
        if request.method == "DELETE":
            if not await asyncio.to_thread(self.storage.unlink_blob, name, digest):
                raise _Problem(
                    "BLOB_UNKNOWN", f"blob {digest} is not in {name}", detail={"digest": digest}
                )
            return _Response(202)
        size = self.storage.blob_size(name, digest)
        if size is None:
            raise _Problem(
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
                    raise _Problem(
                        "SIZE_INVALID",
                        f"range {wanted} is outside the blob's {size} bytes",
                        status=416,
                        headers=[("content-range", f"bytes */{size}")],
                    )
                length, status = end - start + 1, 206
                headers.append(("content-range", f"bytes {start}-{end}/{size}"))
        if request.method == "HEAD":
            return _Response(status, headers, length=length)
        try:
            file = self.storage.blob_path(digest).open("rb")
        except FileNotFoundError:
            raise _Problem("BLOB_UNKNOWN", f"blob {digest} is not in {name}") from None
        return _Response(status, headers, b"", file, start, length)

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

    async def _start_upload(self, request: _Request, name: str) -> _Response:
        mount = request.query.get("mount")
        source = request.query.get("from")
        if mount is not None:
            mount = self._digest(mount, "mount digest")
            if source and not valid_name(source):
                raise _Problem("NAME_INVALID", f"invalid repository name {source!r} in from")
            # Only a blob the source repository holds is mounted: the digest alone proves
            # nothing about the caller's right to it.
            if source and self.storage.blob_size(source, mount) is not None:
                await asyncio.to_thread(self.storage.link_blob, name, mount)
                return _Response(
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
        return _Response(202, self._upload_headers(name, upload_id, size))

    async def _upload(self, request: _Request, name: str, upload_id: str) -> _Response:
        if self.storage.upload_data(name, upload_id) is None:
            raise _Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {upload_id} in {name}")
        session = self._session(upload_id)
        async with session.lock:
            # Checked again under the lock: a concurrent request may have finished it.
            path = self.storage.upload_data(name, upload_id)
            if path is None:
                raise _Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {upload_id} in {name}")
            if request.method == "DELETE":
                self._drop(upload_id)
                return _Response(204)
            offset = path.stat().st_size
            if request.method in ("GET", "HEAD"):
                return _Response(204, self._upload_headers(name, upload_id, offset))
            if request.method == "PUT":
                expected = request.query.get("digest")
                if expected is None:
                    raise _Problem("DIGEST_INVALID", "the digest query parameter is required")
                return await self._finish(request, name, upload_id, session, self._digest(expected))
            size = await self._append(
                request, path, session, offset, self._chunk_length(request, name, upload_id, offset)
            )
            return _Response(202, self._upload_headers(name, upload_id, offset + size))

    def _chunk_length(
        self, request: _Request, name: str, upload_id: str, offset: int
    ) -> int | None:
        """Bytes a chunk announces with Content-Range (None without); 416 when out of order."""
        header = request.header("content-range")
        if not header:
            return None
        match = _CONTENT_RANGE.fullmatch(header.strip())
        if match is None or int(match[2]) < int(match[1]):
            raise _Problem("BLOB_UPLOAD_INVALID", f"invalid Content-Range {header!r}")
        start, end = int(match[1]), int(match[2])
        if start != offset:
            raise _Problem(
                "BLOB_UPLOAD_INVALID",
                f"chunk starts at {start} but the upload holds {offset} bytes",
                status=416,
                headers=self._upload_headers(name, upload_id, offset),
            )
        length = end - start + 1
        declared = request.header("content-length")
        if declared and declared.isdigit() and int(declared) != length:
            raise _Problem(
                "SIZE_INVALID", f"Content-Range is {length} bytes but Content-Length is {declared}"
            )
        return length

    async def _append(
        self, request: _Request, path: Path, session: _Session, offset: int, expected: int | None
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
                        raise _Problem(
                            "SIZE_INVALID",
                            f"chunk is longer than the {expected} bytes of its Content-Range",
                        )
                    if pending_size >= _WRITE_BATCH:
                        await asyncio.to_thread(_write_batch, fd, hasher, pending)
                        written += pending_size
                        pending, pending_size = [], 0
                if expected is not None and written + pending_size != expected:
                    raise _Problem(
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
        self, request: _Request, name: str, upload_id: str, session: _Session, digest: str
    ) -> _Response:
        """Append the last chunk, verify the whole blob against ``digest``, move it into place."""
        path = self.storage.upload_data(name, upload_id)
        if path is None:
            raise _Problem("BLOB_UPLOAD_UNKNOWN", f"unknown upload {upload_id} in {name}")
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
            raise _Problem(
                "DIGEST_INVALID",
                f"uploaded {size} bytes hash to {actual}, not {digest}; the upload was discarded",
                detail={"expected": digest, "actual": actual},
            )
        await asyncio.to_thread(self.storage.commit_upload, name, upload_id, digest)
        self._sessions.pop(upload_id, None)
        return _Response(
            201, [("location", f"/v2/{name}/blobs/{digest}"), ("docker-content-digest", digest)]
        )
