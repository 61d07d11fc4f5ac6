"""Benchmark: ``imgctl catalog import`` of 100,000 images against the database's own bulk floor.

For each database (a SQLite file in a temp dir; PostgreSQL at ``--pg-url``, a fresh schema per
round), in the same run, each round on a freshly migrated, empty catalog:

* imgctl: ``imgctl catalog import FILE -e prod`` as a process, FILE being 100,000 catalog objects
  as JSON lines (what ``GET /images`` answers, with every field set): start-up, reading and
  checking every line, opening the database, one transaction;
* imgctl again: the same file imported a second time (every entry present: nothing written);
* imgctl start-up: the same command with an empty file into the same database (interpreter,
  imports, opening the database, an empty transaction): what the process costs before its first
  line, whatever the file holds;
* floor: the same rows, already made, written by the driver alone in one transaction, with no
  parsing and no checks: ``sqlite3`` ``executemany`` of one INSERT, psycopg ``COPY``. No import
  can be faster than this; the ratio says what the checks and the process cost on top;
* one at a time (informative): ``CatalogStore.put`` per image, as a client PUTting each image
  does (``imgctl cip --catalog-url`` today), for ``--one-at-a-time`` images, scaled to 100,000.

Prints medians of ``--rounds`` rounds (default 3): wall seconds, the imgctl process's CPU seconds
(user + system, from wait4) and, for PostgreSQL, the CPU of the database's backends (the
``postgres`` processes' /proc counters, before and after); ratios to the floor.

The exit status depends only on a ratio to what the same run measured (issue 23 item 5): the
import's wall time (``--judge cpu``: imgctl's plus the database server's CPU) over the floor of a
whole import, imgctl's start-up plus the driver's write, at most ``FLOOR_LIMIT``; exit status 1
when a database misses it. Issue 21's absolute figure (< 10 s for 100,000 images) is printed
beside it, not judged.

    python bench/catalog_import.py                     # 100,000 images, SQLite and PostgreSQL
    python bench/catalog_import.py --images 20000 --rounds 1 --databases sqlite
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
ROOT = _BENCH_DIR.parent
# bench/copy.py would shadow the standard library's copy module: keep this directory off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

# What decides the exit status: the import over (imgctl's start-up + the driver's write) of the
# same run. 100,000 images at a load of 6-11 (2026-12-07 13:13): 3.1x of wall and 3.5x of CPU on
# SQLite, 2.4x and 2.8x on PostgreSQL (start-up 0.4 s of CPU, reading and checking 1.05 s, the
# transaction 1.2 s; the driver alone 0.6 s); the quiet figures of docs/performance.md "Bulk
# catalog import" (2.94 s of CPU over the driver's 0.58 s) come to about 3x of CPU with that
# start-up. Smaller files come nearer 1 (start-up dominates). 5x leaves 1.45x over the highest:
# an import that costs half as much again as today fails it.
FLOOR_LIMIT = 5.0
# Issue 21 stated the import of 100,000 images absolutely; printed beside the ratio, not judged.
STATED_SECONDS = 10.0
ENVIRONMENT = "prod"
REGISTRY = "registry.example.com"
_IMGCTL = Path(sys.executable).parent / "imgctl"
IMGCTL = str(_IMGCTL) if _IMGCTL.exists() else "imgctl"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PG_PORT = os.environ.get("IMGCTL_TEST_PG_PORT") or 5432


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def digest_of(number: int) -> str:
    """A made-up but well-formed digest for image ``number``."""
    return "sha256:" + f"{number:064x}"


def catalog_object(n: int, when: str) -> dict[str, Any]:
    """Image ``n`` as ``GET /images`` answers it for a promotion the server recorded."""
    name = f"{REGISTRY}/team-{n % 100}/app-{n}"
    return {
        "created_at": when,
        "updated_at": when,
        "id": digest_of(n),
        "name": name,
        "tags": [f"v{n % 7}.0", "latest"],
        "environment": ENVIRONMENT,
        "source": f"{REGISTRY}/staging/app-{n}:v{n % 7}.0@{digest_of(n)}",
        "promoted_by": "release-bot@example.com",
        "promoted_at": when,
        "signed": True,
        "attested": n % 2 == 0,
    }


def write_file(path: Path, count: int) -> None:
    """The import file: ``count`` catalog objects, one per line."""
    when = "2026-12-01T10:00:00Z"
    with path.open("w") as stream:
        for n in range(count):
            stream.write(json.dumps(catalog_object(n, when)) + "\n")


@contextmanager
def database(kind: str, directory: Path, pg_url: str) -> Iterator[str]:
    """A freshly migrated, empty catalog database of ``kind``; dropped afterwards."""
    from imgctl.store import CatalogStore

    if kind == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{directory}/{time.monotonic_ns()}.db"
        asyncio.run(_migrate(CatalogStore, url))
        yield url
        return
    import psycopg

    schema = f"imgctl_bench_{time.monotonic_ns()}"
    dsn = _dsn(pg_url)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{pg_url}?options=-csearch_path%3D{schema}"
        asyncio.run(_migrate(CatalogStore, url))
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


async def _migrate(store_class: Any, url: str) -> None:
    store = await store_class.open(url)
    await store.aclose()


def _dsn(pg_url: str) -> str:
    return pg_url.replace("postgresql+psycopg://", "postgresql://")


def postgres_cpu() -> float:
    """CPU seconds used so far by the ``postgres`` processes of this machine.

    Each process's own time plus that of its children that ended (the postmaster's cutime and
    cstime hold the backends that disconnected), so a backend that ends between two reads
    still counts. Other clients of the same server count too: a busy machine adds noise.
    """
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def run_import(path: Path, url: str) -> tuple[float, float, str]:
    """One ``imgctl catalog import``: (wall s, the process's CPU s, its summary line)."""
    env = {**os.environ, "IMGCTL_DATABASE_URL": url}
    started = time.perf_counter()
    process = subprocess.Popen(
        [IMGCTL, "catalog", "import", str(path), "-e", ENVIRONMENT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"imgctl catalog import failed ({process.returncode}): {err.decode()}")
    return wall, usage.ru_utime + usage.ru_stime, out.decode().strip()


def floor_rows(count: int) -> list[tuple[Any, ...]]:
    """The rows the import writes, made beforehand (not timed): the floor only writes them."""
    when = datetime(2026, 12, 1, 10, tzinfo=UTC)
    rows = []
    for n in range(count):
        body = catalog_object(n, "")
        rows.append(
            (
                body["id"],
                ENVIRONMENT,
                body["name"],
                json.dumps(body["tags"]),
                body["source"],
                body["promoted_by"],
                when,
                body["signed"],
                body["attested"],
                when,
                when,
            )
        )
    return rows


_COLUMNS = (
    "id, environment, name, tags, source, promoted_by, promoted_at, signed, attested, "
    "created_at, updated_at"
)


def run_floor(kind: str, url: str, rows: list[tuple[Any, ...]]) -> tuple[float, float]:
    """The driver alone writes ``rows`` in one transaction: (wall s, CPU s of this process)."""
    if kind == "sqlite":
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        # As SQLAlchemy stores the UTC times on SQLite: text.
        stored = [
            (*row[:6], _text(row[6]), *row[7:9], _text(row[9]), _text(row[10])) for row in rows
        ]
        started, cpu = time.perf_counter(), time.process_time()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            f"INSERT INTO catalog_images ({_COLUMNS}) VALUES ({', '.join('?' * 11)})",
            stored,
        )
        connection.execute("COMMIT")
        wall, used = time.perf_counter() - started, time.process_time() - cpu
        connection.close()
        return wall, used
    import psycopg

    schema = url.rpartition("search_path%3D")[2]
    base = url.partition("?")[0]
    with psycopg.connect(_dsn(base), options=f"-csearch_path={schema}") as connection:
        started, cpu = time.perf_counter(), time.process_time()
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY catalog_images ({_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.commit()
        return time.perf_counter() - started, time.process_time() - cpu


def _text(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def run_one_at_a_time(url: str, count: int) -> tuple[float, float]:
    """``count`` images written one call at a time (``CatalogStore.put``): (wall s, CPU s)."""
    from imgctl.store import CatalogStore

    async def main() -> tuple[float, float]:
        store = await CatalogStore.open(url)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            for n in range(count):
                body = catalog_object(n, "")
                await store.put(body["id"], body["name"], body["tags"], environment=ENVIRONMENT)
            return time.perf_counter() - started, time.process_time() - cpu
        finally:
            await store.aclose()

    return asyncio.run(main())


def median(values: list[float]) -> float:
    """The median, for the table."""
    return statistics.median(values)


def measure(
    kind: str, args: argparse.Namespace, path: Path, rows: list[tuple[Any, ...]], work: Path
) -> dict[str, dict[str, list[float]]]:
    """Every row of one database, ``args.rounds`` times."""
    results: dict[str, dict[str, list[float]]] = {}
    empty = work / "empty.jsonl"
    empty.write_text("")

    def add(row: str, **values: float) -> None:
        for key, value in values.items():
            results.setdefault(row, {}).setdefault(key, []).append(value)

    pg = kind == "postgresql"

    def server_cpu() -> float:
        if not pg:
            return 0.0
        # The backend of the connection that just migrated ends a moment after it closes: let
        # the postmaster count it before this reading, not after.
        time.sleep(0.5)
        return postgres_cpu()

    for round_number in range(args.rounds):
        log(f"{kind}: round {round_number + 1} of {args.rounds}")
        with database(kind, work / kind, args.pg_url) as url:
            before = server_cpu()
            wall, cpu, summary = run_import(path, url)
            add("imgctl import", wall=wall, cpu=cpu, db_cpu=server_cpu() - before)
            log(f"  {summary}")
            before = server_cpu()
            wall, cpu, summary = run_import(path, url)
            add("imgctl import again", wall=wall, cpu=cpu, db_cpu=server_cpu() - before)
            log(f"  {summary}")
            before = server_cpu()
            wall, cpu, summary = run_import(empty, url)
            add(STARTUP, wall=wall, cpu=cpu, db_cpu=server_cpu() - before)
        with database(kind, work / kind, args.pg_url) as url:
            before = server_cpu()
            wall, cpu = run_floor(kind, url, rows)
            add("floor (driver alone)", wall=wall, cpu=cpu, db_cpu=server_cpu() - before)
        if args.one_at_a_time and round_number == 0:
            with database(kind, work / kind, args.pg_url) as url:
                before = server_cpu()
                wall, cpu = run_one_at_a_time(url, args.one_at_a_time)
                scale = args.images / args.one_at_a_time
                add(
                    "one at a time (scaled)",
                    wall=wall * scale,
                    cpu=cpu * scale,
                    db_cpu=(server_cpu() - before) * scale,
                )
    return results


STARTUP = "imgctl start-up (empty file)"


def report(kind: str, results: dict[str, dict[str, list[float]]], images: int, judge: str) -> bool:
    """Print one database's table; True when the import's ratio to the run's floor is in limit.

    Two ratios to the floor: of wall time, and of CPU (imgctl's, or the bench process's for the
    floor, plus the database server's): on a busy machine the second is the one to read. The
    judged one divides by the floor of a whole import: imgctl's start-up plus the driver's write.
    """
    floor = results["floor (driver alone)"]
    floor_wall = median(floor["wall"])
    floor_cpu = median(floor["cpu"]) + median(floor["db_cpu"])
    print(f"\n{kind}: {images:,} images, medians of {len(results['imgctl import']['wall'])}")
    header = (
        f"{'row':26} {'wall s':>8} {'imgctl CPU s':>13} {'db CPU s':>9} "
        f"{'x floor wall':>13} {'x floor CPU':>12}"
    )
    print(header)
    print("-" * len(header))
    for row, values in results.items():
        wall, cpu, db_cpu = median(values["wall"]), median(values["cpu"]), median(values["db_cpu"])
        db = f"{db_cpu:9.2f}" if kind == "postgresql" else f"{'-':>9}"
        print(
            f"{row:26} {wall:8.2f} {cpu:13.2f} {db} {wall / floor_wall:13.1f} "
            f"{(cpu + db_cpu) / floor_cpu:12.1f}"
        )

    def cost(row: str) -> float:
        values = results[row]
        if judge == "wall":
            return median(values["wall"])
        return median(values["cpu"]) + median(values["db_cpu"])

    whole_floor = cost(STARTUP) + cost("floor (driver alone)")
    ratio = cost("imgctl import") / whole_floor
    met = ratio <= FLOOR_LIMIT
    print(
        f"check (decides the exit status): import / (start-up + floor), {judge}: "
        f"{cost('imgctl import'):.2f} s / ({cost(STARTUP):.2f} + "
        f"{cost('floor (driver alone)'):.2f}) s = {ratio:.2f}x <= {FLOOR_LIMIT:g}x: "
        f"{'met' if met else 'NOT met'}"
    )
    wall = median(results["imgctl import"]["wall"])
    print(
        f"issue 21's absolute figure, not judged: import of {images:,} images {wall:.2f} s wall "
        f"(stated < {STATED_SECONDS:.0f} s for 100,000)"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when the import's ratio to the run's floor is over the limit."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--pg-url",
        default=f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/test",
    )
    parser.add_argument(
        "--one-at-a-time",
        type=int,
        default=2000,
        help="images written one call at a time, scaled to --images (0: skip that row)",
    )
    parser.add_argument(
        "--judge",
        choices=("wall", "cpu"),
        default="wall",
        help="which ratio decides the exit status: wall time, or CPU (imgctl's plus the "
        "database server's) on a machine shared with other work",
    )
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.databases.split(",") if kind.strip()]
    with tempfile.TemporaryDirectory(prefix="imgctl-bench-import-") as temp:
        work = Path(temp)
        path = work / "images.jsonl"
        log(f"writing {args.images:,} catalog objects to {path}")
        write_file(path, args.images)
        log(f"{path.stat().st_size / 1e6:.1f} MB")
        rows = floor_rows(args.images)
        load = os.getloadavg()
        met = True
        for kind in kinds:
            results = measure(kind, args, path, rows, work)
            met = report(kind, results, args.images, args.judge) and met
    print(f"\nload average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
