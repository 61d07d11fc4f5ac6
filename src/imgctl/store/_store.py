"""The audit store: a synchronous SQLAlchemy engine driven from asyncio through a bounded pool.

Each call runs on one of the store's own worker threads (never the event loop's default
executor, which DNS lookups and file I/O share), and there are exactly as many workers as
pooled connections, so no thread ever waits for a connection and at most that many statements
are in flight. SQLite allows one writer at a time: writes are serialised inside the process
with a lock and across processes with ``BEGIN IMMEDIATE`` plus a busy timeout, so a writer
waits its turn instead of failing with "database is locked".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self, TypeVar

import alembic.command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, Row, create_engine, event, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from imgctl.errors import StoreError

from ._audit_query import DEFAULT_PAGE, MAX_EXPORT, MAX_PAGE, AuditCursor, AuditPage, AuditQuery
from ._history import repository_of
from ._record import ACTIONS, KINDS, RESULTS, AuditRecord
from ._schema import AUDIT_EVENTS
from ._url import DATABASE_URL_ENV, parse_url, redact_url, scrub

__all__ = ["MAX_INDEXED_CHARS", "MAX_RECENT", "AuditStore"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
# One key for every imgctl replica: whoever holds it migrates, the others wait and then find
# the schema already at head.
MIGRATION_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"imgctl.store.migrations").digest()[:8], "big", signed=True
)
# PostgreSQL cannot index a text value over about 2700 bytes; 512 characters of UTF-8 stay
# below that, so an oversized request id or subject is shortened instead of losing its row.
MAX_INDEXED_CHARS: Final = 512
MAX_RECENT: Final = 10_000
DEFAULT_POSTGRES_CONNECTIONS: Final = 8
DEFAULT_SQLITE_CONNECTIONS: Final = 4
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
POSTGRES_CONNECT_TIMEOUT_S: Final = 10

_INDEXED_TEXT: Final = ("request_id", "subject")
_FILTERABLE: Final = frozenset(
    {
        "request_id",
        "action",
        "result",
        "subject",
        "email",
        "kind",
        "reference",
        "source_env",
        "destination_env",
        "source_ref",
        "destination_ref",
        "digest",
        "error_code",
        "peer",
    }
)
_SQLITE_BEGIN: Final = "imgctl_sqlite_begin"
_CONNECT_HINT: Final = f"check {DATABASE_URL_ENV} and that the database server is running"

# Alembic installs its `context` and `op` proxies as module globals: two migrations running at
# once in one process would use each other's connection. The database lock covers processes.
_MIGRATION_THREAD_LOCK: Final = threading.Lock()


class _SyncStore:
    """One database behind a synchronous engine, driven from asyncio through its own threads.

    Opening migrates the whole schema (every table, the same Alembic head) whichever store opens it.
    """

    _LABEL: ClassVar[str] = "audit"

    def __init__(self, engine: Engine, *, raw_url: str, max_connections: int) -> None:
        self._engine = engine
        self._raw_url = raw_url
        self._display_url = redact_url(raw_url)
        self._sqlite = engine.dialect.name == "sqlite"
        self._writer = engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )
        self._executor = ThreadPoolExecutor(max_connections, thread_name_prefix="imgctl-store")
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, max_connections: int | None = None) -> Self:
        """Connect to ``url``, migrate the schema to the newest revision and return the store.

        For SQLite the file's directory is created (mode 0700) and the file itself (mode 0600).
        On PostgreSQL concurrent openers (replicas starting together) take turns through an
        advisory lock. Raises :class:`~imgctl.errors.UsageError` for an unsupported URL and
        :class:`StoreError` when the database cannot be reached or migrated.
        """
        parsed = parse_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        if max_connections is None:
            max_connections = DEFAULT_SQLITE_CONNECTIONS if sqlite else DEFAULT_POSTGRES_CONNECTIONS
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        engine = _create_engine(parsed, max_connections)
        store = cls(engine, raw_url=url, max_connections=max_connections)
        try:
            if sqlite:
                await store._submit(_prepare_sqlite_file, parsed)
            await store._submit(_migrate, engine)
        except BaseException:
            await store.aclose()
            raise
        logger.debug("%s store ready at %s", cls._LABEL, store._display_url)
        return store

    @property
    def url(self) -> str:
        """The database URL with its password hidden, for logs and messages."""
        return self._display_url

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    async def aclose(self) -> None:
        """Finish the work already submitted, then close every connection."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        await asyncio.to_thread(self._engine.dispose)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _submit(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._closed:
            raise StoreError(f"the {self._LABEL} store at {self._display_url} is closed")
        loop = asyncio.get_running_loop()
        call = functools.partial(self._guarded, function, *args)
        return await loop.run_in_executor(self._executor, call)

    def _guarded(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return function(*args)
        except CommandError as error:
            raise StoreError(
                f"cannot migrate the {self._LABEL} database at {self._display_url}: "
                f"{scrub(str(error), self._raw_url)}",
                hint="the database may have been migrated by a newer imgctl; upgrade this one",
            ) from None
        except DBAPIError as error:
            if error.connection_invalidated or _is_connect(error):
                raise StoreError(
                    f"cannot connect to the database {self._display_url}: {self._reason(error)}",
                    hint=_CONNECT_HINT,
                ) from None
            raise StoreError(
                f"{self._LABEL} database {self._display_url}: {self._reason(error)}"
            ) from None
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(
                f"{self._LABEL} database {self._display_url}: {scrub(str(error), self._raw_url)}"
            ) from None

    def _reason(self, error: DBAPIError) -> str:
        # The DBAPI's own message: SQLAlchemy's wrapper appends the statement, and a driver
        # error can quote connection parameters.
        lines = [line.strip() for line in str(error.orig).splitlines() if line.strip()]
        return scrub("; ".join(lines) or type(error.orig).__name__, self._raw_url)


class AuditStore(_SyncStore):
    """The audit table of one database: append records, read the newest, count matches.

    Create one with :meth:`open`; close it with :meth:`aclose` (or ``async with``), which waits
    for records already handed over to be committed.
    """

    async def record(self, record: AuditRecord) -> None:
        """Append ``record``; returns once its row is committed.

        ``action``, ``result`` and ``kind`` must be among :data:`ACTIONS`, :data:`RESULTS` and
        :data:`KINDS` (ValueError otherwise). Text is stored as given except that NUL and lone
        surrogates are replaced, and ``request_id`` and ``subject`` are cut to
        :data:`MAX_INDEXED_CHARS` (ending in "…"), so that no value can make the insert fail.
        """
        _check_vocabulary(record)
        await self._submit(self._insert, record)

    async def recent(self, limit: int = 100) -> list[AuditRecord]:
        """Return up to ``limit`` records, newest first (by ``time``, then insertion order)."""
        if not 0 <= limit <= MAX_RECENT:
            raise ValueError(f"limit must be between 0 and {MAX_RECENT}, got {limit}")
        if limit == 0:
            return []
        return await self._submit(self._select_recent, limit)

    async def count(self, **filters: str) -> int:
        """Return how many records match every ``column=value`` filter (all when none)."""
        unknown = sorted(set(filters) - _FILTERABLE)
        if unknown:
            raise ValueError(f"cannot filter audit records by {', '.join(unknown)}")
        for name, value in filters.items():
            if not isinstance(value, str):
                raise TypeError(f"count({name}=...) needs a str, got {type(value).__name__}")
        return await self._submit(self._count, filters)

    async def search(
        self, query: AuditQuery, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> AuditPage:
        """Return up to ``limit`` records matching ``query`` after ``cursor``, newest first.

        ``cursor`` is a previous page's ``next_cursor`` (a :class:`UsageError` if it is not one);
        ``limit`` is 1 to :data:`MAX_PAGE` (ValueError otherwise).
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        after = AuditCursor.decode(cursor) if cursor is not None else None
        return await self._submit(self._search, query, after, limit)

    async def export(
        self, query: AuditQuery, *, max_rows: int = MAX_EXPORT
    ) -> AsyncIterator[AuditRecord]:
        """Yield up to ``max_rows`` records matching ``query``, newest first.

        Read a page of :data:`MAX_PAGE` at a time: no connection is held between pages, so a
        slow reader of a long export keeps no database resource.
        """
        cursor: AuditCursor | None = None
        left = max_rows
        while left > 0:
            size = min(left, MAX_PAGE)
            page = await self._submit(self._search, query, cursor, size)
            for record in page.records:
                yield record
            left -= len(page.records)
            if page.next_cursor is None:
                return
            cursor = AuditCursor.decode(page.next_cursor)

    async def count_matching(self, query: AuditQuery, *, up_to: int) -> int:
        """How many records match ``query``, counting no further than ``up_to``."""
        if up_to < 0:
            raise ValueError(f"up_to must not be negative, got {up_to}")
        return await self._submit(self._count_matching, query, up_to)

    def _search(self, query: AuditQuery, cursor: AuditCursor | None, limit: int) -> AuditPage:
        # One row more than asked says whether a next page exists without a second query.
        statement = query.select(cursor, limit + 1)
        with self._engine.connect() as connection:
            rows = list(connection.execute(statement))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more:
            last = rows[-1]._mapping
            next_cursor = AuditCursor(last["time"], int(last["id"])).encode()
        return AuditPage([_from_row(row) for row in rows], next_cursor)

    def _count_matching(self, query: AuditQuery, up_to: int) -> int:
        # The query's own rows (its SELECT may be a union of branches), counted.
        inner = query.select(None, up_to, ids_only=True).subquery()
        statement = select(func.count()).select_from(inner)
        with self._engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def _insert(self, record: AuditRecord) -> None:
        values = _row_values(record)
        with self._write_lock, self._writer.begin() as connection:
            connection.execute(AUDIT_EVENTS.insert().values(values))

    def _select_recent(self, limit: int) -> list[AuditRecord]:
        table = AUDIT_EVENTS
        query = select(table).order_by(table.c.time.desc(), table.c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [_from_row(row) for row in connection.execute(query)]

    def _count(self, filters: dict[str, str]) -> int:
        query = select(func.count()).select_from(AUDIT_EVENTS)
        for name, value in filters.items():
            query = query.where(AUDIT_EVENTS.c[name] == _clean(value))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())


def _create_engine(url: URL, max_connections: int) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            pool_size=max_connections,
            max_overflow=0,
            hide_parameters=True,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    connect_args: dict[str, object] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    if "application_name" not in url.query:
        connect_args["application_name"] = "imgctl"
    return create_engine(
        url,
        pool_size=max_connections,
        max_overflow=0,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args=connect_args,
    )


def _on_sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # sqlite3 would otherwise issue its own deferred BEGIN; _on_sqlite_begin issues ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that later writes can fail at once with SQLITE_BUSY, whatever the
    # busy timeout; IMMEDIATE takes the write lock up front, where the timeout applies.
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _prepare_sqlite_file(url: URL) -> None:
    if url.query.get("uri") or not url.database:
        return
    path = Path(url.database).expanduser()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # SQLite gives its -wal and -shm files the database file's mode: this covers all three.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise StoreError(
            f"cannot create the SQLite database {path}: {error.strerror or error}",
            hint=f"choose another state directory or set {DATABASE_URL_ENV}",
        ) from None


def _migrate(engine: Engine) -> None:
    config = Config()
    # Config values go through ConfigParser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    with (
        _MIGRATION_THREAD_LOCK,
        engine.connect().execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"}) as connection,
        connection.begin(),
    ):
        if engine.dialect.name == "postgresql":
            # Transaction-scoped: released by the commit (or by the server if we die).
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        alembic.command.upgrade(config, "head")


def _check_vocabulary(record: AuditRecord) -> None:
    # Checked on the way in only: rows a newer imgctl wrote with new words must stay readable.
    if record.action not in ACTIONS:
        raise ValueError(f"audit action must be one of {sorted(ACTIONS)}, got {record.action!r}")
    if record.result not in RESULTS:
        raise ValueError(f"audit result must be one of {sorted(RESULTS)}, got {record.result!r}")
    if record.kind is not None and record.kind not in KINDS:
        raise ValueError(f"audit kind must be one of {sorted(KINDS)} or None, got {record.kind!r}")


def _clean(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and neither driver can encode a lone surrogate: either
    # would fail the insert and lose the record, so both are replaced.
    if value.isascii() and "\x00" not in value:
        return value
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _shorten(value: str) -> str:
    if len(value) <= MAX_INDEXED_CHARS:
        return value
    return value[: MAX_INDEXED_CHARS - 1] + "…"


def _row_values(record: AuditRecord) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, value in record.as_dict().items():
        if isinstance(value, str):
            value = _clean(value)
            if name in _INDEXED_TEXT:
                value = _shorten(value)
        values[name] = value
    values["time"] = record.time
    values["groups"] = json.dumps([_clean(group) for group in record.groups], ensure_ascii=False)
    reference = values["reference"]
    values["repository"] = repository_of(
        record.action, record.kind, reference if isinstance(reference, str) else None
    )
    return values


def _from_row(row: Row[Any]) -> AuditRecord:
    mapping = dict(row._mapping)
    del mapping["id"]
    mapping.pop("repository", None)  # derived from the reference (repository_of)
    mapping["groups"] = tuple(json.loads(mapping["groups"]))
    return AuditRecord(**mapping)


def _is_connect(error: DBAPIError) -> bool:
    return error.statement is None or "connect" in str(error.orig).lower()
