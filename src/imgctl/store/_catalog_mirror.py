"""Admission's copy of the catalog in memory, kept current by the catalog's change feed.

Every write to ``catalog_images`` bumps ``catalog_feed.revision`` first, in its own transaction
(:func:`next_revision`), stamps the entries it writes with that revision and names the entries
it deletes in ``catalog_removals`` (:func:`record_removals`). On PostgreSQL the feed row's lock
makes writers take turns, so a reader never sees revision N+1 without N. A
:class:`CatalogMirror` reads the whole catalog once (one query), then every
:attr:`CatalogMirror.POLL_SECONDS` reads, in one snapshot, the feed row and what changed after
the revision it saw (two indexed queries; one primary-key read when nothing did).

The mirror only ever says "promoted": an entry it does not hold is asked of the database, so a
promotion is admitted at once whichever replica wrote it. It answers only while its last read
started less than :attr:`CatalogMirror.MAX_STALENESS` seconds ago and after this process's
last write: a withdrawal (a delete, a tag taken away) made anywhere stops admitting within that
bound, and a feed that cannot be read hands every question to the database (fail closed: a
database that cannot be read denies).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, bindparam, select, update

from ._schema import CATALOG_FEED, CATALOG_IMAGES, CATALOG_REMOVALS

__all__ = ["CatalogMirror", "FeedRead", "next_revision", "read_feed", "record_removals"]

logger = logging.getLogger(__name__)

_Entry = tuple[str, str, str]  # (environment, name, id)
_Key = tuple[str, str, str | None, str | None]  # (environment, name, digest, tag)

# Removals are kept for this many revisions; a reader further behind reads everything again.
KEEP_REMOVALS: Final = 10_000

_FEED_ROW: Final = select(CATALOG_FEED.c.revision, CATALOG_FEED.c.pruned).where(
    CATALOG_FEED.c.id == 1
)
_BUMP: Final = (
    update(CATALOG_FEED)
    .where(CATALOG_FEED.c.id == 1)
    .values(revision=CATALOG_FEED.c.revision + 1)
    .returning(CATALOG_FEED.c.revision)
)
_ENTRIES: Final = select(
    CATALOG_IMAGES.c.environment, CATALOG_IMAGES.c.name, CATALOG_IMAGES.c.id, CATALOG_IMAGES.c.tags
)
_CHANGED: Final = _ENTRIES.where(CATALOG_IMAGES.c.revision > bindparam("since"))
_REMOVED: Final = select(
    CATALOG_REMOVALS.c.environment, CATALOG_REMOVALS.c.name, CATALOG_REMOVALS.c.id
).where(CATALOG_REMOVALS.c.revision > bindparam("since"))


def next_revision(connection: Connection) -> int:
    """Bump the feed in ``connection``'s transaction and return the new revision.

    Every write to ``catalog_images`` calls this first (before any other catalog row or table
    lock, so that writers cannot deadlock on it) and stamps what it inserts or updates with the
    revision; deletes also call :func:`record_removals`.
    """
    return int(connection.execute(_BUMP).scalar_one())


def record_removals(connection: Connection, revision: int, entries: Iterable[_Entry]) -> None:
    """Name the deleted ``entries`` under ``revision``; drop removals older than the window."""
    rows = [
        {"revision": revision, "environment": environment, "name": name, "id": id}
        for environment, name, id in entries
    ]
    if rows:
        connection.execute(CATALOG_REMOVALS.insert(), rows)
    horizon = revision - KEEP_REMOVALS
    if horizon > 0 and revision % 100 == 0:  # now and then: an indexed range delete
        connection.execute(CATALOG_REMOVALS.delete().where(CATALOG_REMOVALS.c.revision <= horizon))
        connection.execute(
            update(CATALOG_FEED)
            .where(CATALOG_FEED.c.id == 1, CATALOG_FEED.c.pruned < horizon)
            .values(pruned=horizon)
        )


@dataclass(frozen=True, slots=True)
class FeedRead:
    """What one read of the feed found: everything (``full``) or the changes since a revision."""

    revision: int
    full: bool
    entries: builtins.list[tuple[str, str, str, str]]  # (environment, name, id, tags JSON)
    removed: builtins.list[_Entry]
    too_large: bool = False


def read_feed(connection: Connection, since: int | None, limit: int) -> FeedRead:
    """Read the feed in one snapshot on ``connection`` (a fresh one, no transaction yet).

    ``since`` None (or older than what the removals still cover) reads every entry, up to
    ``limit`` of them (``too_large`` beyond).
    """
    if connection.dialect.name == "postgresql":
        # One snapshot for the feed row and both queries: a change committed between them
        # would otherwise be read without the revision that covers it.
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    # (SQLite: the connection's deferred transaction reads one snapshot of the WAL.)
    revision, pruned = connection.execute(_FEED_ROW).one()
    revision, pruned = int(revision), int(pruned)
    if since is not None and since >= pruned:
        if since == revision:
            return FeedRead(revision, False, [], [])
        changed = [tuple(row) for row in connection.execute(_CHANGED, {"since": since})]
        removed = [tuple(row) for row in connection.execute(_REMOVED, {"since": since})]
        return FeedRead(revision, False, changed, removed)
    rows = connection.execute(_ENTRIES.limit(limit + 1)).all()
    if len(rows) > limit:
        return FeedRead(revision, True, [], [], too_large=True)
    return FeedRead(revision, True, [tuple(row) for row in rows], [])


class CatalogMirror:
    """Every catalog entry's "promoted" answers in memory, for the admission webhook.

    Created by :meth:`CatalogStore.follow`; ``read(since)`` reads the feed on the store's
    threads (:func:`read_feed`).
    """

    POLL_SECONDS: float = 1.0
    """How often the feed is read."""
    MAX_STALENESS: float = 3.0
    """The mirror answers only while its last read started less than this long ago."""
    MAX_ENTRIES: int = 250_000
    """Larger catalogs are not mirrored: every question goes to the database, in batches.

    The mirror holds about 70 MB per 100,000 entries of one tag each (measured with
    tracemalloc; 86 MB before environments and tags shared their strings).
    """

    def __init__(self, read: Callable[[int | None, int], Awaitable[FeedRead]]) -> None:
        self._read = read
        # The admission questions answered "promoted". An entry's digest question, one per
        # entry, holds the entry's tags (to know which answers a change takes away); a tag
        # question holds how many entries of its repository carry the tag.
        self._yes: dict[_Key, tuple[str, ...] | int] = {}
        self._entries = 0
        # One string object per environment and tag however many entries repeat it.
        self._strings: dict[str, str] = {}
        self._revision: int | None = None
        # Bumped whenever a read changes what the mirror holds: an answer drawn from it is
        # still the answer while the generation is the same and the mirror answers.
        self._generation = 0
        self._read_at = -float("inf")  # monotonic start of the last read applied
        self._written_at = -float("inf")  # monotonic time of this process's last write
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.disabled = False

    @property
    def revision(self) -> int | None:
        """The feed revision the mirror holds (None before the first read)."""
        return self._revision

    def __len__(self) -> int:
        return self._entries

    def answers(self) -> bool:
        """Whether the mirror may answer now (fresh, and read after this process's last write)."""
        read_at = self._read_at
        return read_at > self._written_at and time.monotonic() - read_at < self.MAX_STALENESS

    def generation(self) -> int | None:
        """A number that changes whenever what the mirror holds does, while it :meth:`answers`.

        None when it does not answer. Two equal numbers mean :meth:`says` gives the same
        answers to every question, which lets admission remember whole decisions.
        """
        read_at = self._read_at
        if read_at <= self._written_at or time.monotonic() - read_at >= self.MAX_STALENESS:
            return None
        return self._generation

    def says(self, key: _Key) -> bool | None:
        """:meth:`has` when the mirror :meth:`answers`, else None (one call on the hot path)."""
        read_at = self._read_at
        if read_at <= self._written_at or time.monotonic() - read_at >= self.MAX_STALENESS:
            return None
        if key[2] is None or key[3] is None:
            return key in self._yes
        return self.has(key)

    def has(self, key: _Key) -> bool:
        """Whether an entry says ``key`` is promoted (digest, or tag; either when both given)."""
        environment, name, digest, tag = key
        if digest is not None and tag is not None:
            return (environment, name, digest, None) in self._yes or (
                environment,
                name,
                None,
                tag,
            ) in self._yes
        return key in self._yes

    def written(self) -> None:
        """Note a write by this process: the database answers until a read that starts after it."""
        self._written_at = time.monotonic()
        self._wake.set()

    async def start(self) -> None:
        """Read the whole catalog now, then follow the feed in the background."""
        await self._poll()
        if not self.disabled:
            self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        """Stop following; the mirror no longer answers."""
        self.disabled = True
        self._read_at = -float("inf")
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _follow(self) -> None:
        while not self.disabled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.POLL_SECONDS)
            self._wake.clear()
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                if not self._failing:  # once per outage, not once per second
                    logger.warning(
                        "cannot read the catalog's change feed; admission asks the database "
                        "until it can",
                        exc_info=True,
                    )
                self._failing = True
                # What happened meanwhile is not known (the feed may even have been recreated):
                # read everything again once it answers.
                self._revision = None
                continue
            if self._failing:
                logger.warning("the catalog's change feed can be read again")
                self._failing = False

    async def _poll(self) -> None:
        started = time.monotonic()
        found = await self._read(self._revision, self.MAX_ENTRIES)
        if found.full or found.removed or found.entries or found.too_large:
            self._generation += 1
        if found.full:
            self._yes, self._entries, self._strings = {}, 0, {}
        for environment, name, id in found.removed:
            self._set(environment, name, id, None)
        shared = self._strings.setdefault
        for environment, name, id, tags in found.entries:
            self._set(
                shared(environment, environment),
                name,
                id,
                tuple(shared(tag, tag) for tag in json.loads(tags)),
            )
        if found.too_large or self._entries > self.MAX_ENTRIES:
            logger.warning(
                "the catalog has more than %d entries: admission asks the database for each "
                "question it does not remember instead of keeping the catalog in memory",
                self.MAX_ENTRIES,
            )
            self._yes, self._entries, self._strings = {}, 0, {}
            self.disabled = True  # the loop ends; answers() stays False
            self._read_at = -float("inf")
            return
        self._revision = found.revision
        self._read_at = started

    def _set(self, environment: str, name: str, id: str, tags: tuple[str, ...] | None) -> None:
        """Make entry (``environment``, ``name``, ``id``) hold ``tags`` (None: removed)."""
        yes = self._yes
        old = yes.pop((environment, name, id, None), None)
        if isinstance(old, tuple):
            self._entries -= 1
            for tag in set(old):
                key = (environment, name, None, tag)
                left = yes[key]
                assert isinstance(left, int)
                if left > 1:
                    yes[key] = left - 1
                else:
                    del yes[key]
        if tags is None:
            return
        yes[(environment, name, id, None)] = tags
        self._entries += 1
        for tag in set(tags):
            key = (environment, name, None, tag)
            count = yes.get(key, 0)
            assert isinstance(count, int)
            yes[key] = count + 1
