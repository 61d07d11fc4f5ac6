"""HTTP around IssuerService: FastAPI routes under the issuer URL's path, served by uvicorn.

Every request, whatever its route, first goes through :class:`RequestGuard`: its body is
refused with 413 past :data:`MAX_BODY_BYTES` (by its Content-Length before anything is read,
else while it streams), and it leaves one access-log line that holds its method, its path
without the query string, its status and how long it took. uvicorn's own access log is off: it
prints the query string, where a misbehaving client may put its client secret or SSH JWT. The
request line and headers are bounded below this, by h11 (:data:`MAX_HEAD_BYTES`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgctl.errors import OAuthError
from imgctl.identity.issuer._service import IssuerService

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "RequestGuard", "create_app"]

MAX_BODY_BYTES: Final = 64 * 1024
"""Largest request body read: a token request is a few KiB (an RSA-4096 SSH JWT is under 2)."""
MAX_HEAD_BYTES: Final = 16 * 1024
"""Largest request line plus headers: ``imgctl idp serve`` has uvicorn's h11 answer 400 past it."""

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_LOGGED_PATH: Final = 200
# Visible ASCII except the quote and backslash that could end or fake the quoted request.
_LOGGABLE: Final = frozenset(range(0x21, 0x7F)) - {ord('"'), ord("\\")}

access_log = logging.getLogger("imgctl.issuer.access")


def create_app(service: IssuerService) -> ASGIApp:
    """The ASGI app: discovery, ``/keys``, ``/token`` and ``/healthz`` under the issuer path."""
    prefix = urlsplit(service.issuer_url).path.rstrip("/")
    app = FastAPI(title="imgctl issuer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(f"{prefix}/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return service.discovery()

    @app.get(f"{prefix}/keys")
    async def keys() -> JSONResponse:
        # Verifiers cache keys; a short max-age lets a rotation reach them soon.
        return JSONResponse(service.jwks(), headers={"Cache-Control": "max-age=60"})

    @app.get(f"{prefix}/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"{prefix}/token")
    async def token(request: Request) -> JSONResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            error = OAuthError(
                400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded."
            )
            return JSONResponse(error.body(), status_code=error.status, headers=_NO_STORE)
        # RequestGuard has already read the body, at most MAX_BODY_BYTES of it.
        body = (await request.body()).decode("utf-8", errors="replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        try:
            answer = await service.token(form, request.headers.get("authorization"))
        except OAuthError as error:
            headers = dict(_NO_STORE)
            if error.error == "invalid_client":
                headers["WWW-Authenticate"] = 'Basic realm="imgctl issuer"'
            return JSONResponse(error.body(), status_code=error.status, headers=headers)
        return JSONResponse(answer, headers=_NO_STORE)

    return RequestGuard(app)


class RequestGuard:
    """ASGI middleware: bounded request bodies and an access log without query strings."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (bounded) before the app runs, then log one line for the request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            body = await self._body(scope, receive)
            if isinstance(body, OAuthError):
                await _send_error(sending, body)
            elif body is not None:
                await self.app(scope, _replaying(body, receive), sending)
        finally:
            _log(scope, status[0] if status else None, time.perf_counter() - started)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | OAuthError | None:
        """The whole body; an OAuthError to answer instead; None if the client went away."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    return OAuthError(400, "invalid_request", "Content-Length is not a number.")
                if int(value) > self.limit:
                    return self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> OAuthError:
        return OAuthError(
            413,
            "invalid_request",
            f"The request body is larger than {self.limit} bytes.",
        )


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands the app the body already read, then the real events."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


async def _send_error(send: Send, error: OAuthError) -> None:
    payload = json.dumps(error.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        (b"pragma", b"no-cache"),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _log(scope: Scope, status: int | None, elapsed: float) -> None:
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    answered = str(status) if status is not None else "- (client went away)"
    access_log.info(
        '%s - "%s %s" %s (%.1f ms)',
        peer,
        scope.get("method", "-"),
        _loggable_path(scope),
        answered,
        elapsed * 1000,
    )


def _loggable_path(scope: Scope) -> str:
    """The path as sent, without the query, escaped so that no byte can forge a log line."""
    raw: bytes = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    raw = raw.partition(b"?")[0]
    text = "".join(chr(byte) if byte in _LOGGABLE else f"%{byte:02X}" for byte in raw)
    if len(text) > _MAX_LOGGED_PATH:
        return text[: _MAX_LOGGED_PATH - 1] + "…"
    return text
