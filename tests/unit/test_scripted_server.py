"""The scripted HTTP server of tests/support fails the test when its handler raises.

A handler runs in the server's own task: an assertion on the request there, or a bug in the
script, is invisible to pytest unless the server reports it when it is closed (issue 23).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ..support.httpserver import ScriptedServer, ServerConnection, response


async def _ask(server: ScriptedServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    # Until the server closes the connection (a reset: it closed with the request unread).
    with contextlib.suppress(ConnectionResetError):
        await reader.read()
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()


async def test_a_handler_that_raises_fails_the_close() -> None:
    async def handler(connection: ServerConnection) -> None:
        request = await connection.read_request()
        assert request is not None
        assert request.target == "/v2/other", "the client asked for the wrong path"

    server = await ScriptedServer(handler).start()
    await _ask(server)
    with pytest.raises(AssertionError, match="the client asked for the wrong path"):
        await server.aclose()


async def test_errors_the_test_takes_do_not_fail_the_close() -> None:
    async def handler(connection: ServerConnection) -> None:
        raise ConnectionResetError("scripted")

    server = await ScriptedServer(handler).start()
    await _ask(server)
    await server.wait_until(lambda: server.closed == 1)
    [error] = server.take_errors()
    assert isinstance(error, ConnectionResetError)
    await server.aclose()


async def test_a_handler_that_answers_closes_cleanly() -> None:
    async def handler(connection: ServerConnection) -> None:
        assert await connection.read_request() is not None
        connection.send(response(200, b"{}"))
        await connection.flush()

    server = await ScriptedServer(handler).start()
    await _ask(server)
    await server.aclose()
    assert server.closed == 1


def test_the_threaded_stub_server_fails_the_test_when_its_handler_raises() -> None:
    # tests/support/httpd.py's CheckedHTTPServer: the handler's error is kept, not printed,
    # and check() raises it; a client that went away is not an error.
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler

    from ..support.httpd import CheckedHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/bug":
                raise ValueError("a bug in the stub")
            if self.path == "/gone":
                raise ConnectionResetError("the client went away")
            self.send_response(204)
            self.end_headers()

    server = CheckedHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for path in ("/ok", "/gone", "/bug"):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
            try:
                connection.request("GET", path)
                if path == "/ok":
                    assert connection.getresponse().status == 204
                else:
                    with pytest.raises(http.client.HTTPException):
                        connection.getresponse()
            finally:
                connection.close()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(AssertionError, match="a bug in the stub"):
        server.check()
    server.check()  # what was raised is reported once
