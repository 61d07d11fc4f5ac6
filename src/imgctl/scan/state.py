"""What is known about one watch between scans: :class:`WatchState`.

A plain dataclass with no database behind it, so ``imgctl scan --once`` (which keeps its state
in memory) does not load the database layer; :class:`~imgctl.store.ScanStore` stores it for the
server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = ["EPOCH", "WatchState"]

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
