"""Prometheus metrics of the server, served at /metrics on the HTTP side."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
