"""A scripted HTTP/1.1 server on asyncio streams, for testing the client transport.

Each accepted TCP connection is handed to a test-supplied coroutine (a *handler*) that reads
requests and writes whatever raw bytes the test wants: chunked bodies, bodies without a length,
early answers, garbage, a close or a reset at any point. The server counts connections (accepted,
open now, most open at once), keeps every request it read, and records handler exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

_HEAD_LIMIT = 1 << 20


@dataclass
class ReceivedRequest:
    """A request as the server read it; ``body`` is de-chunked when it was sent chunked."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    connection: int  # 1-based index of the TCP connection it arrived on
    body: bytes = b""
    chunked: bool = False  # the body arrived with Transfer-Encoding: chunked

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None


class ServerConnection:
    """One accepted connection, as seen by a handler."""

    def __init__(
        self,
        server: ScriptedServer,
        index: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.index = index
        self.reader = reader
        self.writer = writer

    async def read_head(self) -> ReceivedRequest | None:
        """Read a request line and headers; ``None`` if the client closed cleanly first."""
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            raise
        lines = raw[:-4].decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        request = ReceivedRequest(method, target, headers, self.index)
        self.server.requests.append(request)
        self.server.notify()
        return request

    async def read_body(self, request: ReceivedRequest) -> bytes:
        """Read the body that ``request`` announced (Content-Length or chunked)."""
        encoding = request.header("Transfer-Encoding")
        if encoding is not None and "chunked" in encoding.lower():
            request.chunked = True
            parts = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await self.reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                parts.append(await self.reader.readexactly(size))
                if await self.reader.readexactly(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
            request.body = b"".join(parts)
        else:
            length = int(request.header("Content-Length") or "0")
            request.body = await self.reader.readexactly(length)
        self.server.notify()
        return request.body

    async def read_request(self) -> ReceivedRequest | None:
        """Read a whole request (head and body); ``None`` if the client closed cleanly."""
        request = await self.read_head()
        if request is not None:
            await self.read_body(request)
        return request

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def flush(self) -> None:
        await self.writer.drain()

    async def close(self) -> None:
        """Close gracefully (FIN, or close_notify then FIN over TLS)."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as some servers and balancers do."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[ServerConnection], Awaitable[None]]
Responder = Callable[[ReceivedRequest], bytes | Awaitable[bytes]]


@dataclass(eq=False)
class ScriptedServer:
    """An ``asyncio.start_server`` on 127.0.0.1 with an ephemeral port."""

    handler: Handler
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    accepted: int = 0
    open: int = 0
    max_open: int = 0
    closed: int = 0
    requests: list[ReceivedRequest] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> ScriptedServer:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", 0, ssl=self.ssl_context, limit=_HEAD_LIMIT
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def notify(self) -> None:
        """Re-check what :meth:`wait_until` callers wait for; called on every change of state."""
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait (bounded) until ``predicate()`` holds for the server's state."""
        if predicate():
            return
        waiter = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[1]
        finally:
            self._waiters.remove(waiter)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self.notify()
        connection = ServerConnection(self, self.accepted, reader, writer)
        try:
            await self.handler(connection)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # recorded for the test to inspect
            self.errors.append(exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            self.open -= 1
            self.closed += 1
            self.notify()
            self._tasks.discard(task)

    def take_errors(self) -> list[BaseException]:
        """The handlers' exceptions so far, which the test then owns (aclose no longer fails)."""
        taken, self.errors = self.errors, []
        return taken

    async def aclose(self) -> None:
        """Stop serving; fail when a handler raised and the test did not take the errors.

        A handler's exception (an assertion on the request, a bug in the script) happens in the
        server's task, where pytest cannot see it: without this it could never fail the test.
        """
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self.errors:
            errors = self.take_errors()
            raise AssertionError(
                f"the scripted server's handler raised {len(errors)} time(s): "
                + "; ".join(f"{type(e).__name__}: {e}" for e in errors)
            ) from errors[0]


def response(
    status: int,
    body: bytes = b"",
    *,
    reason: str = "Whatever",
    headers: Iterable[tuple[str, str]] = (),
    version: str = "HTTP/1.1",
    content_length: bool = True,
) -> bytes:
    """Raw response bytes: status line, headers (Content-Length unless told not to), body."""
    lines = [f"{version} {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def serve_each(respond: Responder) -> Handler:
    """A handler answering every request on the connection with ``respond(request)``."""

    async def handler(connection: ServerConnection) -> None:
        while (request := await connection.read_request()) is not None:
            answer = respond(request)
            if inspect.isawaitable(answer):
                answer = await answer
            assert isinstance(answer, bytes)
            connection.send(answer)
            await connection.flush()

    return handler
