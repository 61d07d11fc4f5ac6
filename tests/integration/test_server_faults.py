"""Nothing lost: promotions through SIGKILL and database outages; two replicas on one PostgreSQL.

Every server here is a real `imgctl server` process promoting between two docker-registry
processes. "The database is down" is, for PostgreSQL, a TCP proxy (tests/support/tcpproxy.py)
between the server and the machine's shared PostgreSQL that cuts every connection and refuses
new ones; for SQLite (a file, which cannot go down), another process holding the database's write
lock, so that every write by the server waits. Kill times are random: the seed is printed, and
IMGCTL_FAULT_SEED replays a run.

The invariants, checked against the registry's storage and the database after recovery:
every tag in the destination has a succeeded audit row and a catalog entry (rows lost = 0), and
no succeeded row or catalog entry names a tag that is not in the destination (false claims = 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from imgctl.oci import Reference
from imgctl.store import MAX_RECENT, AuditRecord, AuditStore, CatalogStore, IntentStore

from ..conftest import PushedImage
from ..support.deployment import (
    ENGINEERING,
    OPS,
    Identity,
    grpc_call,
    kill_process,
    launch_server,
    promote_request,
    server_env,
    start_identity,
    start_server,
    stop_process,
    wait_server,
)
from ..support.postgres import BACKENDS, PG_DSN, PG_HOST, PG_PORT, migration_head, scratch_database
from ..support.proxy import FaultProxy
from ..support.registry import Registry, add_tags
from ..support.tcpproxy import TcpProxy

SEED = int(os.environ.get("IMGCTL_FAULT_SEED") or random.SystemRandom().randrange(2**32))
LEASE = "2"  # seconds: a restarted server takes its predecessor's intents over this soon
IMAGES, TAGS_PER_IMAGE = 10, 5  # 50 promotions, each writing its own destination tag
SPREAD = 3.0  # seconds over which a round starts its calls and meets its faults
ROUNDS = ("kill", "outage, kill", "outage, back, kill", "kill")

Server = tuple[subprocess.Popen[bytes], str, str, Path]


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    root = tmp_path_factory.mktemp("faults-identity")
    with contextlib.ExitStack() as cleanup:
        yield start_identity(root, {"alice": ("alice@example.com", [ENGINEERING, OPS])}, cleanup)


# ----------------------------------------------------------------- database outages


class Database:
    """A scratch database, the URL a server uses, and a switch that takes it away."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url  # what the test reads through
        self.server_url = url
        self.proxy: TcpProxy | None = None
        self._lock: sqlite3.Connection | None = None
        self.outages = 0
        if backend == "postgresql":
            self.proxy = TcpProxy(PG_HOST, PG_PORT).start()
            self.server_url = url.replace(f"{PG_HOST}:{PG_PORT}", self.proxy.address)

    def down(self) -> None:
        """PostgreSQL: every connection cut, new ones refused. SQLite: every write waits."""
        self.outages += 1
        if self.proxy is not None:
            self.proxy.cut()
            return
        path = self.url.removeprefix("sqlite:///")
        self._lock = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._lock.execute("BEGIN EXCLUSIVE")

    def up(self) -> None:
        """Back to normal (no-op when it is not down)."""
        if self.proxy is not None:
            self.proxy.restore()
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    def close(self) -> None:
        self.up()
        if self.proxy is not None:
            self.proxy.stop()


@contextlib.contextmanager
def database(backend: str, directory: Path) -> Iterator[Database]:
    with scratch_database(backend, directory) as url:
        db = Database(backend, url)
        try:
            yield db
        finally:
            db.close()


# ----------------------------------------------------------------- promotions and the ledger


@dataclass
class Attempt:
    tag: str
    request_id: str
    status: grpc.StatusCode
    details: str
    unchanged: bool | None = None
    bytes_copied: int | None = None


@dataclass
class Fleet:
    """Images in dev, each under several tags; every tag is one promotion."""

    dev: Registry
    prod: Registry
    tags: dict[str, tuple[str, str]] = field(default_factory=dict)  # tag -> (repository, digest)
    prod_host: str = ""  # how the servers name prod (a proxy in front of it), if not its own

    def __post_init__(self) -> None:
        self.prod_host = self.prod_host or self.prod.host

    def ref(self, tag: str) -> str:
        return f"{self.tags[tag][0]}:{tag}"

    def in_destination(self) -> dict[str, str]:
        """Tags the prod registry holds, with the digest each points at (from its storage)."""
        found = {}
        for tag, (repository, _) in self.tags.items():
            link = self.prod.tag_link(f"release/{repository}", tag)
            if link.exists():
                found[tag] = link.read_text().strip()
        return found


def push_fleet(
    dev: Registry,
    prod: Registry,
    push_image: Callable[..., PushedImage],
    images: int,
    tags: int,
    prefix: str,
    layer_size: int = 300_000,
) -> Fleet:
    fleet = Fleet(dev, prod)
    for i in range(images):
        repository = f"{prefix}/app{i}"
        names = [f"i{i}-t{j}" for j in range(tags)]
        image = push_image(
            dev, repository=repository, tag=names[0], layers=1, layer_size=layer_size
        )
        asyncio.run(add_tags(image.ref, names[1:]))
        fleet.tags.update({name: (repository, image.digest) for name in names})
    return fleet


async def promote(address: str, fleet: Fleet, tag: str, token: str) -> Attempt:
    status, details, request_id, answer = await grpc_call(
        address, "Promote", promote_request(fleet.ref(tag)), token=token, deadline=120
    )
    if answer is None:
        return Attempt(tag, request_id, status, details)
    return Attempt(tag, request_id, status, details, answer.unchanged, answer.bytes_copied)


@dataclass
class Figures:
    promotions: int = 0
    calls: int = 0
    kills: int = 0
    outages: int = 0
    answered_ok: int = 0
    in_destination: int = 0
    recovered_promoted: int = 0  # succeeded rows written by recovery (bytes unknown)
    recovered_abandoned: int = 0  # rows saying the server stopped before the copy finished
    rows_lost: list[str] = field(default_factory=list)
    false_claims: list[str] = field(default_factory=list)
    duplicate_rows: list[str] = field(default_factory=list)
    ok_without_row: list[str] = field(default_factory=list)
    pending: int = 0

    def line(self) -> str:
        return (
            f"promotions {self.promotions}, calls {self.calls}, kills {self.kills}, "
            f"database outages {self.outages}, answered OK {self.answered_ok}, in the "
            f"destination {self.in_destination}, recovered: {self.recovered_promoted} promoted / "
            f"{self.recovered_abandoned} abandoned, rows lost {len(self.rows_lost)}, false "
            f"claims {len(self.false_claims)}, duplicate rows {len(self.duplicate_rows)}, "
            f"pending intents {self.pending}"
        )


def read_back(url: str) -> tuple[list[AuditRecord], set[tuple[str, str, str]], int]:
    """Audit rows of promotions, catalog (name, digest, tag) in prod, pending intents."""

    async def read() -> tuple[list[AuditRecord], set[tuple[str, str, str]], int]:
        async with await IntentStore.open(url) as store:
            rows = [r for r in await store.recent(MAX_RECENT) if r.action == "promote"]
            pending = len(await store.intents("pending"))
        async with await CatalogStore.open(url) as catalog:
            entries = await catalog.list(environment="prod")
        return rows, {(e.name, e.id, tag) for e in entries for tag in e.tags}, pending

    return asyncio.run(read())


def check(url: str, fleet: Fleet, attempts: list[Attempt], figures: Figures) -> Figures:
    """Compare the fleet's tags in the destination with the audit rows and the catalog.

    Rows and entries of other repositories (other tests sharing the database) are left out.
    """
    rows, catalog, figures.pending = read_back(url)
    present = fleet.in_destination()
    figures.promotions = len(fleet.tags)
    figures.calls = len(attempts)
    figures.answered_ok = sum(a.status == grpc.StatusCode.OK for a in attempts)
    figures.in_destination = len(present)
    names = {f"{fleet.prod_host}/release/{repo}": repo for repo, _ in fleet.tags.values()}
    ours = {(repository, tag) for tag, (repository, _) in fleet.tags.items()}

    def of_fleet(row: AuditRecord) -> bool:
        if not row.destination_ref:
            return False
        reference = Reference.parse(row.destination_ref)
        return (names.get(reference.name), reference.tag) in ours

    rows = [row for row in rows if of_fleet(row)]
    claimed: dict[str, set[str]] = {}
    for row in rows:
        if row.result == "succeeded":
            reference = Reference.parse(row.destination_ref or "")
            assert reference.tag is not None
            claimed.setdefault(reference.tag, set()).add(str(reference.digest))
            if row.bytes_copied is None:
                figures.recovered_promoted += 1
        if row.error_code == "ABORTED" and "stopped" in (row.error or ""):
            figures.recovered_abandoned += 1
    for tag, digest in present.items():
        repository = fleet.tags[tag][0]
        recorded = (f"{fleet.prod_host}/release/{repository}", digest, tag) in catalog
        if digest not in claimed.get(tag, set()) or not recorded:
            figures.rows_lost.append(tag)
    for tag, digests in claimed.items():
        if present.get(tag) not in digests or len(digests) != 1:
            figures.false_claims.append(f"audit row: {tag}")
    for name, digest, tag in catalog:
        if (names.get(name), tag) in ours and present.get(tag) != digest:
            figures.false_claims.append(f"catalog: {name}:{tag}")
    per_request = Counter(row.request_id for row in rows)
    figures.duplicate_rows = [rid for rid, n in per_request.items() if n > 1]
    succeeded = {row.request_id for row in rows if row.result == "succeeded"}
    figures.ok_without_row = [
        a.request_id
        for a in attempts
        if a.status == grpc.StatusCode.OK and a.request_id not in succeeded
    ]
    return figures


def wait_settled(url: str, seconds: float = 60) -> None:
    """Until no promotion intent is pending (recovery has settled every one)."""

    async def pending() -> int:
        async with await IntentStore.open(url) as store:
            return len(await store.intents("pending"))

    deadline = time.monotonic() + seconds
    while asyncio.run(pending()):
        assert time.monotonic() < deadline, "promotion intents still pending"
        time.sleep(0.2)


# ----------------------------------------------------------------- 10: fifty promotions, faults


async def faulty_round(
    kind: str,
    process: subprocess.Popen[bytes],
    address: str,
    fleet: Fleet,
    tags: list[str],
    token: str,
    db: Database,
    rng: random.Random,
) -> list[Attempt]:
    """The promotions of ``tags``, started over a few seconds; an outage (or not); SIGKILL.

    Calls start at random moments of a 3 s window, so that whatever the machine's speed some
    are being checked, some copying and some recording when the faults come, at random moments
    of the same window.
    """
    started = time.monotonic()

    async def later(tag: str) -> Attempt:
        await asyncio.sleep(rng.uniform(0, SPREAD))
        return await promote(address, fleet, tag, token)

    async def at(moment: float) -> None:
        await asyncio.sleep(max(0.0, started + moment - time.monotonic()))

    calls = [asyncio.ensure_future(later(tag)) for tag in tags]
    kill = rng.uniform(0.8, SPREAD)
    if "outage" in kind:
        down = rng.uniform(0.3, kill - 0.4)
        await at(down)
        await asyncio.to_thread(db.down)
        if "back" in kind:
            await at(rng.uniform(down + 0.2, kill - 0.1))
            await asyncio.to_thread(db.up)
    await at(kill)
    process.send_signal(signal.SIGKILL)
    return list(await asyncio.gather(*calls))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fifty_promotions_through_kills_and_database_outages(
    backend: str,
    identity: Identity,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    rng = random.Random(f"{SEED}-{backend}")
    dev, prod = registries(), registries()
    fleet = push_fleet(dev, prod, push_image, IMAGES, TAGS_PER_IMAGE, f"faults-{backend}")
    slow_dev = proxy_for(dev)
    slow_dev.latency = 0.15  # a copy then takes about a second: many are in flight at a fault
    token = identity.token("alice")
    attempts: list[Attempt] = []
    kills = 0
    problems: dict[str, set[str]] = {"lost": set(), "false": set(), "dup": set(), "ok": set()}
    with database(backend, tmp_path) as db:
        env = server_env(identity.idp, dev, prod) | {
            "IMGCTL_REGISTRY_DEV": slow_dev.host,
            "IMGCTL_DATABASE_URL": db.server_url,
            "IMGCTL_PROMOTION_LEASE": LEASE,
        }

        def checkpoint(when: str) -> Figures:
            # A restarted server settles what the killed one left (its lease runs out first);
            # then the destination, the audit rows and the catalog must agree.
            wait_settled(db.url)
            figures = check(db.url, fleet, attempts, Figures(kills=kills, outages=db.outages))
            print(f"[{backend}] seed {SEED}: {when}: {figures.line()}")
            problems["lost"].update(figures.rows_lost)
            problems["false"].update(figures.false_claims)
            problems["dup"].update(figures.duplicate_rows)
            problems["ok"].update(figures.ok_without_row)
            return figures

        print()
        left = sorted(fleet.tags)
        for number, kind in enumerate(ROUNDS, 1):
            process, address, _, _ = start_server(tmp_path, env)
            try:
                if number > 1:
                    checkpoint(f"after round {number - 1}")
                outcomes = asyncio.run(
                    faulty_round(kind, process, address, fleet, left, token, db, rng)
                )
            finally:
                kill_process(process)
                db.up()
            kills += 1
            attempts += outcomes
            done = {a.tag for a in outcomes if a.status == grpc.StatusCode.OK}
            left = [tag for tag in left if tag not in done]

        # The rest, with nothing failing: every promotion ends promoted and recorded.
        process, address, _, _ = start_server(tmp_path, env)
        try:
            checkpoint(f"after round {len(ROUNDS)}")

            async def rest() -> list[Attempt]:
                return list(
                    await asyncio.gather(*(promote(address, fleet, tag, token) for tag in left))
                )

            final = asyncio.run(rest())
            attempts += final
        finally:
            stop_process(process)
        assert [a.details for a in final if a.status != grpc.StatusCode.OK] == []
        figures = checkpoint("in the end")
        assert figures.in_destination == len(fleet.tags)
        assert figures.pending == 0
        assert sorted(problems["lost"]) == [], "copied without an audit row and catalog entry"
        assert sorted(problems["false"]) == [], "a row claims a copy that did not happen"
        assert sorted(problems["dup"]) == [], "a request with more than one audit row"
        assert sorted(problems["ok"]) == [], "answered OK without a succeeded audit row"


# ----------------------------------------------------------------- 10: the database down


def test_database_down_refuses_new_promotions_and_records_copies_when_back(
    identity: Identity,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    dev, prod = registries(), registries()
    fleet = push_fleet(dev, prod, push_image, 1, 2, "outage", layer_size=1_500_000)
    first, second = sorted(fleet.tags)
    slow_dev = proxy_for(dev)
    slow_dev.throttle_bytes_per_second = 1_000_000  # about 1.5 s per layer
    token = identity.token("alice")
    with database("postgresql", tmp_path) as db:
        env = server_env(identity.idp, dev, prod) | {
            "IMGCTL_REGISTRY_DEV": slow_dev.host,
            "IMGCTL_DATABASE_URL": db.server_url,
            "IMGCTL_PROMOTION_LEASE": LEASE,
        }
        process, address, _, log = start_server(tmp_path, env)
        try:
            db.down()
            refused = asyncio.run(promote(address, fleet, first, token))
            assert refused.status == grpc.StatusCode.UNAVAILABLE, refused.details
            assert "nothing was copied" in refused.details
            assert "database" in refused.details
            assert fleet.in_destination() == {}  # no copy without its record
            db.up()

            async def cut_mid_copy() -> Attempt:
                call = asyncio.ensure_future(promote(address, fleet, second, token))
                await asyncio.sleep(0.5)  # the intent is written; the copy is under way
                await asyncio.to_thread(db.down)
                attempt = await call
                await asyncio.to_thread(db.up)
                return attempt

            cut = asyncio.run(cut_mid_copy())
            assert cut.status == grpc.StatusCode.UNAVAILABLE, cut.details
            assert "copied" in cut.details
            assert second in fleet.in_destination()
            # No restart: the server records it by itself once the database is back.
            deadline = time.monotonic() + 30
            while True:
                rows, catalog, pending = read_back(db.url)
                if any(r.request_id == cut.request_id for r in rows) and not pending:
                    break
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            [row] = [r for r in rows if r.request_id == cut.request_id]
            assert row.result == "succeeded"
            assert row.bytes_copied is not None  # the copy's own numbers, not recovery's
            assert row.bytes_copied > 0
            repository, digest = fleet.tags[second]
            assert (f"{prod.host}/release/{repository}", digest, second) in catalog
            again = asyncio.run(promote(address, fleet, first, token))
            assert again.status == grpc.StatusCode.OK, again.details
        finally:
            stop_process(process)
        figures = check(db.url, fleet, [refused, cut, again], Figures(outages=db.outages))
        assert figures.rows_lost == []
        assert figures.false_claims == []
        assert figures.duplicate_rows == []


@pytest.mark.parametrize(("fault", "promoted"), [(-1, True), (503, False), (0, False)])
def test_a_copy_that_fails_at_its_tag_is_recorded_as_what_the_destination_shows(
    fault: int,
    promoted: bool,
    identity: Identity,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    """The tag is written last; whether its PUT arrived decides, not whether its answer did.

    -1: the registry wrote the tag, but every answer to the PUT was lost (a reset after the
    write); 503 and 0 (a reset before it): the tag was never written.
    """
    dev, prod = registries(), registries()
    fleet = push_fleet(dev, prod, push_image, 1, 1, f"tag-fault-{fault + 1}")
    [tag] = fleet.tags
    lossy = proxy_for(prod)
    fleet.prod_host = lossy.host
    lossy.fail(fault, 1000, method="PUT", path=rf"/manifests/{tag}$")
    token = identity.token("alice")
    with database("sqlite", tmp_path) as db:
        env = server_env(identity.idp, dev, prod) | {
            "IMGCTL_REGISTRY_PROD": f"{lossy.host}/release",
            "IMGCTL_DATABASE_URL": db.server_url,
        }
        process, address, _, _ = start_server(tmp_path, env)
        try:
            attempt = asyncio.run(promote(address, fleet, tag, token))
        finally:
            stop_process(process)
        assert (tag in fleet.in_destination()) is promoted
        assert (attempt.status == grpc.StatusCode.OK) is promoted, attempt.details
        figures = check(db.url, fleet, [attempt], Figures())
        assert figures.rows_lost == []
        assert figures.false_claims == []
        assert figures.duplicate_rows == []
        assert figures.pending == 0


# ----------------------------------------------------------------- 11: two replicas


@dataclass
class Replicas:
    a: Server
    b: Server
    db: Database
    dev: Registry
    prod: Registry
    slow_dev: FaultProxy
    prod_proxy: FaultProxy
    identity: Identity
    root: Path
    watched: PushedImage
    started_together: float

    def audit_count(self, **filters: str) -> int:
        async def count() -> int:
            async with await AuditStore.open(self.db.url) as store:
                return await store.count(**filters)

        return asyncio.run(count())


WATCH_INTERVAL = 2.0


@pytest.fixture(scope="module")
def replicas(
    identity: Identity,
    registries: Callable[..., Registry],
    layouts: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    from ..support.skopeo import push_layout

    root = tmp_path_factory.mktemp("replicas")
    dev, prod = registries(), registries()
    slow_dev = FaultProxy(dev.host).start()
    slow_dev.throttle_bytes_per_second = 1_000_000
    prod_proxy = FaultProxy(prod.host).start()  # counts what reaches prod
    built = layouts(tag="1.0.0", layers=1)
    push_layout(built.oci_ref, f"{dev.host}/shop/web:1.0.0")
    watched = PushedImage(f"{dev.host}/shop/web:1.0.0", built)
    watches = root / "watches.yaml"
    watches.write_text(
        f"""
serviceIdentity:
  subject: imgctl-scanner
  email: scanner@example.com
  groups: ["{ENGINEERING}"]
watches:
  - name: web
    image: {slow_dev.host}/shop/web
    interval: {WATCH_INTERVAL:g}s
    policy:
      semver:
        range: ">=1.0.0"
    autoPromote: {{from: dev, to: prod}}
"""
    )
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(slow_dev.stop)
        cleanup.callback(prod_proxy.stop)
        db = cleanup.enter_context(database("postgresql", root))
        env = server_env(identity.idp, dev, prod) | {
            "IMGCTL_REGISTRY_DEV": slow_dev.host,
            "IMGCTL_REGISTRY_PROD": f"{prod_proxy.host}/release",
            "IMGCTL_DATABASE_URL": db.url,
            "IMGCTL_PROMOTION_LEASE": LEASE,
        }
        # Both at once, on an empty schema: they migrate it together.
        started = time.monotonic()
        a = launch_server(root, env, "--watches", str(watches))
        cleanup.callback(stop_process, a[0])
        b = launch_server(root, env, "--watches", str(watches))
        cleanup.callback(stop_process, b[0])
        wait_server(a)
        wait_server(b)
        yield Replicas(
            a,
            b,
            db,
            dev,
            prod,
            slow_dev,
            prod_proxy,
            identity,
            root,
            watched,
            time.monotonic() - started,
        )


def test_replicas_starting_together_migrate_once(replicas: Replicas) -> None:
    import psycopg

    schema = replicas.db.url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(PG_DSN) as connection:
        versions = connection.execute(
            f'SELECT version_num FROM "{schema}".alembic_version'
        ).fetchall()
    assert versions == [(migration_head(),)]
    for process, _, http, _ in (replicas.a, replicas.b):
        assert process.poll() is None
        assert httpx.get(f"http://{http}/readyz", timeout=10).status_code == 200


def test_the_same_promotion_sent_to_both_replicas_copies_once(
    replicas: Replicas, push_image: Callable[..., PushedImage]
) -> None:
    image = push_image(
        replicas.dev, repository="both/app", tag="v1", layers=1, layer_size=1_000_000
    )
    token = replicas.identity.token("alice")
    fleet = Fleet(
        replicas.dev, replicas.prod, {"v1": ("both/app", image.digest)}, replicas.prod_proxy.host
    )

    async def both() -> list[Attempt]:
        return list(
            await asyncio.gather(
                promote(replicas.a[1], fleet, "v1", token),
                promote(replicas.b[1], fleet, "v1", token),
            )
        )

    attempts = asyncio.run(both())
    assert [a.status for a in attempts] == [grpc.StatusCode.OK] * 2, attempts
    tag_puts = [
        entry
        for entry in replicas.prod_proxy.log
        if entry[0] == "PUT" and entry[1] == "/v2/release/both/app/manifests/v1"
    ]
    assert len(tag_puts) == 1, "the tag was written by both replicas"
    # One copied, the other waited its turn and found the work done.
    assert sorted(a.unchanged for a in attempts) == [False, True]
    assert sorted(a.bytes_copied or 0 for a in attempts)[0] == 0
    for attempt in attempts:
        assert replicas.audit_count(request_id=attempt.request_id, result="succeeded") == 1
    figures = check(replicas.db.url, fleet, attempts, Figures())
    assert figures.rows_lost == []
    assert figures.false_claims == []


def test_a_watch_is_scanned_and_auto_promoted_once_by_two_replicas(
    replicas: Replicas, layouts: Callable[..., Any]
) -> None:
    from ..support.skopeo import push_layout

    newer = layouts(tag="1.0.1", layers=1)
    push_layout(newer.oci_ref, f"{replicas.dev.host}/shop/web:1.0.1")
    deadline = time.monotonic() + 60
    while not replicas.prod.has_tag("release/shop/web", "1.0.1"):
        assert time.monotonic() < deadline, "1.0.1 was not auto-promoted"
        time.sleep(0.2)
    time.sleep(3 * WATCH_INTERVAL)  # both replicas scan again (and would promote again)
    for version, digest in (("1.0.0", replicas.watched.digest), ("1.0.1", newer.digest)):
        reference = f"shop/web:{version}@{digest}"
        assert replicas.audit_count(reference=reference) == 1, version
    tag_puts = [
        entry
        for entry in replicas.prod_proxy.log
        if entry[0] == "PUT" and entry[1] == "/v2/release/shop/web/manifests/1.0.1"
    ]
    assert len(tag_puts) == 1


def test_killing_one_replica_loses_nothing(
    replicas: Replicas, push_image: Callable[..., PushedImage]
) -> None:
    rng = random.Random(f"{SEED}-replicas")
    fleet = push_fleet(replicas.dev, replicas.prod, push_image, 2, 8, "kill-one")
    fleet.prod_host = replicas.prod_proxy.host
    on_a, on_b = sorted(fleet.tags)[:10], sorted(fleet.tags)[10:]
    token = replicas.identity.token("alice")
    victim = replicas.a[0]

    async def later(address: str, tag: str) -> Attempt:
        await asyncio.sleep(rng.uniform(0, SPREAD))
        return await promote(address, fleet, tag, token)

    async def run() -> list[Attempt]:
        # Calls to A start over a few seconds; A is killed once its first copies have landed,
        # with others copying and others not yet sent.
        calls = [later(replicas.a[1], tag) for tag in on_a]
        calls += [later(replicas.b[1], tag) for tag in on_b]
        futures = [asyncio.ensure_future(c) for c in calls]
        deadline = time.monotonic() + 30
        while not set(on_a) & set(fleet.in_destination()):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        victim.send_signal(signal.SIGKILL)
        return list(await asyncio.gather(*futures))

    attempts = asyncio.run(run())
    kill_process(victim)
    survivors = [a for a in attempts if a.tag in on_b]
    assert [a.details for a in survivors if a.status != grpc.StatusCode.OK] == []
    wait_settled(replicas.db.url)  # replica B takes A's intents over when their lease ends
    figures = check(replicas.db.url, fleet, attempts, Figures(kills=1))
    print(f"\ntwo replicas, one killed (seed {SEED}): {figures.line()}")
    assert figures.rows_lost == []
    assert figures.false_claims == []
    assert figures.duplicate_rows == []
    assert figures.ok_without_row == []
    # B still serves, and whatever A left undone can be promoted again through it.
    undone = [tag for tag in on_a if tag not in fleet.in_destination()]

    async def again() -> list[Attempt]:
        return list(
            await asyncio.gather(*(promote(replicas.b[1], fleet, tag, token) for tag in undone))
        )

    assert [a.details for a in asyncio.run(again()) if a.status != grpc.StatusCode.OK] == []
    assert set(fleet.in_destination()) == set(fleet.tags)
