"""Where the issuer remembers the SSH-JWT ids (``jti``) it has accepted, so each works once.

Two memories, one interface:

* :class:`DatabaseReplayMemory` — a table in imgctl's database (SQLite file or PostgreSQL). It
  survives restarts, and issuer replicas that share the database share it: the row's primary key
  lets exactly one of two replicas accept the same JWT.
* :class:`ProcessReplayMemory` — a dictionary in this process, for a single issuer that may
  forget on restart (``database_url: memory``). A restart, or a second replica, would accept a
  JWT again until it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from imgctl.identity.issuer._config import IssuerConfig
    from imgctl.store import JtiStore

__all__ = [
    "MEMORY",
    "DatabaseReplayMemory",
    "ProcessReplayMemory",
    "ReplayMemory",
    "open_replay_memory",
    "replay_database_url",
]

MEMORY: Final = "memory"
"""The ``database_url`` value that keeps the replay memory in the issuer's process."""
DATABASE_FILENAME: Final = "issuer.db"
"""The SQLite file in the keys directory used when no database is configured."""

# Bounded anyway by the JWTs' short lives; pruned when it grows past this.
_PRUNE_ABOVE: Final = 1024


class ReplayMemory(Protocol):
    """Remembers which SSH-JWT ids were accepted, until the JWT expires."""

    @property
    def description(self) -> str:
        """Where the memory is, for the start-up log line (no password)."""
        ...

    async def claim(self, subject: str, jti: str, until: float) -> bool:
        """Mark ``jti`` of ``subject`` used until ``until`` (epoch seconds); False if it was."""
        ...

    async def aclose(self) -> None:
        """Release the memory's resources."""
        ...


class ProcessReplayMemory:
    """Accepted ids in this process only: lost on restart, not shared with other replicas."""

    description = "in this process only (lost on restart, not shared by replicas)"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._used: dict[tuple[str, str], float] = {}

    async def claim(self, subject: str, jti: str, until: float) -> bool:
        """Mark ``jti`` of ``subject`` used until ``until``; False if it already is."""
        # No await between the check and the write: one event loop makes this atomic.
        now = self._clock()
        if len(self._used) > _PRUNE_ABOVE:
            self._used = {key: end for key, end in self._used.items() if end > now}
        key = (subject, jti)
        if self._used.get(key, float("-inf")) > now:
            return False
        self._used[key] = until
        return True

    async def aclose(self) -> None:
        """Nothing to release."""


class DatabaseReplayMemory:
    """Accepted ids in imgctl's database: kept across restarts, shared by replicas."""

    def __init__(self, store: JtiStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    @classmethod
    async def open(cls, url: str, clock: Callable[[], float] = time.time) -> DatabaseReplayMemory:
        """Connect to ``url`` and migrate it; StoreError when the database cannot be used."""
        from imgctl.store import JtiStore

        return cls(await JtiStore.open(url), clock)

    @property
    def description(self) -> str:
        """The database's URL, password hidden."""
        return f"database {self._store.url} (kept across restarts, shared by replicas using it)"

    async def claim(self, subject: str, jti: str, until: float) -> bool:
        """Insert the id if absent; of two replicas claiming it at once, exactly one wins."""
        return await self._store.claim(
            subject,
            jti,
            datetime.fromtimestamp(until, UTC),
            now=datetime.fromtimestamp(self._clock(), UTC),
        )

    async def aclose(self) -> None:
        """Close the database connections."""
        await self._store.aclose()


def replay_database_url(config: IssuerConfig, environ: Mapping[str, str]) -> str | None:
    """The database for the replay memory; None for :class:`ProcessReplayMemory`.

    The config's ``database_url`` wins, then ``IMGCTL_DATABASE_URL`` (as ``imgctl server``
    reads it), then a SQLite file in the keys directory.
    """
    from imgctl.store import database_url

    if config.database_url == MEMORY:
        return None
    if config.database_url:
        return config.database_url
    return database_url(environ, Path(config.keys_dir), DATABASE_FILENAME)


async def open_replay_memory(
    config: IssuerConfig, environ: Mapping[str, str], clock: Callable[[], float] = time.time
) -> ReplayMemory:
    """The replay memory ``config`` and ``environ`` ask for, opened (see replay_database_url)."""
    url = replay_database_url(config, environ)
    if url is None:
        return ProcessReplayMemory(clock)
    return await DatabaseReplayMemory.open(url, clock)
