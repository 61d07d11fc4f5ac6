"""Benchmark: how long the charts' statistics take over a large audit trail.

Fills an audit table (SQLite in a temp dir, or ``--database-url`` for PostgreSQL) with a year of
promotions: ``--digests`` digests (default 50,000) each promoted through ``--environments``
environments (default 5: dev -> ... -> prod, so 4 promotions a digest, most of them reaching
prod) at spread-out times, plus a failed attempt and an ``auth_check`` row for every 10th
digest: about 220,000 rows by default. Then times :func:`imgctl.store.promotion_stats` (what
``/charts`` and ``/api/stats`` run) for 30 and 366 days, each the median of ``--runs`` runs, beside
the same database's ``SELECT count(*)`` of the whole table (a full scan: the floor any statistic
over every row would pay) as the named peer, and prints the ratio.

    python bench/stats.py
    python bench/stats.py --digests 200000
    python bench/stats.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
# bench/copy.py would shadow the standard library's copy module: keep this directory off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from imgctl.store import AuditStore  # noqa: E402
from imgctl.store._schema import AUDIT_EVENTS  # noqa: E402
from imgctl.store._stats import promotion_stats  # noqa: E402


def rows(digests: int, environments: list[str], now: datetime) -> list[dict[str, Any]]:
    """A year of promotions through ``environments``, one digest after another."""
    out: list[dict[str, Any]] = []
    span = timedelta(days=365).total_seconds()
    for n in range(digests):
        when = now - timedelta(seconds=span * (1 - n / digests))
        digest = f"sha256:{n:064x}"
        for step, (source, destination) in enumerate(itertools.pairwise(environments)):
            when += timedelta(minutes=10 + (n * 7919 + step * 104729) % (3 * 24 * 60))
            if when > now:
                break
            out.append(
                _row(f"r{n}-{step}", when, "promote", "succeeded", source, destination, digest)
            )
        if n % 10 == 0:
            out.append(
                _row(f"f{n}", when, "promote", "failed", environments[0], environments[1], None)
            )
            out.append(_row(f"a{n}", when, "auth_check", "succeeded", None, None, None))
    return out


def _row(
    request_id: str,
    when: datetime,
    action: str,
    result: str,
    source: str | None,
    destination: str | None,
    digest: str | None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "time": when,
        "action": action,
        "result": result,
        "email": "bench@example.com",
        "groups": "[]",
        "kind": "image" if action == "promote" else None,
        "reference": f"bench/app{hash(request_id) % 2000}:1.0.0",
        "source_env": source,
        "destination_env": destination,
        "digest": digest,
    }


def fill(url: str, data: list[dict[str, Any]]) -> None:
    """Insert ``data`` in batches, straight through SQLAlchemy (the store's API is per row)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for start in range(0, len(data), 10_000):
                connection.execute(insert(AUDIT_EVENTS), data[start : start + 10_000])
            if engine.dialect.name == "postgresql":
                connection.execute(text("ANALYZE audit_events"))
    finally:
        engine.dispose()


def count_all(url: str) -> float:
    """Seconds of one SELECT count(*) over the whole table."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            started = time.perf_counter()
            connection.execute(select(func.count()).select_from(AUDIT_EVENTS)).scalar_one()
            return time.perf_counter() - started
    finally:
        engine.dispose()


async def measure(url: str, environments: list[str], runs: int) -> dict[str, list[float]]:
    """Seconds of promotion_stats for 30 and 366 days, ``runs`` times each."""
    times: dict[str, list[float]] = {"30 days": [], "366 days": []}
    async with await AuditStore.open(url) as store:
        for days, label in ((30, "30 days"), (366, "366 days")):
            for _ in range(runs):
                started = time.perf_counter()
                stats = await promotion_stats(
                    store,
                    environments=environments,
                    days=days,
                    lead=(environments[0], environments[-1]),
                )
                times[label].append(time.perf_counter() - started)
            assert stats.lead is not None
            print(
                f"  {label}: {sum(stats.total(e) for e in environments):,} promotions, "
                f"{stats.lead.reached:,} digests reached {environments[-1]}"
            )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=50_000)
    parser.add_argument("--environments", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    environments = ["dev", "int", "staging", "preprod", "prod", "dr", "edge"][: args.environments]
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite:///{directory}/imgctl.db"
        asyncio.run(_migrate(url))
        data = rows(args.digests, environments, datetime.now(UTC))
        started = time.perf_counter()
        fill(url, data)
        print(f"{len(data):,} audit rows written in {time.perf_counter() - started:.1f} s")
        floor = statistics.median(count_all(url) for _ in range(args.runs))
        times = asyncio.run(measure(url, environments, args.runs))
        print(f"SELECT count(*) (peer, full scan): {floor * 1000:.1f} ms")
        for label, seconds in times.items():
            median = statistics.median(seconds)
            print(
                f"promotion_stats {label}: {median * 1000:.1f} ms median of {args.runs} "
                f"({median / floor:.1f}x the full count)"
            )


async def _migrate(url: str) -> None:
    async with await AuditStore.open(url):
        pass


if __name__ == "__main__":
    main()
