"""SSH-JWT ids the built-in issuer has accepted, so that each is accepted once.

One row per (subject, jti). :meth:`JtiStore.claim` inserts the row if it is absent: when two
issuer replicas claim the same id at once, the primary key lets exactly one insert succeed. A
row only matters until its JWT has expired; expired rows are pruned now and then.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ._schema import ISSUER_JTI
from ._store import _clean, _SyncStore

__all__ = ["PRUNE_INTERVAL", "JtiStore"]

logger = logging.getLogger(__name__)

_TABLE: Final = ISSUER_JTI
PRUNE_INTERVAL: Final = 60.0
"""Seconds between two prunings of expired rows by one process."""


class JtiStore(_SyncStore):
    """The issuer_jti table of one database; create with :meth:`open`."""

    _LABEL = "issuer jti"

    def __init__(self, engine: Engine, *, raw_url: str, max_connections: int) -> None:
        super().__init__(engine, raw_url=raw_url, max_connections=max_connections)
        self._pruned_at = float("-inf")
        self._prune_lock = threading.Lock()

    async def claim(
        self, subject: str, jti: str, expires_at: datetime, *, now: datetime | None = None
    ) -> bool:
        """Mark ``jti`` of ``subject`` used until ``expires_at``: True the first time, else False.

        A row whose ``expires_at`` has passed no longer counts as used (its JWT has expired).
        """
        return await self._submit(self._claim, _clean(subject), _clean(jti), expires_at, now)

    async def prune(self, *, now: datetime | None = None) -> int:
        """Delete the rows that expired before ``now``; returns how many."""
        return await self._submit(self._prune, now or datetime.now(UTC))

    async def count(self) -> int:
        """How many rows the table holds (expired ones included until they are pruned)."""
        return await self._submit(self._count)

    # --- on the store's threads ------------------------------------------------------------

    def _claim(self, subject: str, jti: str, expires_at: datetime, now: datetime | None) -> bool:
        now = now or datetime.now(UTC)
        with self._write_lock, self._writer.begin() as connection:
            insert = (sqlite.insert if self._sqlite else postgresql.insert)(_TABLE)
            created = connection.execute(
                insert.values(subject=subject, jti=jti, expires_at=expires_at, used_at=now)
                .on_conflict_do_nothing()
                .returning(_TABLE.c.jti)
            ).first()
            claimed = created is not None
            if not claimed:
                # Only an expired row may be taken over; a concurrent claimer waits for the
                # row lock and then finds it live again.
                taken = connection.execute(
                    update(_TABLE)
                    .where(
                        _TABLE.c.subject == subject,
                        _TABLE.c.jti == jti,
                        _TABLE.c.expires_at <= now,
                    )
                    .values(expires_at=expires_at, used_at=now)
                    .returning(_TABLE.c.jti)
                ).first()
                claimed = taken is not None
        self._prune_now_and_then(now)
        return claimed

    def _prune_now_and_then(self, now: datetime) -> None:
        # In its own transaction, after the claim committed: a failed pruning loses nothing.
        with self._prune_lock:
            if time.monotonic() - self._pruned_at < PRUNE_INTERVAL:
                return
            self._pruned_at = time.monotonic()
        try:
            self._prune(now)
        except SQLAlchemyError as error:
            logger.warning("could not prune expired SSH-JWT ids: %s", type(error).__name__)

    def _prune(self, now: datetime) -> int:
        with self._write_lock, self._writer.begin() as connection:
            result = connection.execute(delete(_TABLE).where(_TABLE.c.expires_at <= now))
            return int(result.rowcount or 0)

    def _count(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(_TABLE)).scalar_one())
