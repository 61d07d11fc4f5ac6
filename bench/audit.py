"""Benchmark: every filter of the audit API over 1,000,000 audit rows, on SQLite and PostgreSQL.

Setup (untimed, bulk inserts): ``--rows`` audit rows (default 1,000,000) over a year, newest
last as a server writes them: ``--repositories`` repositories (default 2,000, a few of them hot),
four environments (dev -> staging -> prod, and qa), ``--users`` users (default 300), results
mostly ``succeeded``, and an ``auth_check`` row (no environment) for every tenth request. Rows
are made by the store's own ``_row_values`` (any column the store derives is filled as a
server fills it) and written with ``executemany`` (SQLite) or ``COPY`` (PostgreSQL, in a schema
of its own, dropped afterwards).

Then, for each backend, each case (a filter alone, common combinations, filters matching
nothing, a deep page, one repository's story) runs ``--queries`` times (default 30) with varied
values through :meth:`AuditStore.search`, what ``/api/audit``, ``imgctl audit ls``, ``/story``
and ``/images/<repository>`` run; p50 and p99 of each round, medians over ``--rounds`` rounds
(default 3). Yardsticks measured in the same run:

* ``bare``: the same SQL (compiled by the store's query) run through the driver directly, no
  thread hop and no row conversion: the imgctl/bare ratio is the store's own overhead;
* ``hop``: the same bare SQL sent through the store's own worker threads (a pooled connection,
  the driver, no row conversion): what the thread hop costs on this machine at this moment, which
  a loaded machine stretches for the store as much as for this run;
* ``pk``: a primary-key lookup of one row through the same driver, the floor of any query.

Each query of a case runs through the store, bare and through the hop one after another, so a
change of load hits the three alike.

The exit status depends only on ratios to those yardsticks (issue 23 item 5), per case, of
medians (p50), as 30 queries' p99 is their slowest one and a scheduling stall moves it 50-fold:

* ``p50 / pk`` at most ``MAX_P50_TO_PK``: a page against the cheapest query of the same database
  in the same run. A plan that reads the table (what issue 21 target 6 guards against) costs
  thousands of primary-key lookups at 1,000,000 rows;
* ``p50 / hop`` at most ``MAX_P50_TO_HOP``: the store's own cost on the same SQL through the
  same threads (building the statement, converting rows).

Exit status 1 when a case misses one. Issue 21's absolute figure (p99 at most 50 ms) is printed
beside each p99 as "not judged", with ``p99 / bare``, ``p50 / bare`` and the plan's full-table
scans (``SCAN audit_events`` / ``Seq Scan``), also not judged.

    python bench/audit.py                       # both backends, 1,000,000 rows
    python bench/audit.py --rows 200000 --backends sqlite
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
ROOT = _BENCH_DIR.parent
# bench/copy.py would shadow the standard library's copy module: keep this directory off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402

from imgctl.store import AuditCursor, AuditQuery, AuditRecord, AuditStore, RepositoryQuery  # noqa: E402
from imgctl.store._store import _row_values  # noqa: E402

PG_HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("IMGCTL_TEST_PG_PORT") or 5432)
PG_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
PG_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
# What decides the exit status (issue 23 item 5), from docs/performance.md "Audit queries at
# 1,000,000 rows" (2026-12-07, quiet, medians of 3 rounds of 30 queries):
# - p50 over the primary-key lookup: 5.5-139x on SQLite (the highest, a user with an environment:
#   7.0 ms over 0.050 ms), 3.7-30x on PostgreSQL. Before migration 0012 a filter read its table:
#   0.3-1.8 s a page on SQLite, 6,000-36,000x. 500x leaves 3.6x over the highest (2.2x over
#   228x, the highest of a 20,000-row run at a load of 6-9) and is 25 ms over SQLite's lookup,
#   88 ms over PostgreSQL's: the range of the 50 ms issue 21 stated. Not the p99: PostgreSQL's
#   deep page measured 44 ms, 250x, for one query of 30 while its p50 was 1.7 ms;
# - p50 over the same SQL through the store's threads: at most p50 over bare, which was
#   1.3-8.4x on SQLite (a readable limit, whose eight branches cost 1.2 ms of CPU to build) and
#   2.2-4.0x on PostgreSQL. 20x leaves over 2x above the highest, and fails a store that made
#   one more query for each row of a page (50 lookups, +8.9 ms on PostgreSQL: over 20x).
MAX_P50_TO_PK = 500.0
MAX_P50_TO_HOP = 20.0
# Issue 21 target 6 stated this absolutely: printed beside each p99, not judged.
STATED_P99_MS = 50.0
ENVIRONMENTS = ("dev", "staging", "prod", "qa")
# (source, destination, share of promotions)
ROUTES = (
    ("dev", "staging", 0.45),
    ("staging", "prod", 0.35),
    ("dev", "qa", 0.15),
    ("qa", "prod", 0.05),
)
RESULTS = (("succeeded", 0.93), ("denied", 0.04), ("failed", 0.02), ("invalid", 0.01))
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SPAN = timedelta(days=365)


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Shape:
    """What the table holds, for choosing query values."""

    rows: int
    repositories: list[str]
    users: list[str]


def repository_names(count: int) -> list[str]:
    """``count`` repository names, team/app."""
    return [f"team-{n % 97}/app-{n}" for n in range(count)]


def records(shape: Shape, seed: int = 7) -> Iterator[AuditRecord]:
    """``shape.rows`` audit records over a year, oldest first."""
    rng = random.Random(seed)
    repos = shape.repositories
    # A few hot repositories: weights 1/rank (Zipf), drawn by cumulative weights.
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(repos))]
    users = shape.users
    routes = [r[:2] for r in ROUTES]
    route_weights = [r[2] for r in ROUTES]
    results = [r[0] for r in RESULTS]
    result_weights = [r[1] for r in RESULTS]
    step = SPAN / shape.rows
    start = NOW - SPAN
    batch = 10_000
    for base in range(0, shape.rows, batch):
        n = min(batch, shape.rows - base)
        repo_pick = rng.choices(repos, weights, k=n)
        route_pick = rng.choices(routes, route_weights, k=n)
        result_pick = rng.choices(results, result_weights, k=n)
        for i in range(n):
            index = base + i
            when = start + step * index
            user = users[rng.randrange(len(users))]
            request_id = f"req-{index:08d}"
            if index % 10 == 9:
                yield AuditRecord(
                    request_id=request_id,
                    time=when,
                    action="auth_check",
                    result="succeeded" if result_pick[i] == "succeeded" else "denied",
                    subject=user,
                    email=f"{user}@example.com",
                    groups=("devs",),
                    peer="10.0.0.1",
                )
                continue
            repo = repo_pick[i]
            source, destination = route_pick[i]
            result = result_pick[i]
            digest = f"sha256:{rng.getrandbits(256):064x}"
            tag = f"v1.{index % 50}.{index % 7}"
            ok = result == "succeeded"
            yield AuditRecord(
                request_id=request_id,
                time=when,
                action="promote",
                result=result,
                subject=user,
                email=f"{user}@example.com",
                groups=("devs", "release"),
                kind="image",
                reference=f"{repo}:{tag}" if index % 4 else f"{repo}@{digest}",
                source_env=source,
                destination_env=destination,
                source_ref=f"{source}.example/{repo}:{tag}@{digest}",
                destination_ref=f"{destination}.example/{repo}:{tag}" if ok else None,
                digest=digest if result != "invalid" else None,
                bytes_copied=rng.randrange(1, 50_000_000) if ok else None,
                duration_ms=rng.randrange(50, 20_000),
                error_code=None if ok else "PERMISSION_DENIED",
                error=None if ok else "not allowed",
                peer="10.0.0.2",
            )


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def fill_sqlite(path: Path, shape: Shape) -> None:
    """Bulk-insert the rows into the migrated SQLite file at ``path``."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous = OFF")
    columns: list[str] | None = None
    chunk: list[tuple[Any, ...]] = []

    def flush() -> None:
        assert columns is not None
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        connection.executemany(f"INSERT INTO audit_events ({names}) VALUES ({marks})", chunk)
        chunk.clear()

    connection.execute("BEGIN")
    for record in records(shape):
        values = _row_values(record)
        if columns is None:
            columns = list(values)
        row = []
        for name in columns:
            value = values[name]
            if isinstance(value, datetime):
                value = value.astimezone(UTC).replace(tzinfo=None).strftime(_SQLITE_TIME)
            row.append(value)
        chunk.append(tuple(row))
        if len(chunk) == 20_000:
            flush()
    if chunk:
        flush()
    connection.execute("COMMIT")
    # No ANALYZE: a server's SQLite file has no statistics, and the planner must do without.
    connection.close()


def fill_postgres(schema: str, shape: Shape) -> None:
    """COPY the rows into ``schema``.audit_events."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
        columns: list[str] | None = None
        copy_context: Any = None
        cursor = connection.cursor()
        for record in records(shape):
            values = _row_values(record)
            if columns is None:
                columns = list(values)
                statement = sql.SQL("COPY audit_events ({}) FROM STDIN").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                )
                copy_context = cursor.copy(statement)
                copy = copy_context.__enter__()
            copy.write_row([values[name] for name in columns])
        if copy_context is not None:
            copy_context.__exit__(None, None, None)
        connection.execute("VACUUM ANALYZE audit_events")


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One kind of query; ``make(rng)`` gives a query and a cursor for one run."""

    name: str
    make: Callable[[random.Random], tuple[AuditQuery, AuditCursor | None]]


def day(rng: random.Random) -> datetime:
    """A random midnight within the data's year."""
    return (NOW - timedelta(days=rng.randrange(1, 365))).replace(hour=0, minute=0, second=0)


def cases(shape: Shape) -> list[Case]:
    """The audit API's filters alone and combined, as /api/audit and /story build them."""
    users, repos = shape.users, shape.repositories

    def user(rng: random.Random) -> str:
        return rng.choice(users) if rng.random() < 0.5 else f"{rng.choice(users)}@example.com"

    def env(rng: random.Random) -> str:
        return rng.choice(ENVIRONMENTS)

    def rare_result(rng: random.Random) -> str:
        return rng.choice(("failed", "invalid", "denied"))

    def deep(rng: random.Random) -> AuditCursor:
        when = NOW - SPAN * rng.uniform(0.3, 0.9)
        return AuditCursor(when, 10**12)

    def nobody(rng: random.Random) -> str:
        return f"nobody-{rng.randrange(10**6)}"

    def window(rng: random.Random, hours: int) -> tuple[datetime, datetime]:
        start = day(rng)
        return start, start + timedelta(hours=hours)

    def empty_window(rng: random.Random) -> tuple[datetime, datetime]:
        start = NOW + timedelta(days=rng.randrange(1, 100))
        return start, start + timedelta(days=1)

    restricted = frozenset({"dev", "staging"})
    q = AuditQuery
    return [
        Case("newest page", lambda r: (q(), None)),
        Case("deep page (cursor)", lambda r: (q(), deep(r))),
        Case("user", lambda r: (q(user=user(r)), None)),
        Case("user, deep page", lambda r: (q(user=user(r)), deep(r))),
        Case("user matching nothing", lambda r: (q(user=nobody(r)), None)),
        Case("environment", lambda r: (q(environment=env(r)), None)),
        Case(
            "environment matching nothing", lambda r: (q(environment=f"env{r.randrange(99)}"), None)
        ),
        Case("result (rare)", lambda r: (q(result=rare_result(r)), None)),
        Case("result succeeded", lambda r: (q(result="succeeded"), None)),
        Case("since/until 1 day", lambda r: (q(since=(w := window(r, 24))[0], until=w[1]), None)),
        Case("since only", lambda r: (q(since=day(r)), None)),
        Case("until only", lambda r: (q(until=day(r)), None)),
        Case(
            "time range matching nothing",
            lambda r: (q(since=(w := empty_window(r))[0], until=w[1]), None),
        ),
        Case("user + environment", lambda r: (q(user=user(r), environment=env(r)), None)),
        Case("user + result (rare)", lambda r: (q(user=user(r), result=rare_result(r)), None)),
        Case(
            "environment + result (rare)",
            lambda r: (q(environment=env(r), result=rare_result(r)), None),
        ),
        Case(
            "environment + 1 day",
            lambda r: (q(environment=env(r), since=(w := window(r, 24))[0], until=w[1]), None),
        ),
        Case(
            "user + 1 week",
            lambda r: (q(user=user(r), since=(w := window(r, 168))[0], until=w[1]), None),
        ),
        Case(
            "user + env + result (rare) + 1 week",
            lambda r: (
                q(
                    user=user(r),
                    environment=env(r),
                    result=rare_result(r),
                    since=(w := window(r, 168))[0],
                    until=w[1],
                ),
                None,
            ),
        ),
        Case(
            "user + environment matching nothing",
            lambda r: (q(user=nobody(r), environment=env(r)), None),
        ),
        Case("readable dev+staging", lambda r: (q(readable=restricted), None)),
        Case("readable staging+prod", lambda r: (q(readable=frozenset({"staging", "prod"})), None)),
        Case(
            "readable dev+qa + environment",
            lambda r: (
                q(environment=r.choice(("dev", "qa")), readable=frozenset({"dev", "qa"})),
                None,
            ),
        ),
        Case("readable + user", lambda r: (q(user=user(r), readable=restricted), None)),
        Case("story: repository", lambda r: (RepositoryQuery(repository=r.choice(repos)), None)),
        Case(
            "story: hot repository",
            lambda r: (RepositoryQuery(repository=repos[r.randrange(3)]), None),
        ),
        Case(
            "story: repository, deep page",
            lambda r: (RepositoryQuery(repository=r.choice(repos)), deep(r)),
        ),
        Case(
            "story: repository matching nothing",
            lambda r: (RepositoryQuery(repository=f"none/x{r.randrange(10**6)}"), None),
        ),
        Case(
            "story: repository + readable",
            lambda r: (RepositoryQuery(repository=r.choice(repos), readable=restricted), None),
        ),
    ]


# --------------------------------------------------------------------------- timing


def compiled(statement: Any, dialect: str) -> str:
    """``statement`` as literal SQL of ``dialect`` (for the bare run and EXPLAIN)."""
    target = sqlite.dialect() if dialect == "sqlite" else postgresql.dialect()
    return str(statement.compile(dialect=target, compile_kwargs={"literal_binds": True}))


def full_scan(engine: Engine, sql_text: str) -> bool:
    """Whether the plan reads the whole audit table (no index)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql_text)]
            return any(
                line.startswith("SCAN audit_events") and "INDEX" not in line for line in plan
            )
        plan = [row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql_text)]
        return any("Seq Scan on audit_events" in line for line in plan)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


@dataclass
class CaseTimes:
    """Seconds of each query of a case: the store, bare, bare through the store's threads."""

    store: list[float]
    bare: list[float]
    hop: list[float]


async def run_case(
    store: AuditStore, engine: Engine, case: Case, queries: int, seed: int
) -> tuple[CaseTimes, bool, int]:
    """Seconds of each store, bare and hop query; whether any plan scanned the table; rows."""
    rng = random.Random(seed)
    made = [case.make(rng) for _ in range(queries)]
    times = CaseTimes([], [], [])
    scanned = False
    found = 0
    loop = asyncio.get_running_loop()

    def bare(sql_text: str) -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql(sql_text).fetchall()

    for query, cursor in made:
        token = cursor.encode() if cursor is not None else None
        started = time.perf_counter()
        page = await store.search(query, limit=50, cursor=token)
        times.store.append(time.perf_counter() - started)
        found += len(page.records)
        sql_text = compiled(query.select(cursor, 51), engine.dialect.name)
        with engine.connect() as connection:
            started = time.perf_counter()
            connection.exec_driver_sql(sql_text).fetchall()
            times.bare.append(time.perf_counter() - started)
        # The store's own worker threads, as its queries take them (a private attribute: the
        # benchmark measures the hop the store pays, not one of its own).
        started = time.perf_counter()
        await loop.run_in_executor(store._executor, bare, sql_text)
        times.hop.append(time.perf_counter() - started)
    for query, cursor in made[:3]:
        scanned = scanned or full_scan(
            engine, compiled(query.select(cursor, 51), engine.dialect.name)
        )
    return times, scanned, found


def pk_floor(engine: Engine, rows: int, queries: int) -> list[float]:
    """Seconds of primary-key lookups of one row through the driver."""
    rng = random.Random(1)
    out = []
    with engine.connect() as connection:
        for _ in range(queries):
            ident = rng.randrange(1, rows)
            started = time.perf_counter()
            connection.execute(
                text("SELECT * FROM audit_events WHERE id = :i"), {"i": ident}
            ).fetchall()
            out.append(time.perf_counter() - started)
    return out


async def measure(url: str, shape: Shape, queries: int, rounds: int, only: str | None) -> bool:
    """Print the table for one database; True when every case's ratios are within the limits."""
    store = await AuditStore.open(url)
    engine = create_engine(url)
    try:
        selected = [c for c in cases(shape) if only is None or only in c.name]
        results: dict[str, list[tuple[float, float, float, float, float]]] = {
            c.name: [] for c in selected
        }
        scans: dict[str, bool] = {}
        found: dict[str, int] = {}
        floors: list[float] = []
        cpu_start = time.process_time()
        for round_ in range(rounds):
            floors.append(statistics.median(pk_floor(engine, shape.rows, queries)))
            for index, case in enumerate(selected):
                times, scanned, rows = await run_case(
                    store, engine, case, queries, index * 1000 + round_
                )
                results[case.name].append(
                    (
                        statistics.median(times.store),
                        percentile(times.store, 0.99),
                        statistics.median(times.bare),
                        percentile(times.bare, 0.99),
                        statistics.median(times.hop),
                    )
                )
                scans[case.name] = scans.get(case.name, False) or scanned
                found[case.name] = rows // queries
        cpu = time.process_time() - cpu_start
        floor = statistics.median(floors)
        print(
            f"\n{engine.dialect.name}: {shape.rows:,} rows, {queries} queries a case, "
            f"median of {rounds} rounds"
        )
        print(f"  yardstick pk lookup: {floor * 1000:.3f} ms; bench process CPU {cpu:.1f} s")
        print(
            f"  judged: p50/pk <= {MAX_P50_TO_PK:g}x and p50/hop <= {MAX_P50_TO_HOP:g}x; "
            f"not judged: p50/bare, p99/bare, the stated p99 <= {STATED_P99_MS:g} ms, full scans"
        )
        print(
            f"  {'case':<40} {'rows':>4} {'p50 ms':>8} {'p50/pk':>7} {'p50/hop':>7} "
            f"{'checks':>6} {'p99 ms':>8} {'<=50ms':>6} {'p50/bare':>8} {'p99/bare':>8} scan"
        )
        ok = True
        for case in selected:
            rows = results[case.name]
            p50 = statistics.median(r[0] for r in rows) * 1000
            p99 = statistics.median(r[1] for r in rows) * 1000
            bare99 = statistics.median(r[3] for r in rows) * 1000
            bare50 = statistics.median(r[2] for r in rows) * 1000
            hop50 = statistics.median(r[4] for r in rows) * 1000
            to_pk, to_hop = p50 / (floor * 1000), p50 / max(hop50, 1e-6)
            meets = to_pk <= MAX_P50_TO_PK and to_hop <= MAX_P50_TO_HOP
            ok = ok and meets
            verdict = "ok" if meets else "MISS"
            stated = "yes" if p99 <= STATED_P99_MS else "no"
            scan = "FULL" if scans[case.name] else "-"
            print(
                f"  {case.name:<40} {found[case.name]:>4} {p50:>8.2f} {to_pk:>7.1f} {to_hop:>7.2f}"
                f" {verdict:>6} {p99:>8.2f} {stated:>6} {p50 / max(bare50, 1e-6):>8.2f}"
                f" {p99 / max(bare99, 1e-6):>8.2f} {scan}"
            )
        return ok
    finally:
        engine.dispose()
        await store.aclose()


def main() -> None:
    """Fill, measure, print; exit 1 when a case's p50/pk or p50/hop is over its limit."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repositories", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--case", default=None, help="only the cases whose name contains this")
    parser.add_argument("--keep", type=Path, default=None, help="keep/reuse the SQLite file here")
    parser.add_argument(
        "--pg-schema", default=None, help="keep/reuse this PostgreSQL schema (drop it yourself)"
    )
    args = parser.parse_args()
    shape = Shape(
        args.rows, repository_names(args.repositories), [f"user-{n}" for n in range(args.users)]
    )
    ok = True
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="imgctl-bench-audit-") as tmp:
                path = args.keep or Path(tmp) / "audit.db"
                url = f"sqlite:///{path}"
                fresh = not path.exists()
                asyncio.run(_migrate(url))
                if fresh:
                    started = time.perf_counter()
                    fill_sqlite(path, shape)
                    log(f"sqlite: {args.rows:,} rows in {time.perf_counter() - started:.0f} s")
                ok = asyncio.run(measure(url, shape, args.queries, args.rounds, args.case)) and ok
        elif backend == "postgresql":
            import psycopg
            from psycopg import sql

            schema = args.pg_schema or f"imgctl_bench_audit_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_DSN, autocommit=True) as connection:
                fresh = not connection.execute(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
                ).fetchone()
                if fresh:
                    connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            try:
                url = f"{PG_URL}?options=-csearch_path%3D{schema}"
                asyncio.run(_migrate(url))
                if fresh:
                    started = time.perf_counter()
                    fill_postgres(schema, shape)
                    log(f"postgresql: {args.rows:,} rows in {time.perf_counter() - started:.0f} s")
                ok = asyncio.run(measure(url, shape, args.queries, args.rounds, args.case)) and ok
            finally:
                if args.pg_schema is None:
                    with psycopg.connect(PG_DSN, autocommit=True) as connection:
                        drop = sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
                        connection.execute(drop)
        else:
            parser.error(f"unknown backend {backend!r}: sqlite or postgresql")
    print(
        f"\nchecks (decide the exit status): every case p50/pk <= {MAX_P50_TO_PK:g}x and "
        f"p50/hop <= {MAX_P50_TO_HOP:g}x: {'met' if ok else 'NOT met'}"
        f" (issue 21's p99 <= {STATED_P99_MS:g} ms is printed per case, not judged)"
    )
    sys.exit(0 if ok else 1)


async def _migrate(url: str) -> None:
    store = await AuditStore.open(url)
    await store.aclose()


if __name__ == "__main__":
    main()
