"""A watch's status as Flux shapes it: ``imgctl scan -o json``, ``GET /scan`` and the server's log.

Durations print as Go prints them, times as RFC 3339 in UTC, and a tag set's revision is the
checksum Flux's ``lastScanResult`` carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from imgctl.scan.state import WatchState
from imgctl.scan.watches import Watch

__all__ = ["LATEST_TAGS", "WatchStatus", "format_duration", "tag_revision"]

LATEST_TAGS = 10  # Flux's lastScanResult.latestTags: the first 10 in descending order


def tag_revision(tags: list[str] | tuple[str, ...]) -> str:
    """The checksum of a tag set (order does not matter): ``sha256:<hex>``."""
    digest = hashlib.sha256("\n".join(sorted(tags)).encode()).hexdigest()
    return f"sha256:{digest}"


def format_duration(seconds: float) -> str:
    """Seconds as Go prints a duration: ``1m0s``, ``1h30m0s``, ``500ms``, ``0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole_hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if whole_hours:
        return f"{int(whole_hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class WatchStatus:
    """A watch with its last known state, shaped like Flux's status for output."""

    watch: Watch
    state: WatchState

    @property
    def ready(self) -> str:
        """``True``, ``False`` or ``Unknown`` (never scanned)."""
        return self.state.ready

    def as_json(self) -> dict[str, object]:
        """The status as ``imgctl scan -o json`` and ``GET /scan`` print it."""
        watch, state = self.watch, self.state
        body: dict[str, object] = {
            "name": watch.name,
            "image": watch.image,
            "canonicalImageName": watch.canonical_image_name,
            "interval": format_duration(watch.interval),
            "timeout": format_duration(watch.timeout),
            "suspend": watch.suspend,
            "lastScanResult": None,
            "conditions": [
                {
                    "type": "Ready",
                    "status": state.ready,
                    "reason": state.reason,
                    "message": state.message,
                    "lastTransitionTime": _rfc3339(state.transition_time),
                }
            ],
        }
        if state.scan_time is not None:
            body["lastScanResult"] = {
                "tagCount": len(state.tags),
                "scanTime": _rfc3339(state.scan_time),
                "latestTags": sorted(state.tags, reverse=True)[:LATEST_TAGS],
                "revision": state.revision,
            }
        if watch.policy is not None:
            latest = state.latest_tag
            body["policy"] = {
                "spec": watch.policy.as_json(),
                "latestTag": latest,
                "latestDigest": state.latest_digest,
                "latestImage": f"{watch.canonical_image_name}:{latest}" if latest else None,
            }
        if watch.auto_promote is not None:
            body["autoPromote"] = {
                "from": watch.auto_promote.source,
                "to": watch.auto_promote.destination,
                "lastPromotedTag": state.promoted_tag,
                "lastPromotedDigest": state.promoted_digest,
            }
        if not watch.suspend and state.scan_time is not None:
            body["nextScanAt"] = _rfc3339(state.next_scan_at)
        return body
