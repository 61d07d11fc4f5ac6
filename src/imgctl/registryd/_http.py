"""The HTTP side of the distribution API: ASGI plumbing, routing by raw path, error answers.

Routing sees the raw request path, so a ``%2F`` never becomes a separator inside a repository
name; a ``Problem`` raised anywhere becomes the spec's error body with its status.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote

__all__ = [
    "METHODS",
    "ASGIApp",
    "Disconnected",
    "Problem",
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "error_response",
    "json_body",
    "lifespan",
    "route",
    "send_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_PATH = 2048
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
METHODS = {
    "base": ("GET", "HEAD"),
    "catalog": ("GET",),
    "tags": ("GET",),
    "manifest": ("GET", "HEAD", "PUT", "DELETE"),
    "upload": ("POST", "GET", "HEAD", "PATCH", "PUT", "DELETE"),
    "blob": ("GET", "HEAD", "DELETE"),
    "referrers": ("GET",),
}


class Problem(Exception):
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


class Disconnected(Exception):
    """The client went away while sending a body."""


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: BinaryIO | None = None  # streamed from ``start`` for ``length`` bytes
    start: int = 0
    length: int | None = None  # None: the body's length


def json_body(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def error_response(
    status: int, errors: list[dict[str, object]], headers: list[tuple[str, str]] | None = None
) -> Response:
    body = json_body({"errors": errors})
    return Response(status, [("content-type", "application/json"), *(headers or [])], body)


def route(path: str) -> tuple[str, str, str | None]:
    """``(endpoint, repository name, last path part)`` of a raw request path."""
    if len(path) > _MAX_PATH:
        raise Problem("NAME_INVALID", f"request path is longer than {_MAX_PATH} characters")
    if not path.isascii():
        raise Problem("NAME_INVALID", "request path is not ASCII")
    if path in ("/v2", "/v2/"):
        return "base", "", None
    if path == "/v2/_catalog":
        return "catalog", "", None
    if path.startswith("/v2/"):
        for kind, pattern in (*_ENDPOINTS, *_SLASHED_ARGS):
            match = pattern.fullmatch(path, 4)
            if match is not None:
                return kind, match["name"], match.groupdict().get("arg")
    raise Problem("UNSUPPORTED", f"no such endpoint: {path}", status=404)


class Request:
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
                raise Disconnected
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def read(self, limit: int) -> bytes:
        """The whole body, refused with 413 beyond ``limit`` bytes."""
        declared = self.header("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Problem("SIZE_INVALID", f"body of {declared} bytes is over {limit}", status=413)
        parts: list[bytes] = []
        total = 0
        async for chunk in self.chunks():
            total += len(chunk)
            if total > limit:
                raise Problem("SIZE_INVALID", f"body is over {limit} bytes", status=413)
            parts.append(chunk)
        return b"".join(parts)


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_response(send: Send, response: Response, *, head: bool) -> None:
    """Send ``response`` (its head only for HEAD), streaming a file body in chunks."""
    length = len(response.body) if response.length is None else response.length
    headers = [
        (b"docker-distribution-api-version", b"registry/2.0"),
        (b"content-length", str(length).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers),
    ]
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
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
            await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        if remaining > 0:  # the file shrank: end the body; the server cuts the connection
            await send({"type": "http.response.body", "body": b""})
    finally:
        if response.file is not None:
            response.file.close()
