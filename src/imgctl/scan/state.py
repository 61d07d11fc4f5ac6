"""What is known about one watch between scans (:class:`WatchState`), and where it is kept.

A plain dataclass with no database behind it, so ``imgctl scan --once`` (which keeps its state
in memory, :class:`MemoryScanState`) does not load the database layer;
:class:`~imgctl.store.ScanStore` stores it for the server. Both are a :class:`ScanState`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

__all__ = ["EPOCH", "MemoryScanState", "ScanState", "WatchState"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WatchState:
    """What is known about one watch: its last tag set, Ready condition and policy result."""

    name: str
    image: str
    tags: tuple[str, ...] = ()
    revision: str = ""
    scan_time: datetime | None = None
    ready: str = "Unknown"
    reason: str = "Progressing"
    message: str = "waiting for the first scan"
    transition_time: datetime = EPOCH
    failures: int = 0
    latest_tag: str | None = None
    latest_digest: str | None = None
    promoted_tag: str | None = None
    promoted_digest: str | None = None
    next_scan_at: datetime = EPOCH
    owner: str | None = None
    updated_at: datetime = EPOCH


class ScanState(Protocol):
    """Where scan results live: :class:`~imgctl.store.ScanStore` or :class:`MemoryScanState`."""

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

        ``early`` takes it before its next scan is due too, unless another owner holds it.
        """
        ...

    async def extend(
        self, name: str, *, owner: str, lease: float, now: datetime | None = None
    ) -> bool:
        """Keep ``owner``'s claim on the watch ``lease`` seconds more; False if not its own."""
        ...

    async def save(self, state: WatchState) -> None:
        """Write the watch's state."""
        ...

    async def get(self, name: str) -> WatchState | None:
        """The watch's state, if any."""
        ...

    async def aclose(self) -> None:
        """Release what the state holds (database connections)."""
        ...


class MemoryScanState:
    """Scan state in this process only (``imgctl scan --once``, tests)."""

    def __init__(self) -> None:
        self._states: dict[str, WatchState] = {}

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
        """Take the watch unless its next scan is still ahead (``early``: unless it is held)."""
        now = now or datetime.now(UTC)
        state = self._states.get(name) or WatchState(name=name, image=image)
        free = state.owner is None or state.owner == owner
        if state.next_scan_at > now and not (early and free):
            return state.next_scan_at
        self._states[name] = replace(
            state, next_scan_at=now + timedelta(seconds=lease), owner=owner, updated_at=now
        )
        return None

    async def extend(
        self, name: str, *, owner: str, lease: float, now: datetime | None = None
    ) -> bool:
        """Move the claim's end ``lease`` seconds ahead if ``owner`` holds it."""
        now = now or datetime.now(UTC)
        state = self._states.get(name)
        if state is None or state.owner != owner:
            return False
        until = now + timedelta(seconds=lease)
        if state.next_scan_at < until:
            self._states[name] = replace(state, next_scan_at=until, updated_at=now)
        return True

    async def save(self, state: WatchState) -> None:
        """Keep ``state``."""
        self._states[state.name] = state

    async def get(self, name: str) -> WatchState | None:
        """The watch's state, if any."""
        return self._states.get(name)

    async def aclose(self) -> None:
        """Nothing to release."""
