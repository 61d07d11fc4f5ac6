"""ScanStore: watch state round trips and claims (leases between replicas), on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imgctl.scan.scanner import MemoryScanState, ScanState
from imgctl.store import ScanStore, WatchState

from .support.postgres import BACKENDS, scratch_database

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with scratch_database(request.param, tmp_path) as url:
        yield url


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
