"""kpromo's validate and sign phases on :mod:`imgctl.trust`: check sources, sign what moved.

``validate`` checks that each source image carries a signature a :class:`TrustPolicy` accepts
(``imgctl cip --verify-key`` / ``--certificate-identity``, the policy file's
``require_signature``); ``sign_images`` signs promoted digests, each once, at most
``max_ops`` at a time. Neither raises for one image: every image gets its own verdict, so one
bad image never stops the others. ``primary_destinations`` says where ``imgctl cip`` signs:
kpromo signs a digest in one registry of a manifest only (the primary; the others are mirrors
that ``cip replicate-signatures`` brings the signature to), and imgctl's primary is the first
destination a manifest lists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from imgctl.errors import ImgctlError, KeyRefError, UsageError
from imgctl.oci import Reference

if TYPE_CHECKING:
    from imgctl.promotion.environments import ProvenanceRule, SignatureRule
    from imgctl.promotion.manifests import Edge, Manifest
    from imgctl.remote import RegistryClient
    from imgctl.trust import Signer, TrustPolicy, VerificationReport

__all__ = [
    "DEFAULT_SIGNATURE_COPIES",
    "DEFAULT_SIGNATURE_OPS",
    "MAX_SIGNATURE_CONCURRENCY",
    "SignResult",
    "Validation",
    "check_concurrency",
    "is_primary",
    "primary_destinations",
    "refusal_reason",
    "rule_policy",
    "sign_images",
    "signing_targets",
    "trust_policy",
    "validate",
]

# kpromo's defaults for --max-signature-ops and --max-signature-copies.
DEFAULT_SIGNATURE_OPS: Final = 50
DEFAULT_SIGNATURE_COPIES: Final = 50
# More at once than this only queues in the rate limiter and the connection pool.
MAX_SIGNATURE_CONCURRENCY: Final = 1000
# A refusal quotes at most this many signatures' reasons (an image may carry hundreds).
_MAX_REASONS: Final = 3
# sigstore's public-good trusted_root.json is about 10 KiB.


def check_concurrency(name: str, value: int) -> int:
    """``value`` when it is 1..MAX_SIGNATURE_CONCURRENCY; UsageError naming ``name`` otherwise."""
    if not 1 <= value <= MAX_SIGNATURE_CONCURRENCY:
        raise UsageError(
            f"{name} is {value}; give 1 to {MAX_SIGNATURE_CONCURRENCY}",
            hint=f"the default is {DEFAULT_SIGNATURE_OPS}",
        )
    return value


# ----------------------------------------------------------------------------- trust policies


def trust_policy(
    keys: Sequence[str] = (),
    keyless: Sequence[tuple[str, str]] = (),
    identities: Sequence[str] = (),
    *,
    fulcio_roots: bytes = b"",
    rekor_keys: Sequence[bytes] = (),
    environ: Mapping[str, str] | None = None,
) -> TrustPolicy:
    """A TrustPolicy of key references and keyless (identity, issuer) pairs; loads every key.

    Raises KeyRefError (from ``imgctl.trust.load_public_key``) for a reference that cannot be
    used, so a bad key stops a command or the server before anything is promoted.
    """
    from imgctl.trust import KeylessIdentity, TrustPolicy, load_public_key

    loaded = tuple(load_public_key(ref, environ=environ) for ref in keys)
    return TrustPolicy(
        keys=loaded,
        keyless=tuple(
            KeylessIdentity(identity, issuer, fulcio_roots, tuple(rekor_keys))
            for identity, issuer in keyless
        ),
        identities=tuple(identities),
    )


def rule_policy(
    rule: SignatureRule | ProvenanceRule,
    *,
    where: str,
    fulcio_roots: bytes = b"",
    rekor_keys: Sequence[bytes] = (),
    environ: Mapping[str, str] | None = None,
) -> TrustPolicy:
    """The TrustPolicy of a policy file's ``require_signature`` or ``provenance`` rule.

    Errors name ``where``.
    """
    from imgctl.trust import read_trusted_root

    try:
        if rule.trusted_root is not None:
            fulcio_roots, rekor_keys = read_trusted_root(Path(rule.trusted_root))
        return trust_policy(
            rule.keys,
            rule.keyless,
            rule.identities,
            fulcio_roots=fulcio_roots,
            rekor_keys=rekor_keys,
            environ=environ,
        )
    except KeyRefError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None


# ----------------------------------------------------------------------------- validate


@dataclass(frozen=True, slots=True)
class Validation:
    """Whether one source image (with digest) carries a signature the policy accepts, and why."""

    image: str
    verified: bool
    reason: str  # who verified it, or why no signature did

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {"image": self.image, "verified": self.verified, "reason": self.reason}


def refusal_reason(report: VerificationReport) -> str:
    """Why no signature of ``report`` verified, in one line: each signature's reason, bounded."""
    if not report.checks:
        return "it has no signature (no sha256-<hex>.sig tag, no signature referrer)"
    reasons = [f"signature {i + 1}: {c.reason}" for i, c in enumerate(report.checks)]
    more = len(reasons) - _MAX_REASONS
    shown = "; ".join(reasons[:_MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")
    return f"none of its {len(reasons)} signature(s) verified ({shown})"


async def _validate_one(
    client: RegistryClient, image: Reference, policy: TrustPolicy, gate: asyncio.Semaphore
) -> Validation:
    from imgctl.trust import verify_image

    async with gate:
        try:
            report = await verify_image(client, image, policy)
        except ImgctlError as exc:  # a malformed .sig manifest, a registry that cannot be read
            return Validation(str(image), False, f"its signatures cannot be checked: {exc}")
    if report.verified:
        signer = next(c.signer or c.reason for c in report.checks if c.ok)
        return Validation(str(image), True, f"signed by {signer}")
    return Validation(str(image), False, refusal_reason(report))


async def validate(
    client: RegistryClient,
    images: Iterable[Reference],
    policy: TrustPolicy,
    *,
    max_ops: int = DEFAULT_SIGNATURE_OPS,
) -> dict[str, Validation]:
    """Check each image (with digest) once; keyed by ``str(image)``; never raises for one image."""
    unique = {str(image): image for image in images}
    gate = asyncio.Semaphore(max_ops)
    verdicts = await asyncio.gather(
        *(_validate_one(client, image, policy, gate) for image in unique.values())
    )
    return {verdict.image: verdict for verdict in verdicts}


# ----------------------------------------------------------------------------- sign


@dataclass(frozen=True, slots=True)
class SignResult:
    """What signing one promoted digest did: signed, already signed by this key, or failed."""

    image: str  # REGISTRY/REPO@DIGEST
    status: Literal["signed", "already-signed", "failed"]
    key_id: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the digest carries this key's signature now."""
        return self.status != "failed"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "image": self.image,
            "status": self.status,
            "keyId": self.key_id,
            "error": self.error,
        }


async def _sign_one(
    client: RegistryClient, image: Reference, signer: Signer, gate: asyncio.Semaphore
) -> SignResult:
    from imgctl.trust import sign_image

    async with gate:
        try:
            outcome = await sign_image(client, image, signer)
        except ImgctlError as exc:
            # sign_image writes the manifest last: a failure leaves no half signature.
            return SignResult(str(image), "failed", error=str(exc))
    return SignResult(str(image), outcome.status, outcome.key_id)


async def sign_images(
    client: RegistryClient,
    images: Iterable[Reference],
    signer: Signer,
    *,
    max_ops: int = DEFAULT_SIGNATURE_OPS,
) -> list[SignResult]:
    """Sign each image (with digest) once, ``max_ops`` at a time; failures are per image."""
    unique = {str(image): image for image in images}
    gate = asyncio.Semaphore(max_ops)
    return list(
        await asyncio.gather(*(_sign_one(client, image, signer, gate) for image in unique.values()))
    )


# ----------------------------------------------------------------------------- cip's primary


def primary_destinations(manifests: Iterable[Manifest]) -> frozenset[tuple[str, str, str]]:
    """(source registry, primary destination registry, image) of every manifest's images.

    A manifest's primary is the first destination it lists; the other destinations are its
    mirrors. A registry can be primary for one manifest and a mirror for another.
    """
    found: set[tuple[str, str, str]] = set()
    for manifest in manifests:
        destinations = manifest.destinations
        if not destinations:
            continue
        source, primary = manifest.source.name, destinations[0].name
        found.update((source, primary, image.name) for image in manifest.images)
    return frozenset(found)


def is_primary(edge: Edge, primaries: frozenset[tuple[str, str, str]]) -> bool:
    """Whether ``edge`` writes into its manifest's primary registry."""
    return (edge.source_registry, edge.destination_registry, edge.image) in primaries


def signing_targets(
    edges: Iterable[Edge], primaries: frozenset[tuple[str, str, str]]
) -> list[Reference]:
    """The digests to sign for promoted ``edges``: in primary registries, tagged edges only.

    kpromo signs neither tagless edges (children of an index, listed by digest) nor mirrors.
    """
    targets: dict[str, Reference] = {}
    for edge in edges:
        if edge.tag is None or not is_primary(edge, primaries):
            continue
        text = f"{edge.destination_repository}@{edge.digest}"
        targets.setdefault(text, Reference.parse(text))
    return list(targets.values())
