"""Run a uvicorn server until SIGTERM or SIGINT, telling the two apart, for every HTTP daemon.

uvicorn takes SIGINT and SIGTERM itself, shuts down gracefully, then re-raises the signal it
got: a SIGTERM (how Kubernetes and systemd stop a service) then killed the process, exit 143
and a pod that ended in "Error", and a command could not tell a Ctrl-C (exit 130, README "Exit
codes") from a service's stop. Here imgctl's own handlers ask the server to stop, and the
caller learns which signal came first: ``imgctl registry serve``, ``catalog serve`` and ``idp
serve`` exit 0 on SIGTERM, as ``imgctl server`` does, and 130 on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from typing import Any

__all__ = ["serve_until_signalled"]


async def serve_until_signalled(server: Any, sockets: list[socket.socket]) -> bool:
    """Serve ``server`` (a ``uvicorn.Server``) on ``sockets``; True when Ctrl-C stopped it.

    The first SIGTERM or SIGINT lets running requests finish (the config's graceful timeout);
    a second Ctrl-C stops without waiting, as uvicorn's own handler does.
    """
    server.capture_signals = contextlib.nullcontext
    received: list[int] = []

    def stop(signum: int) -> None:
        if received and signum == signal.SIGINT:
            server.force_exit = True
        received.append(signum)
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    try:
        await server.serve(sockets=sockets)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return received[:1] == [signal.SIGINT]
