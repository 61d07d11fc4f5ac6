"""Promotion intents: the write-ahead half of the audit trail.

A promotion writes its intent (who, what, from where to where, the source digest it will copy)
and commits it *before* copying anything; its audit row is written afterwards, in the
transaction that settles the intent. A server that dies in between leaves a pending intent with
an expiring lease; any replica may then claim it, look at the destination and settle it: the
image is there, so its audit row and catalog entry are written, or it is not, so the intent is
recorded as abandoned. Nothing is copied without a row that says so, and no row claims a copy
that did not happen.

One pending intent per destination (its ``lock_key``, unique): identical promotions, on one
replica or several, take turns instead of pushing the same tag at the same moment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Connection, Row, and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ._record import AuditRecord
from ._schema import AUDIT_EVENTS, PROMOTION_INTENTS
from ._store import AuditStore, _check_vocabulary, _clean, _row_values

__all__ = [
    "CatalogPromotion",
    "IntentStore",
    "PendingIntent",
    "PromotionIntent",
    "Settled",
    "lock_key",
]

_TABLE: Final = PROMOTION_INTENTS
_CHUNK: Final = 500

Settled = Literal["recorded", "corrected", "already"]
"""What :meth:`IntentStore.settle` did: wrote the audit row, corrected an abandoned intent's
row to the outcome it reports, or nothing (another replica settled the intent already)."""


@dataclass(frozen=True, slots=True)
class CatalogPromotion:
    """The catalog entry a finished image promotion gets (``CatalogStore.record_promotion``)."""

    name: str
    tags: tuple[str, ...]
    environment: str
    promoted_by: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class PromotionIntent:
    """A promotion about to copy, as recorded before the copy.

    ``key`` names what it writes (identical promotions share it); ``destination`` is where
    recovery looks (``REGISTRY/REPO:TAG@DIGEST`` for images); ``digest`` is the source digest
    pinned before the copy; ``record`` is the call's audit record as known before the copy, which
    recovery completes with the outcome.
    """

    record: AuditRecord
    key: str
    kind: str
    destination: str
    digest: str | None = None
    catalog: CatalogPromotion | None = None


@dataclass(frozen=True, slots=True)
class PendingIntent:
    """An intent as stored: its row id, state, owner and lease.

    ``intent.key`` is the stored lock key (:func:`lock_key` of the key; "" once settled).
    """

    id: int
    intent: PromotionIntent
    state: str
    owner: str
    lease_until: datetime
    created_at: datetime
    note: str | None = None
    audit_id: int | None = None


class IntentStore(AuditStore):
    """The audit trail with its write-ahead half: create with :meth:`open`, like AuditStore."""

    async def begin(
        self, intent: PromotionIntent, *, owner: str, lease: float
    ) -> tuple[PendingIntent | None, PendingIntent | None]:
        """Record ``intent`` as pending, held by ``owner`` for ``lease`` seconds.

        Returns (the new intent, None), or (None, the pending intent that holds the same key)
        when another promotion of the same destination is in flight: wait for it to settle.
        """
        _check_vocabulary(intent.record)
        return await self._submit(self._begin, intent, _clean(owner), lease)

    async def renew(self, ids: Collection[int], *, owner: str, lease: float) -> set[int]:
        """Extend the lease of ``owner``'s pending ``ids``; return the ids it still holds."""
        if not ids:
            return set()
        return await self._submit(self._renew, sorted(ids), _clean(owner), lease)

    async def claim_expired(
        self,
        *,
        owner: str,
        lease: float,
        limit: int = 100,
        exclude: Collection[int] = (),
        ids: Collection[int] | None = None,
    ) -> list[PendingIntent]:
        """Take up to ``limit`` pending intents whose lease has run out, for ``owner``.

        ``exclude`` are intents the caller is working on itself; ``ids`` limits the claim to
        those intents. A claimed intent's lease runs ``lease`` seconds from now.
        """
        return await self._submit(
            self._claim_expired, _clean(owner), lease, limit, set(exclude), ids
        )

    async def release(self, id: int, *, owner: str, note: str) -> bool:
        """Give a pending intent up to recovery now (its lease ends), noting what was seen."""
        return await self._submit(self._release, id, _clean(owner), _clean(note))

    async def discard(self, id: int, *, owner: str) -> bool:
        """Delete ``owner``'s pending intent whose copy never started (its call was cancelled)."""
        return await self._submit(self._discard, id, _clean(owner))

    async def settle(self, id: int, record: AuditRecord, *, abandoned: bool = False) -> Settled:
        """Write the intent's audit row and settle it, in one transaction.

        A pending intent gets ``record`` as its audit row and is removed (or kept as abandoned,
        with ``abandoned=True``). An abandoned intent whose copy did finish after all
        (``record.result == "succeeded"``) has its audit row corrected to ``record``. Anything
        else was settled already (by another replica): nothing is written.
        """
        _check_vocabulary(record)
        return await self._submit(self._settle, id, record, abandoned)

    async def get(self, id: int) -> PendingIntent | None:
        """The intent ``id``, or None once it settled (abandoned intents stay until pruned)."""
        return await self._submit(self._get, id)

    async def intents(self, state: str | None = "pending") -> list[PendingIntent]:
        """The stored intents in ``state`` (all with None), oldest first."""
        return await self._submit(self._list, state)

    async def prune(self, before: datetime) -> int:
        """Delete abandoned intents settled before ``before``; return how many."""
        return await self._submit(self._prune, before)

    # --- on the store's threads ------------------------------------------------------------

    def _begin(
        self, intent: PromotionIntent, owner: str, lease: float
    ) -> tuple[PendingIntent | None, PendingIntent | None]:
        now = datetime.now(UTC)
        key = lock_key(intent.key)
        row = {
            "request_id": _clean(intent.record.request_id),
            "lock_key": key,
            "state": "pending",
            "owner": owner,
            "lease_until": now + timedelta(seconds=lease),
            "kind": intent.kind,
            "destination": _clean(intent.destination),
            "digest": intent.digest,
            "audit": json.dumps(_audit_json(intent.record), ensure_ascii=False),
            "catalog": None if intent.catalog is None else json.dumps(_catalog_json(intent)),
            "created_at": now,
            "updated_at": now,
        }
        insert = (sqlite.insert if self._sqlite else postgresql.insert)(_TABLE)
        with self._write_lock, self._writer.begin() as connection:
            created = connection.execute(
                insert.values(row).on_conflict_do_nothing().returning(_TABLE.c.id)
            ).first()
            if created is not None:
                return _pending(row | {"id": created[0], "note": None, "audit_id": None}), None
            holder = connection.execute(
                select(_TABLE).where(_TABLE.c.lock_key == key, _TABLE.c.state == "pending")
            ).first()
        # The holder may have settled between the insert and the select: then try again.
        return None, None if holder is None else _from_row(holder)

    def _renew(self, ids: list[int], owner: str, lease: float) -> set[int]:
        now = datetime.now(UTC)
        held: set[int] = set()
        with self._write_lock, self._writer.begin() as connection:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                mine = and_(
                    _TABLE.c.id.in_(chunk), _TABLE.c.owner == owner, _TABLE.c.state == "pending"
                )
                connection.execute(
                    update(_TABLE)
                    .where(mine)
                    .values(lease_until=now + timedelta(seconds=lease), updated_at=now)
                )
                held.update(connection.execute(select(_TABLE.c.id).where(mine)).scalars())
        return held

    def _claim_expired(
        self,
        owner: str,
        lease: float,
        limit: int,
        exclude: set[int],
        ids: Collection[int] | None,
    ) -> list[PendingIntent]:
        now = datetime.now(UTC)
        expired = and_(_TABLE.c.state == "pending", _TABLE.c.lease_until <= now)
        query = select(_TABLE.c.id).where(expired).order_by(_TABLE.c.id)
        if ids is not None:
            query = query.where(_TABLE.c.id.in_(sorted(ids)))
        claimed: list[PendingIntent] = []
        with self._write_lock, self._writer.begin() as connection:
            candidates = [i for i in connection.execute(query).scalars() if i not in exclude]
            for id in candidates[:limit]:
                # Conditional: of two replicas claiming one intent, exactly one gets it.
                taken = connection.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id == id, expired)
                    .values(owner=owner, lease_until=now + timedelta(seconds=lease), updated_at=now)
                ).rowcount
                if taken == 1:
                    row = connection.execute(select(_TABLE).where(_TABLE.c.id == id)).one()
                    claimed.append(_from_row(row))
        return claimed

    def _release(self, id: int, owner: str, note: str) -> bool:
        now = datetime.now(UTC)
        with self._write_lock, self._writer.begin() as connection:
            return (
                connection.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id == id, _TABLE.c.owner == owner, _TABLE.c.state == "pending")
                    .values(lease_until=now, note=note, updated_at=now)
                ).rowcount
                == 1
            )

    def _discard(self, id: int, owner: str) -> bool:
        with self._write_lock, self._writer.begin() as connection:
            return (
                connection.execute(
                    delete(_TABLE).where(
                        _TABLE.c.id == id, _TABLE.c.owner == owner, _TABLE.c.state == "pending"
                    )
                ).rowcount
                == 1
            )

    def _settle(self, id: int, record: AuditRecord, abandoned: bool) -> Settled:
        now = datetime.now(UTC)
        with self._write_lock, self._writer.begin() as connection:
            query = select(_TABLE.c.state, _TABLE.c.audit_id).where(_TABLE.c.id == id)
            if not self._sqlite:
                query = query.with_for_update()  # settlers of one intent take turns
            row = connection.execute(query).first()
            if row is None:
                return "already"
            state, audit_id = row
            if state == "pending":
                inserted = connection.execute(
                    AUDIT_EVENTS.insert().values(_row_values(record)).returning(AUDIT_EVENTS.c.id)
                ).scalar_one()
                if abandoned:
                    connection.execute(
                        update(_TABLE)
                        .where(_TABLE.c.id == id)
                        .values(state="abandoned", lock_key=None, audit_id=inserted, updated_at=now)
                    )
                else:
                    connection.execute(delete(_TABLE).where(_TABLE.c.id == id))
                return "recorded"
            if state == "abandoned" and record.result == "succeeded" and audit_id is not None:
                # Recovery found nothing at the destination, but the copy was still running
                # (its server had lost the database for longer than the lease) and finished.
                _correct(connection, int(audit_id), record)
                connection.execute(delete(_TABLE).where(_TABLE.c.id == id))
                return "corrected"
            return "already"

    def _get(self, id: int) -> PendingIntent | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.id == id)).first()
        return None if row is None else _from_row(row)

    def _list(self, state: str | None) -> list[PendingIntent]:
        query = select(_TABLE).order_by(_TABLE.c.id)
        if state is not None:
            query = query.where(_TABLE.c.state == state)
        with self._engine.connect() as connection:
            return [_from_row(row) for row in connection.execute(query)]

    def _prune(self, before: datetime) -> int:
        with self._write_lock, self._writer.begin() as connection:
            return int(
                connection.execute(
                    delete(_TABLE).where(
                        _TABLE.c.state == "abandoned", _TABLE.c.updated_at < before
                    )
                ).rowcount
            )


def lock_key(key: str) -> str:
    """The stored form of an intent's key: fixed length, so any key can be indexed."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _correct(connection: Connection, audit_id: int, record: AuditRecord) -> None:
    values = _row_values(record)
    values.pop("request_id", None)
    connection.execute(update(AUDIT_EVENTS).where(AUDIT_EVENTS.c.id == audit_id).values(values))


def _audit_json(record: AuditRecord) -> dict[str, Any]:
    return record.as_dict()


def _catalog_json(intent: PromotionIntent) -> dict[str, Any]:
    catalog = intent.catalog
    assert catalog is not None
    return {
        "name": catalog.name,
        "tags": list(catalog.tags),
        "environment": catalog.environment,
        "promoted_by": catalog.promoted_by,
        "source": catalog.source,
    }


def _record_from_json(data: dict[str, Any]) -> AuditRecord:
    data = dict(data)
    data["time"] = datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00"))
    data["groups"] = tuple(data.get("groups") or ())
    return AuditRecord(**data)


def _pending(values: dict[str, Any]) -> PendingIntent:
    audit = values["audit"]
    catalog = values["catalog"]
    record = _record_from_json(json.loads(audit) if isinstance(audit, str) else audit)
    catalog_entry = None
    if catalog is not None:
        data = json.loads(catalog) if isinstance(catalog, str) else catalog
        catalog_entry = CatalogPromotion(
            name=data["name"],
            tags=tuple(data["tags"]),
            environment=data["environment"],
            promoted_by=data["promoted_by"],
            source=data["source"],
        )
    intent = PromotionIntent(
        record=record,
        key=str(values["lock_key"] or ""),
        kind=values["kind"],
        destination=values["destination"],
        digest=values["digest"],
        catalog=catalog_entry,
    )
    return PendingIntent(
        id=int(values["id"]),
        intent=intent,
        state=values["state"],
        owner=values["owner"],
        lease_until=values["lease_until"],
        created_at=values["created_at"],
        note=values["note"],
        audit_id=None if values["audit_id"] is None else int(values["audit_id"]),
    )


def _from_row(row: Row[Any]) -> PendingIntent:
    return _pending(dict(row._mapping))
