"""A uvicorn server that remembers which signals stopped it, so Ctrl-C can exit 130.

uvicorn takes SIGINT and SIGTERM itself, shuts down gracefully and returns; the command that ran
it could not tell a Ctrl-C (exit 130, README "Exit codes") from a service's stop (SIGTERM).
``imgctl catalog serve`` and ``imgctl idp serve`` raise KeyboardInterrupt after a clean stop
when the first signal was SIGINT.
"""

from __future__ import annotations

import signal
from typing import Any

__all__ = ["interrupted", "signalled_server"]


def signalled_server(config: Any) -> Any:
    """A ``uvicorn.Server`` for ``config`` whose ``signals`` lists the signals it received."""
    import uvicorn

    class Server(uvicorn.Server):
        signals: list[int]

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.signals.append(sig)
            super().handle_exit(sig, frame)

    server = Server(config)
    server.signals = []
    return server


def interrupted(server: Any) -> bool:
    """Whether Ctrl-C (SIGINT, the first signal it received) stopped ``server``."""
    signals: list[int] = getattr(server, "signals", [])
    return signals[:1] == [signal.SIGINT]
