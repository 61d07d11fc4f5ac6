"""Promotion statistics read from real audit rows, on a SQLite file and the machine's PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from imgctl.store import AuditRecord, AuditStore
from imgctl.store._stats import MAX_DAYS, LeadTimes, nearest_rank, period, promotion_stats

from ..support.postgres import BACKENDS, scratch_database

NOW = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_ids = itertools.count()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with scratch_database(str(request.param), tmp_path) as url:
        yield url


def digest(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


def promotion(
    when: datetime,
    source: str | None,
    destination: str | None,
    image: str | None = None,
    *,
    result: str = "succeeded",
    action: str = "promote",
    kind: str = "image",
) -> AuditRecord:
    return AuditRecord(
        request_id=f"req-{next(_ids)}",
        time=when,
        action=action,
        result=result,
        email="rm@example.com",
        kind=kind,
        reference=f"team/app@{digest(image)}" if image else "bundle",
        source_env=source,
        destination_env=destination,
        digest=digest(image) if image else None,
    )


async def fill(url: str, records: list[AuditRecord]) -> AuditStore:
    store = await AuditStore.open(url)
    for record in records:
        await store.record(record)
    return store


def test_promotions_per_day_count_successes_per_destination(db_url: str) -> None:
    midnight = datetime(2024, 5, 17, tzinfo=UTC)
    records = [
        promotion(midnight, "dev", "int", "a"),  # today's first instant
        promotion(midnight + 11 * HOUR, "dev", "int", "b"),
        promotion(midnight + 11 * HOUR, "int", "prod", "a"),
        promotion(midnight - timedelta(microseconds=1), "dev", "int", "c"),  # yesterday 23:59
        promotion(midnight - 2 * DAY + HOUR, "int", "prod", "c"),
        promotion(midnight - 2 * DAY, "dev", "int", kind="spa"),  # bundles count too
        # The first day of a 3-day period is 05-15; 05-14 is outside.
        promotion(midnight - 2 * DAY - timedelta(microseconds=1), "dev", "int", "d"),
        promotion(NOW + timedelta(seconds=1), "dev", "int", "e"),  # after now
        promotion(midnight + HOUR, "dev", "int", "f", result="failed"),
        promotion(midnight + HOUR, "dev", "prod", "g", result="denied"),
        promotion(midnight + HOUR, None, None, action="auth_check"),
        promotion(midnight + HOUR, "dev", "staging", "h"),  # not asked for
    ]

    async def main() -> None:
        async with await fill(db_url, records) as store:
            stats = await promotion_stats(
                store, environments=["int", "prod"], days=3, lead=None, now=NOW
            )
            assert stats.days == (date(2024, 5, 15), date(2024, 5, 16), TODAY)
            assert stats.start == datetime(2024, 5, 15, tzinfo=UTC)
            assert stats.environments == ("int", "prod")
            assert stats.per_day == {"int": (1, 1, 2), "prod": (1, 0, 1)}
            assert stats.total("int") == 4
            assert stats.lead is None
            one = await promotion_stats(store, environments=["prod", "int"], days=1, now=NOW)
            assert one.environments == ("prod", "int")
            assert one.per_day == {"prod": (1,), "int": (2,)}
            # The same instant seen from UTC+14:00 (18 May there) is still 17 May in UTC.
            shifted = NOW.astimezone(timezone(timedelta(hours=14)))
            assert shifted.date() != TODAY
            again = await promotion_stats(store, environments=["int"], days=1, now=shifted)
            assert again.days == (TODAY,)
            assert again.per_day == {"int": (2,)}
            none = await promotion_stats(store, environments=[], days=30, now=NOW)
            assert none.per_day == {}
            assert len(none.days) == 30

    asyncio.run(main())


def test_lead_time_from_first_to_last_environment(db_url: str) -> None:
    t0 = NOW - 10 * DAY
    records = [
        # a: seen in dev when promoted out of it (CI pushed it there), in prod 2 h later.
        promotion(t0, "dev", "int", "a"),
        promotion(t0 + 2 * HOUR, "int", "prod", "a"),
        # b: promoted into dev, then out of it, then prod a day later; prod again later (ignored).
        promotion(t0 + HOUR, "ci", "dev", "b"),
        promotion(t0 + 5 * HOUR, "dev", "int", "b"),
        promotion(t0 + HOUR + DAY, "int", "prod", "b"),
        promotion(t0 + 3 * DAY, "int", "prod", "b"),
        # c: straight from dev to prod: the same promotion starts and ends it.
        promotion(t0 + 4 * DAY, "dev", "prod", "c"),
        # d: reached prod without ever being seen in dev: reached, no lead time.
        promotion(t0 + 4 * DAY, "int", "prod", "d"),
        # e: its first arrival in prod was before the period: not counted at all.
        promotion(NOW - 40 * DAY, "dev", "int", "e"),
        promotion(NOW - 35 * DAY, "int", "prod", "e"),
        promotion(t0, "int", "prod", "e"),
        # f: seen in dev only after it reached prod: reached, no lead time.
        promotion(t0 + DAY, "int", "prod", "f"),
        promotion(t0 + 2 * DAY, "dev", "int", "f"),
        # g: a failed promotion into prod does not count; a denied one out of dev neither.
        promotion(t0, "dev", "int", "g"),
        promotion(t0 + HOUR, "int", "prod", "g", result="failed"),
        promotion(t0 - DAY, "dev", "int", "h", result="denied"),
        promotion(t0 + 6 * DAY, "int", "prod", "h"),
        # i: 20 days from dev to prod, arriving in the period.
        promotion(t0 - 15 * DAY, "dev", "int", "i"),
        promotion(t0 + 5 * DAY, "int", "prod", "i"),
    ]

    async def main() -> None:
        async with await fill(db_url, records) as store:
            stats = await promotion_stats(
                store, environments=["dev", "int", "prod"], days=30, lead=("dev", "prod"), now=NOW
            )
            lead = stats.lead
            assert lead is not None
            assert (lead.first, lead.last) == ("dev", "prod")
            # a, b, c, d, f, h, i reached prod in the period; a, b, c and i have lead times.
            assert lead.reached == 7
            assert lead.seconds == (0.0, 2 * 3600.0, 86400.0, 20 * 86400.0)
            assert lead.median == (2 * 3600.0 + 86400.0) / 2
            assert lead.p90 == 20 * 86400.0
            assert dict(lead.distribution()) == {
                "≤ 1 h": 1,
                "≤ 6 h": 1,
                "≤ 1 d": 1,
                "≤ 3 d": 0,
                "≤ 7 d": 0,
                "≤ 30 d": 1,
                "> 30 d": 0,
            }
            document = stats.as_dict()
            assert document["lead_time"] == {
                "first": "dev",
                "last": "prod",
                "reached": 7,
                "measured": 4,
                "median_seconds": 46800.0,
                "p90_seconds": 1728000.0,
                "distribution": [
                    {"bucket": label, "digests": count} for label, count in lead.distribution()
                ],
            }
            assert document["start"] == "2024-04-18T00:00:00Z"
            assert document["end"] == "2024-05-17T12:00:00Z"
            # Six days (from 05-12): h (arrived 05-13) and i (05-12), only i with a lead time.
            recent = await promotion_stats(
                store, environments=["prod"], days=6, lead=("dev", "prod"), now=NOW
            )
            assert recent.lead is not None
            assert recent.lead.reached == 2
            assert recent.lead.seconds == (20 * 86400.0,)
            # Between dev and int instead: a, b, f, g, i arrived in int in the period.
            middle = await promotion_stats(
                store, environments=["int"], days=30, lead=("dev", "int"), now=NOW
            )
            assert middle.lead is not None
            assert middle.lead.reached == 5
            assert middle.lead.seconds == (0.0, 0.0, 0.0, 0.0, 4 * 3600.0)

    asyncio.run(main())


def test_lead_time_of_nothing_and_bad_periods(db_url: str) -> None:
    async def main() -> None:
        async with await fill(db_url, []) as store:
            stats = await promotion_stats(
                store, environments=["dev", "prod"], days=MAX_DAYS, lead=("dev", "prod"), now=NOW
            )
            assert stats.lead == LeadTimes("dev", "prod", 0, ())
            assert stats.lead.median is None
            assert stats.lead.p90 is None
            assert stats.per_day == {"dev": (0,) * MAX_DAYS, "prod": (0,) * MAX_DAYS}
            for days in (0, -1, MAX_DAYS + 1):
                with pytest.raises(ValueError, match="days must be between 1 and 366"):
                    await promotion_stats(store, environments=["dev"], days=days, now=NOW)
            with pytest.raises(ValueError, match="two environments"):
                await promotion_stats(
                    store, environments=["dev"], days=1, lead=("dev", "dev"), now=NOW
                )

    asyncio.run(main())


def test_nearest_rank_and_period() -> None:
    values = [float(v) for v in range(1, 11)]
    assert nearest_rank(values, 90) == 9.0
    assert nearest_rank(values, 91) == 10.0
    assert nearest_rank(values, 50) == 5.0
    assert nearest_rank(values, 100) == 10.0
    assert nearest_rank([7.0], 90) == 7.0
    assert nearest_rank([], 90) is None
    with pytest.raises(ValueError, match="percent"):
        nearest_rank(values, 0)
    start, days = period(1, NOW)
    assert start == datetime(2024, 5, 17, tzinfo=UTC)
    assert days == (TODAY,)
    with pytest.raises(ValueError, match="timezone-aware"):
        period(1, datetime(2024, 5, 17))
