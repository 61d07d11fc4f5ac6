"""kpromo's provenance and attest phases on :mod:`imgctl.trust`: check sources, attest what moved.

``check_provenance`` is verify-if-present: every attestation a source digest carries (its
``.att`` image, its referrers) must verify with the configured trust, or the source is refused;
a source without any is promoted with a warning (progressive adoption, as kpromo), unless
provenance is required. ``attest_promotions`` writes one promotion attestation per promoted
digest (``imgctl.trust.attest_image``: an in-toto statement with a SLSA v1.0 predicate, in a
DSSE envelope, under ``sha256-<hex>.att``), ``max_ops`` at a time. Neither raises for one
image: each gets its own verdict or result, so one bad image never stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from imgctl.errors import ImgctlError
from imgctl.oci import Reference

if TYPE_CHECKING:
    from imgctl.remote import RegistryClient
    from imgctl.trust import AttestationCheck, PromotionFacts, Signer, TrustPolicy

__all__ = [
    "PROVENANCE_PREDICATE_TYPES",
    "AttestResult",
    "ProvenanceGate",
    "ProvenanceVerdict",
    "attest_promotions",
    "check_provenance",
    "promotion_builder",
]

# What --require-provenance accepts: SLSA provenance, any version (a promotion attestation's
# statement is SLSA v1.0 provenance too).
PROVENANCE_PREDICATE_TYPES: Final = frozenset(
    {
        "https://slsa.dev/provenance/v0.1",
        "https://slsa.dev/provenance/v0.2",
        "https://slsa.dev/provenance/v1",
    }
)
# A verdict quotes at most this many attestations' reasons (an image may carry hundreds).
_MAX_REASONS: Final = 3

ProvenanceStatus = Literal["verified", "absent", "unverified", "invalid", "refused", "unreadable"]


@dataclass(frozen=True, slots=True)
class ProvenanceVerdict:
    """What the attestations of one source image (with digest) say, and whether it may go on.

    ``verified``: every attestation verified; ``absent``: none found (promoted, with a
    warning); ``unverified``: found, but no trust was configured to check them (promoted, with
    a warning); ``invalid``: one did not verify; ``refused``: provenance required and none
    valid; ``unreadable``: the attestations could not be read. The last three fail the edge.
    """

    image: str
    status: ProvenanceStatus
    reason: str
    checks: tuple[AttestationCheck, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the image may be promoted."""
        return self.status in ("verified", "absent", "unverified")

    @property
    def warning(self) -> bool:
        """Whether the image goes on with a warning (nothing verified)."""
        return self.status in ("absent", "unverified")

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (each attestation's verdict included)."""
        return {
            "image": self.image,
            "status": self.status,
            "ok": self.ok,
            "reason": self.reason,
            "attestations": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class ProvenanceGate:
    """One destination's provenance check: the trust its sources' attestations need."""

    policy: TrustPolicy
    required: bool = False


def _statement_type(check: AttestationCheck) -> str | None:
    statement = check.statement
    value = statement.get("predicateType") if statement is not None else None
    return value if isinstance(value, str) else None


def _is_provenance(check: AttestationCheck) -> bool:
    return (
        check.predicate_type in PROVENANCE_PREDICATE_TYPES
        or _statement_type(check) in PROVENANCE_PREDICATE_TYPES
    )


def _listed(reasons: Sequence[str]) -> str:
    more = len(reasons) - _MAX_REASONS
    return "; ".join(reasons[:_MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")


def _judge(
    image: str,
    checks: Sequence[AttestationCheck],
    policy: TrustPolicy | None,
    require: bool,
    required_by: str = "--require-provenance",
) -> ProvenanceVerdict:
    found = tuple(checks)
    if not found:
        if require:
            return ProvenanceVerdict(image, "refused", f"it has no attestation ({required_by})")
        return ProvenanceVerdict(
            image, "absent", "no attestation found; promoted anyway (verify-if-present)"
        )
    if policy is None:
        return ProvenanceVerdict(
            image,
            "unverified",
            f"{len(found)} attestation(s) found but not verified: no --verify-key or "
            "--certificate-identity to verify them with; promoted anyway",
            found,
        )
    bad = [
        f"attestation {i + 1} ({c.predicate_type or 'no predicate type'}): {c.reason}"
        for i, c in enumerate(found)
        if not c.ok
    ]
    if bad:
        return ProvenanceVerdict(
            image,
            "invalid",
            f"{len(bad)} of its {len(found)} attestation(s) did not verify ({_listed(bad)})",
            found,
        )
    types = sorted({c.predicate_type or "?" for c in found})
    if require and not any(_is_provenance(c) for c in found):
        return ProvenanceVerdict(
            image,
            "refused",
            f"none of its {len(found)} verified attestation(s) is SLSA provenance "
            f"({', '.join(types)}) ({required_by})",
            found,
        )
    signers = sorted({c.signer for c in found if c.signer})
    by = f" by {', '.join(signers)}" if signers else ""
    return ProvenanceVerdict(
        image, "verified", f"{len(found)} attestation(s) verified{by} ({', '.join(types)})", found
    )


async def _check_one(
    client: RegistryClient,
    image: Reference,
    policy: TrustPolicy | None,
    require: bool,
    gate: asyncio.Semaphore,
    required_by: str,
) -> ProvenanceVerdict:
    from imgctl.trust import list_attestations

    async with gate:
        try:
            checks = await list_attestations(client, image, policy)
        except ImgctlError as exc:  # a registry that cannot be read, a malformed .att image
            return ProvenanceVerdict(
                str(image), "unreadable", f"its attestations cannot be read: {exc}"
            )
    return _judge(str(image), checks, policy, require, required_by)


async def check_provenance(
    client: RegistryClient,
    images: Iterable[Reference],
    policy: TrustPolicy | None,
    *,
    require: bool = False,
    without_attestations: Collection[str] = (),
    max_ops: int = 50,
    required_by: str = "--require-provenance",
) -> dict[str, ProvenanceVerdict]:
    """Judge each image (with digest) once, ``max_ops`` at a time; keyed by ``str(image)``.

    ``without_attestations`` names images already known to carry none (the plan listed their
    referrers): they are judged without a request. ``required_by`` says, in a refusal, what
    required provenance (the flag, or the server's policy file).
    """
    unique = {str(image): image for image in images}
    gate = asyncio.Semaphore(max_ops)
    known = set(without_attestations)

    async def one(key: str, image: Reference) -> ProvenanceVerdict:
        if key in known:
            return _judge(key, (), policy, require, required_by)
        return await _check_one(client, image, policy, require, gate, required_by)

    verdicts = await asyncio.gather(*(one(key, image) for key, image in unique.items()))
    return {verdict.image: verdict for verdict in verdicts}


# ----------------------------------------------------------------------------- attest


def promotion_builder(key_id: str) -> str:
    """The builder identity ``imgctl cip`` writes in its promotion attestations."""
    return f"urn:imgctl:cip:{key_id}"


@dataclass(frozen=True, slots=True)
class AttestResult:
    """What attesting one promoted digest did: attested, already attested, or failed."""

    image: str  # REGISTRY/REPO@DIGEST
    status: Literal["attested", "already-attested", "failed"]
    attestation: str | None = None  # the sha256-<hex>.att reference
    predicate_type: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the digest carries a promotion attestation now."""
        return self.status != "failed"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "image": self.image,
            "status": self.status,
            "attestation": self.attestation,
            "predicateType": self.predicate_type,
            "error": self.error,
        }


async def _attest_one(
    client: RegistryClient, facts: PromotionFacts, signer: Signer, gate: asyncio.Semaphore
) -> AttestResult:
    from imgctl.trust import attest_image, promotion_statement

    image = _digest_only(facts.destination)
    async with gate:
        try:
            statement = promotion_statement(facts)
            outcome = await attest_image(client, image, signer, statement)
        except ImgctlError as exc:
            return AttestResult(str(image), "failed", error=str(exc))
    return AttestResult(
        str(image), outcome.status, str(outcome.attestation), outcome.predicate_type
    )


def _digest_only(reference: Reference) -> Reference:
    """``registry/repo@digest`` of a reference that may carry a tag too."""
    return reference.with_digest(reference.digest)


async def attest_promotions(
    client: RegistryClient,
    promotions: Iterable[PromotionFacts],
    signer: Signer,
    *,
    max_ops: int = 50,
) -> list[AttestResult]:
    """Attest each promoted digest once (the first facts given for it win); per-image results."""
    unique: dict[str, PromotionFacts] = {}
    for facts in promotions:
        unique.setdefault(str(_digest_only(facts.destination)), facts)
    gate = asyncio.Semaphore(max_ops)
    return list(
        await asyncio.gather(*(_attest_one(client, f, signer, gate) for f in unique.values()))
    )
