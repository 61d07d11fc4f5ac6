"""A lean HTTP/1.1 transport for httpx, built for moving blobs.

httpx stays the client API (requests, auth headers, redirects, proxies from the environment);
this transport replaces httpcore underneath it. Blob copies move hundreds of megabytes
through one Python process, and httpcore's per-chunk and per-request overhead (64 KiB reads
through anyio and h11, a connection-pool scan on every request) cost more CPU than the
registries themselves: see ``docs/architecture.md`` for the measurements. Here a response body
is read straight from an asyncio stream in chunks of up to a megabyte, request bodies are
written with flow control, and the pool is a list of idle connections per origin.

What it does not do, because registries do not need it: HTTP/2, ``Expect: 100-continue``,
pipelining. HTTP proxies from the environment still go through httpx's own proxy transports.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx

__all__ = ["ConnectRefused", "StreamTransport", "UnknownHost"]

_READ_CHUNK = 1 << 20
_WRITE_HIGH_WATER = 1 << 20
_HEADER_LIMIT = 256 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_HEX_RE = re.compile(rb"[0-9A-Fa-f]+")


class ConnectRefused(httpx.ConnectError):
    """Every address of the host refused the connection (ECONNREFUSED): nothing listens there."""


class UnknownHost(httpx.ConnectError):
    """The host name does not resolve (EAI_NONAME, EAI_NODATA): no registry has that name."""


_REFUSED = f"[Errno {errno.ECONNREFUSED}]"
# getaddrinfo's definite "no such name" answers; EAI_AGAIN (a resolver that did not answer) is
# transient and stays retried.
_NO_SUCH_NAME = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def _refused(exc: OSError) -> bool:
    """Whether connecting failed because every address refused (asyncio joins several)."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    text = str(exc)
    # Python 3.11's create_connection: one OSError for all addresses ("localhost" -> ::1 and
    # 127.0.0.1), its message the addresses' errors joined.
    prefix = "Multiple exceptions: "
    if exc.errno is not None or not text.startswith(prefix):
        return False
    parts = re.split(r", (?=\[Errno )", text[len(prefix) :])
    return all(part.startswith(_REFUSED) for part in parts)


@dataclass(eq=False)
class _Connection:
    origin: tuple[bytes, bytes, int]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self, expiry: float) -> bool:
        """An idle connection the server has not closed and that is not too old."""
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < expiry
        )

    def close(self) -> None:
        self.writer.close()


class _Protocol(asyncio.StreamReaderProtocol):
    """A stream protocol for which a reset connection is an end of stream, not an error.

    asyncio's own protocol stores the reset as the reader's exception, which hides bytes that
    already arrived: a registry that answers 401 or 413 to an upload and resets the connection
    would lose that answer. Writers still fail: ``drain()`` raises once the connection is lost.
    """

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ConnectionResetError | BrokenPipeError):
            exc = None
        super().connection_lost(exc)


class StreamTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio streams, with keep-alive pooling per origin."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        *,
        max_connections_per_origin: int = 32,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_per_origin = max_connections_per_origin
        self._expiry = keepalive_expiry
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._slots: dict[tuple[bytes, bytes, int], asyncio.Semaphore] = {}
        self._closed = False

    # -------------------------------------------------------------- pool

    def _slot(self, origin: tuple[bytes, bytes, int]) -> asyncio.Semaphore:
        slot = self._slots.get(origin)
        if slot is None:
            slot = self._slots[origin] = asyncio.Semaphore(self._max_per_origin)
        return slot

    async def _connect(
        self, origin: tuple[bytes, bytes, int], timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        context: ssl.SSLContext | None = None
        if scheme == b"https":
            # A factory is called on the first TLS connection only: loading CA bundles costs
            # tens of milliseconds that plain-HTTP (loopback) registries never need.
            if callable(self._ssl_context):
                self._ssl_context = self._ssl_context()
            context = self._ssl_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_HEADER_LIMIT, loop=loop)
        protocol = _Protocol(reader, loop=loop)
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    hostname.strip("[]"),
                    port,
                    ssl=context,
                    server_hostname=hostname.strip("[]") if context else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {hostname}:{port} timed out") from None
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"TLS with {hostname}:{port} failed: {exc}") from None
        except socket.gaierror as exc:
            kind = UnknownHost if exc.errno in _NO_SUCH_NAME else httpx.ConnectError
            raise kind(f"cannot resolve {hostname}: {exc.strerror}") from None
        except OSError as exc:
            kind = ConnectRefused if _refused(exc) else httpx.ConnectError
            raise kind(f"cannot connect to {hostname}:{port}: {exc}") from None
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return _Connection(origin, reader, writer)

    def _take_idle(self, origin: tuple[bytes, bytes, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.usable(self._expiry):
                return connection
            connection.close()
        return None

    def _release(self, connection: _Connection, reusable: bool) -> None:
        self._slot(connection.origin).release()
        if reusable and not self._closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        """Close every idle connection; busy ones close when their response does."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    # -------------------------------------------------------------- exchange

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return a response whose body streams from the connection."""
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        origin = (url.raw_scheme, url.raw_host, port)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        slot = self._slot(origin)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await slot.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time") from None
        reused = True
        connection = self._take_idle(origin)
        try:
            if connection is None:
                reused = False
                connection = await self._connect(origin, timeouts)
            try:
                return await self._exchange(connection, request, timeouts)
            except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
                # A kept-alive connection the server closed while it sat idle: one fresh try,
                # but only when the body can be sent again.
                if not reused or not _replayable(request) or not _closed_before_response(exc):
                    raise
                connection.close()
                connection = None
                connection = await self._connect(origin, timeouts)
                return await self._exchange(connection, request, timeouts)
        except BaseException:
            if connection is not None:
                connection.close()
            slot.release()
            raise

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        write_error: httpx.WriteError | None = None
        try:
            await self._send_request(connection, request, timeouts)
        except httpx.WriteError as exc:
            # The server may have answered early (e.g. 401, 413) and closed; read that answer.
            write_error = exc
        watch = _ReadWatch(connection.reader, timeouts.get("read"))
        try:
            status, reason, headers, http_version = await _read_head(connection.reader, watch)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            watch.stop()
            if write_error is not None:
                raise write_error from None
            raise
        except BaseException:
            watch.stop()
            raise
        keep_alive = write_error is None and _keep_alive(http_version, headers)
        try:
            body = _ResponseBody(
                self, connection, request.method, status, headers, watch, keep_alive
            )
        except BaseException:
            watch.stop()
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": http_version, "reason_phrase": reason},
        )

    async def _send_request(
        self, connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> None:
        writer = connection.writer
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)]
        chunked = False
        for name, value in request.headers.raw:
            if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
            head.append(b"%s: %s\r\n" % (name, value))
        head.append(b"\r\n")
        write_timeout = timeouts.get("write")
        try:
            stream = request.stream
            if isinstance(stream, httpx.ByteStream):
                # Small bodies (manifests, forms) leave in the same segment as the head.
                body = b"".join(stream)
                if chunked and body:
                    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                elif chunked:
                    body = b"0\r\n\r\n"
                writer.write(b"".join(head) + body)
            else:
                writer.write(b"".join(head))
                if not isinstance(stream, httpx.AsyncByteStream):
                    raise TypeError("StreamTransport needs an async request body")
                async for chunk in stream:
                    if not chunk:
                        continue
                    if writer.transport.is_closing():
                        # A lost connection drops writes silently; stop consuming the body.
                        raise ConnectionResetError("the server closed the connection")
                    if chunked:
                        writer.write(b"%x\r\n" % len(chunk))
                        writer.write(chunk)
                        writer.write(b"\r\n")
                    else:
                        writer.write(chunk)
                    if writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                        async with asyncio.timeout(write_timeout):
                            await writer.drain()
                if chunked:
                    writer.write(b"0\r\n\r\n")
            if writer.transport.get_write_buffer_size():
                async with asyncio.timeout(write_timeout):
                    await writer.drain()
            else:
                # Everything went into the socket: drain() only checks for a lost connection,
                # without the timer a timeout would arm and cancel for every request.
                await writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out") from None
        except OSError as exc:
            raise httpx.WriteError(f"sending the request failed: {exc}") from None


class _ReadTimedOut(Exception):
    """Set on a connection's reader when a read waited longer than the read timeout."""


class _ReadWatch:
    """The read timeout of one response: one timer for the response, not one per read.

    A read that has been waiting for the timeout fails (the timer checks every half timeout,
    so between one and one and a half timeouts after the read began waiting); time spent
    elsewhere, such as waiting for the upload a body feeds, never counts. An asyncio timeout
    armed and cancelled costs about 35,000 instructions, and a blob copy reads once per
    256 KiB socket read and once per response head. A failed read leaves the reader failed:
    the connection is closed, never reused.
    """

    __slots__ = ("_handle", "_loop", "_reader", "_stopped", "_timeout", "since")

    def __init__(self, reader: asyncio.StreamReader, timeout: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = reader
        self._timeout = timeout
        self.since: float | None = None  # when the read in progress began waiting
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False

    def _check(self) -> None:
        assert self._timeout is not None
        self._handle = None
        since = self.since
        if since is None:
            return  # no read waiting: the next read arms the timer again
        if self._loop.time() - since >= self._timeout:
            self._reader.set_exception(_ReadTimedOut())  # wakes the waiting read with it
            return
        self._handle = self._loop.call_later(self._timeout / 2, self._check)

    async def read(self, operation: Awaitable[bytes]) -> bytes:
        """Await one read of the reader, timed."""
        self.since = self._loop.time()
        if self._handle is None and self._timeout is not None and not self._stopped:
            self._handle = self._loop.call_later(self._timeout / 2, self._check)
        try:
            return await operation
        finally:
            self.since = None

    def stop(self) -> None:
        """The response is done with: no more checks."""
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _ResponseBody(httpx.AsyncByteStream):
    """Streams a response body off its connection, then hands the connection back."""

    def __init__(
        self,
        transport: StreamTransport,
        connection: _Connection,
        method: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        watch: _ReadWatch,
        keep_alive: bool,
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._watch = watch
        self._keep_alive = keep_alive
        self._length: int | None = None
        self._chunked = False
        self._until_close = False
        if 100 <= status < 200:
            # 101 Switching Protocols: the connection is no longer HTTP/1.1.
            self._length = 0
            self._keep_alive = False
        elif method == "HEAD" or status in _NO_BODY_STATUSES:
            self._length = 0
        else:
            for name, value in headers:
                lowered = name.lower()
                if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                    self._chunked = True
                elif lowered == b"content-length" and not self._chunked:
                    if not value.strip().isdigit():
                        raise httpx.RemoteProtocolError(f"bad Content-Length {value!r}")
                    self._length = int(value)
            if self._chunked:
                self._length = None
            elif self._length is None:
                self._until_close = True
                self._keep_alive = False
        if self._length == 0:
            self._finish()

    def _finish(self) -> None:
        self._watch.stop()
        connection, self._connection = self._connection, None
        if connection is not None:
            self._transport._release(connection, self._keep_alive)

    async def aclose(self) -> None:
        """Stop reading; an unread body means the connection cannot be reused."""
        if self._connection is not None:
            self._keep_alive = False
            self._finish()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        reader = connection.reader
        try:
            if self._chunked:
                async for piece in self._chunks(reader):
                    yield piece
            elif self._until_close:
                while data := await self._read(reader.read(_READ_CHUNK)):
                    yield data
            else:
                remaining = self._length or 0
                while remaining:
                    data = await self._read(reader.read(min(remaining, _READ_CHUNK)))
                    if not data:
                        raise httpx.RemoteProtocolError(
                            f"connection closed with {remaining} bytes of the body unread"
                        )
                    remaining -= len(data)
                    yield data
        except BaseException:
            self._keep_alive = False
            self._finish()
            raise
        self._finish()

    async def _chunks(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while True:
            line = await self._read(reader.readline())
            field = line.split(b";", 1)[0].strip()
            if not _HEX_RE.fullmatch(field):
                raise httpx.RemoteProtocolError(f"bad chunk size line {line[:40]!r}")
            size = int(field, 16)
            if size == 0:
                while True:  # trailers are read and ignored
                    trailer = await self._read(reader.readline())
                    if trailer in (b"\r\n", b"\n"):
                        return
                    if not trailer.endswith(b"\n"):
                        raise httpx.RemoteProtocolError("connection closed inside the trailers")
            while size:
                data = await self._read(reader.read(min(size, _READ_CHUNK)))
                if not data:
                    raise httpx.RemoteProtocolError("connection closed inside a chunk")
                size -= len(data)
                yield data
            if await self._read(reader.readexactly(2)) != b"\r\n":
                raise httpx.RemoteProtocolError("chunk data is not followed by CRLF")

    async def _read(self, operation: Awaitable[bytes]) -> bytes:
        try:
            return await self._watch.read(operation)
        except _ReadTimedOut:
            raise httpx.ReadTimeout("reading the response timed out") from None
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError("connection closed mid-response") from None
        except ValueError:  # readline() past the stream's limit
            raise httpx.RemoteProtocolError("response line too long") from None
        except OSError as exc:
            raise httpx.ReadError(f"reading the response failed: {exc}") from None


async def _read_head(
    reader: asyncio.StreamReader, watch: _ReadWatch
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
    """Read a status line and headers, skipping interim 1xx responses."""
    while True:
        try:
            raw = await watch.read(reader.readuntil(b"\r\n\r\n"))
        except _ReadTimedOut:
            raise httpx.ReadTimeout("waiting for the response timed out") from None
        except asyncio.IncompleteReadError as exc:
            raise httpx.RemoteProtocolError(
                "server closed the connection without sending a response"
                if not exc.partial
                else "connection closed inside the response headers"
            ) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("response headers are too large") from None
        except OSError as exc:
            raise httpx.ReadError(f"reading the response failed: {exc}") from None
        lines = raw[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise httpx.RemoteProtocolError(f"malformed header line {line[:60]!r}")
            headers.append((name.strip(), value.strip()))
        if 100 <= status < 200 and status != 101:
            continue
        return status, parts[2] if len(parts) > 2 else b"", headers, parts[0]


def _keep_alive(http_version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            if b"close" in tokens:
                return False
            if b"keep-alive" in tokens:
                return True
    return http_version == b"HTTP/1.1"


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _closed_before_response(exc: Exception) -> bool:
    return isinstance(exc, httpx.WriteError) or "without sending a response" in str(exc)
