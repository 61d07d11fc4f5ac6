"""The state of repository watches (``imgctl scan``): last tag set, status, lease.

One row per watch name. ``next_scan_at`` doubles as a lease: a replica scans a watch only after
:meth:`ScanStore.claim` moved it forward, so replicas sharing one PostgreSQL never scan the same
watch at the same time, and a replica that dies mid-scan only delays the next scan by the lease.
``owner`` is the replica holding the claim, and None once its scan saved the row: a watch whose
spec changed may then be claimed ``early``, before its next scan is due, but never while held.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Row, select
from sqlalchemy.dialects import postgresql, sqlite

# The state itself lives with the scanner (no database needed to hold it); this is its table.
from imgctl.scan.state import EPOCH, WatchState

from ._schema import SCAN_WATCHES
from ._store import _clean, _SyncStore

__all__ = ["EPOCH", "ScanStore", "WatchState"]

_TABLE: Final = SCAN_WATCHES


class ScanStore(_SyncStore):
    """The scan_watches table of one database; create with :meth:`open`."""

    _LABEL = "scan"

    async def claim(
        self,
        name: str,
        image: str,
        *,
        owner: str,
        lease: float,
        now: datetime | None = None,
        early: bool = False,
    ) -> datetime | None:
        """Take the watch for one scan: None when taken, else when its next scan is due.

        Taken only when its ``next_scan_at`` has passed (``early``: also before, when no other
        owner holds it); it then moves ``lease`` seconds ahead, so another replica asking
        meanwhile is told to come back later.
        """
        return await self._submit(
            self._claim, _clean(name), _clean(image), _clean(owner), lease, now, early
        )

    async def extend(
        self, name: str, *, owner: str, lease: float, now: datetime | None = None
    ) -> bool:
        """Move ``owner``'s claim on the watch ``lease`` seconds ahead; False if not its own."""
        return await self._submit(self._extend, _clean(name), _clean(owner), lease, now)

    async def save(self, state: WatchState) -> None:
        """Write ``state`` as the watch's whole row (created when missing)."""
        await self._submit(self._save, state)

    async def get(self, name: str) -> WatchState | None:
        """The watch's state, or None when it was never claimed or saved."""
        return await self._submit(self._get, _clean(name))

    async def all(self) -> builtins.list[WatchState]:
        """Every watch's state, by name."""
        return await self._submit(self._all)

    async def forget(self, name: str) -> bool:
        """Remove a watch's state (it left the watches file); True when there was one."""
        return await self._submit(self._forget, _clean(name))

    # --- on the store's threads ------------------------------------------------------------

    def _claim(
        self, name: str, image: str, owner: str, lease: float, now: datetime | None, early: bool
    ) -> datetime | None:
        now = now or datetime.now(UTC)
        until = now + timedelta(seconds=lease)
        with self._write_lock, self._writer.begin() as connection:
            fresh = _values(WatchState(name=name, image=image, updated_at=now))
            fresh.update(next_scan_at=until, owner=owner)
            # Insert-if-absent, race-free: replicas starting together cannot both create it.
            insert = (sqlite.insert if self._sqlite else postgresql.insert)(_TABLE)
            created = connection.execute(
                insert.values(fresh).on_conflict_do_nothing().returning(_TABLE.c.name)
            ).first()
            if created is not None:
                return None
            takeable = _TABLE.c.next_scan_at <= now
            if early:
                takeable = takeable | _TABLE.c.owner.is_(None) | (_TABLE.c.owner == owner)
            taken = connection.execute(
                _TABLE.update()
                .where(_TABLE.c.name == name, takeable)
                .values(next_scan_at=until, owner=owner, updated_at=now)
            ).rowcount
            if taken == 1:
                return None
            due = connection.execute(
                select(_TABLE.c.next_scan_at).where(_TABLE.c.name == name)
            ).scalar_one()
            return due if isinstance(due, datetime) else now

    def _extend(self, name: str, owner: str, lease: float, now: datetime | None) -> bool:
        now = now or datetime.now(UTC)
        until = now + timedelta(seconds=lease)
        mine = (_TABLE.c.name == name) & (_TABLE.c.owner == owner)
        with self._write_lock, self._writer.begin() as connection:
            connection.execute(
                _TABLE.update()
                .where(mine, _TABLE.c.next_scan_at < until)
                .values(next_scan_at=until, updated_at=now)
            )
            return connection.execute(select(_TABLE.c.name).where(mine)).first() is not None

    def _save(self, state: WatchState) -> None:
        values = _values(state)
        with self._write_lock, self._writer.begin() as connection:
            updated = connection.execute(
                _TABLE.update().where(_TABLE.c.name == values["name"]).values(values)
            ).rowcount
            if updated == 0:
                connection.execute(_TABLE.insert().values(values))

    def _get(self, name: str) -> WatchState | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.name == name)).first()
        return None if row is None else _from_row(row)

    def _all(self) -> builtins.list[WatchState]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(_TABLE).order_by(_TABLE.c.name)).all()
        return [_from_row(row) for row in rows]

    def _forget(self, name: str) -> bool:
        with self._write_lock, self._writer.begin() as connection:
            return bool(connection.execute(_TABLE.delete().where(_TABLE.c.name == name)).rowcount)


def _values(state: WatchState) -> dict[str, Any]:
    values = asdict(state)
    values["tags"] = json.dumps(sorted(state.tags), ensure_ascii=False)
    for key, value in values.items():
        if isinstance(value, str):
            values[key] = _clean(value)
    return values


def _from_row(row: Row[Any]) -> WatchState:
    mapping = dict(row._mapping)
    mapping["tags"] = tuple(json.loads(mapping["tags"]))
    return WatchState(**mapping)
