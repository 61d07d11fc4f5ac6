"""StreamTransport under httpx, against scripted asyncio servers that send exact raw bytes.

Every test drives the transport only through ``httpx.AsyncClient(transport=StreamTransport(...))``
and checks what a real server on 127.0.0.1 saw: connections accepted, open at once, requests
and their bodies byte for byte.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from imgctl.remote._transport import StreamTransport, UnknownHost

from ..support.httpserver import (
    Handler,
    ReceivedRequest,
    ScriptedServer,
    ServerConnection,
    response,
    serve_each,
)

# pytest-timeout is the last resort; every wait below has its own, much shorter, bound.
pytestmark = pytest.mark.timeout(60)

TIMEOUT = httpx.Timeout(5.0)
MiB = 1 << 20

Serve = Callable[..., Awaitable[ScriptedServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start scripted servers for one test; they are shut down after it."""
    servers: list[ScriptedServer] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> ScriptedServer:
        server = await ScriptedServer(handler, ssl_context).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.aclose()


@asynccontextmanager
async def make_client(
    ssl_context: ssl.SSLContext | None = None,
    *,
    timeouts: httpx.Timeout = TIMEOUT,
    max_connections_per_origin: int = 32,
    keepalive_expiry: float = 30.0,
) -> AsyncIterator[httpx.AsyncClient]:
    transport = StreamTransport(
        ssl_context,
        max_connections_per_origin=max_connections_per_origin,
        keepalive_expiry=keepalive_expiry,
    )
    async with httpx.AsyncClient(transport=transport, timeout=timeouts) as client:
        yield client


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    """``data`` as an async iterator of ``size``-byte pieces (httpx cannot replay it)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def echo_target(request: ReceivedRequest) -> bytes:
    return response(200, request.target.encode())


async def hold_open(connection: ServerConnection) -> None:
    """Keep a connection open until the client closes it (or the test ends)."""
    while await connection.read_request() is not None:
        pass


# ------------------------------------------------------------------ bodies with a length


async def test_get_small_body_with_content_length(serve: Serve) -> None:
    server = await serve(
        serve_each(lambda r: response(200, b"hello world", reason="Fine", headers=[("X-A", "1")]))
    )
    async with make_client() as client:
        r = await client.get(f"{server.url}/v2/library/app/tags/list?n=5&last=x")

    assert r.status_code == 200
    assert r.content == b"hello world"
    assert r.headers["x-a"] == "1"
    assert r.reason_phrase == "Fine"
    assert r.http_version == "HTTP/1.1"
    (request,) = server.requests
    assert request.method == "GET"
    assert request.target == "/v2/library/app/tags/list?n=5&last=x"
    assert request.header("Host") == f"127.0.0.1:{server.port}"
    assert not request.has_header("Content-Length")
    assert not request.has_header("Transfer-Encoding")


async def test_get_multi_megabyte_body_streamed_raw(serve: Serve) -> None:
    body = payload(7 * MiB + 123)
    server = await serve(serve_each(lambda r: response(200, body)))
    async with make_client() as client:
        async with client.stream("GET", f"{server.url}/blob") as r:
            assert r.status_code == 200
            assert r.headers["content-length"] == str(len(body))
            received = [piece async for piece in r.aiter_raw()]
        again = await client.get(f"{server.url}/blob")

    assert b"".join(received) == body
    assert len(received) > 1  # streamed, not one buffered read
    assert again.content == body
    assert server.accepted == 1  # a fully read body hands the connection back to the pool


async def test_head_reads_no_body_despite_content_length(serve: Serve) -> None:
    def respond(request: ReceivedRequest) -> bytes:
        if request.method == "HEAD":
            # Content-Length describes the GET body; a HEAD response never carries it.
            return response(200, headers=[("Content-Length", "1000")], content_length=False)
        return response(200, b"after head")

    server = await serve(serve_each(respond))
    async with make_client(timeouts=httpx.Timeout(2.0)) as client:
        head = await client.head(f"{server.url}/blob")
        get = await client.get(f"{server.url}/other")

    assert head.status_code == 200
    assert head.headers["content-length"] == "1000"
    assert head.content == b""
    assert get.content == b"after head"
    assert server.accepted == 1  # nothing was left to drain: the connection was reused


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (204, []),
        (304, [("Content-Length", "1234"), ("ETag", '"abc"')]),
    ],
)
async def test_no_body_statuses(serve: Serve, status: int, headers: list[tuple[str, str]]) -> None:
    def respond(request: ReceivedRequest) -> bytes:
        if request.target == "/empty":
            return response(status, headers=headers, content_length=False)
        return response(200, b"next")

    server = await serve(serve_each(respond))
    async with make_client(timeouts=httpx.Timeout(2.0)) as client:
        empty = await client.get(f"{server.url}/empty")
        following = await client.get(f"{server.url}/next")

    assert empty.status_code == status
    assert empty.content == b""
    assert following.content == b"next"
    assert server.accepted == 1


# ------------------------------------------------------------------ chunked bodies


async def test_chunked_body_with_extensions_and_trailers(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Trailer: X-Checksum\r\n"
        b"\r\n"
        b"5;foo=bar\r\nhello\r\n"
        b"1\r\n \r\n"
        b'a ; name="quoted;value"\r\n0123456789\r\n'
        b"000B\r\n-end-of-it-\r\n"
        b"0\r\n"
        b"X-Checksum: abc123\r\n"
        b"X-Other: 1\r\n"
        b"\r\n"
    )

    def respond(request: ReceivedRequest) -> bytes:
        return chunked if request.target == "/chunked" else response(200, b"next")

    server = await serve(serve_each(respond))
    async with make_client() as client:
        r = await client.get(f"{server.url}/chunked")
        following = await client.get(f"{server.url}/next")

    assert r.status_code == 200
    assert r.content == b"hello 0123456789-end-of-it-"
    assert following.content == b"next"  # trailers were consumed, the stream stayed in sync
    assert server.accepted == 1


async def test_chunked_wins_over_content_length(serve: Serve) -> None:
    def respond(request: ReceivedRequest) -> bytes:
        if request.target != "/both":
            return response(200, b"next")
        return (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nabcdef\r\n0\r\n\r\n"
        )

    server = await serve(serve_each(respond))
    async with make_client() as client:
        both = await client.get(f"{server.url}/both")
        following = await client.get(f"{server.url}/next")

    assert both.content == b"abcdef"
    assert following.content == b"next"
    assert server.accepted == 1


async def test_chunked_body_with_chunks_larger_than_a_read(serve: Serve) -> None:
    sizes = [1, 3 * MiB + 5, 70_000, 2]
    body = payload(sum(sizes), seed=1)
    frames = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    offset = 0
    for size in sizes:
        frames.append(b"%X\r\n%s\r\n" % (size, body[offset : offset + size]))
        offset += size
    frames.append(b"0\r\n\r\n")
    server = await serve(serve_each(lambda r: b"".join(frames)))
    async with make_client() as client, client.stream("GET", f"{server.url}/") as r:
        received = b"".join([piece async for piece in r.aiter_raw()])

    assert received == body


@pytest.mark.parametrize(
    "size_line",
    [
        pytest.param(b"zz", id="not-hex"),
        pytest.param(b"", id="empty"),
        pytest.param(b"5 5", id="two-numbers"),
        pytest.param(b"-5", id="negative"),
    ],
)
async def test_malformed_chunk_size_is_protocol_error(serve: Serve, size_line: bytes) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()
        connection.send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size_line
            + b"\r\nhello\r\n0\r\n\r\n"
        )
        await connection.flush()
        await hold_open(connection)  # the error must come from parsing, not from a close

    server = await serve(handler)
    async with make_client(timeouts=httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


async def test_overlong_chunk_size_line_is_protocol_error(serve: Serve) -> None:
    # A chunk extension larger than the transport's line limit (256 KiB) must surface as an
    # httpx error, like every other framing problem, not as a bare ValueError from asyncio.
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()
        connection.send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"5;ext="
            + b"x" * (300 * 1024)
            + b"\r\nhello\r\n0\r\n\r\n"
        )
        await connection.flush()
        await hold_open(connection)

    server = await serve(handler)
    async with make_client(timeouts=httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


async def test_negative_content_length_is_protocol_error(serve: Serve) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()
        connection.send(
            response(200, b"hello", headers=[("Content-Length", "-1")], content_length=False)
        )
        await connection.flush()
        await hold_open(connection)

    server = await serve(handler)
    async with make_client(timeouts=httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


# ------------------------------------------------------------------ body until close


async def test_body_without_length_reads_until_close_and_is_not_reused(serve: Serve) -> None:
    body = payload(300_000, seed=2)

    async def handler(connection: ServerConnection) -> None:
        if connection.index == 1:
            await connection.read_request()
            connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
            connection.send(body[:1000])
            await connection.flush()
            connection.send(body[1000:])
            await connection.flush()
            return  # closing the connection ends the body
        await serve_each(echo_target)(connection)

    server = await serve(handler)
    async with make_client() as client:
        first = await client.get(f"{server.url}/until-close")
        second = await client.get(f"{server.url}/second")

    assert first.content == body
    assert second.content == b"/second"
    assert server.accepted == 2
    assert [request.connection for request in server.requests] == [1, 2]


# ------------------------------------------------------------------ keep-alive


async def test_sequential_requests_share_one_connection(serve: Serve) -> None:
    server = await serve(serve_each(echo_target))
    async with make_client() as client:
        for i in range(5):
            r = await client.get(f"{server.url}/{i}")
            assert r.content == f"/{i}".encode()

    assert server.accepted == 1
    assert [request.connection for request in server.requests] == [1] * 5


@pytest.mark.parametrize(
    ("version", "headers", "reused"),
    [
        pytest.param("HTTP/1.1", [("Connection", "close")], False, id="1.1-close"),
        pytest.param("HTTP/1.1", [("Connection", "Keep-Alive, Close")], False, id="1.1-tokens"),
        pytest.param("HTTP/1.0", [], False, id="1.0-default"),
        pytest.param("HTTP/1.0", [("Connection", "keep-alive")], True, id="1.0-keep-alive"),
        pytest.param("HTTP/1.1", [], True, id="1.1-default"),
    ],
)
async def test_response_connection_semantics_decide_reuse(
    serve: Serve, version: str, headers: list[tuple[str, str]], reused: bool
) -> None:
    # The server never closes: only the response's version and headers can stop the reuse.
    server = await serve(
        serve_each(lambda r: response(200, r.target.encode(), version=version, headers=headers))
    )
    async with make_client() as client:
        first = await client.get(f"{server.url}/first")
        second = await client.get(f"{server.url}/second")
        if not reused:
            # The client itself closed the connection it would not reuse (while still open,
            # the client holds the second one idle, so this is about the first).
            await server.wait_until(lambda: server.closed == 1)

    assert (first.content, second.content) == (b"/first", b"/second")
    assert first.http_version == version
    assert server.accepted == (1 if reused else 2)


# ------------------------------------------------------------------ request bodies


async def test_bytes_body_sends_content_length_and_exact_bytes(serve: Serve) -> None:
    body = payload(MiB + 7, seed=3)
    server = await serve(serve_each(lambda r: response(201, str(len(r.body)).encode())))
    async with make_client() as client:
        r = await client.put(f"{server.url}/upload", content=body)

    assert r.status_code == 201
    (request,) = server.requests
    assert request.header("Content-Length") == str(len(body))
    assert not request.has_header("Transfer-Encoding")
    assert request.body == body


async def test_stream_body_with_content_length_is_sent_raw(serve: Serve) -> None:
    body = payload(3 * MiB + 11, seed=4)

    async def stream() -> AsyncIterator[bytes]:
        yield b""  # empty pieces are skipped, not framed
        async for piece in pieces(body, 256 * 1024):
            yield piece

    server = await serve(serve_each(echo_target))
    async with make_client() as client:
        r = await client.put(
            f"{server.url}/upload",
            content=stream(),
            headers={"Content-Length": str(len(body))},
        )
        following = await client.get(f"{server.url}/after")

    assert r.status_code == 200
    assert following.content == b"/after"  # no stray framing bytes left on the connection
    upload = server.requests[0]
    assert upload.header("Content-Length") == str(len(body))
    assert not upload.has_header("Transfer-Encoding")
    assert not upload.chunked
    assert upload.body == body
    assert server.accepted == 1


async def test_stream_body_without_length_is_sent_chunked(serve: Serve) -> None:
    body = payload(2 * MiB + 3, seed=5)

    async def stream() -> AsyncIterator[bytes]:
        yield body[:10]
        yield b""  # an empty chunk would end a chunked body early if it were framed
        async for piece in pieces(body[10:], 100_000):
            yield piece

    server = await serve(serve_each(echo_target))
    async with make_client() as client:
        r = await client.post(f"{server.url}/upload", content=stream())
        following = await client.get(f"{server.url}/after")

    assert r.status_code == 200
    assert following.content == b"/after"
    upload = server.requests[0]
    assert upload.header("Transfer-Encoding") == "chunked"
    assert not upload.has_header("Content-Length")
    assert upload.chunked
    assert upload.body == body
    assert server.accepted == 1


# ------------------------------------------------------------------ stale kept-alive connections


def first_connection_then(
    on_second_request: Callable[[ServerConnection], Awaitable[None]],
) -> Handler:
    """Answer the first request on connection 1, then misbehave; later connections behave."""

    async def handler(connection: ServerConnection) -> None:
        if connection.index == 1:
            first = await connection.read_request()
            assert first is not None
            connection.send(echo_target(first))
            await connection.flush()
            await on_second_request(connection)
            return
        await serve_each(echo_target)(connection)

    return handler


async def close_after_idle(connection: ServerConnection) -> None:
    """Close the kept-alive connection right away, as an idle timeout would."""


async def close_on_next_request(connection: ServerConnection) -> None:
    """Read the next request, then close without a word: the idle-timeout race."""
    await connection.read_request()


async def reset_on_next_request(connection: ServerConnection) -> None:
    """Read the next request's head, then reset: a balancer dropping an idle connection."""
    await connection.read_head()
    connection.reset()


async def test_idle_connection_closed_by_server_is_replaced(serve: Serve) -> None:
    server = await serve(first_connection_then(close_after_idle))
    async with make_client() as client:
        assert (await client.get(f"{server.url}/first")).status_code == 200
        await server.wait_until(lambda: server.closed == 1)
        with_bytes = await client.put(f"{server.url}/bytes", content=b"payload")
        # A noticed close costs nothing, even for a body that cannot be replayed.
        with_stream = await client.put(f"{server.url}/stream", content=pieces(b"streamed", 3))

    assert with_bytes.content == b"/bytes"
    assert with_stream.content == b"/stream"
    assert server.accepted == 2
    assert [(r.target, r.connection, r.body) for r in server.requests] == [
        ("/first", 1, b""),
        ("/bytes", 2, b"payload"),
        ("/stream", 2, b"streamed"),
    ]


async def test_bytes_body_is_retried_when_reused_connection_closes_before_answer(
    serve: Serve,
) -> None:
    server = await serve(first_connection_then(close_on_next_request))
    async with make_client() as client:
        assert (await client.get(f"{server.url}/first")).status_code == 200
        r = await client.put(f"{server.url}/upload", content=b"payload")

    assert r.status_code == 200
    assert r.content == b"/upload"
    assert server.accepted == 2
    assert [(r.target, r.connection, r.body) for r in server.requests] == [
        ("/first", 1, b""),
        ("/upload", 1, b"payload"),  # read, then the connection was closed unanswered
        ("/upload", 2, b"payload"),  # the transparent retry
    ]


async def test_stream_body_is_not_retried_when_reused_connection_closes_before_answer(
    serve: Serve,
) -> None:
    # Documented behaviour: a streamed body was consumed by the first attempt and cannot be
    # sent again, so the transport surfaces the failure instead of retrying.
    server = await serve(first_connection_then(close_on_next_request))
    async with make_client() as client:
        assert (await client.get(f"{server.url}/first")).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.put(f"{server.url}/upload", content=pieces(b"streamed", 3))
        # The client is still usable afterwards.
        after = await client.get(f"{server.url}/after")

    assert after.content == b"/after"
    assert [(r.target, r.connection) for r in server.requests] == [
        ("/first", 1),
        ("/upload", 1),
        ("/after", 2),
    ]


async def test_bytes_body_is_retried_when_reused_connection_is_reset(serve: Serve) -> None:
    # Same race as above, but the server (or a balancer in front of it) answers with a TCP
    # reset instead of a FIN. No response byte was received, the body is replayable: retry.
    server = await serve(first_connection_then(reset_on_next_request))
    async with make_client() as client:
        assert (await client.get(f"{server.url}/first")).status_code == 200
        r = await client.put(f"{server.url}/upload", content=b"payload")

    assert r.status_code == 200
    assert [(r.target, r.connection) for r in server.requests] == [
        ("/first", 1),
        ("/upload", 1),  # head read, then reset
        ("/upload", 2),  # the retry
    ]


# ------------------------------------------------------------------ errors


async def test_connection_refused_is_connect_error() -> None:
    # A bound socket that does not listen refuses connections, and nobody else can take it.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        async with make_client() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_a_name_that_does_not_resolve_is_unknown_host() -> None:
    # RFC 6761: resolvers answer "no such name" for .invalid; that answer does not change.
    async with make_client() as client:
        with pytest.raises(UnknownHost, match=r"^cannot resolve no-such-host\.invalid: "):
            await client.get("http://no-such-host.invalid/")


@pytest.mark.parametrize(
    ("code", "unknown"),
    [(socket.EAI_NONAME, True), (socket.EAI_NODATA, True), (socket.EAI_AGAIN, False)],
)
async def test_only_a_definite_no_such_name_is_unknown_host(
    code: int, unknown: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resolver that did not answer (EAI_AGAIN) is transient and must stay retryable; no real
    # resolver here can be made to answer that on demand, so getaddrinfo stands in for it.
    async def getaddrinfo(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(code, "resolver said so")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    async with make_client() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://registry.example.com/")
    assert isinstance(caught.value, UnknownHost) is unknown


async def test_server_that_never_answers_gives_read_timeout(serve: Serve) -> None:
    server = await serve(hold_open)
    async with make_client(timeouts=httpx.Timeout(0.3)) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url)
        elapsed = time.monotonic() - started

    assert 0.25 <= elapsed < 3.0
    assert len(server.requests) == 1


async def test_body_stalling_mid_way_gives_read_timeout_and_closes(serve: Serve) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()
        connection.send(response(200, headers=[("Content-Length", "1000")], content_length=False))
        connection.send(b"0123456789")
        await connection.flush()
        await hold_open(connection)  # the other 990 bytes never come

    server = await serve(handler)
    async with make_client(timeouts=httpx.Timeout(0.3)) as client:
        async with client.stream("GET", server.url) as r:
            received: list[bytes] = []

            async def read_all() -> None:
                async for piece in r.aiter_raw():
                    received.append(piece)

            with pytest.raises(httpx.ReadTimeout):
                await read_all()
        assert b"".join(received) == b"0123456789"
        # The connection with a body still owed on it is closed, not pooled.
        await server.wait_until(lambda: server.closed == 1)


async def test_a_consumer_slower_than_the_read_timeout_is_no_timeout(serve: Serve) -> None:
    """Only waiting for the server counts: time the caller spends between reads does not."""
    body = payload(3 * MiB)
    server = await serve(serve_each(lambda r: response(200, body)))
    async with make_client(timeouts=httpx.Timeout(0.2)) as client:
        async with client.stream("GET", f"{server.url}/blob") as r:
            received: list[bytes] = []
            async for piece in r.aiter_raw():
                received.append(piece)
                if len(received) <= 2:
                    await asyncio.sleep(0.5)  # as an upload waiting on its destination would
        again = await client.get(f"{server.url}/blob")

    assert b"".join(received) == body
    assert again.content == body
    assert server.accepted == 1  # the connection was reused: the read never failed


async def test_server_closing_mid_body_is_protocol_error(serve: Serve) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()
        connection.send(response(200, headers=[("Content-Length", "1000")], content_length=False))
        connection.send(b"0123456789")
        await connection.flush()

    server = await serve(handler)
    async with make_client() as client:
        async with client.stream("GET", server.url) as r:
            assert r.status_code == 200
            received: list[bytes] = []

            async def read_all() -> None:
                async for piece in r.aiter_raw():
                    received.append(piece)

            with pytest.raises(httpx.RemoteProtocolError):
                await read_all()
        assert b"".join(received) == b"0123456789"
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


async def test_server_closing_without_response_on_new_connection_is_protocol_error(
    serve: Serve,
) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()

    server = await serve(handler)
    async with make_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.put(server.url, content=b"payload")

    assert server.accepted == 1  # a fresh connection is never retried


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"garbage\r\n\r\n", id="garbage"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", id="not-http"),
        pytest.param(b"HTTP/1.1 OK 200\r\n\r\n", id="status-not-a-number"),
        pytest.param(b"HTTP/2 200 OK\r\n\r\n", id="not-http-1"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", id="bad-header"),
    ],
)
async def test_garbage_response_head_is_protocol_error(serve: Serve, head: bytes) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()
        connection.send(head)
        await connection.flush()
        await hold_open(connection)

    server = await serve(handler)
    async with make_client(timeouts=httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


async def test_close_inside_response_head_is_protocol_error(serve: Serve) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.read_request()
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Le")
        await connection.flush()

    server = await serve(handler)
    async with make_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


# ------------------------------------------------------------------ early responses


@pytest.mark.parametrize("body_kind", ["stream", "bytes"])
@pytest.mark.parametrize(("status", "reason"), [(413, "Payload Too Large"), (401, "Unauthorized")])
async def test_early_response_to_large_upload_is_returned(
    serve: Serve, status: int, reason: str, body_kind: str
) -> None:
    # The server answers as soon as it has the headers and closes without reading the body,
    # as registries do for an oversized blob or a missing token.
    async def handler(connection: ServerConnection) -> None:
        await connection.read_head()
        connection.send(
            response(
                status,
                b'{"errors":[{"code":"DENIED"}]}',
                reason=reason,
                headers=[("Connection", "close"), ("Content-Type", "application/json")],
            )
        )
        await connection.flush()

    body = bytes(20 * MiB)
    content = pieces(body, 64 * 1024) if body_kind == "stream" else body
    server = await serve(handler)
    async with make_client(timeouts=httpx.Timeout(10.0)) as client:
        r = await client.put(
            f"{server.url}/v2/app/blobs/uploads/1",
            content=content,
            headers={"Content-Length": str(len(body))},
        )

    assert r.status_code == status
    assert r.json() == {"errors": [{"code": "DENIED"}]}


# ------------------------------------------------------------------ interim responses


async def test_interim_responses_are_skipped(serve: Serve) -> None:
    def respond(request: ReceivedRequest) -> bytes:
        if request.target != "/interim":
            return response(200, b"next")
        return (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            + response(201, b"created", headers=[("Location", "/v2/x")])
        )

    server = await serve(serve_each(respond))
    async with make_client() as client:
        r = await client.put(f"{server.url}/interim", content=b"data")
        following = await client.get(f"{server.url}/next")

    assert r.status_code == 201
    assert r.content == b"created"
    assert r.headers["location"] == "/v2/x"
    assert "link" not in r.headers
    assert following.content == b"next"
    assert server.accepted == 1


# ------------------------------------------------------------------ pool limit


async def test_pool_limit_caps_simultaneous_connections(serve: Serve) -> None:
    gate = asyncio.Event()
    in_flight = 0
    max_in_flight = 0

    async def handler(connection: ServerConnection) -> None:
        nonlocal in_flight, max_in_flight
        while (request := await connection.read_request()) is not None:
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
            connection.server.notify()
            await gate.wait()
            in_flight -= 1
            connection.send(echo_target(request))
            await connection.flush()

    server = await serve(handler)
    async with make_client(max_connections_per_origin=2) as client:
        tasks = [asyncio.create_task(client.get(f"{server.url}/{i}")) for i in range(6)]
        await server.wait_until(lambda: in_flight == 2)
        # "Never more than two" has no event to wait for: give an over-eager pool a moment to
        # open a third connection before the held responses are let go.
        await asyncio.sleep(0.2)
        assert (server.open, server.accepted, in_flight) == (2, 2, 2)
        gate.set()
        async with asyncio.timeout(10):
            responses = await asyncio.gather(*tasks)

    assert [r.content for r in responses] == [f"/{i}".encode() for i in range(6)]
    assert server.max_open == 2
    assert max_in_flight == 2
    assert server.accepted == 2  # the four later requests reused the two connections


async def test_pool_timeout_when_every_connection_is_busy(serve: Serve) -> None:
    gate = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        while (request := await connection.read_request()) is not None:
            await gate.wait()
            connection.send(echo_target(request))
            await connection.flush()

    server = await serve(handler)
    async with make_client(max_connections_per_origin=1) as client:
        busy = asyncio.create_task(client.get(f"{server.url}/busy"))
        await server.wait_until(lambda: len(server.requests) == 1)
        with pytest.raises(httpx.PoolTimeout):
            await client.get(f"{server.url}/waiting", timeout=httpx.Timeout(5.0, pool=0.2))
        gate.set()
        async with asyncio.timeout(5):
            assert (await busy).content == b"/busy"
        assert (await client.get(f"{server.url}/later")).content == b"/later"

    assert server.accepted == 1


@pytest.mark.parametrize("how", ["cancelled", "read-timeout"])
async def test_failed_request_gives_its_pool_slot_back(serve: Serve, how: str) -> None:
    async def handler(connection: ServerConnection) -> None:
        while (request := await connection.read_request()) is not None:
            if request.target == "/stuck":
                await hold_open(connection)  # never answers on this connection
                return
            connection.send(echo_target(request))
            await connection.flush()

    server = await serve(handler)
    async with make_client(max_connections_per_origin=1) as client:
        if how == "cancelled":
            stuck = asyncio.create_task(client.get(f"{server.url}/stuck"))
            await server.wait_until(lambda: len(server.requests) == 1)
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
        else:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"{server.url}/stuck", timeout=httpx.Timeout(0.2))
        # With one slot, a leaked slot would make this wait for the pool until PoolTimeout.
        after = await client.get(f"{server.url}/after", timeout=httpx.Timeout(5.0, pool=1.0))
        # The abandoned connection was closed, not pooled with an answer still owed on it.
        await server.wait_until(lambda: server.closed == 1)

    assert after.content == b"/after"
    assert [(r.target, r.connection) for r in server.requests] == [("/stuck", 1), ("/after", 2)]


async def test_keepalive_expiry_retires_idle_connections(serve: Serve) -> None:
    server = await serve(serve_each(echo_target))
    async with make_client(keepalive_expiry=0.0) as client:
        for i in range(3):
            assert (await client.get(f"{server.url}/{i}")).content == f"/{i}".encode()

    assert server.accepted == 3
    await server.wait_until(lambda: server.closed == 3)


async def test_closing_the_client_closes_idle_connections(serve: Serve) -> None:
    server = await serve(serve_each(echo_target))
    async with make_client() as client:
        await client.get(f"{server.url}/a")
        await client.get(f"{server.url}/b")
        assert server.closed == 0
    await server.wait_until(lambda: server.closed == 1)
    assert server.accepted == 1


# ------------------------------------------------------------------ abandoned responses


@pytest.mark.parametrize("read_first_piece", [False, True])
async def test_abandoned_response_connection_is_not_reused(
    serve: Serve, read_first_piece: bool
) -> None:
    big = bytes(32 * MiB)
    server = await serve(
        serve_each(lambda r: response(200, big) if r.target == "/big" else echo_target(r))
    )
    async with asyncio.timeout(10), make_client() as client:
        async with client.stream("GET", f"{server.url}/big") as r:
            assert r.status_code == 200
            if read_first_piece:
                async for _ in r.aiter_raw():
                    break
        following = await client.get(f"{server.url}/next")
        # The abandoned connection was closed by the client, not left half-read in the pool.
        await server.wait_until(lambda: server.closed >= 1)

    assert following.content == b"/next"
    assert server.accepted == 2
    assert [(r.target, r.connection) for r in server.requests] == [("/big", 1), ("/next", 2)]
    # The server, still sending /big, saw the client close that connection under it.
    errors = server.take_errors()
    assert len(errors) <= 1
    assert all(isinstance(e, ConnectionError) for e in errors), errors


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


async def test_tls_with_trusted_ca(
    serve: Serve, ca: trustme.CA, server_tls: ssl.SSLContext
) -> None:
    body = payload(3 * MiB, seed=6)
    server = await serve(
        serve_each(lambda r: response(200, body) if r.target == "/blob" else echo_target(r)),
        server_tls,
    )
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with make_client(trusting) as client:
        small = await client.get(f"{server.url}/small")
        async with client.stream("GET", f"{server.url}/blob") as r:
            received = b"".join([piece async for piece in r.aiter_raw()])
        upload = await client.put(f"{server.url}/up", content=pieces(body, 100_000))

    assert server.url.startswith("https://")
    assert small.content == b"/small"
    assert received == body
    assert upload.content == b"/up"
    assert server.requests[-1].body == body
    assert server.accepted == 1


async def test_tls_with_untrusted_ca_is_connect_error(
    serve: Serve, server_tls: ssl.SSLContext
) -> None:
    server = await serve(serve_each(echo_target), server_tls)
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)  # trusts some other CA only
    async with make_client(other) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{server.url}/")
    assert server.requests == []
