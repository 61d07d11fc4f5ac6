"""Reading the audit trail by filters, newest first, one page at a time (issue 20).

A page ends with an opaque cursor: the (time, id) of its last row, so the next page starts
strictly after it whatever was written meanwhile (keyset paging: no row is skipped or shown
twice, and page 1,000 costs what page 1 does). Exports walk the same pages.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    false,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType

from imgctl.errors import UsageError

from ._record import AuditRecord
from ._schema import AUDIT_EVENTS

__all__ = [
    "DEFAULT_PAGE",
    "MAX_EXPORT",
    "MAX_PAGE",
    "AuditCursor",
    "AuditPage",
    "AuditQuery",
]

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 500
MAX_EXPORT: Final = 100_000
"""The most rows one CSV or JSON-lines download holds (newest first)."""

_CURSOR_VERSION: Final = "a1"
_MAX_CURSOR: Final = 200  # characters; a real one is about 30
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The most (source, destination) pairs a readable limit is read as, one lookup each (six
# readable environments: 48); beyond, its rows are checked one by one along another index.
MAX_ROUTES: Final = 48
_TABLE: Final = AUDIT_EVENTS


@dataclass(frozen=True, slots=True)
class AuditCursor:
    """Where a page ended: the time and id of its last (oldest) row."""

    time: datetime
    id: int

    def encode(self) -> str:
        """The cursor as an opaque URL-safe string."""
        micros = (self.time - _EPOCH) // timedelta(microseconds=1)
        raw = f"{_CURSOR_VERSION}:{micros}:{self.id}".encode("ascii")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> AuditCursor:
        """Read a cursor made by :meth:`encode`; anything else is a :class:`UsageError`."""
        bad = UsageError(
            "cursor is not one this server gave out",
            hint="use the next_cursor of a previous answer, or leave the cursor out",
        )
        if not text or len(text) > _MAX_CURSOR or not text.isascii():
            raise bad
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (binascii.Error, ValueError):
            raise bad from None
        version, _, rest = raw.partition(":")
        micros, _, ident = rest.partition(":")
        if version != _CURSOR_VERSION or not _is_int(micros) or not ident.isdigit():
            raise bad
        try:
            time = _EPOCH + timedelta(microseconds=int(micros))
        except OverflowError:
            raise bad from None
        return cls(time, int(ident))


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit events to read; every filter given must match.

    ``user`` matches the subject or the email; ``environment`` the source or the destination;
    ``since`` is inclusive, ``until`` exclusive (both timezone-aware). ``readable`` limits the
    rows to those whose every named environment is in it, and hides rows naming none (sign-in
    checks, requests refused before an environment was known); None means no limit.
    """

    user: str | None = None
    environment: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    readable: frozenset[str] | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"AuditQuery.{name} must be timezone-aware, got {value!r}")
        if self.readable is not None and not isinstance(self.readable, frozenset):
            object.__setattr__(self, "readable", frozenset(self.readable))

    def restricted_to(self, environments: Collection[str] | None) -> AuditQuery:
        """Return the query also limited to ``environments`` (None: no further limit)."""
        if environments is None:
            return self
        readable = frozenset(environments)
        if self.readable is not None:
            readable &= self.readable
        return AuditQuery(
            self.user, self.environment, self.result, self.since, self.until, readable
        )

    def conditions(self, table: FromClause = _TABLE) -> list[ColumnElement[bool]]:
        """Conditions every branch of the query has besides user and environment (see select).

        ``table``: audit_events, or the name it is read by (see _ByRoute).
        """
        conditions: list[ColumnElement[bool]] = []
        routes = self._routes()
        if self.result is not None:
            # A rare result (failed, denied, invalid) is the better index when nothing better
            # is given; "succeeded" holds most rows, so the environment's index goes first.
            rare = self.result != "succeeded"
            others = self.environment is not None or routes is not None
            lead = not self._narrowed() and (rare or not others)
            conditions.append(_indexed(table.c.result, lead) == self.result)
        if self.since is not None:
            conditions.append(table.c.time >= self.since)
        if self.until is not None:
            conditions.append(table.c.time < self.until)
        if self.readable is not None and routes is None:
            conditions.append(_readable(self.readable))
        return conditions

    def _narrowed(self) -> bool:
        """Whether a condition few rows meet leads: the user (a repository, in RepositoryQuery)."""
        return self.user is not None

    def _routes(self) -> list[tuple[str | None, str | None]] | None:
        """The (source, destination) pairs of readable rows, when they lead; None: they do not.

        Under a readable limit, a row is readable when each of its environments is readable or
        absent: the pairs of those (both absent excepted), with the environment filter's among
        them, each an ordered lookup in the (source_env, destination_env, time) index. Checked
        row by row instead, an environment whose rows are mostly unreadable (a viewer of dev
        and qa asking for qa, whose promotions go on to prod) read them all: 0.7 s at
        1,000,000 rows. A user, a repository or a rare result leads instead (few rows each).
        """
        if not self.readable or self._narrowed():
            return None
        if self.result is not None and self.result != "succeeded":
            return None
        values: list[str | None] = [*sorted(self.readable), None]
        routes = [(s, d) for s in values for d in values if (s, d) != (None, None)]
        if self.environment is not None:
            routes = [(s, d) for s, d in routes if self.environment in (s, d)]
        return routes if 0 < len(routes) <= MAX_ROUTES else None

    def _branch(
        self,
        table: FromClause,
        condition: ColumnElement[bool],
        cursor: AuditCursor | None,
        limit: int,
        ids_only: bool,
    ) -> Select[Any]:
        """One branch: ``condition`` and the common ones, newest first, ``limit`` rows."""
        conditions = [condition, *self.conditions(table)]
        if cursor is not None:
            # The row comparison is the condition; "time <= t" beside it lets SQLite's planner
            # start the time index at the cursor instead of scanning from the newest row.
            conditions.append(table.c.time <= cursor.time)
            conditions.append(tuple_(table.c.time, table.c.id) < tuple_(cursor.time, cursor.id))
        # Several branches give ids and times alone (from the index where it holds the
        # conditions' columns, as the route indexes do), and only the page's rows are read.
        columns = (table.c.id, table.c.time) if ids_only else (table,)
        return (
            select(*columns)
            .where(*conditions)
            .order_by(table.c.time.desc(), table.c.id.desc())
            .limit(limit)
        )

    def select(
        self, cursor: AuditCursor | None, limit: int, *, ids_only: bool = False
    ) -> Select[Any]:
        """The SELECT of up to ``limit`` matching rows after ``cursor``, newest first.

        ``ids_only``: their ids and times alone (for counting: no row needs reading where an
        index has both).

        The user (subject or email) and the environment (source or destination) are each two
        branches (the environment more under a readable limit: see _routes), read with a UNION
        ALL of their SELECTs, each of which reads its own index newest first and stops after
        ``limit`` rows; the union's newest ``limit`` are the answer. One OR over two indexes
        instead makes the database gather every matching row and sort them (an environment
        holds a third of the trail), and the time index alone reads the whole trail when
        nothing matches (issue 21 target 6).
        """
        routes = self._routes()
        if routes is not None:
            # A readable limit's pairs, each read by its index (see _Via).
            wanted = [(_via(s, d), s, d) for s, d in routes]
            branches = [
                self._branch(
                    table,
                    and_(_equals(table.c.source_env, s), _equals(table.c.destination_env, d)),
                    cursor,
                    limit,
                    ids_only or len(wanted) > 1,
                )
                for table, s, d in wanted
            ]
        else:
            table = _TABLE
            users: list[ColumnElement[bool]] = [true()]
            if self.user is not None:
                # The user leads: a few thousand rows at most, where an environment has many.
                subject = _indexed(table.c.subject, False)
                users = [
                    table.c.subject == self.user,
                    and_(
                        table.c.email == self.user,
                        or_(table.c.subject.is_(None), subject != self.user),
                    ),
                ]
            environments: list[ColumnElement[bool]] = [true()]
            if self.environment is not None:
                lead = not self._narrowed() and self.result in (None, "succeeded")
                source = _indexed(table.c.source_env, lead)
                destination = _indexed(table.c.destination_env, lead)
                other = _indexed(table.c.source_env, False)
                environments = [
                    source == self.environment,
                    and_(
                        destination == self.environment,
                        or_(table.c.source_env.is_(None), other != self.environment),
                    ),
                ]
            several = len(users) * len(environments) > 1
            branches = [
                self._branch(table, and_(user, environment), cursor, limit, ids_only or several)
                for user in users
                for environment in environments
            ]
        if len(branches) == 1:
            return branches[0]
        # SQLite allows ORDER BY and LIMIT in a compound's parts only inside subqueries.
        parts = [select(*branch.subquery().c) for branch in branches]
        union = union_all(*parts).subquery("matching")
        page = select(union.c.id, union.c.time)
        page = page.order_by(union.c.time.desc(), union.c.id.desc()).limit(limit)
        if ids_only:
            return page
        ids = select(page.subquery().c.id)
        rows = _TABLE
        return select(rows).where(rows.c.id.in_(ids)).order_by(rows.c.time.desc(), rows.c.id.desc())


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of matching events, newest first, and the cursor of the next (None: last)."""

    records: list[AuditRecord]
    next_cursor: str | None


def _readable(environments: frozenset[str]) -> ColumnElement[bool]:
    if not environments:
        return false()
    table = _TABLE
    names = sorted(environments)
    # Checked on the rows another condition (or the time index) finds: an IN over the
    # environments' indexes would gather every readable row and sort them.
    source = _indexed(table.c.source_env, False)
    destination = _indexed(table.c.destination_env, False)
    return and_(
        or_(table.c.source_env.is_not(None), table.c.destination_env.is_not(None)),
        or_(table.c.source_env.is_(None), source.in_(names)),
        or_(table.c.destination_env.is_(None), destination.in_(names)),
    )


class _NotIndexed(ColumnElement[Any]):
    """A column SQLite's planner may not look up by index: ``+column`` (the column elsewhere).

    SQLite has no statistics unless ANALYZE ran, and takes any equality on an indexed column
    for selective: given a user and ``result = 'succeeded'`` it read the result's index, nine
    rows in ten. The unary plus tells it which condition leads; PostgreSQL (whose planner has
    statistics, and which has no unary plus on text) gets the column itself.
    """

    inherit_cache = True
    # The column is part of the statement's cache key (SQLAlchemy caches compiled SQL).
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012 (SQLAlchemy's protocol)
        ("column", InternalTraversal.dp_clauseelement)
    ]

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(_NotIndexed)
def _compile_not_indexed(element: _NotIndexed, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.column, **kw)
    return f"+{inner}" if compiler.dialect.name == "sqlite" else inner


class _Via(Alias):
    """audit_events read by one index: ``INDEXED BY`` it on SQLite, the table elsewhere.

    A readable limit's pairs name their index: for a pair with an absent environment
    (``destination_env IS NULL``) SQLite took the other environment's (env, time) index for as
    good, and read every row of that environment. PostgreSQL, whose ``IS NULL`` on an index
    column does not give the columns after it in order, gets partial indexes for those pairs.
    """

    inherit_cache = True
    index: ClassVar[str]


class _ViaRoute(_Via):
    inherit_cache = True
    index = "ix_audit_events_route"


class _ViaSourceOnly(_Via):
    inherit_cache = True
    index = "ix_audit_events_source_only"


class _ViaDestinationOnly(_Via):
    inherit_cache = True
    index = "ix_audit_events_destination_only"


@compiles(_Via)
def _compile_via(element: _Via, compiler: SQLCompiler, **kw: Any) -> str:
    if not kw.get("asfrom"):
        return str(compiler.visit_alias(element, **kw))  # type: ignore[no-untyped-call]
    if compiler.dialect.name == "sqlite":
        return f"{_TABLE.name} INDEXED BY {element.index}"
    return str(_TABLE.name)


_VIA: Final = {
    (False, False): _ViaRoute._construct(_TABLE, name=_TABLE.name),
    (False, True): _ViaSourceOnly._construct(_TABLE, name=_TABLE.name),
    (True, False): _ViaDestinationOnly._construct(_TABLE, name=_TABLE.name),
}


def _via(source: str | None, destination: str | None) -> FromClause:
    """audit_events read by the index of the pair (source, destination)."""
    return _VIA[(source is None, destination is None)]


def _indexed(column: ColumnElement[Any], lead: bool) -> ColumnElement[Any]:
    """``column`` when its index may lead, else the column with its index hidden from SQLite."""
    return column if lead else _NotIndexed(column)


def _equals(column: ColumnElement[Any], value: str | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _is_int(text: str) -> bool:
    return text.removeprefix("-").isdigit()
