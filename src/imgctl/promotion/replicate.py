"""``imgctl cip replicate-signatures``: bring each primary registry's signatures to its mirrors.

kpromo signs a promoted digest in one registry of a manifest (the primary, imgctl's first
destination: :func:`imgctl.promotion.signing.primary_destinations`) and leaves the other
destinations, the mirrors, to a periodic replication job. This is that job, as kpromo's
``cip replicate-signatures`` does it: every edge of the manifests counts (not only the unsynced
ones), tagless digests and single-destination manifests are left out, and each repository's tags
are listed once — primaries first, then only the mirrors of digests whose primary holds a
``sha256-<hex>.sig`` tag — so an existing signature is found by that one listing and skipped.
Signatures stored as OCI 1.1 referrers (cosign's signature artifact type, sigstore bundles) are
found through the referrers API, or the ``sha256-<hex>`` tag index where the registry has none,
and looked for in each mirror by digest. Copies go through the copy engine, ``max_copies`` at a
time; a failed copy fails that signature only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from imgctl.errors import ImgctlError, NotFoundError
from imgctl.oci import Digest, Reference

if TYPE_CHECKING:
    from imgctl.oci.manifest import Descriptor
    from imgctl.promotion.manifests import Manifest
    from imgctl.remote import RegistryClient

__all__ = [
    "SIGNATURE_ARTIFACT_TYPES",
    "Replication",
    "SignatureCopy",
    "plan_replication",
    "replicate",
    "replication_groups",
]

# Referrers that are signatures: cosign's OCI 1.1 signature manifests (artifact type, or the
# simple-signing media type as the config's), and sigstore bundles (any version).
SIGNATURE_ARTIFACT_TYPES: Final = frozenset(
    {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.cosign.simplesigning.v1+json",
    }
)
_BUNDLE_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
# Tag listings at once (kpromo lists with a fixed concurrency too); each is one or a few pages.
LISTING_CONCURRENCY: Final = 16

Status = Literal["copy", "copied", "skipped", "failed"]


def is_signature_referrer(descriptor: Descriptor) -> bool:
    """Whether a referrer is a signature (not an attestation or an SBOM)."""
    kind = descriptor.artifact_type or ""
    return kind in SIGNATURE_ARTIFACT_TYPES or kind.startswith(_BUNDLE_PREFIX)


@dataclass(frozen=True, slots=True)
class SignatureCopy:
    """One signature, one mirror: what replication would do (``copy``) or did with it."""

    source: str  # PRIMARY/REPO:sha256-<hex>.sig, or PRIMARY/REPO@DIGEST for a referrer
    destination: str
    kind: Literal["tag", "referrer"]
    status: Status
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "source": self.source,
            "destination": self.destination,
            "kind": self.kind,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class Replication:
    """The signatures of every (primary repository, digest) group and what happens to them."""

    copies: list[SignatureCopy] = field(default_factory=list)
    groups: int = 0  # digests with a primary and at least one mirror
    unsigned: int = 0  # of them, with no signature in the primary (nothing to replicate)
    listings: int = 0  # repositories whose tags were listed (each once)
    requests: int = 0  # registry requests, all included

    def count(self, status: Status) -> int:
        """How many signature copies have ``status``."""
        return sum(1 for c in self.copies if c.status == status)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, with a summary."""
        return {
            "summary": {
                "groups": self.groups,
                "unsigned": self.unsigned,
                "copy": self.count("copy"),
                "copied": self.count("copied"),
                "skipped": self.count("skipped"),
                "failed": self.count("failed"),
                "listings": self.listings,
                "requests": self.requests,
            },
            "copies": [c.as_dict() for c in self.copies],
        }


def replication_groups(manifests: Iterable[Manifest]) -> dict[tuple[str, str], list[str]]:
    """(primary repository, digest) -> its mirror repositories, from every manifest's edges.

    Only tagged digests, as kpromo (a tagless digest is an index's child or an unnamed build);
    a manifest with one destination has no mirror.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for manifest in manifests:
        destinations = [d.name for d in manifest.destinations]
        if len(destinations) < 2:
            continue
        primary, mirrors = destinations[0], destinations[1:]
        for image in manifest.images:
            for digest, tags in image.dmap.items():
                if not tags:
                    continue
                wanted = groups.setdefault((f"{primary}/{image.name}", digest), [])
                for mirror in mirrors:
                    repository = f"{mirror}/{image.name}"
                    if repository not in wanted:
                        wanted.append(repository)
    return groups


async def _list_tags(
    client: RegistryClient, repositories: Iterable[str]
) -> dict[str, set[str] | ImgctlError]:
    """Each repository's tags, listed once; a repository that does not exist has none."""
    gate = asyncio.Semaphore(LISTING_CONCURRENCY)

    async def one(repository: str) -> set[str] | ImgctlError:
        async with gate:
            try:
                return set(await client.list_tags(Reference.parse_repository(repository)))
            except NotFoundError:
                return set()
            except ImgctlError as exc:
                return exc

    names = sorted(set(repositories))
    answers = await asyncio.gather(*(one(name) for name in names))
    return dict(zip(names, answers, strict=True))


async def _signature_referrers(
    client: RegistryClient, subject: Reference, tags: set[str]
) -> list[Descriptor]:
    """The signature referrers of ``subject``: the API's answer, else the tag index's.

    The ``sha256-<hex>`` tag index is read only when the listing showed that tag.
    """
    assert subject.digest is not None
    found = await client.referrers_from_api(subject)
    if found is None:
        if subject.digest.tag_form not in tags:
            return []
        found = await client.referrers_from_tag(subject)
    return [d for d in found if is_signature_referrer(d)]


async def plan_replication(client: RegistryClient, manifests: Sequence[Manifest]) -> Replication:
    """What replication would copy, skip, or cannot read; writes nothing."""
    before = client.stats.requests
    groups = replication_groups(manifests)
    plan = Replication(groups=len(groups))
    primaries = await _list_tags(client, (primary for primary, _ in groups))
    gate = asyncio.Semaphore(LISTING_CONCURRENCY)
    found = await asyncio.gather(
        *(
            _signatures_of(client, key, mirrors, primaries[key[0]], gate)
            for key, mirrors in groups.items()
        )
    )
    signed: dict[tuple[str, str], list[tuple[str, str, Literal["tag", "referrer"]]]] = {}
    for key, (signatures, failures) in zip(groups, found, strict=True):
        plan.copies += failures
        if signatures:
            signed[key] = signatures
        elif not failures:
            plan.unsigned += 1
    # Only the mirrors of signed digests are listed (kpromo's second phase).
    mirror_repositories = {m for key in signed for m in groups[key]} - set(primaries)
    mirror_tags = await _list_tags(client, mirror_repositories)
    listed = {**primaries, **mirror_tags}
    plan.listings = len(listed)
    seen: set[str] = set()
    for key, signatures in signed.items():
        for source, suffix, kind in signatures:
            for mirror in groups[key]:
                destination = f"{mirror}{suffix}"
                if destination in seen:
                    continue
                seen.add(destination)
                plan.copies.append(
                    await _judge(client, source, destination, kind, listed.get(mirror, set()))
                )
    plan.requests = client.stats.requests - before
    return plan


_Found = list[tuple[str, str, Literal["tag", "referrer"]]]


async def _signatures_of(
    client: RegistryClient,
    key: tuple[str, str],
    mirrors: list[str],
    tags: set[str] | ImgctlError,
    gate: asyncio.Semaphore,
) -> tuple[_Found, list[SignatureCopy]]:
    """The signatures one primary holds for one digest: (source, destination suffix, kind).

    What cannot be read becomes a failed copy to every mirror.
    """
    primary, digest = key
    sig_tag = f"{Digest.parse(digest).tag_form}.sig"
    if isinstance(tags, ImgctlError):
        error = f"cannot list the tags of {primary}: {tags}"
        return [], [
            SignatureCopy(f"{primary}:{sig_tag}", f"{m}:{sig_tag}", "tag", "failed", error)
            for m in mirrors
        ]
    found: _Found = []
    if sig_tag in tags:
        found.append((f"{primary}:{sig_tag}", f":{sig_tag}", "tag"))
    async with gate:
        try:
            referrers = await _signature_referrers(
                client, Reference.parse(f"{primary}@{digest}"), tags
            )
        except ImgctlError as exc:
            error = f"cannot read the referrers of {primary}@{digest}: {exc}"
            failures = [
                SignatureCopy(f"{primary}@{digest}", f"{m}@{digest}", "referrer", "failed", error)
                for m in mirrors
            ]
            return found, failures
    found += [(f"{primary}@{r.digest}", f"@{r.digest}", "referrer") for r in referrers]
    return found, []


async def _judge(
    client: RegistryClient,
    source: str,
    destination: str,
    kind: Literal["tag", "referrer"],
    tags: set[str] | ImgctlError,
) -> SignatureCopy:
    """Whether one signature is in one mirror already (by its listing, or by digest)."""
    if isinstance(tags, ImgctlError):
        error = f"cannot list the tags of {destination.rsplit(':', 1)[0]}: {tags}"
        return SignatureCopy(source, destination, kind, "failed", error)
    if kind == "tag":
        present = destination.rsplit(":", 1)[1] in tags
    else:
        try:
            present = await client.head_manifest(Reference.parse(destination)) is not None
        except ImgctlError as exc:
            return SignatureCopy(source, destination, kind, "failed", str(exc))
    return SignatureCopy(source, destination, kind, "skipped" if present else "copy")


async def replicate(
    client: RegistryClient, plan: Replication, *, max_copies: int = 50
) -> Replication:
    """Copy what ``plan`` says is missing with the copy engine; failures are per signature."""
    from imgctl.remote import CopyOptions, copy_images

    before = client.stats.requests
    todo = [c for c in plan.copies if c.status == "copy"]
    pairs = [(Reference.parse(c.source), Reference.parse(c.destination)) for c in todo]
    # The signature manifests are copied as they are: their own referrers are not looked for.
    options = CopyOptions(image_concurrency=max_copies, referrers="none")
    results = await copy_images(client, pairs, options) if pairs else []
    done = {id(c): r for c, r in zip(todo, results, strict=True)}
    copies = []
    for copy in plan.copies:
        result = done.get(id(copy))
        if result is None:
            copies.append(copy)
        elif result.error is not None:
            copies.append(
                SignatureCopy(copy.source, copy.destination, copy.kind, "failed", str(result.error))
            )
        else:
            copies.append(SignatureCopy(copy.source, copy.destination, copy.kind, "copied"))
    return Replication(
        copies=copies,
        groups=plan.groups,
        unsigned=plan.unsigned,
        listings=plan.listings,
        requests=plan.requests + client.stats.requests - before,
    )
