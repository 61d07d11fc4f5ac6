"""Prometheus metrics of the server, served at /metrics on the HTTP side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from imgctl.scan.reload import WatchesFile

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "imgctl_requests",
    "Calls by action (promote, auth_check) and result (succeeded, denied, invalid, failed).",
    ["action", "result"],
    registry=REGISTRY,
)
PROMOTION_SECONDS = Histogram(
    "imgctl_promotion_duration_seconds",
    "Time from request to audited answer, promotions only.",
    ["kind", "result"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
    registry=REGISTRY,
)
BYTES_COPIED = Counter(
    "imgctl_promotion_bytes_copied",
    "Bytes copied by promotions.",
    ["kind"],
    registry=REGISTRY,
)
RECOVERED = Counter(
    "imgctl_promotions_recovered",
    "Promotions whose server stopped (or lost the database) mid-way, settled by recovery: "
    "promoted (found in the destination) or abandoned (not there).",
    ["outcome"],
    registry=REGISTRY,
)
SCANS = Counter(
    "imgctl_scans",
    "Repository scans (--watches) by watch and outcome (the Ready reason: Succeeded, "
    "AuthenticationFailed, ReadOperationFailed, PolicyFailed).",
    ["watch", "reason"],
    registry=REGISTRY,
)
SCAN_SECONDS = Histogram(
    "imgctl_scan_duration_seconds",
    "Time one scan took: tag listing, policy, digest, and any auto-promotion.",
    ["watch"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
    registry=REGISTRY,
)
SCAN_TAGS = Gauge(
    "imgctl_scan_tags",
    "Tags found by the watch's last successful scan (after the exclusion list).",
    ["watch"],
    registry=REGISTRY,
)


_TAGGED: set[str] = set()  # watches with an imgctl_scan_tags series


def scan_tags(watch: str, count: int) -> None:
    """Set ``watch``'s tag gauge to ``count`` (the tags of its last successful scan)."""
    _TAGGED.add(watch)
    SCAN_TAGS.labels(watch).set(count)


def forget_watches(names: set[str]) -> None:
    """Drop the tag gauge of every watch not in ``names`` (removed from the watches file).

    A gauge of a watch nobody scans any more would show its last value forever; the counters
    and the histogram keep their history (their rates simply stop).
    """
    for watch in _TAGGED - names:
        _TAGGED.discard(watch)
        SCAN_TAGS.remove(watch)


_WATCHES_FILE: list[WatchesFile] = []  # the file the gauges below report, once it is known


def follow_watches_file(watches_file: WatchesFile) -> None:
    """Report ``watches_file``'s load state (only a server with --watches has these)."""
    if _WATCHES_FILE:
        _WATCHES_FILE[0] = watches_file
        return
    _WATCHES_FILE.append(watches_file)
    loaded = Gauge(
        "imgctl_watches_file_loaded",
        "1 when the watches file on disk is the version in force, 0 when it does not load "
        "(the last version that loaded stays in force; GET /scan and the log say why).",
        registry=REGISTRY,
    )
    loaded.set_function(lambda: 1.0 if _WATCHES_FILE[0].state.loaded else 0.0)
    last = Gauge(
        "imgctl_watches_file_last_load_timestamp_seconds",
        "When the version of the watches file in force was loaded (Unix time).",
        registry=REGISTRY,
    )
    last.set_function(lambda: _WATCHES_FILE[0].state.loaded_at.timestamp())
