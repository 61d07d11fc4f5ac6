"""Write-ahead audit for the server: each promotion is recorded before it copies, then settled.

:class:`Intents` is one replica's side of :class:`~imgctl.store.IntentStore`:

* :meth:`Intents.begin` pins the source digest and records the intent (committed) before the
  copy; when the same destination is already being written (by this replica or another), it
  waits for that promotion to settle first, so identical promotions copy once;
* :meth:`Intents.settle` writes the catalog entry and the audit row after the copy; when the
  database is unreachable then, the settlement is kept and retried in the background;
* :meth:`Intents.run` renews the leases of the intents this replica works on, retries kept
  settlements, and recovers intents whose owner's lease ran out (a replica killed, or cut off
  from the database): the destination is checked, and the intent recorded as promoted (audit
  row and catalog entry) or as abandoned — never as a copy that did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from imgctl.errors import ConcurrentPromotionError, ImgctlError, UsageError
from imgctl.promotion.service import Promoter, Promotion
from imgctl.store import (
    AuditRecord,
    CatalogPromotion,
    IntentStore,
    PendingIntent,
    PromotionIntent,
    Settled,
)

if TYPE_CHECKING:
    from imgctl.store import CatalogStore

__all__ = [
    "DEFAULT_LEASE",
    "LEASE_ENV",
    "Intents",
    "intent_for",
    "intent_key",
    "lease_from_environment",
]

log = logging.getLogger("imgctl.server")

LEASE_ENV: Final = "IMGCTL_PROMOTION_LEASE"
DEFAULT_LEASE: Final = 60.0
MIN_LEASE: Final = 1.0
MAX_LEASE: Final = 3600.0
# How long a promotion waits for an identical one in flight before giving up (ABORTED).
MAX_WAIT: Final = 15 * 60.0
RECOVERY_BATCH: Final = 50
RECOVERY_CONCURRENCY: Final = 4
PRUNE_AFTER: Final = timedelta(days=7)
PRUNE_EVERY: Final = 3600.0


def lease_from_environment(environ: Mapping[str, str]) -> float:
    """Seconds of ``IMGCTL_PROMOTION_LEASE`` (default 60); UsageError when not a number in range."""
    text = environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE
    try:
        lease = float(text)
    except ValueError:
        lease = float("nan")
    if not MIN_LEASE <= lease <= MAX_LEASE:  # also refuses nan and inf
        raise UsageError(
            f"{LEASE_ENV}={text!r} is not a number of seconds between {MIN_LEASE:g} and "
            f"{MAX_LEASE:g}",
            hint=f"unset it for the default ({DEFAULT_LEASE:g} s)",
        )
    return lease


def intent_key(promotion: Promotion) -> str:
    """What a promotion writes: identical promotions (whatever their source) share the key."""
    destination = promotion.image_destination
    if promotion.kind == "image" and destination is not None:
        where = f":{destination.tag}" if destination.tag else f"@{destination.digest}"
        return f"image {destination.registry}/{destination.repository}{where}"
    return f"{promotion.kind} {promotion.destination.name} {promotion.reference}"


def intent_for(promotion: Promotion, record: AuditRecord, promoted_by: str) -> PromotionIntent:
    """The intent of a pinned promotion, with the catalog entry its copy will get."""
    source, destination = promotion.image_source, promotion.image_destination
    if promotion.kind != "image" or source is None or destination is None:
        return PromotionIntent(
            record=record,
            key=intent_key(promotion),
            kind=promotion.kind,
            destination=f"{promotion.destination.name} {promotion.reference}",
        )
    return PromotionIntent(
        record=record,
        key=intent_key(promotion),
        kind="image",
        destination=str(destination),
        digest=None if destination.digest is None else str(destination.digest),
        catalog=CatalogPromotion(
            name=f"{destination.registry}/{destination.repository}",
            tags=(destination.tag,) if destination.tag else (),
            environment=promotion.destination.name,
            promoted_by=promoted_by,
            source=str(source),
        ),
    )


class Intents:
    """One replica's write-ahead records: begin, settle, heartbeat, recover."""

    def __init__(
        self,
        store: IntentStore,
        catalog: CatalogStore | None,
        promoter: Promoter,
        *,
        lease: float = DEFAULT_LEASE,
        owner: str | None = None,
        on_settled: Callable[[AuditRecord], None] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.promoter = promoter
        self.lease = lease
        # Unique per process start: a restarted replica never mistakes its predecessor's
        # intents for its own.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.on_settled = on_settled
        self.recovered: Counter[str] = Counter()  # recovered intents by outcome, for tests
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._active: dict[int, PendingIntent] = {}
        self._kept: dict[int, tuple[PendingIntent, AuditRecord]] = {}
        self._database_down = False

    @property
    def unsettled(self) -> int:
        """Outcomes known to this replica but not yet in the database."""
        return len(self._kept)

    # ------------------------------------------------------------------ one promotion

    @contextlib.asynccontextmanager
    async def turn(self, promotion: Promotion) -> AsyncIterator[None]:
        """Identical promotions in this process wait here, not in the database."""
        key = intent_key(promotion)
        lock = self._turns.get(key)
        if lock is None:
            lock = self._turns[key] = asyncio.Lock()
        async with lock:
            yield

    async def begin(
        self,
        promotion: Promotion,
        build: Callable[[Promotion], AuditRecord],
        promoted_by: str,
    ) -> tuple[Promotion, PendingIntent]:
        """Pin the source digest and record the intent; returns once it is committed.

        ``build`` gives the call's audit record for the pinned promotion. An identical
        promotion in flight is waited for (an expired one is recovered first); StoreError when
        the database cannot record the intent — then nothing may be copied.
        """
        deadline = time.monotonic() + MAX_WAIT
        while True:
            pinned = await self.promoter.pin(promotion)
            intent = intent_for(pinned, build(pinned), promoted_by)
            created, holder = await self._insert(intent)
            if created is not None:
                self._active[created.id] = created
                return pinned, created
            if holder is not None:
                await self._wait_for(holder, deadline)

    async def _insert(
        self, intent: PromotionIntent
    ) -> tuple[PendingIntent | None, PendingIntent | None]:
        inserting = asyncio.ensure_future(
            self.store.begin(intent, owner=self.owner, lease=self.lease)
        )
        try:
            return await asyncio.shield(inserting)
        except asyncio.CancelledError:
            # The call went away while its intent was on the way to the database: the insert
            # may still commit. Nothing was copied, so the intent goes again, and the call's
            # one audit record is its cancellation (not, later, an abandoned intent as well).
            with contextlib.suppress(Exception):
                created, _ = await asyncio.shield(inserting)
                if created is not None:
                    await asyncio.shield(self.store.discard(created.id, owner=self.owner))
            raise

    async def settle(self, pending: PendingIntent, record: AuditRecord) -> Settled:
        """Write the outcome: the catalog entry (a promoted image) first, then the audit row.

        Raises ImgctlError when the database cannot take them; :meth:`keep` them then.
        """
        if record.result == "succeeded":
            await self._record_in_catalog(pending, record)
        settled = await self.store.settle(pending.id, record)
        self._active.pop(pending.id, None)
        self._kept.pop(pending.id, None)
        if settled == "corrected":
            log.warning(
                "promotion %s finished after recovery had recorded it as abandoned; its audit "
                "row now says %s",
                record.request_id,
                record.result,
            )
        return settled

    def keep(self, pending: PendingIntent, record: AuditRecord) -> None:
        """Settle later, in the background, once the database answers again."""
        self._kept[pending.id] = (pending, record)

    async def landed(self, pending: PendingIntent) -> bool | None:
        """Whether the intent's copy is in its destination; None when that cannot be told."""
        intent = pending.intent
        if intent.kind != "image" or not intent.digest:
            return False
        try:
            return await self.promoter.holds(intent.destination, intent.digest)
        except ImgctlError as exc:
            log.warning("cannot check %s: %s", intent.destination, exc.message)
            return None

    async def release(self, pending: PendingIntent, note: str) -> None:
        """Hand an intent whose outcome this replica cannot tell to recovery, now."""
        self._active.pop(pending.id, None)
        try:
            await self.store.release(pending.id, owner=self.owner, note=note)
        except ImgctlError as exc:  # its lease runs out by itself, a little later
            log.warning("intent %d not released: %s", pending.id, exc.message)

    # ------------------------------------------------------------------ background

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: renew leases, retry kept settlements, recover expired intents."""
        tick = self.lease / 3
        next_sweep = next_prune = 0.0
        while not stop.is_set():
            now = time.monotonic()
            try:
                await self._heartbeat()
                await self._settle_kept()
                if now >= next_sweep:
                    next_sweep = now + self.lease / 2
                    await self.recover()
                if now >= next_prune:
                    next_prune = now + PRUNE_EVERY
                    await self.store.prune(datetime.now(UTC) - PRUNE_AFTER)
                if self._database_down:
                    self._database_down = False
                    log.info("promotion intents: the database answers again")
            except ImgctlError as exc:
                if not self._database_down:
                    self._database_down = True
                    log.warning("promotion intents: %s (retrying)", exc.message)
            except Exception:
                log.exception("promotion intents: unexpected error (retrying)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(tick, 1.0) if self._kept else tick)

    async def recover(self) -> int:
        """Settle every pending intent whose owner's lease ran out; return how many."""
        total = 0
        gate = asyncio.Semaphore(RECOVERY_CONCURRENCY)

        async def one(pending: PendingIntent) -> None:
            async with gate:
                await self._recover(pending)

        while True:
            claimed = await self.store.claim_expired(
                owner=self.owner,
                lease=self.lease,
                limit=RECOVERY_BATCH,
                exclude=set(self._active),
            )
            if not claimed:
                return total
            await asyncio.gather(*(one(pending) for pending in claimed))
            total += len(claimed)
            if len(claimed) < RECOVERY_BATCH:
                return total

    # ------------------------------------------------------------------ helpers

    async def _wait_for(self, holder: PendingIntent, deadline: float) -> None:
        delay = 0.05
        while True:
            current = await self.store.get(holder.id)
            if current is None or current.state != "pending":
                return
            now = datetime.now(UTC)
            if current.lease_until <= now and current.id not in self._active:
                # Its owner is gone: settle it here rather than wait for a sweep.
                for claimed in await self.store.claim_expired(
                    owner=self.owner, lease=self.lease, ids=[current.id]
                ):
                    await self._recover(claimed)
                continue
            if time.monotonic() > deadline:
                raise ConcurrentPromotionError(
                    f"an identical promotion (request {current.intent.record.request_id}) has "
                    f"been writing {current.intent.destination} since "
                    f"{current.created_at.isoformat(timespec='seconds')}; not waiting longer",
                    hint="try again later; its audit row (request id above) tells how it ended",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _heartbeat(self) -> None:
        if not self._active:
            return
        ids = set(self._active)
        held = await self.store.renew(ids, owner=self.owner, lease=self.lease)
        for lost in ids - held:
            if lost in self._active:  # not settled meanwhile
                log.warning(
                    "promotion %s: another replica took its intent over (this one could not "
                    "renew it in time); the outcome is recorded by whichever settles first",
                    self._active[lost].intent.record.request_id,
                )

    async def _settle_kept(self) -> None:
        for pending, record in list(self._kept.values()):
            # Its audit line went out with the call's answer; only the row was missing.
            settled = await self.settle(pending, record)
            log.info(
                "promotion %s recorded (%s) now that the database answers",
                record.request_id,
                settled,
            )

    async def _recover(self, pending: PendingIntent) -> None:
        landed = await self.landed(pending)
        intent = pending.intent
        if landed is None:  # the registry did not answer: try again at the next sweep
            await self.release(pending, pending.note or "the destination could not be checked")
            return
        now = datetime.now(UTC)
        base = intent.record
        waited = int((now - pending.created_at).total_seconds() * 1000)
        duration = (base.duration_ms or 0) + max(waited, 0)
        if landed:
            record = replace(
                base,
                time=now,
                result="succeeded",
                digest=intent.digest,
                bytes_copied=None,
                duration_ms=duration,
                error_code=None,
                error=None,
            )
            await self._record_in_catalog(pending, record)
            settled = await self.store.settle(pending.id, record)
            outcome = "promoted"
        else:
            record = replace(
                base,
                time=now,
                result="failed",
                digest=None,
                bytes_copied=None,
                duration_ms=duration,
                error_code="ABORTED",
                error=_abandoned_message(pending),
            )
            settled = await self.store.settle(pending.id, record, abandoned=True)
            outcome = "abandoned"
        if settled != "recorded":
            return
        self.recovered[outcome] += 1
        log.warning(
            "recovered promotion %s of %s from %s: %s",
            base.request_id,
            intent.destination,
            pending.owner,
            outcome,
        )
        from imgctl.server import _metrics

        _metrics.RECOVERED.labels(outcome).inc()
        if self.on_settled is not None:
            self.on_settled(record)

    async def _record_in_catalog(self, pending: PendingIntent, record: AuditRecord) -> None:
        """The catalog entry of a promoted image, signed/attested as its audit record says.

        A recovered promotion's record was written before the copy: it says nothing about
        signing (None), and the entry keeps what an earlier promotion recorded.
        """
        entry, digest = pending.intent.catalog, pending.intent.digest
        if self.catalog is None or entry is None or not digest:
            return
        await self.catalog.record_promotion(
            digest=digest,
            name=entry.name,
            tags=list(entry.tags),
            environment=entry.environment,
            promoted_by=entry.promoted_by,
            source=entry.source,
            signed=record.signed,
            attested=record.attested,
        )


def _abandoned_message(pending: PendingIntent) -> str:
    intent = pending.intent
    seen = f" (it had reported: {pending.note})" if pending.note else ""
    stopped = (
        f"the server running this promotion ({pending.owner}) stopped or lost its database "
        f"before the copy finished{seen}"
    )
    if intent.kind == "image":
        return (
            f"{stopped}; {intent.destination} is not in the destination, so nothing was "
            "promoted: promote it again"
        )
    return f"{stopped}; the bundle may be partly copied: promote it again to finish it"
