"""The audit record: one per request the server answered, whatever the answer was."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from imgctl._internal.bounds import (
    MAX_DIGEST,
    MAX_EMAIL,
    MAX_ENVIRONMENT,
    MAX_ERROR,
    MAX_ERROR_CODE,
    MAX_GROUP,
    MAX_GROUPS,
    MAX_PEER,
    MAX_REFERENCE,
    MAX_REQUEST_ID,
    MAX_SUBJECT,
    clip,
)

__all__ = ["ACTIONS", "KINDS", "RESULTS", "AuditRecord"]

ACTIONS: Final = frozenset({"promote", "auth_check"})
RESULTS: Final = frozenset({"succeeded", "denied", "failed", "invalid"})
KINDS: Final = frozenset({"image", "spa"})

# The longest each text field is written (to the database and the audit log); longer values are
# cut with a mark saying how long they were. action/result/kind are checked words already.
_LIMITS: Final = {
    "request_id": MAX_REQUEST_ID,
    "subject": MAX_SUBJECT,
    "email": MAX_EMAIL,
    "reference": MAX_REFERENCE,
    "source_env": MAX_ENVIRONMENT,
    "destination_env": MAX_ENVIRONMENT,
    "source_ref": MAX_REFERENCE,
    "destination_ref": MAX_REFERENCE,
    "digest": MAX_DIGEST,
    "error_code": MAX_ERROR_CODE,
    "error": MAX_ERROR,
    "peer": MAX_PEER,
    "signature_key": MAX_DIGEST,
    "signature_error": MAX_ERROR,
    "attestation_error": MAX_ERROR,
}


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What happened to one request: who asked, what for, and how it ended.

    ``time`` must be timezone-aware; it is converted to UTC. ``groups`` may be given as any
    iterable of strings and is kept as a tuple. ``action``, ``result`` and ``kind`` take the
    words in :data:`ACTIONS`, :data:`RESULTS` and :data:`KINDS` (checked by
    :meth:`AuditStore.record`, so that rows written by a newer imgctl still load).
    ``error_code`` is a gRPC status name such as ``PERMISSION_DENIED``. Every text field is
    bounded (``imgctl._internal.bounds``): a longer value is kept cut, with a mark saying how long
    it was, and so are groups (each, and how many). ``signed`` is None unless the server signs
    promotions; then True (``signature_key`` is the key id) or False: copied, not signed
    (``signature_error`` says why; the call itself succeeded). ``attested`` likewise: None
    unless the server signs, then whether the digest carries the server's promotion attestation
    (made with the key ``signature_key`` names; ``attestation_error`` says why not).
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
    signed: bool | None = None
    signature_key: str | None = None
    signature_error: str | None = None
    attested: bool | None = None
    attestation_error: str | None = None

    def __post_init__(self) -> None:
        # A naive time would be read back as UTC whatever zone it meant: refuse it here, where
        # the caller's mistake is, rather than store a wrong instant.
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"AuditRecord.time must be timezone-aware, got {self.time!r}")
        if isinstance(self.groups, str):
            raise TypeError("AuditRecord.groups must be a sequence of group names, not a str")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        groups = tuple(clip(group, MAX_GROUP) for group in self.groups)
        if len(groups) > MAX_GROUPS:
            groups = (*groups[: MAX_GROUPS - 1], f"…[cut: {len(groups)} groups]")
        object.__setattr__(self, "groups", groups)
        for name, limit in _LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > limit:
                object.__setattr__(self, name, clip(value, limit))

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
            "signed": self.signed,
            "signature_key": self.signature_key,
            "signature_error": self.signature_error,
            "attested": self.attested,
            "attestation_error": self.attestation_error,
        }
