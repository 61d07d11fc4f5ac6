"""The tests' threaded HTTP server: a handler's error fails the test instead of being printed.

``http.server.ThreadingHTTPServer`` hands a handler's exception to ``handle_error``, which
prints it and serves on, so an assertion or a bug inside a stub server could never fail the
test that uses it (issue 23 item 1, the same class as ``ScriptedServer``'s). Every stub server
of the suite is a ``CheckedHTTPServer``; ``check()`` at teardown raises what its handlers
raised. tests/unit/test_every_test_asserts.py fails on a ``ThreadingHTTPServer`` made anywhere
else.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["CLIENT_WENT_AWAY", "CheckedHTTPServer"]

# A client that closed its connection (a command interrupted, a notifier giving up) is not an
# error of the server's handler.
CLIENT_WENT_AWAY: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class CheckedHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer on daemon threads that keeps its handlers' errors for ``check``.

    ``benign``: errors that are the point of the server (a fault proxy's broken connections),
    not kept.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        benign: tuple[type[BaseException], ...] = CLIENT_WENT_AWAY,
    ) -> None:
        super().__init__(address, handler)
        self.benign = benign
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        """Keep the error being handled (socketserver would print it and go on)."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, self.benign):
            with self._lock:
                self.errors.append(error)

    def check(self) -> None:
        """Fail the test with what the handlers raised, if anything; then forget it."""
        with self._lock:
            errors, self.errors = self.errors, []
        if errors:
            raise AssertionError(f"the test server's handler raised: {errors!r}") from errors[0]
