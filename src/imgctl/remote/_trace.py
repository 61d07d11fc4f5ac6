"""The HTTP trace of registry traffic (``imgctl -v``): each request and answer, secrets redacted.

Every registry request goes through ``Session._exchange`` (pings, token requests, the registry
API, blob redirects); when the ``imgctl.remote.http`` logger is enabled at DEBUG it logs one
record per request (``-->``) and one per answer (``<--``, with its status and the time to its
head), each with its headers, for bug reports. Bodies are never logged. Redacted: the values of
Authorization, Proxy-Authorization, Cookie and Set-Cookie and of any header naming a token,
secret, password or signature (Authorization keeps its scheme: ``Bearer <redacted>``); the
values of URL query parameters with such names (presigned blob URLs carry their signature
there); and a user:password in a URL.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote

import httpx

__all__ = ["REDACTED", "log", "redact_header", "redact_url", "traced"]

log = logging.getLogger("imgctl.remote.http")

REDACTED = "<redacted>"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# A header or query parameter whose name holds one of these carries a secret.
_SECRET_WORDS = ("token", "secret", "password", "passwd", "signature", "credential", "sig", "key")
_numbers = itertools.count(1)


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact_header(name: str, value: str) -> str:
    """The value of header ``name`` as the trace shows it."""
    lowered = name.lower()
    if lowered in ("authorization", "proxy-authorization"):
        scheme, _, rest = value.partition(" ")
        return f"{scheme} {REDACTED}" if rest else REDACTED
    if lowered in _SECRET_HEADERS or _secret_name(lowered):
        return REDACTED
    return value


def redact_url(url: httpx.URL | str) -> str:
    """``url`` without its user:password and the values of secret query parameters."""
    parsed = httpx.URL(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    if not parsed.query:
        return str(parsed)
    # The query as sent (its order, its encoding), each secret value replaced.
    items = []
    for item in parsed.query.decode("ascii", "replace").split("&"):
        name, equals, _ = item.partition("=")
        items.append(f"{name}={REDACTED}" if equals and _secret_name(unquote(name)) else item)
    return f"{parsed.copy_with(query=None)}?{'&'.join(items)}"


def _headers(headers: Iterable[tuple[bytes, bytes]]) -> str:
    # As sent and received (their names' case too), one a line under the request line.
    lines = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        lines.append(f"\n    {name}: {redact_header(name, value)}")
    return "".join(lines)


def _request(number: int, request: httpx.Request) -> None:
    log.debug(
        "--> #%d %s %s%s",
        number,
        request.method,
        redact_url(request.url),
        _headers(request.headers.raw),
    )


def _response(number: int, response: httpx.Response, started: float) -> None:
    elapsed = (time.monotonic() - started) * 1000
    log.debug(
        "<-- #%d %d %s %s (%.1f ms)%s",
        number,
        response.status_code,
        response.request.method,
        redact_url(response.request.url),
        elapsed,
        _headers(response.headers.raw),
    )


async def traced(
    request: httpx.Request, send: Callable[[httpx.Request], Awaitable[httpx.Response]]
) -> httpx.Response:
    """``send(request)``, logging the request, each redirect and the answer (or the failure)."""
    if not log.isEnabledFor(logging.DEBUG):
        return await send(request)
    number = next(_numbers)
    _request(number, request)
    started = time.monotonic()
    try:
        response = await send(request)
    except Exception as exc:
        elapsed = (time.monotonic() - started) * 1000
        log.debug(
            "<-- #%d %s %s failed after %.1f ms: %s",
            number,
            request.method,
            redact_url(request.url),
            elapsed,
            exc or type(exc).__name__,
        )
        raise
    # Redirects followed (a blob's presigned URL): each answer, then the request it led to.
    followed = [*response.history, response]
    for hop, following in itertools.pairwise(followed):
        _response(number, hop, started)
        number = next(_numbers)
        _request(number, following.request)
    _response(number, response, started)
    return response
