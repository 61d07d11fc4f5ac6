"""How every imgctl daemon starts: one "listening on" line, and nothing but warnings before it.

``imgctl server``, ``imgctl idp serve``, ``imgctl catalog serve`` and ``imgctl registry serve``
print the same line on stderr once their sockets listen (docs/server.md, "Starting"):

    imgctl server: listening on grpc 127.0.0.1:9999, http 127.0.0.1:8080

with the ports the kernel bound (port 0 picks one). Until that line, :class:`StartupLog` holds
back the daemon's records below WARNING (the tokens file loaded, where used SSH-JWT ids are
kept...) and prints them after it: a normal start shows the line first, warnings aside, and a
start that fails shows its error alone.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

__all__ = ["StartupLog", "listening_line", "log_level"]

LOG_LEVEL_ENV = "IMGCTL_LOG_LEVEL"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def listening_line(daemon: str, listeners: Sequence[tuple[str, str]]) -> str:
    """``imgctl DAEMON: listening on SCHEME HOST:PORT, ...`` for (scheme, bound address) pairs."""
    return f"imgctl {daemon}: listening on " + ", ".join(
        f"{scheme} {address}" for scheme, address in listeners
    )


def log_level(environ: dict[str, str] | None = None) -> int:
    """The daemons' log level: ``IMGCTL_LOG_LEVEL`` (debug, info, warning), else INFO.

    At ``debug``, the database migrations' own lines (Alembic's) are shown too.
    """
    import os

    from imgctl.errors import UsageError

    raw = (os.environ if environ is None else environ).get(LOG_LEVEL_ENV, "").strip().lower()
    if not raw:
        return logging.INFO
    if raw not in _LEVELS:
        raise UsageError(
            f"{LOG_LEVEL_ENV}={raw!r} is not a log level", hint="use debug, info or warning"
        )
    return _LEVELS[raw]


class _Hold(logging.Filter):
    """Keeps records below WARNING back until released."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] | None = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.held is not None and record.levelno < logging.WARNING:
            self.held.append(record)
            return False
        return True


class StartupLog:
    """A daemon's start-up: records below WARNING held back until :meth:`listening`."""

    def __init__(self, daemon: str) -> None:
        self.daemon = daemon
        self._holds: list[tuple[logging.Handler, _Hold]] = []

    def hold(self, handler: logging.Handler) -> None:
        """Hold back ``handler``'s records below WARNING until the listening line."""
        hold = _Hold()
        handler.addFilter(hold)
        self._holds.append((handler, hold))

    def listening(self, listeners: Sequence[tuple[str, str]]) -> None:
        """Print the listening line on stderr (flushed), then the records held back."""
        print(listening_line(self.daemon, listeners), file=sys.stderr, flush=True)
        for handler, hold in self._holds:
            held, hold.held = hold.held or [], None
            handler.removeFilter(hold)
            for record in held:
                handler.handle(record)
        self._holds.clear()
