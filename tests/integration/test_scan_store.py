"""ScanStore: watch state round trips and claims (leases between replicas), on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from imgctl.remote import ClientOptions
from imgctl.scan.scanner import MemoryScanState, Scanner, ScanState
from imgctl.scan.watches import Watch, parse_watches
from imgctl.store import ScanStore, WatchState

from ..conftest import PushedImage
from ..support.registry import Registry

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[ScanStore]:
    opened = await ScanStore.open(db_url)
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_state_round_trip(store: ScanStore) -> None:
    state = WatchState(
        name="app",
        image="registry.example.com/team/app",
        tags=("v2", "v1", "ünïcode"),
        revision="sha256:" + "1" * 64,
        scan_time=NOW,
        ready="True",
        reason="Succeeded",
        message="successful scan: found 3 tags",
        transition_time=NOW,
        failures=0,
        latest_tag="v2",
        latest_digest="sha256:" + "2" * 64,
        promoted_tag="v1",
        promoted_digest="sha256:" + "3" * 64,
        next_scan_at=NOW + timedelta(minutes=1),
        owner="replica-a",
        updated_at=NOW,
    )
    await store.save(state)
    loaded = await store.get("app")
    # Tags are kept sorted: the revision is a checksum of the set, not of the listing order.
    assert loaded == replace(state, tags=("v1", "v2", "ünïcode"))
    await store.save(replace(state, ready="False", reason="AuthenticationFailed", failures=1))
    again = await store.get("app")
    assert again is not None
    assert (again.ready, again.reason, again.failures) == ("False", "AuthenticationFailed", 1)
    assert [s.name for s in await store.all()] == ["app"]
    assert await store.forget("app") is True
    assert await store.forget("app") is False
    assert await store.get("app") is None


@pytest.mark.parametrize("memory", [False, True], ids=["store", "memory"])
async def test_claim_is_a_lease(store: ScanStore, memory: bool) -> None:
    state: ScanState = MemoryScanState() if memory else store
    assert await state.claim("app", "r/app", owner="a", lease=60, now=NOW) is None
    # Taken: another replica is told when to come back (the lease's end).
    due = await state.claim("app", "r/app", owner="b", lease=60, now=NOW + timedelta(seconds=1))
    assert due == NOW + timedelta(seconds=60)
    # The scan finished and set the next scan in 30 s: nobody may take it before then.
    current = await state.get("app")
    assert current is not None
    await state.save(replace(current, next_scan_at=NOW + timedelta(seconds=30)))
    assert await state.claim("app", "r/app", owner="b", lease=60, now=NOW + timedelta(seconds=29))
    assert (
        await state.claim("app", "r/app", owner="b", lease=60, now=NOW + timedelta(seconds=30))
        is None
    )
    taken = await state.get("app")
    assert taken is not None
    assert taken.owner == "b"


@pytest.mark.parametrize("memory", [False, True], ids=["store", "memory"])
async def test_only_the_claims_owner_extends_it(store: ScanStore, memory: bool) -> None:
    state: ScanState = MemoryScanState() if memory else store
    assert not await state.extend("app", owner="a", lease=60, now=NOW)  # nobody claimed it
    assert await state.claim("app", "r/app", owner="a", lease=10, now=NOW) is None
    assert not await state.extend("app", owner="b", lease=60, now=NOW + timedelta(seconds=5))
    assert await state.extend("app", owner="a", lease=60, now=NOW + timedelta(seconds=5))
    later = NOW + timedelta(seconds=20)  # the first lease (10 s) would have run out
    assert await state.claim("app", "r/app", owner="b", lease=60, now=later) == NOW + timedelta(
        seconds=65
    )
    # Extending never shortens a claim.
    assert await state.extend("app", owner="a", lease=1, now=NOW + timedelta(seconds=6))
    current = await state.get("app")
    assert current is not None
    assert current.next_scan_at == NOW + timedelta(seconds=65)


@pytest.mark.parametrize("memory", [False, True], ids=["store", "memory"])
async def test_an_early_claim_takes_a_scheduled_watch_but_never_a_held_one(
    store: ScanStore, memory: bool
) -> None:
    """A changed watch is claimed before its next scan is due, unless a replica is scanning it."""
    state: ScanState = MemoryScanState() if memory else store
    assert await state.claim("app", "r/app", owner="a", lease=60, now=NOW) is None
    lease_end = NOW + timedelta(seconds=60)
    soon = NOW + timedelta(seconds=1)
    # "a" is scanning: nobody else takes it, early or not.
    assert await state.claim("app", "r/app", owner="b", lease=60, now=soon, early=True) == lease_end
    # a's scan ends: the row is saved without an owner and the next scan an hour ahead.
    current = await state.get("app")
    assert current is not None
    await state.save(replace(current, owner=None, next_scan_at=NOW + timedelta(hours=1)))
    assert await state.claim("app", "r/app", owner="b", lease=60, now=soon) == NOW + timedelta(
        hours=1
    )
    assert await state.claim("app", "r/app", owner="b", lease=60, now=soon, early=True) is None
    taken = await state.get("app")
    assert taken is not None
    assert (taken.owner, taken.next_scan_at) == ("b", soon + timedelta(seconds=60))
    # Held by b now: c's early claim waits for b's lease; b may take its own claim again.
    assert await state.claim(
        "app", "r/app", owner="c", lease=60, now=soon, early=True
    ) == soon + timedelta(seconds=60)
    assert await state.claim("app", "r/app", owner="b", lease=60, now=soon, early=True) is None
    # A row saved by an older imgctl (owner kept after the scan) is treated as held.
    await state.save(replace(taken, owner="old-replica", next_scan_at=NOW + timedelta(hours=1)))
    assert await state.claim(
        "app", "r/app", owner="b", lease=60, now=soon, early=True
    ) == NOW + timedelta(hours=1)


async def test_replicas_racing_for_a_claim_only_one_wins(db_url: str) -> None:
    replicas = [await ScanStore.open(db_url) for _ in range(4)]
    try:
        for round_ in range(5):
            now = NOW + timedelta(minutes=round_)
            answers = await asyncio.gather(
                *(
                    replica.claim("app", "r/app", owner=f"replica-{i}", lease=30, now=now)
                    for i, replica in enumerate(replicas)
                )
            )
            assert sum(answer is None for answer in answers) == 1, answers
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_a_long_auto_promotion_keeps_its_claim_from_other_replicas(
    db_url: str,
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    """A claim lasts timeout + margin; an auto-promotion outlasting it must not be repeated.

    Two scanners (replicas) share one database; the promotion takes longer than the claim.
    """
    name = repo("long-promotion")
    push_image(registry, repository=name, tag="1.0.0", layers=1)
    config = parse_watches(
        {
            "watches": [
                {
                    "name": "web",
                    "image": f"{registry.host}/{name}",
                    "interval": "1s",
                    "timeout": "1s",
                    "policy": {"semver": {"range": ">=1.0.0"}},
                    "autoPromote": {"from": "dev", "to": "prod"},
                }
            ]
        },
        source="test-watches.yaml",
    )
    promotions: list[str] = []
    finished = asyncio.Event()

    async def promote(watch: Watch, tag: str, digest: str) -> None:
        promotions.append(tag)
        await asyncio.sleep(4)  # the claim is 1 s + 0.5 s: it would run out three times
        finished.set()

    states = [await ScanStore.open(db_url) for _ in range(2)]
    scanners = [
        Scanner(
            config,
            state=state,
            owner=f"replica-{i}",
            promote=promote,
            claim_margin=0.5,
            options=ClientOptions(backoff=0.01, max_backoff=0.05),
        )
        for i, state in enumerate(states)
    ]
    stop = asyncio.Event()
    runs = [asyncio.ensure_future(scanner.run(stop)) for scanner in scanners]
    try:
        async with asyncio.timeout(60):
            await finished.wait()
            # Both replicas scan again after the promotion: neither promotes the tag again.
            start = [scanner.scans for scanner in scanners]
            while True:
                if all(s.scans >= n + 1 for s, n in zip(scanners, start, strict=True)):
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*runs)
        for scanner, state in zip(scanners, states, strict=True):
            await scanner.aclose()
            await state.aclose()
    assert promotions == ["1.0.0"]
