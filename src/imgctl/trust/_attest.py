"""Attestations: in-toto statements in DSSE envelopes, stored cosign-style under ``.att``.

INTERFACE STUB (issue 19): the names and signatures below are fixed; the bodies are being
written. Envelopes and statements go through securesystemslib / in-toto-attestation, not
hand-rolled JSON canonicalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from imgctl.oci.digest import Digest
from imgctl.oci.reference import Reference
from imgctl.remote._client import RegistryClient
from imgctl.trust._cosign import TrustPolicy
from imgctl.trust._keys import Signer

__all__ = [
    "DSSE_MEDIA_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "PROMOTION_PREDICATE_TYPE",
    "SLSA_PROVENANCE_V1",
    "AttestOutcome",
    "AttestationCheck",
    "PromotionFacts",
    "attest_image",
    "list_attestations",
    "promotion_statement",
    "verify_envelope",
]

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# The layer annotation kpromo gives its promotion attestations (the seeds' kpromo document).
PROMOTION_PREDICATE_TYPE = "https://k8s.io/promo-tools/promotion/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"


@dataclass(frozen=True, slots=True)
class PromotionFacts:
    """What a promotion attestation records about one promoted digest."""

    source: Reference  # with digest
    destination: Reference  # with digest (and the tag written, if any)
    builder: str  # who promoted: the signer's identity (key id, server id, cip)
    started: datetime
    finished: datetime
    requested_by: str | None = None  # the caller of a server promotion
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttestOutcome:
    """What ``attest_image`` did."""

    image: Reference  # with digest
    attestation: Reference  # the sha256-<hex>.att tag
    status: Literal["attested", "already-attested"]
    predicate_type: str

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class AttestationCheck:
    """The verdict on one attestation layer."""

    layer: Digest
    predicate_type: str | None  # the layer's annotation, else the statement's
    ok: bool
    reason: str  # "verified with key X" / "statement is for sha256:..." / "envelope tampered" ...
    signer: str | None = None
    statement: Mapping[str, Any] | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready verdict (the statement included)."""
        raise NotImplementedError


def promotion_statement(facts: PromotionFacts) -> dict[str, Any]:
    """An in-toto Statement v1 about ``facts.destination``'s digest with a SLSA v1.0 predicate."""
    raise NotImplementedError


def verify_envelope(
    envelope: bytes,
    annotations: Mapping[str, str],
    image: Reference,
    policy: TrustPolicy,
) -> AttestationCheck:
    """Judge one ``.att`` layer (a DSSE envelope) for ``image`` (with digest); offline."""
    raise NotImplementedError


async def attest_image(
    client: RegistryClient,
    image: Reference,
    signer: Signer,
    statement: Mapping[str, Any],
    *,
    predicate_type: str = PROMOTION_PREDICATE_TYPE,
) -> AttestOutcome:
    """Sign ``statement`` into a DSSE envelope and append it to ``image``'s ``.att`` manifest.

    Idempotent by predicate type and destination: a layer with the same ``predicate_type``
    annotation whose statement names the same subject digest and destination is
    ``already-attested`` and nothing is written; other attestations already there are kept.
    """
    raise NotImplementedError


async def list_attestations(
    client: RegistryClient,
    image: Reference,
    policy: TrustPolicy | None = None,
) -> list[AttestationCheck]:
    """Every attestation of ``image`` (with digest), from ``.att`` and referrers, judged by policy.

    Without a policy, layers are parsed and reported but none counts as verified.
    """
    raise NotImplementedError
