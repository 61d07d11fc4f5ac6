"""Prometheus metrics of the server, served at /metrics on the HTTP side."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
