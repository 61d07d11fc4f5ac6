"""IntentStore (the write-ahead half of the audit trail) on SQLite and PostgreSQL.

Two stores opened on one database stand for two server replicas: each has its own engine and
connection pool, so only the database can keep them from taking the same intent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imgctl.store import (
    AuditRecord,
    CatalogPromotion,
    IntentStore,
    PromotionIntent,
)

DIGEST = "sha256:" + "5e" * 32


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[tuple[IntentStore, IntentStore]]:
    first = await IntentStore.open(db_url)
    second = await IntentStore.open(db_url)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def intent(request_id: str, tag: str = "v1", *, repository: str = "team/app") -> PromotionIntent:
    destination = f"prod.example.com/{repository}:{tag}@{DIGEST}"
    return PromotionIntent(
        record=AuditRecord(
            request_id=request_id,
            time=datetime.now(UTC),
            action="promote",
            result="succeeded",
            subject="CgVhbGljZRIDc3No",
            email="zoë@例え.jp",
            groups=("ops@example.com", "運用"),
            kind="image",
            reference=f"{repository}:{tag}",
            source_env="dev",
            destination_env="prod",
            source_ref=f"dev.example.com/{repository}:{tag}@{DIGEST}",
            destination_ref=destination,
            digest=DIGEST,
            peer="ipv4:10.0.0.7:50000",
        ),
        key=f"image prod.example.com/{repository}:{tag}",
        kind="image",
        destination=destination,
        digest=DIGEST,
        catalog=CatalogPromotion(
            name=f"prod.example.com/{repository}",
            tags=(tag,),
            environment="prod",
            promoted_by="zoë@例え.jp",
            source=f"dev.example.com/{repository}:{tag}@{DIGEST}",
        ),
    )


def outcome(pending_record: AuditRecord, result: str, **changes: object) -> AuditRecord:
    return replace(pending_record, time=datetime.now(UTC), result=result, **changes)  # type: ignore[arg-type]


async def test_an_intent_round_trips_and_holds_its_destination(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    original = intent("r1")
    created, holder = await a.begin(original, owner="replica-a", lease=30)
    assert holder is None
    assert created is not None
    assert created.state == "pending"
    assert created.owner == "replica-a"
    [stored] = await b.intents()
    assert stored.id == created.id
    assert stored.intent.record == original.record
    assert stored.intent.catalog == original.catalog
    assert stored.intent.destination == original.destination
    assert stored.intent.digest == DIGEST
    # Another replica asking for the same destination is told who holds it.
    refused, holder = await b.begin(intent("r2"), owner="replica-b", lease=30)
    assert refused is None
    assert holder is not None
    assert holder.id == created.id
    assert holder.intent.record.request_id == "r1"
    # Another tag is another destination.
    other, none = await b.begin(intent("r3", "v2"), owner="replica-b", lease=30)
    assert other is not None
    assert none is None


async def test_settling_writes_one_audit_row_and_frees_the_destination(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    created, _ = await a.begin(intent("r1"), owner="replica-a", lease=30)
    assert created is not None
    assert await a.count(request_id="r1") == 0  # nothing is claimed before the copy
    record = outcome(created.intent.record, "succeeded", bytes_copied=1234)
    assert await a.settle(created.id, record) == "recorded"
    assert await b.settle(created.id, record) == "already"  # another settler finds it done
    assert await a.count(request_id="r1") == 1
    assert await a.count(request_id="r1", result="succeeded") == 1
    assert await a.intents(None) == []
    again, holder = await b.begin(intent("r2"), owner="replica-b", lease=30)
    assert again is not None
    assert holder is None


async def test_concurrent_beginners_of_one_destination_get_one_intent(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).begin(intent(f"r{i}"), owner=f"replica-{i % 2}", lease=30)
            for i in range(20)
        )
    )
    created = [c for c, _ in results if c is not None]
    assert len(created) == 1
    holders = {h.id for _, h in results if h is not None}
    assert holders <= {created[0].id}


async def test_leases_renew_for_their_owner_only(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    created, _ = await a.begin(intent("r1"), owner="replica-a", lease=30)
    assert created is not None
    assert await b.renew([created.id], owner="replica-b", lease=600) == set()
    assert await a.renew([created.id], owner="replica-a", lease=600) == {created.id}
    [stored] = await a.intents()
    assert stored.lease_until > datetime.now(UTC) + timedelta(seconds=500)
    # A lease that has not run out cannot be claimed.
    assert await b.claim_expired(owner="replica-b", lease=30) == []


async def test_an_expired_intent_is_claimed_by_exactly_one_replica(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    dead = [await a.begin(intent(f"r{i}", f"v{i}"), owner="dead", lease=0) for i in range(6)]
    ids = {c.id for c, _ in dead if c is not None}
    assert len(ids) == 6
    await asyncio.sleep(0.01)
    claims = await asyncio.gather(
        *((a if i % 2 else b).claim_expired(owner=f"replica-{i % 2}", lease=30) for i in range(8))
    )
    claimed = [p.id for batch in claims for p in batch]
    assert sorted(claimed) == sorted(ids)  # each one once, none twice
    # The claimer now holds it: its lease runs again, and the dead owner cannot renew it.
    assert await a.renew(ids, owner="dead", lease=30) == set()


async def test_claims_skip_what_the_claimer_is_working_on_and_can_be_limited(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, _ = stores
    mine, _ = await a.begin(intent("r1", "v1"), owner="replica-a", lease=0)
    other, _ = await a.begin(intent("r2", "v2"), owner="gone", lease=0)
    assert mine is not None
    assert other is not None
    await asyncio.sleep(0.01)
    assert [p.id for p in await a.claim_expired(owner="replica-a", lease=0, ids=[mine.id])] == [
        mine.id
    ]
    await asyncio.sleep(0.01)
    claimed = await a.claim_expired(owner="replica-a", lease=30, exclude=[mine.id])
    assert [p.id for p in claimed] == [other.id]


async def test_a_released_intent_is_claimable_at_once_with_its_note(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    created, _ = await a.begin(intent("r1"), owner="replica-a", lease=600)
    assert created is not None
    assert not await b.release(created.id, owner="replica-b", note="not mine")
    assert await a.release(created.id, owner="replica-a", note="registry unreachable: 503")
    [claimed] = await b.claim_expired(owner="replica-b", lease=30)
    assert claimed.id == created.id
    assert claimed.note == "registry unreachable: 503"


async def test_an_abandoned_intent_is_corrected_when_its_copy_finishes_after_all(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    created, _ = await a.begin(intent("r1"), owner="replica-a", lease=0)
    assert created is not None
    await asyncio.sleep(0.01)
    [claimed] = await b.claim_expired(owner="replica-b", lease=30)
    abandoned = outcome(claimed.intent.record, "failed", error_code="ABORTED", error="gone")
    assert await b.settle(claimed.id, abandoned, abandoned=True) == "recorded"
    [kept] = await a.intents("abandoned")
    assert kept.audit_id is not None
    assert await a.count(request_id="r1", error_code="ABORTED") == 1
    # The destination is free again while the abandoned intent is kept.
    free, _ = await b.begin(intent("r2"), owner="replica-b", lease=30)
    assert free is not None
    # The first replica's copy did finish: its row is corrected, not duplicated.
    late = outcome(created.intent.record, "succeeded", bytes_copied=99)
    assert await a.settle(created.id, late) == "corrected"
    assert await a.count(request_id="r1") == 1
    assert await a.count(request_id="r1", result="succeeded") == 1
    assert await a.intents("abandoned") == []
    # A failure reported late changes nothing: the abandoned row already says failed.
    other, _ = await a.begin(intent("r3", "v3"), owner="x", lease=0)
    assert other is not None
    await asyncio.sleep(0.01)
    [taken] = await b.claim_expired(owner="replica-b", lease=30)
    await b.settle(taken.id, outcome(taken.intent.record, "failed"), abandoned=True)
    assert await a.settle(taken.id, outcome(taken.intent.record, "failed")) == "already"
    assert await a.count(request_id="r3") == 1


async def test_prune_removes_old_abandoned_intents_only(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, _ = stores
    created, _ = await a.begin(intent("r1", "v1"), owner="x", lease=0)
    pending, _ = await a.begin(intent("r2", "v2"), owner="x", lease=30)
    assert created is not None
    assert pending is not None
    await a.settle(created.id, outcome(created.intent.record, "failed"), abandoned=True)
    assert await a.prune(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert await a.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert [p.id for p in await a.intents(None)] == [pending.id]


async def test_vocabulary_is_checked_before_writing(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, _ = stores
    bad = replace(intent("r1"), record=replace(intent("r1").record, result="maybe"))
    with pytest.raises(ValueError, match="audit result"):
        await a.begin(bad, owner="x", lease=30)
    assert await a.intents(None) == []


@pytest.mark.parametrize("value", ["0", "0.5", "-1", "3601", "nan", "inf", "60s", "one minute"])
def test_a_lease_out_of_range_stops_the_start_with_the_variable_named(value: str) -> None:
    from imgctl.errors import UsageError
    from imgctl.server._intents import lease_from_environment

    with pytest.raises(UsageError, match="IMGCTL_PROMOTION_LEASE") as raised:
        lease_from_environment({"IMGCTL_PROMOTION_LEASE": value})
    assert raised.value.hint


@pytest.mark.parametrize(
    ("value", "seconds"), [("", 60.0), (" 2 ", 2.0), ("1", 1.0), ("3600", 3600.0)]
)
def test_a_lease_in_range_is_taken(value: str, seconds: float) -> None:
    from imgctl.server._intents import lease_from_environment

    assert lease_from_environment({"IMGCTL_PROMOTION_LEASE": value}) == seconds
    assert lease_from_environment({}) == 60.0


async def test_discard_removes_only_the_owners_pending_intent(
    stores: tuple[IntentStore, IntentStore],
) -> None:
    a, b = stores
    created, _ = await a.begin(intent("r1"), owner="replica-a", lease=30)
    assert created is not None
    assert not await b.discard(created.id, owner="replica-b")
    assert await a.discard(created.id, owner="replica-a")
    assert await a.intents(None) == []
    assert await a.count(request_id="r1") == 0


class SlowIntentStore(IntentStore):
    """Writes intents slowly, on its own thread, like a database under load."""

    def _begin(self, *args: Any) -> Any:
        time.sleep(0.5)
        return super()._begin(*args)


async def test_a_call_cancelled_while_its_intent_is_written_leaves_no_intent(db_url: str) -> None:
    """The insert runs on a thread and commits even when its caller is cancelled.

    Left pending, the intent would hold its destination until recovery, which would then add an
    "abandoned" row to the call's own "cancelled" row. It is discarded instead.
    """
    from imgctl.promotion.environments import Environments
    from imgctl.promotion.service import Promoter
    from imgctl.remote import RegistryClient
    from imgctl.server._intents import Intents

    environments = Environments.from_environment(
        {"IMGCTL_SPA_DEV": "dev-01", "IMGCTL_SPA_PROD": "prod-01"}
    )
    async with RegistryClient() as registry:
        promoter = Promoter(environments, registry)
        promotion = promoter.plan("spa:web:1.0.0", "dev", "prod")
        store = await SlowIntentStore.open(db_url)
        intents = Intents(store, None, promoter, lease=30)
        record = replace(intent("r1").record, kind="spa")
        task = asyncio.ensure_future(intents.begin(promotion, lambda _: record, "alice"))
        await asyncio.sleep(0.1)  # the insert is running on the store's thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.aclose()  # waits for the thread's work: the insert, and its discard
    async with await IntentStore.open(db_url) as check:
        assert await check.intents(None) == []
