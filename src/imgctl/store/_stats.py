"""Statistics from the audit trail: promotions per day and lead time through the pipeline.

Both count only successful promotions (``action='promote'``, ``result='succeeded'``) and use UTC
days. The period is ``days`` calendar days ending today, today included up to ``now``.

- **Promotions per day**, per destination environment: every successful promotion (images and
  SPA bundles) whose audit row's time falls on that day.
- **Lead time** from the first environment F to the last L of the pipeline, per digest D:
  ``arrival(D) - first_seen(D)``, where ``arrival(D)`` is the time of D's first successful
  promotion into L (ever), and ``first_seen(D)`` the time of the first successful promotion
  that shows D in F: into F, or out of F (images usually reach the first environment from CI,
  not through imgctl, so the first promotion out of it is the earliest moment the audit trail
  knows D was there). A digest counts when ``arrival(D)`` lies in the period; one never seen in F
  at or before its arrival (promoted into L from elsewhere) is counted as reached but has no
  lead time. The median is the middle value (the mean of the two middle values for an even
  count); p90 is the nearest rank: the smallest lead time that at least 90 % of the digests
  do not exceed.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, bindparam, text

from ._schema import PROMOTED_ROWS, UTCDateTime
from ._store import _clean, _SyncStore

__all__ = [
    "LEAD_TIME_BUCKETS",
    "MAX_DAYS",
    "LeadTimes",
    "PromotionStats",
    "nearest_rank",
    "promotion_stats",
]

MAX_DAYS: Final = 366
# Upper bounds (seconds) of the lead time distribution's buckets; the last one is open.
LEAD_TIME_BUCKETS: Final[tuple[tuple[str, float], ...]] = (
    ("≤ 1 h", 3600.0),
    ("≤ 6 h", 6 * 3600.0),
    ("≤ 1 d", 86400.0),
    ("≤ 3 d", 3 * 86400.0),
    ("≤ 7 d", 7 * 86400.0),
    ("≤ 30 d", 30 * 86400.0),
    ("> 30 d", math.inf),
)


@dataclass(frozen=True, slots=True)
class LeadTimes:
    """Lead times from ``first`` to ``last`` over the digests that reached ``last`` in the period.

    ``reached`` counts those digests; ``seconds`` (sorted) holds the lead time of each one also
    seen in ``first`` at or before its arrival, so ``len(seconds) <= reached``.
    """

    first: str
    last: str
    reached: int
    seconds: tuple[float, ...]

    @property
    def median(self) -> float | None:
        """The median lead time in seconds, or None when no digest has one."""
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def p90(self) -> float | None:
        """The 90th percentile (nearest rank) in seconds, or None when no digest has one."""
        return nearest_rank(self.seconds, 90)

    def distribution(self) -> list[tuple[str, int]]:
        """How many lead times fall in each of :data:`LEAD_TIME_BUCKETS` (label, count)."""
        bounds = [bound for _, bound in LEAD_TIME_BUCKETS]
        counts = [0] * len(bounds)
        for value in self.seconds:
            counts[bisect.bisect_left(bounds, value)] += 1
        return [(label, count) for (label, _), count in zip(LEAD_TIME_BUCKETS, counts, strict=True)]


@dataclass(frozen=True, slots=True)
class PromotionStats:
    """Successful promotions per UTC day and environment, and the pipeline's lead times.

    ``days`` are the period's dates, oldest first; ``per_day[env][i]`` is the count on
    ``days[i]`` for each environment of ``environments`` (in the order given). ``lead`` is None
    when no pair of environments was asked for.
    """

    start: datetime
    end: datetime
    days: tuple[date, ...]
    environments: tuple[str, ...]
    per_day: dict[str, tuple[int, ...]]
    lead: LeadTimes | None

    def total(self, environment: str) -> int:
        """Successful promotions into ``environment`` over the whole period."""
        return sum(self.per_day.get(environment, ()))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values: ISO dates and times, seconds as numbers, None as null."""
        lead: dict[str, Any] | None = None
        if self.lead is not None:
            lead = {
                "first": self.lead.first,
                "last": self.lead.last,
                "reached": self.lead.reached,
                "measured": len(self.lead.seconds),
                "median_seconds": self.lead.median,
                "p90_seconds": self.lead.p90,
                "distribution": [
                    {"bucket": label, "digests": count} for label, count in self.lead.distribution()
                ],
            }
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "days": [day.isoformat() for day in self.days],
            "environments": [
                {"name": env, "per_day": list(self.per_day[env]), "total": self.total(env)}
                for env in self.environments
            ],
            "lead_time": lead,
        }


def nearest_rank(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of sorted ``values``: None when there are none."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    if not values:
        return None
    rank = math.ceil(percent / 100 * len(values))
    return values[max(rank, 1) - 1]


def period(days: int, now: datetime) -> tuple[datetime, tuple[date, ...]]:
    """The period's start (midnight UTC) and its dates: ``days`` days ending on ``now``'s date."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, got {days}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    dates = tuple(first + timedelta(days=i) for i in range(days))
    return datetime.combine(first, time(), UTC), dates


async def promotion_stats(
    store: _SyncStore,
    *,
    environments: Sequence[str],
    days: int,
    lead: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> PromotionStats:
    """Read the statistics of the ``days`` days ending today from ``store``'s audit trail.

    ``environments`` are counted in the order given (names as the audit rows have them: lower
    case); promotions into any other environment are left out. ``lead`` = (first, last) asks
    for the lead times between those two. Raises ValueError for a ``days`` outside
    1..:data:`MAX_DAYS`.
    """
    now = now or datetime.now(UTC)
    start, dates = period(days, now)
    names = tuple(dict.fromkeys(_clean(env) for env in environments))
    if lead is not None and lead[0] == lead[1]:
        raise ValueError(f"lead time needs two environments, got {lead[0]!r} twice")
    counts, lead_rows = await store._submit(
        _read, store._engine, store.dialect, names, start, now, lead
    )
    index = {day: i for i, day in enumerate(dates)}
    per_day = {env: [0] * len(dates) for env in names}
    for env, day, count in counts:
        position = index.get(date.fromisoformat(day))
        if env in per_day and position is not None:
            per_day[env][position] += count
    lead_times = None
    if lead is not None:
        seconds = sorted(
            (arrived - seen).total_seconds()
            for seen, arrived in lead_rows
            if seen is not None and seen <= arrived
        )
        lead_times = LeadTimes(lead[0], lead[1], len(lead_rows), tuple(seconds))
    return PromotionStats(
        start=start,
        end=now.astimezone(UTC),
        days=dates,
        environments=names,
        per_day={env: tuple(values) for env, values in per_day.items()},
        lead=lead_times,
    )


def _from(dialect: str, index: str) -> str:
    # SQLite's planner, without ANALYZE statistics, takes the equality on the result index for
    # selective, and it is not (nearly every row succeeded): over 208,000 rows that plan took
    # 4-6 times longer. PostgreSQL's planner has statistics; it needs no hint.
    return f"audit_events INDEXED BY {index}" if dialect == "sqlite" else "audit_events"


def _day(dialect: str) -> str:
    if dialect == "postgresql":
        return "to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    # SQLite keeps the UTC wall time as text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return "substr(time, 1, 10)"


def _read(
    engine: Engine,
    dialect: str,
    environments: tuple[str, ...],
    start: datetime,
    end: datetime,
    lead: tuple[str, str] | None,
) -> tuple[list[tuple[str, str, int]], list[tuple[datetime | None, datetime]]]:
    with engine.connect() as connection:
        counts = _per_day(connection, dialect, environments, start, end)
        rows = _lead_rows(connection, dialect, lead, start, end) if lead is not None else []
    return counts, rows


# The statements are SQL text: the partial indexes of migration 0010 hold the rows where
# PROMOTED_ROWS holds, and a planner uses them only for a query saying it in literal words (a
# bound parameter would hide it); SQLAlchemy's SQLite dialect cannot write INDEXED BY either.
_TIMES: Final = (
    bindparam("start", type_=UTCDateTime),
    bindparam("end", type_=UTCDateTime),
)


def _per_day(
    connection: Connection,
    dialect: str,
    environments: tuple[str, ...],
    start: datetime,
    end: datetime,
) -> list[tuple[str, str, int]]:
    if not environments:
        return []
    day = _day(dialect)
    query = text(
        # Constant fragments only; every value is a bound parameter.
        f"SELECT destination_env, {day} AS day, count(*) AS promotions "  # noqa: S608
        f"FROM {_from(dialect, 'ix_audit_events_promoted_into')} "
        f"WHERE {PROMOTED_ROWS} AND destination_env IN :environments "
        "AND time >= :start AND time <= :end "
        f"GROUP BY destination_env, {day}"
    ).bindparams(bindparam("environments", expanding=True), *_TIMES)
    rows = connection.execute(
        query, {"environments": list(environments), "start": start, "end": end}
    )
    return [(str(env), str(d), int(n)) for env, d, n in rows]


def _lead_rows(
    connection: Connection,
    dialect: str,
    lead: tuple[str, str],
    start: datetime,
    end: datetime,
) -> list[tuple[datetime | None, datetime]]:
    first, last = (_clean(env) for env in lead)
    arrived = "MIN(CASE WHEN destination_env = :last THEN time END)"
    # The digests that arrived in the last environment in the period (from one index), then
    # every successful promotion of each (from the other): when it arrived there first, ever,
    # and when it was first seen in the first environment (promoted into it or out of it).
    query = (
        text(
            # Constant fragments only; every value is a bound parameter.
            "SELECT MIN(CASE WHEN destination_env = :first OR source_env = :first THEN time END) "  # noqa: S608
            f"AS seen, {arrived} AS arrived "
            f"FROM {_from(dialect, 'ix_audit_events_promoted_digest')} "
            f"WHERE {PROMOTED_ROWS} AND digest IS NOT NULL AND digest IN ("
            f"SELECT digest FROM {_from(dialect, 'ix_audit_events_promoted_into')} "
            f"WHERE {PROMOTED_ROWS} AND destination_env = :last AND digest IS NOT NULL "
            "AND time >= :start AND time <= :end) "
            f"GROUP BY digest HAVING {arrived} >= :start"
        )
        .bindparams(*_TIMES)
        .columns(seen=UTCDateTime, arrived=UTCDateTime)
    )
    rows = connection.execute(query, {"first": first, "last": last, "start": start, "end": end})
    return [(seen, when) for seen, when in rows]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
