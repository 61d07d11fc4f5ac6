"""The image catalog: imagelist's REST API data, plus the promotions imgctl records in it.

An entry is identified by its id (a digest, for promotions), environment and repository name:
one digest promoted under two repository names is two entries, and neither answers admission's
questions about the other. Entries of no environment ("") keep imagelist's identity, the id
alone.

Built like :class:`~imgctl.store.AuditStore` (same engine, same threads model, same migrations):
opening either store migrates the whole schema to the same Alembic head.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, Select, bindparam, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from ._catalog_import import ImportImage, ImportResult, check_images, import_rows
from ._catalog_mirror import CatalogMirror, FeedRead, next_revision, read_feed, record_removals
from ._schema import CATALOG_IMAGES
from ._store import _T, _clean, _SyncStore

__all__ = ["SORT_KEYS", "CatalogImage", "CatalogStore", "ImportImage", "ImportResult"]

_Key = tuple[str, str, str | None, str | None]  # (environment, name, digest, tag)

SORT_KEYS: Final = ("created_at", "updated_at", "name", "id")

_TABLE: Final = CATALOG_IMAGES


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class CatalogImage:
    """One catalog entry: an image id (usually a digest) of a repository in an environment.

    ``name`` is the repository; ``environment`` "" means none (imagelist's own entries).
    """

    id: str
    name: str
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    environment: str = ""
    source: str | None = None
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    # Whether the promotion that recorded the entry was signed / attested by the server's key;
    # None: not known (a server without a signing key, an entry written with PUT /images).
    signed: bool | None = None
    attested: bool | None = None

    def as_json(self) -> dict[str, object]:
        """Return imagelist's object, plus the promotion fields that are set."""
        body: dict[str, object] = {
            "created_at": _rfc3339(self.created_at),
            "updated_at": _rfc3339(self.updated_at),
            "id": self.id,
            "name": self.name,
            "tags": list(self.tags),
        }
        if self.environment:
            body["environment"] = self.environment
        if self.source is not None:
            body["source"] = self.source
        if self.promoted_by is not None:
            body["promoted_by"] = self.promoted_by
        if self.promoted_at is not None:
            body["promoted_at"] = _rfc3339(self.promoted_at)
        if self.signed is not None:
            body["signed"] = self.signed
        if self.attested is not None:
            body["attested"] = self.attested
        return body


class _Answers:
    """What admission asked the catalog: remembered "yes" answers, and questions in batches.

    Admission asks the same few questions over and over (every Pod of a Deployment, every
    restart). A "yes" is fresh for ``ttl`` seconds; for ``ttl`` more it is still given while the
    database is asked again in the background, so no review waits on a refresh. A "no" is never
    kept, so a new promotion is admitted at once. :meth:`forget` (every write through the store)
    drops everything, and an answer read before a forget is not remembered after it. A write by
    another replica (a DELETE) reaches these answers within 2 x ``ttl``.

    Questions that are not remembered wait for the next batch: all the questions asked while a
    batch is in the database go together in the next one, so a burst of new Pods costs a few
    queries, not three per Pod.
    """

    MAX_REMEMBERED: Final = 100_000

    def __init__(self, ask: Callable[[list[_Key]], Awaitable[dict[_Key, bool]]]) -> None:
        self.ttl = 2.0
        self._ask = ask
        self._yes: dict[_Key, float] = {}
        self._generation = 0
        self._stale: set[_Key] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._pending: dict[_Key, asyncio.Future[bool]] = {}
        self._batcher: asyncio.Task[None] | None = None

    def forget(self) -> None:
        """Drop every remembered answer, including those of lookups still running."""
        self._yes = {}
        self._generation += 1

    def known(self, key: _Key) -> bool:
        """True if a recent answer says "promoted"; no I/O (call it on the event loop)."""
        expires = self._yes.get(key)
        if expires is None:
            return False
        now = time.monotonic()
        if expires > now:
            return True
        if expires + self.ttl <= now:
            return False
        # Stale but recent: answer now, and have the refresher check it again with the others
        # that went stale (one query for many, off the request's path).
        self._yes[key] = now + self.ttl  # no second refresh while this one runs
        self._stale.add(key)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh_stale())
        return True

    async def ask(self, key: _Key, *, remembered: bool = True) -> bool:
        """The answer for ``key``: remembered, or from the database in the next batch.

        ``remembered`` False skips the remembered answers (the mirror has already said no).
        """
        if remembered and self.known(key):
            return True
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            self._pending[key] = future
            if self._batcher is None or self._batcher.done():
                self._batcher = asyncio.ensure_future(self._run_batches())
        # Shielded: a review that gives up must not cancel the answer other reviews wait for.
        return await asyncio.shield(future)

    async def _run_batches(self) -> None:
        await asyncio.sleep(0)  # the questions of this turn of the loop join the first batch
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                answers = await self._lookup(list(batch))
            except Exception as error:
                for future in batch.values():
                    if not future.done():
                        future.set_exception(error)
                continue
            for key, future in batch.items():
                if not future.done():
                    future.set_result(answers[key])

    async def _refresh_stale(self) -> None:
        """Re-check every stale answer, many per query, until none is waiting."""
        await asyncio.sleep(0.02)  # let the answers that went stale together gather
        while self._stale:
            keys = list(self._stale)
            self._stale.clear()
            try:
                await self._lookup(keys)
            except Exception:  # a failed refresh only means the next calls ask the database
                for key in keys:
                    self._yes.pop(key, None)

    async def _lookup(self, keys: list[_Key]) -> dict[_Key, bool]:
        generation, asked = self._generation, time.monotonic()
        answers = await self._ask(keys)
        if generation == self._generation:  # else a write came between: remember nothing
            if len(self._yes) > self.MAX_REMEMBERED:
                self._yes = {}
            expires = asked + self.ttl
            for key, yes in answers.items():
                if yes:
                    self._yes[key] = expires
                else:
                    self._yes.pop(key, None)
        return answers


def _retrieve(future: asyncio.Future[bool]) -> None:
    # A batch's error is read by whoever waits; this keeps asyncio from reporting it as
    # "never retrieved" when every waiter had already given up.
    if not future.cancelled():
        future.exception()


class CatalogStore(_SyncStore):
    """The catalog table of one database; create with :meth:`open`, close with :meth:`aclose`."""

    _LABEL = "catalog"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answers = _Answers(lambda keys: self._submit(self._promoted_many, keys))
        self._mirror: CatalogMirror | None = None

    async def follow(self) -> None:
        """Keep the catalog in memory for admission: read it all now, then follow its feed.

        From then on :meth:`known` and :meth:`promoted` answer "promoted" from memory while the
        mirror is fresh (see ``_catalog_mirror``); anything it does not hold, and everything
        while its feed cannot be read, is asked of the database as before.
        """
        if self._mirror is None:
            self._mirror = CatalogMirror(
                lambda since, limit: self._submit(_read, self, since, limit)
            )
            await self._mirror.start()

    @property
    def mirror(self) -> CatalogMirror | None:
        """The in-memory copy :meth:`follow` keeps, if any."""
        return self._mirror

    async def aclose(self) -> None:
        """Stop following the feed, then close like every store."""
        if self._mirror is not None:
            await self._mirror.stop()
        await super().aclose()

    @property
    def POSITIVE_TTL(self) -> float:
        """Seconds a "yes" of :meth:`promoted` is fresh (and then stale for as long again)."""
        return self._answers.ttl

    @POSITIVE_TTL.setter
    def POSITIVE_TTL(self, seconds: float) -> None:
        self._answers.ttl = seconds

    async def list(
        self,
        *,
        name: str | None = None,
        sort: str = "updated_at",
        environment: str | None = None,
        tag: str | None = None,
        digest: str | None = None,
    ) -> builtins.list[CatalogImage]:
        """Return the matching images, descending by ``sort`` (one of :data:`SORT_KEYS`)."""
        if sort not in SORT_KEYS:
            raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
        return await self._submit(self._list, name, sort, environment, tag, digest)

    async def get(
        self, id: str, environment: str | None = None, *, name: str | None = None
    ) -> CatalogImage | None:
        """Return the entry of ``id`` (in ``environment``, of repository ``name``).

        Of several matching entries (one digest in several environments or repositories), the
        most recently updated one.
        """
        return await self._submit(self._get, _clean(id), _optional(environment), _optional(name))

    async def put(
        self, id: str, name: str, tags: Sequence[str], *, environment: str = ""
    ) -> tuple[CatalogImage, bool]:
        """Create the entry, or change only the tags of an existing one; True when created.

        With an ``environment`` the entry is (id, environment, name): another repository's
        entry of the same id is another entry. Without one (imagelist's own entries) it is the
        id alone, and an existing id keeps its name, as imagelist does.
        """
        return await self._write(
            self._put, _clean(id), _clean(name), _tags(tags), _clean(environment)
        )

    async def record_promotion(
        self,
        *,
        digest: str,
        name: str,
        tags: Sequence[str],
        environment: str,
        promoted_by: str | None,
        source: str | None,
        signed: bool | None = None,
        attested: bool | None = None,
    ) -> CatalogImage:
        """Upsert the promotion of ``digest`` of repository ``name`` to ``environment``.

        The entry's tags become old + new. A promoted tag names this digest in the
        environment's registry now, so it is taken off the repository's other entries there
        (their digests stay promoted). ``signed`` / ``attested`` replace what the entry says
        when given; None (this promotion cannot tell) keeps what an earlier one recorded.
        """
        values: dict[str, Any] = {
            "name": _clean(name),
            "source": None if source is None else _clean(source),
            "promoted_by": None if promoted_by is None else _clean(promoted_by),
        }
        for column, value in (("signed", signed), ("attested", attested)):
            if value is not None:
                values[column] = bool(value)
        return await self._write(
            self._record_promotion, _clean(digest), _clean(environment), _tags(tags), values
        )

    async def delete(
        self, id: str, environment: str | None = None, *, name: str | None = None
    ) -> int:
        """Remove the entries of ``id`` (in ``environment``, of repository ``name``, else all).

        Returns how many entries were removed.
        """
        return len(await self.remove(id, environment, name=name))

    async def remove(
        self, id: str, environment: str | None = None, *, name: str | None = None
    ) -> builtins.list[tuple[str, str, str]]:
        """Like :meth:`delete`, but return the removed entries as (environment, name, id)."""
        return await self._write(self._delete, _clean(id), _optional(environment), _optional(name))

    # --- bulk import (issue 21 target 4; the rows' rules are in _catalog_import) -------------

    async def import_images(
        self, images: Sequence[ImportImage], *, dry_run: bool = False
    ) -> ImportResult:
        """Import many entries in one transaction: all of them, or none on any error.

        New entries are created; entries already present keep what they have and gain the
        tags they lack; a tag given to a digest leaves the repository's other entries in that
        environment. Importing the same images again writes nothing. ``dry_run`` reads and
        counts without writing. Raises ValueError for a key given twice, or one tag of a
        repository given to two digests.
        """
        images = tuple(images)
        check_images(images)
        if dry_run:
            return await self._submit(self._import_images, images, True)
        return await self._write(self._import_images, images, False)

    def _import_images(self, images: tuple[ImportImage, ...], dry_run: bool) -> ImportResult:
        if dry_run:
            with self._engine.connect() as connection:
                return import_rows(connection, images, sqlite=self._sqlite, dry_run=True)
        with self._write_lock, self._writer.begin() as connection:
            return import_rows(connection, images, sqlite=self._sqlite, dry_run=False)

    async def _write(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run a write on the store's threads, then forget every remembered answer.

        Forgetting after the write (committed or not) also drops the answers of lookups that
        read the table before it committed: their generation is then out of date.
        """
        try:
            return await self._submit(function, *args)
        finally:
            self._answers.forget()
            if self._mirror is not None:
                self._mirror.written()

    def known(
        self, environment: str, name: str, digest: str | None = None, tag: str | None = None
    ) -> bool:
        """Tell, from memory and without I/O, whether a recent answer says "promoted".

        False means "not known here" (ask :meth:`promoted`), not "not promoted". Call it on the
        event loop: a stale answer schedules its re-check there.
        """
        key = (environment, name, digest, tag)
        if self._mirror is not None:
            said = self._mirror.says(key)
            if said is not None:
                return said
        return self._answers.known(key)

    def generation(self) -> int | None:
        """The in-memory catalog's generation while it alone answers :meth:`known`, else None.

        While two calls give the same number, :meth:`known` gives the same answers (see
        ``CatalogMirror.generation``): admission remembers allowed decisions under it.
        """
        return self._mirror.generation() if self._mirror is not None else None

    async def promoted(
        self, environment: str, name: str, digest: str | None = None, tag: str | None = None
    ) -> bool:
        """Tell whether ``name`` at ``digest`` (or with ``tag``) is in ``environment``.

        Positional or keyword: the admission webhook's lookup calls it positionally.
        """
        if digest is None and tag is None:
            return False
        key = (environment, name, digest, tag)
        mirror = self._mirror
        if mirror is not None and mirror.answers():
            if mirror.has(key):
                return True
            # Not in memory: maybe promoted after the mirror's last read, so ask the database.
            return await self._answers.ask(key, remembered=False)
        return await self._answers.ask(key)

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""
        await self._submit(self._ping)

    async def version(self) -> tuple[int, datetime | None]:
        """A cheap mark of the table's content: (entries, newest ``updated_at``).

        Every write sets ``updated_at`` to now and a delete changes the count, so a reader that
        keeps what it read with this mark knows when to read again (the web pages do), whichever
        replica wrote.
        """
        return await self._submit(self._version)

    # --- on the store's threads ------------------------------------------------------------

    def _list(
        self,
        name: str | None,
        sort: str,
        environment: str | None,
        tag: str | None,
        digest: str | None,
    ) -> builtins.list[CatalogImage]:
        query = select(_TABLE)
        if name is not None:
            query = query.where(_TABLE.c.name == _clean(name))
        if environment is not None:
            query = query.where(_TABLE.c.environment == _clean(environment))
        if digest is not None:
            digest = _clean(digest)
            query = query.where(
                or_(_TABLE.c.id == digest, _TABLE.c.id.endswith("@" + digest, autoescape=True))
            )
        if tag is not None:
            query = _tag_prefilter(query, _clean(tag))
        query = query.order_by(
            _TABLE.c[sort].desc(), _TABLE.c.id, _TABLE.c.environment, _TABLE.c.name
        )
        with self._engine.connect() as connection:
            images = [_from_row(row) for row in connection.execute(query)]
        if tag is not None:
            images = [image for image in images if _clean(tag) in image.tags]
        return images

    def _get(self, id: str, environment: str | None, name: str | None) -> CatalogImage | None:
        with self._engine.connect() as connection:
            return _select_one(connection, id, environment, name)

    def _put(
        self, id: str, name: str, tags: tuple[str, ...], environment: str
    ) -> tuple[CatalogImage, bool]:
        now = datetime.now(UTC)
        row = {
            "id": id,
            "environment": environment,
            "name": name,
            "tags": _dump(tags),
            "created_at": now,
            "updated_at": now,
        }
        # imagelist's own entries (no environment) are one per id, whatever the name.
        key_name = name if environment else None
        with self._write_lock, self._writer.begin() as connection:
            row["revision"] = revision = next_revision(connection)
            created = self._insert_new(connection, row)
            if not created:
                connection.execute(
                    _TABLE.update()
                    .where(*_key(id, environment, key_name))
                    .values(tags=_dump(tags), updated_at=now, revision=revision)
                )
            image = _select_one(connection, id, environment, key_name)
        assert image is not None  # written in this transaction
        return image, created

    def _record_promotion(
        self, digest: str, environment: str, tags: tuple[str, ...], values: dict[str, Any]
    ) -> CatalogImage:
        now = datetime.now(UTC)
        row = {
            "id": digest,
            "environment": environment,
            "tags": _dump(tuple(dict.fromkeys(tags))),
            "promoted_at": now,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        name: str = values["name"]
        key = _key(digest, environment, name)
        with self._write_lock, self._writer.begin() as connection:
            if not self._sqlite:
                # Promotions into one repository and environment take turns, so that two
                # moving the same tag at once cannot both keep it. (SQLite writes one at a time.)
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": _repository_lock(environment, name)},
                )
            row["revision"] = revision = next_revision(connection)
            if not self._insert_new(connection, row):
                query = select(_TABLE.c.tags).where(*key)
                if not self._sqlite:
                    query = query.with_for_update()
                old = tuple(json.loads(connection.execute(query).scalar_one()))
                merged = old + tuple(tag for tag in dict.fromkeys(tags) if tag not in old)
                connection.execute(
                    _TABLE.update()
                    .where(*key)
                    .values(
                        tags=_dump(merged),
                        promoted_at=now,
                        updated_at=now,
                        revision=revision,
                        **values,
                    )
                )
            self._untag_others(connection, digest, environment, name, tags, now, revision)
            image = _select_one(connection, digest, environment, name)
        assert image is not None  # written in this transaction
        return image

    def _untag_others(
        self,
        connection: Connection,
        digest: str,
        environment: str,
        name: str,
        tags: tuple[str, ...],
        now: datetime,
        revision: int,
    ) -> None:
        """Take ``tags`` off the other entries of repository ``name`` in ``environment``."""
        if not tags:
            return
        query = select(_TABLE.c.id, _TABLE.c.tags).where(
            _TABLE.c.environment == environment,
            _TABLE.c.name == name,
            _TABLE.c.id != digest,
            or_(*(_TABLE.c.tags.contains(_tag_pattern(tag), escape="/") for tag in set(tags))),
        )
        if not self._sqlite:
            query = query.with_for_update()
        moved = set(tags)
        for id, stored in connection.execute(query).all():
            old = json.loads(stored)
            kept = [tag for tag in old if tag not in moved]
            if len(kept) != len(old):  # the LIKE only pre-filters
                connection.execute(
                    _TABLE.update()
                    .where(*_key(id, environment, name))
                    .values(tags=_dump(kept), updated_at=now, revision=revision)
                )

    def _delete(
        self, id: str, environment: str | None, name: str | None
    ) -> builtins.list[tuple[str, str, str]]:
        statement = (
            _TABLE.delete()
            .where(*_key(id, environment, name))
            .returning(_TABLE.c.environment, _TABLE.c.name, _TABLE.c.id)
        )
        with self._write_lock, self._writer.begin() as connection:
            revision = next_revision(connection)
            removed = [(str(e), str(n), str(i)) for e, n, i in connection.execute(statement)]
            record_removals(connection, revision, removed)
            return removed

    def _promoted_many(self, keys: builtins.list[_Key]) -> dict[_Key, bool]:
        """Answer many questions at once: the digests by primary key, the tags by name.

        One query per environment for the digests, and one per (environment, tag) for the
        tags, each for up to 500 values: a batch of questions from a busy cluster costs a
        handful of queries.
        """
        cleaned = {key: _clean_key(key) for key in keys}
        digests: dict[str, set[str]] = {}
        tagged: dict[tuple[str, str], set[str]] = {}
        for environment, name, digest, tag in cleaned.values():
            if digest is not None:
                digests.setdefault(environment, set()).add(digest)
            if tag is not None:
                tagged.setdefault((environment, tag), set()).add(name)
        found: set[tuple[str, str, str | None, str | None]] = set()
        with self._engine.connect() as connection:
            for environment, ids in digests.items():
                for chunk in _chunks(ids):
                    rows = connection.execute(
                        _DIGESTS_QUERY, {"environment": environment, "ids": chunk}
                    )
                    found.update((environment, name, id, None) for id, name in rows)
            for (environment, tag), names in tagged.items():
                pattern = _tag_pattern(tag)
                for chunk in _chunks(names):
                    rows = connection.execute(
                        _TAGGED_QUERY,
                        {"environment": environment, "names": chunk, "quoted": pattern},
                    )
                    found.update(
                        (environment, name, None, tag)
                        for name, tags in rows
                        if tag in json.loads(tags)  # the LIKE only pre-filters
                    )
        answers: dict[_Key, bool] = {}
        for key, (environment, name, digest, tag) in cleaned.items():
            answers[key] = (environment, name, digest, None) in found or (
                (environment, name, None, tag) in found
            )
        return answers

    def _version(self) -> tuple[int, datetime | None]:
        query = select(func.count(), func.max(_TABLE.c.updated_at))
        with self._engine.connect() as connection:
            count, newest = connection.execute(query).one()
        if isinstance(newest, datetime) and newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        return int(count), newest

    def _ping(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _insert_new(self, connection: Connection, row: dict[str, Any]) -> bool:
        """Insert ``row`` unless its key exists (race-free on both databases); True if inserted."""
        statement: Insert
        if self._sqlite:
            statement = sqlite.insert(_TABLE).values(row).on_conflict_do_nothing()
        else:
            statement = postgresql.insert(_TABLE).values(row).on_conflict_do_nothing()
        # RETURNING rather than rowcount, which psycopg does not report for ON CONFLICT here.
        return connection.execute(statement.returning(_TABLE.c.id)).first() is not None


# Admission's questions, as fixed statements (compiled once) that bind their values as lists.
_DIGESTS_QUERY: Final = select(_TABLE.c.id, _TABLE.c.name).where(
    _TABLE.c.environment == bindparam("environment"),
    _TABLE.c.id.in_(bindparam("ids", expanding=True)),
)
# Tags are pre-filtered with _tag_pattern.
_TAGGED_QUERY: Final = select(_TABLE.c.name, _TABLE.c.tags).where(
    _TABLE.c.environment == bindparam("environment"),
    _TABLE.c.name.in_(bindparam("names", expanding=True)),
    _TABLE.c.tags.contains(bindparam("quoted"), escape="/"),
)


def _key(id: str, environment: str | None, name: str | None) -> builtins.list[Any]:
    """The WHERE clauses selecting ``id``'s entries, narrowed to those given."""
    clauses: builtins.list[Any] = [_TABLE.c.id == id]
    if environment is not None:
        clauses.append(_TABLE.c.environment == environment)
    if name is not None:
        clauses.append(_TABLE.c.name == name)
    return clauses


def _optional(value: str | None) -> str | None:
    return None if value is None else _clean(value)


def _repository_lock(environment: str, name: str) -> int:
    """The PostgreSQL advisory lock key of one repository in one environment (64-bit)."""
    digest = hashlib.sha256(f"imgctl.catalog\0{environment}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _clean_key(key: _Key) -> _Key:
    environment, name, digest, tag = key
    return (
        _clean(environment),
        _clean(name),
        None if digest is None else _clean(digest),
        None if tag is None else _clean(tag),
    )


def _chunks(values: set[str], size: int = 500) -> Iterator[builtins.list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _tag_pattern(tag: str) -> str:
    """What ``tags LIKE '%' || pattern || '%' ESCAPE '/'`` needs to pre-filter rows with ``tag``.

    The JSON text holds the tag as a quoted string; the exact check happens in Python.
    """
    quoted = _dump([tag])[1:-1]
    return quoted.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _tags(tags: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise TypeError("tags must be a sequence of tag names, not a str")
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings, got {type(tag).__name__}")
    return tuple(_clean(tag) for tag in tags)


def _dump(tags: Sequence[str]) -> str:
    return json.dumps(list(tags), ensure_ascii=False)


def _tag_prefilter(query: Select[Any], tag: str) -> Select[Any]:
    return query.where(_TABLE.c.tags.contains(_tag_pattern(tag), escape="/"))


def _select_one(
    connection: Connection, id: str, environment: str | None, name: str | None
) -> CatalogImage | None:
    """The most recently updated entry of ``id`` (in ``environment``, of ``name``), if any."""
    query = select(_TABLE).where(*_key(id, environment, name))
    query = query.order_by(_TABLE.c.updated_at.desc(), _TABLE.c.environment, _TABLE.c.name).limit(1)
    row = connection.execute(query).first()
    return None if row is None else _from_row(row)


def _read(store: CatalogStore, since: int | None, limit: int) -> FeedRead:
    """The mirror's read of the feed, on the store's threads (a connection of its own)."""
    with store._engine.connect() as connection:
        return read_feed(connection, since, limit)


def _from_row(row: Row[Any]) -> CatalogImage:
    mapping = dict(row._mapping)
    mapping.pop("revision", None)  # the feed's, not the entry's
    mapping["tags"] = tuple(json.loads(mapping["tags"]))
    return CatalogImage(**mapping)
