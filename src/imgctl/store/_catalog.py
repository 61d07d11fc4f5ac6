"""The image catalog: imagelist's REST API data, plus the promotions imgctl records in it.

Built like :class:`~imgctl.store.AuditStore` (same engine, same threads model, same migrations):
opening either store migrates the whole schema to the same Alembic head.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, Select, and_, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from ._schema import CATALOG_IMAGES
from ._store import _clean, _SyncStore

__all__ = ["SORT_KEYS", "CatalogImage", "CatalogStore"]

_Key = tuple[str, str, str | None, str | None]  # (environment, name, digest, tag)

SORT_KEYS: Final = ("created_at", "updated_at", "name", "id")

_TABLE: Final = CATALOG_IMAGES


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class CatalogImage:
    """One catalog entry: an image id (usually a digest) in one environment ("" = none)."""

    id: str
    name: str
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    environment: str = ""
    source: str | None = None
    promoted_by: str | None = None
    promoted_at: datetime | None = None

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
        return body


class CatalogStore(_SyncStore):
    """The catalog table of one database; create with :meth:`open`, close with :meth:`aclose`."""

    _LABEL = "catalog"
    # Admission asks the same few questions over and over (every Pod of a Deployment, every
    # restart). A "yes" is fresh for POSITIVE_TTL; for one more POSITIVE_TTL it is still given
    # while the database is asked again in the background (so no review waits on a refresh).
    # A "no" is never kept, so a new promotion is admitted at once. Writes through this store
    # forget everything; a write by another replica (a DELETE) reaches this one's answers
    # within 2 x POSITIVE_TTL.
    POSITIVE_TTL = 2.0
    _positive: dict[_Key, float] | None = None
    _stale: set[_Key] | None = None
    _refresher: asyncio.Task[None] | None = None

    def _forget(self) -> None:
        self._positive = None

    async def _refresh_stale(self) -> None:
        """Re-check every stale answer, many per query, until none is waiting."""
        await asyncio.sleep(0.02)  # let the answers that went stale together gather
        while self._stale:
            keys = list(self._stale)
            self._stale.clear()
            try:
                answers = await self._submit(self._promoted_many, keys)
            except Exception:  # a failed refresh only means the next calls ask the database
                answers = dict.fromkeys(keys, False)
            cache = self._positive
            if cache is None:
                continue
            expires = time.monotonic() + self.POSITIVE_TTL
            for key, yes in answers.items():
                if yes:
                    cache[key] = expires
                else:
                    cache.pop(key, None)

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

    async def get(self, id: str, environment: str | None = None) -> CatalogImage | None:
        """Return the image ``id`` (in ``environment``, else the most recently updated one)."""
        return await self._submit(self._get, _clean(id), environment)

    async def put(
        self, id: str, name: str, tags: Sequence[str], *, environment: str = ""
    ) -> tuple[CatalogImage, bool]:
        """Create the image, or change only the tags of an existing one; True when created."""
        self._forget()
        return await self._submit(self._put, _clean(id), _clean(name), _tags(tags), environment)

    async def record_promotion(
        self,
        *,
        digest: str,
        name: str,
        tags: Sequence[str],
        environment: str,
        promoted_by: str | None,
        source: str | None,
    ) -> CatalogImage:
        """Upsert the promotion of ``digest`` to ``environment``; tags become old + new."""
        self._forget()
        values = {
            "name": _clean(name),
            "source": None if source is None else _clean(source),
            "promoted_by": None if promoted_by is None else _clean(promoted_by),
        }
        return await self._submit(
            self._record_promotion, _clean(digest), _clean(environment), _tags(tags), values
        )

    async def delete(self, id: str, environment: str | None = None) -> int:
        """Remove the image ``id`` (from ``environment``, else from all); return rows removed."""
        self._forget()
        try:
            return await self._submit(self._delete, _clean(id), environment)
        finally:
            self._forget()  # a lookup that raced the delete must not keep its "yes"

    async def promoted(
        self, environment: str, name: str, digest: str | None = None, tag: str | None = None
    ) -> bool:
        """Tell whether ``name`` at ``digest`` (or with ``tag``) is in ``environment``.

        Positional or keyword: the admission webhook's lookup calls it positionally.
        """
        if digest is None and tag is None:
            return False
        key = (environment, name, digest, tag)
        now = time.monotonic()
        cache = self._positive
        expires = cache.get(key, 0.0) if cache is not None else 0.0
        if expires > now:
            return True
        if expires + self.POSITIVE_TTL > now and cache is not None:
            # Stale but recent: answer now, and have the refresher check it again with the
            # others that went stale (one query for many, off the request's path).
            cache[key] = now + self.POSITIVE_TTL  # no second refresh while this one runs
            if self._stale is None:
                self._stale = set()
            self._stale.add(key)
            if self._refresher is None or self._refresher.done():
                self._refresher = asyncio.ensure_future(self._refresh_stale())
            return True
        answer: bool = await self._submit(self._promoted, environment, name, digest, tag)
        if answer:
            if self._positive is None or len(self._positive) > 100_000:
                self._positive = {}
            self._positive[key] = now + self.POSITIVE_TTL
        return answer

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""
        await self._submit(self._ping)

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
        query = query.order_by(_TABLE.c[sort].desc(), _TABLE.c.id, _TABLE.c.environment)
        with self._engine.connect() as connection:
            images = [_from_row(row) for row in connection.execute(query)]
        if tag is not None:
            images = [image for image in images if _clean(tag) in image.tags]
        return images

    def _get(self, id: str, environment: str | None) -> CatalogImage | None:
        with self._engine.connect() as connection:
            return _select_one(connection, id, environment)

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
        with self._write_lock, self._writer.begin() as connection:
            created = self._insert_new(connection, row)
            if not created:
                connection.execute(
                    _TABLE.update()
                    .where(_TABLE.c.id == id, _TABLE.c.environment == environment)
                    .values(tags=_dump(tags), updated_at=now)
                )
            image = _select_one(connection, id, environment)
        assert image is not None  # written in this transaction
        return image, created

    def _record_promotion(
        self, digest: str, environment: str, tags: tuple[str, ...], values: dict[str, Any]
    ) -> CatalogImage:
        now = datetime.now(UTC)
        row = {
            "id": digest,
            "environment": environment,
            "tags": _dump(tags),
            "promoted_at": now,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        with self._write_lock, self._writer.begin() as connection:
            if not self._insert_new(connection, row):
                query = select(_TABLE.c.tags).where(
                    _TABLE.c.id == digest, _TABLE.c.environment == environment
                )
                if not self._sqlite:
                    query = query.with_for_update()
                old = tuple(json.loads(connection.execute(query).scalar_one()))
                merged = old + tuple(tag for tag in dict.fromkeys(tags) if tag not in old)
                connection.execute(
                    _TABLE.update()
                    .where(_TABLE.c.id == digest, _TABLE.c.environment == environment)
                    .values(tags=_dump(merged), promoted_at=now, updated_at=now, **values)
                )
            image = _select_one(connection, digest, environment)
        assert image is not None  # written in this transaction
        return image

    def _delete(self, id: str, environment: str | None) -> int:
        statement = _TABLE.delete().where(_TABLE.c.id == id)
        if environment is not None:
            statement = statement.where(_TABLE.c.environment == _clean(environment))
        with self._write_lock, self._writer.begin() as connection:
            return int(connection.execute(statement).rowcount)

    def _promoted(self, environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        environment, name = _clean(environment), _clean(name)
        with self._engine.connect() as connection:
            if digest is not None:
                # The primary key (id, environment) answers this one.
                hit = connection.execute(
                    select(_TABLE.c.name).where(
                        _TABLE.c.id == _clean(digest),
                        _TABLE.c.environment == environment,
                        _TABLE.c.name == name,
                    )
                ).first()
                if hit is not None:
                    return True
            if tag is not None:
                tag = _clean(tag)
                query = _tag_prefilter(
                    select(_TABLE.c.tags).where(
                        _TABLE.c.name == name, _TABLE.c.environment == environment
                    ),
                    tag,
                )
                for tags in connection.execute(query).scalars():
                    if tag in json.loads(tags):
                        return True
        return False

    def _promoted_many(self, keys: builtins.list[_Key]) -> dict[_Key, bool]:
        """The answers for many keys with one query per 200 (environment, name) pairs."""
        pairs = sorted({(_clean(e), _clean(n)) for e, n, _, _ in keys})
        found: dict[tuple[str, str], builtins.list[tuple[str, builtins.list[str]]]] = {}
        with self._engine.connect() as connection:
            for start in range(0, len(pairs), 200):
                chunk = pairs[start : start + 200]
                query = select(
                    _TABLE.c.environment, _TABLE.c.name, _TABLE.c.id, _TABLE.c.tags
                ).where(
                    or_(*(and_(_TABLE.c.environment == e, _TABLE.c.name == n) for e, n in chunk))
                )
                for row in connection.execute(query):
                    found.setdefault((row.environment, row.name), []).append(
                        (row.id, json.loads(row.tags))
                    )
        answers: dict[_Key, bool] = {}
        for key in keys:
            environment, name, digest, tag = key
            entries = found.get((_clean(environment), _clean(name)), [])
            answers[key] = any(
                (digest is not None and image_id == _clean(digest))
                or (tag is not None and _clean(tag) in tags)
                for image_id, tags in entries
            )
        return answers

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
    # The JSON text holds the tag as a quoted string; the exact check happens in Python.
    return query.where(_TABLE.c.tags.contains(_dump([tag])[1:-1], autoescape=True))


def _select_one(connection: Connection, id: str, environment: str | None) -> CatalogImage | None:
    query = select(_TABLE).where(_TABLE.c.id == id)
    if environment is not None:
        query = query.where(_TABLE.c.environment == _clean(environment))
    query = query.order_by(_TABLE.c.updated_at.desc(), _TABLE.c.environment).limit(1)
    row = connection.execute(query).first()
    return None if row is None else _from_row(row)


def _from_row(row: Row[Any]) -> CatalogImage:
    mapping = dict(row._mapping)
    mapping["tags"] = tuple(json.loads(mapping["tags"]))
    return CatalogImage(**mapping)
