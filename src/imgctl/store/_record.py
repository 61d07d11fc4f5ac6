"""The audit record: one per request the server answered, whatever the answer was."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = ["ACTIONS", "KINDS", "RESULTS", "AuditRecord"]

ACTIONS: Final = frozenset({"promote", "auth_check"})
RESULTS: Final = frozenset({"succeeded", "denied", "failed", "invalid"})
KINDS: Final = frozenset({"image", "spa"})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What happened to one request: who asked, what for, and how it ended.

    ``time`` must be timezone-aware; it is converted to UTC. ``groups`` may be given as any
    iterable of strings and is kept as a tuple. ``action``, ``result`` and ``kind`` take the
    words in :data:`ACTIONS`, :data:`RESULTS` and :data:`KINDS` (checked by
    :meth:`AuditStore.record`, so that rows written by a newer imgctl still load).
    ``error_code`` is a gRPC status name such as ``PERMISSION_DENIED``.
    """

    request_id: str
    time: datetime
    action: str
    result: str
    subject: str | None = None
    email: str | None = None
    groups: tuple[str, ...] = ()
    kind: str | None = None
    reference: str | None = None
    source_env: str | None = None
    destination_env: str | None = None
    source_ref: str | None = None
    destination_ref: str | None = None
    digest: str | None = None
    bytes_copied: int | None = None
    duration_ms: int | None = None
    error_code: str | None = None
    error: str | None = None
    peer: str | None = None

    def __post_init__(self) -> None:
        # A naive time would be read back as UTC whatever zone it meant: refuse it here, where
        # the caller's mistake is, rather than store a wrong instant.
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"AuditRecord.time must be timezone-aware, got {self.time!r}")
        if isinstance(self.groups, str):
            raise TypeError("AuditRecord.groups must be a sequence of group names, not a str")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "groups", tuple(self.groups))

    def as_dict(self) -> dict[str, object]:
        """Return the record as JSON-ready values (``time`` as ISO 8601 UTC, ``groups`` a list)."""
        return {
            "request_id": self.request_id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "action": self.action,
            "result": self.result,
            "subject": self.subject,
            "email": self.email,
            "groups": list(self.groups),
            "kind": self.kind,
            "reference": self.reference,
            "source_env": self.source_env,
            "destination_env": self.destination_env,
            "source_ref": self.source_ref,
            "destination_ref": self.destination_ref,
            "digest": self.digest,
            "bytes_copied": self.bytes_copied,
            "duration_ms": self.duration_ms,
            "error_code": self.error_code,
            "error": self.error,
            "peer": self.peer,
        }
