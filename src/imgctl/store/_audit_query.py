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
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true, tuple_

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

    def select(self, cursor: AuditCursor | None, limit: int) -> Select[Any]:
        """The SELECT of up to ``limit`` matching rows after ``cursor``, newest first."""
        table = _TABLE
        conditions: list[ColumnElement[bool]] = []
        if self.user is not None:
            conditions.append(or_(table.c.subject == self.user, table.c.email == self.user))
        if self.environment is not None:
            conditions.append(
                or_(
                    table.c.source_env == self.environment,
                    table.c.destination_env == self.environment,
                )
            )
        if self.result is not None:
            conditions.append(table.c.result == self.result)
        if self.since is not None:
            conditions.append(table.c.time >= self.since)
        if self.until is not None:
            conditions.append(table.c.time < self.until)
        if self.readable is not None:
            conditions.append(_readable(self.readable))
        if cursor is not None:
            # The row comparison is the condition; "time <= t" beside it lets SQLite's planner
            # start the time index at the cursor instead of scanning from the newest row.
            conditions.append(table.c.time <= cursor.time)
            conditions.append(tuple_(table.c.time, table.c.id) < tuple_(cursor.time, cursor.id))
        return (
            select(table)
            .where(and_(true(), *conditions))
            .order_by(table.c.time.desc(), table.c.id.desc())
            .limit(limit)
        )


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
    return and_(
        or_(table.c.source_env.is_not(None), table.c.destination_env.is_not(None)),
        or_(table.c.source_env.is_(None), table.c.source_env.in_(names)),
        or_(table.c.destination_env.is_(None), table.c.destination_env.in_(names)),
    )


def _is_int(text: str) -> bool:
    return text.removeprefix("-").isdigit()
