"""Bulk import into the catalog: many entries in one transaction, at the database's bulk speed.

:meth:`CatalogStore.import_images` hands its work here, on the store's threads. One
transaction: the existing entries of the imported repositories are read once, what changes is
worked out in Python, then the new entries go in as one bulk write (SQLite: ``executemany`` of
one prepared INSERT; PostgreSQL: ``COPY``) and the changed ones as one batched UPDATE. Either
everything is written or nothing is.

What an import means for an entry (key: digest, environment, repository), the same as a
promotion recorded with ``PUT /images`` semantics plus the promotion's tag rule:

* a new entry is created with the file's tags and, when the file has them, its ``source``,
  ``promoted_by``, ``promoted_at``, ``signed``, ``attested`` and ``created_at``;
* an entry already present keeps everything it has; tags the file gives it that it lacks are
  added after its own;
* a tag names one digest of a repository in an environment: a tag the file gives to a digest
  is taken off that repository's other entries there (their digests stay recorded), as
  ``record_promotion`` does.

So importing the same file twice writes nothing the second time. A write bumps the catalog's
change feed once and stamps every entry it writes with the new revision, as every catalog
write does (``_catalog_mirror``), so admission's in-memory copies pick the entries up.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Result, Row, Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError

from ._catalog_mirror import next_revision
from ._schema import CATALOG_IMAGES

__all__ = ["ImportImage", "ImportResult", "check_images", "import_rows"]

_TABLE: Final = CATALOG_IMAGES
_Key = tuple[str, str, str]  # (environment, name, id)

# SQLite binds at most 32,766 values per statement (250,000 since 3.32 is not everywhere).
_SQLITE_CHUNK: Final = 5000
_COLUMNS: Final = (
    "id",
    "environment",
    "name",
    "tags",
    "source",
    "promoted_by",
    "promoted_at",
    "signed",
    "attested",
    "created_at",
    "updated_at",
    "revision",
)


@dataclass(frozen=True, slots=True)
class ImportImage:
    """One entry to import: ``id`` (a digest) of repository ``name`` in ``environment``."""

    environment: str
    name: str
    id: str
    tags: tuple[str, ...] = ()
    source: str | None = None
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    signed: bool | None = None
    attested: bool | None = None
    created_at: datetime | None = None

    @property
    def key(self) -> _Key:
        """The catalog's identity of the entry."""
        return (self.environment, self.name, self.id)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did (or, for a dry run, would do)."""

    images: int
    """Entries in the import."""
    new: int
    """Of those, entries the catalog did not have."""
    present: int
    """Of those, entries the catalog had already."""
    tagged: int
    """Entries already present that got tags they lacked."""
    untagged: int
    """Other entries of the imported repositories whose tag the import gave to another digest."""
    environments: tuple[str, ...]
    dry_run: bool = False

    def as_json(self) -> dict[str, object]:
        """The result as ``-o json`` prints it."""
        return {
            "images": self.images,
            "new": self.new,
            "present": self.present,
            "tagged": self.tagged,
            "untagged": self.untagged,
            "environments": list(self.environments),
            "dryRun": self.dry_run,
        }


def check_images(images: Sequence[ImportImage]) -> None:
    """Raise ValueError if two images share a key or one tag of a repository names two digests.

    The file readers report these with line numbers first; this keeps the store's rule for any
    caller.
    """
    seen: set[_Key] = set()
    owner: dict[tuple[str, str, str], str] = {}
    for image in images:
        if not image.environment:
            raise ValueError(f"{image.name}@{image.id}: an imported entry needs an environment")
        if image.key in seen:
            raise ValueError(f"{image.name}@{image.id} in {image.environment} is imported twice")
        seen.add(image.key)
        for tag in image.tags:
            other = owner.setdefault((image.environment, image.name, tag), image.id)
            if other != image.id:
                raise ValueError(
                    f"tag {tag!r} of {image.name} in {image.environment} is given to both "
                    f"{other} and {image.id}"
                )


@dataclass
class _Plan:
    """What importing changes, worked out from the entries the catalog has now."""

    present: set[_Key]
    new: builtins.list[ImportImage]
    updates: builtins.list[dict[str, Any]]
    tagged: int
    untagged: int


def import_rows(
    connection: Connection, images: Sequence[ImportImage], *, sqlite: bool, dry_run: bool
) -> ImportResult:
    """Import ``images`` on ``connection``, inside the caller's transaction.

    A write bumps the catalog's change feed and stamps what it writes with the new revision
    (``_catalog_mirror``: admission's in-memory copies read what changed after the revision they
    saw). An import that changes nothing writes nothing, the feed included.
    """
    plan = _plan(connection, images, sqlite=sqlite)
    if not dry_run and (plan.new or plan.updates):
        revision = next_revision(connection)  # first of every lock this write takes
        if not sqlite:
            # Writers that do not take the feed's turn (an older imgctl) wait too, so what is
            # read below is still true when it is written; readers (admission) go on. SHARE ROW
            # EXCLUSIVE conflicts with itself and with every row write, not with SELECT.
            connection.execute(text(f"LOCK TABLE {_TABLE.name} IN SHARE ROW EXCLUSIVE MODE"))
            # Read again under the lock: another writer may have committed since.
            plan = _plan(connection, images, sqlite=sqlite)
        now = datetime.now(UTC)
        if plan.new:
            if sqlite:
                _insert_sqlite(connection, plan.new, now, revision)
            else:
                _copy_postgres(connection, plan.new, now, revision)
        if plan.updates:
            connection.execute(_UPDATE.values(updated_at=now, revision=revision), plan.updates)
    return ImportResult(
        images=len(images),
        new=len(plan.new),
        present=len(plan.present),
        tagged=plan.tagged,
        untagged=plan.untagged,
        environments=tuple(sorted({image.environment for image in images})),
        dry_run=dry_run,
    )


def _plan(connection: Connection, images: Sequence[ImportImage], *, sqlite: bool) -> _Plan:
    incoming = {image.key: image for image in images}
    owner = {
        (image.environment, image.name, tag): image.id for image in images for tag in image.tags
    }
    present: set[_Key] = set()
    tagged = untagged = 0
    updates: builtins.list[dict[str, Any]] = []
    for environment, name, id, stored in _existing(connection, images, sqlite=sqlite):
        old: builtins.list[str] = json.loads(stored)
        # Tags the import gives to another digest of this repository leave this entry.
        tags = [tag for tag in old if owner.get((environment, name, tag), id) == id]
        if len(tags) < len(old):
            untagged += 1
        image = incoming.get((environment, name, id))
        if image is not None:
            present.add(image.key)
            added = [tag for tag in image.tags if tag not in tags]
            if added:
                tagged += 1
                tags += added
        if tags != old:
            updates.append({"k_id": id, "k_env": environment, "k_name": name, "tags": _dump(tags)})
    new = [image for image in images if image.key not in present]
    return _Plan(present, new, updates, tagged, untagged)


_UPDATE: Final = (
    _TABLE.update()
    .where(
        _TABLE.c.id == bindparam("k_id"),
        _TABLE.c.environment == bindparam("k_env"),
        _TABLE.c.name == bindparam("k_name"),
    )
    .values(tags=bindparam("tags"))
)


def _dump(tags: Sequence[str]) -> str:
    # The catalog's own JSON text of a tag list (store._catalog._dump).
    return json.dumps(list(tags), ensure_ascii=False)


def _values(image: ImportImage, now: datetime, revision: int) -> tuple[Any, ...]:
    return (
        image.id,
        image.environment,
        image.name,
        _dump(image.tags),
        image.source,
        image.promoted_by,
        image.promoted_at,
        image.signed,
        image.attested,
        image.created_at or now,
        now,
        revision,
    )


def _insert_sqlite(
    connection: Connection, images: Sequence[ImportImage], now: datetime, revision: int
) -> None:
    """One prepared INSERT run for every row (sqlite3's executemany): SQLite's bulk path.

    The driver's own executemany, with times turned into text by the column type's own bind
    processor (so they are stored exactly as every other write stores them): 2.6 times less
    CPU than SQLAlchemy's executemany of the same rows, which processes every value.
    """
    processor = _TABLE.c.created_at.type.bind_processor(connection.dialect)
    assert processor is not None
    texts: dict[datetime, Any] = {}

    def stored(moment: datetime | None) -> Any:
        if moment is None:
            return None
        value = texts.get(moment)
        if value is None:
            value = texts[moment] = processor(moment)
        return value

    when = stored(now)
    rows = [
        (
            image.id,
            image.environment,
            image.name,
            _dump(image.tags),
            image.source,
            image.promoted_by,
            stored(image.promoted_at),
            image.signed,
            image.attested,
            stored(image.created_at) if image.created_at is not None else when,
            when,
            revision,
        )
        for image in images
    ]
    marks = ", ".join("?" * len(_COLUMNS))
    connection.exec_driver_sql(
        # Constant names only: the values are bound.
        f"INSERT INTO {_TABLE.name} ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608
        rows,
    )


def _copy_postgres(
    connection: Connection, images: Sequence[ImportImage], now: datetime, revision: int
) -> None:
    """COPY the rows in: PostgreSQL's bulk path, one statement streaming every row."""
    raw = connection.connection.driver_connection
    assert raw is not None
    statement = f"COPY {_TABLE.name} ({', '.join(_COLUMNS)}) FROM STDIN"
    import psycopg  # the driver of every PostgreSQL URL (store._url)

    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for image in images:
                copy.write_row(_values(image, now, revision))
    except psycopg.Error as error:
        # As SQLAlchemy reports the driver's errors, so that the store's own handling applies.
        raise DBAPIError(statement, None, error) from None


def _existing(
    connection: Connection, images: Sequence[ImportImage], *, sqlite: bool
) -> Iterator[Row[str, str, str, str]]:
    """(environment, name, id, tags) of every entry of the imported repositories."""
    names: dict[str, set[str]] = {}
    for image in images:
        names.setdefault(image.environment, set()).add(image.name)
    columns = (_TABLE.c.environment, _TABLE.c.name, _TABLE.c.id, _TABLE.c.tags)
    for environment, wanted in sorted(names.items()):
        if sqlite:
            query = select(*columns).where(
                _TABLE.c.environment == environment,
                _TABLE.c.name.in_(bindparam("names", expanding=True)),
            )
            ordered = sorted(wanted)
            for start in range(0, len(ordered), _SQLITE_CHUNK):
                chunk = ordered[start : start + _SQLITE_CHUNK]
                yield from _rows(connection.execute(query, {"names": chunk}))
        else:
            # One statement for every name: = ANY(array) binds one value however many.
            query = select(*columns).where(
                _TABLE.c.environment == environment,
                _TABLE.c.name == bindparam("names", type_=ARRAY(Text)).any_(),
            )
            yield from _rows(connection.execute(query, {"names": sorted(wanted)}))


def _rows(result: Result[str, str, str, str]) -> Iterator[Row[str, str, str, str]]:
    yield from result
