"""A loopback TCP proxy that can cut every connection: "the database went down" on demand.

The machine's PostgreSQL is shared by every test (and by other users of the machine), so it is
never stopped. A server under test reaches it through this proxy instead; :meth:`TcpProxy.cut`
closes every open connection and refuses new ones (accepted, then closed at once, as a
restarting database does), :meth:`TcpProxy.restore` lets connections through again.

The proxy runs its own asyncio loop on a daemon thread, listens on 127.0.0.1 only, and forwards
only to the one upstream it was given.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    """Forward 127.0.0.1:<port> to ``upstream_host``:``upstream_port``."""

    upstream_host: str
    upstream_port: int
    port: int = 0
    connections: int = 0  # accepted and forwarded
    refused: int = 0  # accepted while cut, closed at once
    cuts: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _down: bool = False

    def start(self) -> TcpProxy:
        """Listen on a free loopback port; returns once it accepts connections."""
        if self.upstream_host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the test proxy forwards to loopback only")
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._accept, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the TCP proxy did not start")
        return self

    @property
    def address(self) -> str:
        """HOST:PORT to connect to."""
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Close every forwarded connection and refuse new ones until :meth:`restore`."""
        self._call(self._cut)

    def restore(self) -> None:
        """Forward new connections again."""
        self._call(self._restore)

    def stop(self) -> None:
        """Close everything and stop the loop."""
        if self._loop is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    # --- on the proxy's loop ------------------------------------------------------------------

    def _call(self, function: object) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(function(), self._loop)  # type: ignore[operator]
        future.result(10)

    async def _cut(self) -> None:
        self._down = True
        self.cuts += 1
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _restore(self) -> None:
        self._down = False

    async def _shutdown(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        if self._down:  # cut while connecting
            up_writer.transport.abort()
            writer.transport.abort()
            return
        self.connections += 1
        self._open.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self._open.discard(writer)
        self._open.discard(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            # One side ended: end the other too (PostgreSQL's protocol has no half-close).
            writer.transport.abort()
