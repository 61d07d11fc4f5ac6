"""One promotion: check the request, copy the image (or SPA bundle), say what happened.

``Promoter.plan`` turns (ref, source, destination) into a checked ``Promotion`` or raises
``InvalidPromotionError``; ``Promoter.allowed`` applies the policy file (``NotAllowedError``);
``Promoter.check_signature`` its ``require_signature`` rule (the source must be signed: kpromo's
validate phase, ``NotAllowedError`` too), ``Promoter.check_provenance`` its ``provenance`` rule
(kpromo's provenance phase: the source's attestations must verify, ``NotAllowedError``; none is
a logged warning unless required); ``Promoter.run`` does the copy, then, when the server
has a signing key, signs the promoted digest and attests its promotion (kpromo's sign and attest
phases; a failure of either is reported in the result, never raised: the copy stands). Failures
are the ``PromotionError`` kinds of ``imgctl.errors``, which say what went wrong, not how to
answer it. Who is asking, the audit trail and notifications belong to the server
(``imgctl.server``, which passes the caller and request id on for the attestation); this module
knows nothing about gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imgctl.errors import (
    ImgctlError,
    InvalidPromotionError,
    NotAllowedError,
    NotFoundError,
    PromotionError,
    RegistryError,
    SourceNotFoundError,
    SpaNotFoundError,
    StorageRefusedError,
    TransportError,
    UnreachableError,
)
from imgctl.oci import Digest, Reference
from imgctl.promotion.environments import Environment, Environments, Policy
from imgctl.remote import CopyOptions, CopyProgress, RegistryClient, api_host, copy_images

if TYPE_CHECKING:
    from imgctl.promotion.provenance import ProvenanceGate
    from imgctl.trust import Signer, TrustPolicy

__all__ = ["Promoter", "Promotion", "PromotionResult", "landed_result"]

log = logging.getLogger("imgctl.promotion")

Progress = Callable[[int, int, int], None]  # (bytes copied, done, total)


@dataclass(frozen=True, slots=True)
class Promotion:
    """A checked request: what moves, from where, to where."""

    kind: str  # "image" | "spa"
    reference: str
    source: Environment
    destination: Environment
    image_source: Reference | None = None
    image_destination: Reference | None = None
    spa: object | None = None  # imgctl.promotion.spa.SpaRef


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What a promotion did."""

    kind: str
    source_environment: str
    destination_environment: str
    source_ref: str
    destination_ref: str
    digest: str = ""
    unchanged: bool = False
    bytes_copied: int = 0
    duration_ms: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    objects_copied: int = 0
    objects_skipped: int = 0
    promoted_by: str = ""  # filled in by the server: email, else subject
    # With a signing key (images): whether the digest carries its signature now; None without.
    signed: bool | None = None
    signature_key: str = ""  # the key id
    signature_error: str = ""  # why not signed (the copy itself succeeded)
    # With a signing key (images): whether the digest carries this server's promotion
    # attestation now (written, or found); None without a key.
    attested: bool | None = None
    attestation_error: str = ""  # why not attested (the copy itself succeeded)


class Promoter:
    """Promotions between configured environments, with one shared registry client."""

    def __init__(
        self,
        environments: Environments,
        registry: RegistryClient,
        *,
        policy: Policy | None = None,
        default_source: str | None = None,
        environ: Mapping[str, str] | None = None,
        copy_options: CopyOptions | None = None,
        signer: Signer | None = None,
        trust: Mapping[str, TrustPolicy] | None = None,
        max_signature_ops: int = 50,
        builder: str | None = None,
        provenance: Mapping[str, ProvenanceGate] | None = None,
    ) -> None:
        self.environments = environments
        self.policy = policy or Policy()
        self.default_source = default_source
        self._registry = registry
        self._environ = dict(environ or {})
        self._copy_options = copy_options or CopyOptions()
        # Signs every promoted image (kpromo's sign phase); its key id is read once, at start.
        self.signer = signer
        self.signature_key = signer.public_key().key_id if signer is not None else ""
        # Who the promotion attestations name as their builder: this server, by its key.
        self.builder = builder or f"urn:imgctl:server:{self.signature_key}"
        self._signing = asyncio.Semaphore(max_signature_ops)
        # Destination environment -> what its source images must be signed with.
        self.trust = dict(trust or {})
        # Destination environment -> how its source images' attestations are checked.
        self.provenance = dict(provenance or {})
        # Weak: a lock lives only while some promotion holds or waits for it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def aclose(self) -> None:
        """Close the registry connections."""
        await self._registry.aclose()

    # ------------------------------------------------------------------ checking

    def _environment(self, field: str, name: str) -> Environment:
        environment = self.environments.get(name)
        if environment is None:
            configured = ", ".join(self.environments.names()) or "none"
            raise InvalidPromotionError(
                f"unknown {field} environment {name!r}",
                hint=f"configured environments: {configured}",
            )
        return environment

    def plan(self, ref: str, source: str, destination: str) -> Promotion:
        """Check a request without touching a registry; InvalidPromotionError names the field."""
        from imgctl.promotion.spa import SpaRef, is_spa_reference

        ref = ref.strip()
        if not ref:
            raise InvalidPromotionError(
                "ref is required", hint="give REPO:TAG, REPO@DIGEST or spa:NAME:VERSION"
            )
        source = source.strip() or (self.default_source or "")
        if not source:
            raise InvalidPromotionError(
                "source is required (the server has no IMGCTL_DEFAULT_SOURCE)",
                hint="pass --source",
            )
        if not destination.strip():
            raise InvalidPromotionError("destination is required", hint="pass --destination")
        src = self._environment("source", source)
        dst = self._environment("destination", destination)
        if src.name == dst.name:
            raise InvalidPromotionError(f"source and destination are both {src.name!r}")
        if is_spa_reference(ref):
            try:
                spa = SpaRef.parse(ref)
            except ImgctlError as exc:
                raise InvalidPromotionError(exc.message, hint=exc.hint) from None
            for env, role in ((src, "source"), (dst, "destination")):
                if not env.spa_suffix:
                    raise InvalidPromotionError(
                        f"{role} environment {env.name!r} has no SPA bucket suffix",
                        hint=f"set IMGCTL_SPA_{env.name.upper()} on the server",
                    )
            return Promotion("spa", str(spa), src, dst, spa=spa)
        for env, role in ((src, "source"), (dst, "destination")):
            if not env.registry:
                raise InvalidPromotionError(
                    f"{role} environment {env.name!r} has no registry",
                    hint=f"set IMGCTL_REGISTRY_{env.name.upper()} on the server",
                )
        path, tag, digest = _split_image_ref(ref)
        assert src.registry is not None
        assert dst.registry is not None
        suffix = (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
        try:
            image_source = Reference.parse(f"{src.registry}/{src.repository(path)}{suffix}")
            image_destination = Reference.parse(f"{dst.registry}/{dst.repository(path)}{suffix}")
        except ImgctlError as exc:
            raise InvalidPromotionError(f"ref {ref!r}: {exc.message}") from None
        return Promotion("image", ref, src, dst, image_source, image_destination)

    def allowed(self, groups: Iterable[str], promotion: Promotion) -> None:
        """Raise NotAllowedError when the policy keeps these groups out of the destination."""
        groups = tuple(groups)
        if not self.policy.allows(groups, promotion.destination.name):
            needed = ", ".join(self.policy.groups_for(promotion.destination.name))
            raise NotAllowedError(
                f"promoting to {promotion.destination.name!r} needs one of the groups {needed}",
                hint="ask an admin to add you to one of them",
            )

    async def check_signature(self, promotion: Promotion) -> Promotion:
        """Apply the destination's ``require_signature`` rule; the promotion pinned if it has one.

        The source is pinned to its digest first and that digest is what is checked (and, the
        pinned promotion being what is copied, what is copied). NotAllowedError names the image
        and why no signature verified; nothing is copied then.
        """
        policy = self.trust.get(promotion.destination.name)
        if policy is None or promotion.kind != "image":
            return promotion
        from imgctl.promotion.signing import refusal_reason
        from imgctl.trust import verify_image

        pinned = await self.pin(promotion)
        source = pinned.image_source
        assert source is not None
        try:
            report = await verify_image(self._registry, source, policy)
        except ImgctlError as exc:
            reason = f"its signatures cannot be checked: {exc}"
        else:
            if report.verified:
                return pinned
            reason = refusal_reason(report)
        raise NotAllowedError(
            f"{promotion.destination.name!r} takes only signed images: {source}: {reason}",
            hint=f"sign it (imgctl sign {source} --key ...) with a key the server's policy "
            f"file accepts for {promotion.destination.name}",
        )

    async def check_provenance(self, promotion: Promotion) -> Promotion:
        """Apply the destination's ``provenance`` rule; the promotion pinned if it has one.

        Every attestation of the pinned source must verify; a source without one is refused
        when the rule requires provenance, else promoted with a warning in the server's log.
        NotAllowedError names the image and each attestation's reason; nothing is copied then.
        """
        gate = self.provenance.get(promotion.destination.name)
        if gate is None or promotion.kind != "image":
            return promotion
        from imgctl.promotion.provenance import check_provenance

        pinned = await self.pin(promotion)
        source = pinned.image_source
        assert source is not None
        verdicts = await check_provenance(
            self._registry,
            [source],
            gate.policy,
            require=gate.required,
            required_by=f"the server's provenance rule for {promotion.destination.name}",
            max_ops=1,
        )
        verdict = verdicts[str(source)]
        if not verdict.ok:
            raise NotAllowedError(
                f"{promotion.destination.name!r} takes only images whose provenance verifies: "
                f"{source}: {verdict.reason}",
                hint="attest it (imgctl attest) with a key the server's policy file accepts for "
                f"{promotion.destination.name}",
            )
        if verdict.warning:
            log.warning(
                "promoting %s to %s without verified provenance: %s",
                source,
                promotion.destination.name,
                verdict.reason,
            )
        return pinned

    def destinations_for(self, groups: Iterable[str]) -> list[str]:
        """The environments these groups may promote into."""
        groups = tuple(groups)
        return [n for n in self.environments.names() if self.policy.allows(groups, n)]

    # ------------------------------------------------------------------ doing

    async def pin(self, promotion: Promotion) -> Promotion:
        """The promotion pinned to the source's current digest (SPA bundles stay as given).

        The digest is recorded before the copy, and the copy then moves exactly those bytes even
        if the source tag moves meanwhile, so recovery knows what to look for in the destination.
        SourceNotFoundError when the source has no such image.
        """
        source, destination = promotion.image_source, promotion.image_destination
        if promotion.kind != "image" or source is None or destination is None:
            return promotion
        if source.digest is not None:
            return promotion
        try:
            descriptor = await self._registry.head_manifest(source)
        except ImgctlError as exc:
            raise _as_promotion_error(exc, source, promotion) from None
        if descriptor is None:
            raise SourceNotFoundError(
                f"{source} not found in {promotion.source.name}",
                hint="check the repository and tag (`imgctl ls` lists a repository's tags)",
            )
        return replace(
            promotion,
            image_source=replace(source, digest=descriptor.digest),
            image_destination=replace(destination, digest=descriptor.digest),
        )

    async def holds(self, destination: str, digest: str) -> bool:
        """Whether ``destination`` (REGISTRY/REPO:TAG@DIGEST) points at ``digest`` now.

        By tag when it has one (the tag is written last, so it pointing there means the copy
        finished), else by digest. Raises ImgctlError when the registry cannot be asked.
        """
        reference = Reference.parse(destination)
        target = reference.with_tag(reference.tag) if reference.tag else reference
        descriptor = await self._registry.head_manifest(target)
        return descriptor is not None and str(descriptor.digest) == digest

    async def run(
        self,
        promotion: Promotion,
        on_progress: Progress | None = None,
        *,
        requested_by: str | None = None,
        request_id: str | None = None,
    ) -> PromotionResult:
        """Copy, then sign and attest; raise a PromotionError (SourceNotFoundError...) on failure.

        ``requested_by`` and ``request_id`` (the caller, the call) go into the attestation.
        """
        started = time.monotonic()
        caller = _Caller(requested_by, request_id, datetime.now(UTC))
        # Identical promotions in this process take turns: the second finds the work done
        # (unchanged) instead of pushing the same bytes again at the same moment.
        key = f"{promotion.kind}:{promotion.destination.name}:{promotion.reference}"
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            if promotion.kind == "spa":
                return await self._run_spa(promotion, started, on_progress)
            return await self._run_image(promotion, started, on_progress, caller)

    async def _run_image(
        self,
        promotion: Promotion,
        started: float,
        on_progress: Progress | None,
        caller: _Caller,
    ) -> PromotionResult:
        source, destination = promotion.image_source, promotion.image_destination
        assert source is not None
        assert destination is not None
        progress = CopyProgress()
        if on_progress is not None:
            progress.on_change = lambda p: on_progress(p.bytes_copied, p.images_done, 1)
        [result] = await copy_images(
            self._registry, [(source, destination)], self._copy_options, progress
        )
        if result.error is not None:
            raise _as_promotion_error(result.error, source, promotion)
        digest = str(result.digest)
        promoted = PromotionResult(
            kind="image",
            source_environment=promotion.source.name,
            destination_environment=promotion.destination.name,
            source_ref=_pinned(result.source, digest),
            destination_ref=_pinned(result.destination, digest),
            digest=digest,
            unchanged=result.status == "unchanged",
            bytes_copied=result.bytes_copied,
            duration_ms=int((time.monotonic() - started) * 1000),
            blobs_copied=result.blobs_copied,
            blobs_mounted=result.blobs_mounted,
            blobs_skipped=result.blobs_skipped,
        )
        return await self.sign(
            promoted,
            requested_by=caller.requested_by,
            request_id=caller.request_id,
            started=caller.started,
        )

    async def sign(
        self,
        result: PromotionResult,
        *,
        requested_by: str | None = None,
        request_id: str | None = None,
        started: datetime | None = None,
    ) -> PromotionResult:
        """``result`` with its digest signed and its promotion attested, when this server signs.

        Both also when the copy found everything there (``unchanged``): promoting again is how
        a digest whose signing or attesting failed gets what it lacks. Already signed by this
        key, already carrying this server's promotion attestation for this destination: nothing
        is written. Either failure is logged and kept in the result; the copy stands, and one
        failing does not keep the other from being tried.
        """
        if self.signer is None or result.kind != "image" or not result.digest:
            return result
        from imgctl.trust import sign_image

        image = Reference.parse(result.destination_ref)
        image = replace(image, tag=None, digest=Digest.parse(result.digest))
        async with self._signing:
            try:
                await sign_image(self._registry, image, self.signer)
            except ImgctlError as exc:
                log.warning("promoted %s, but could not sign it: %s", image, exc)
                result = replace(result, signed=False, signature_error=f"not signed: {exc}")
            else:
                result = replace(result, signed=True)
            result = replace(result, signature_key=self.signature_key)
            return await self._attest(result, image, requested_by, request_id, started)

    async def _attest(
        self,
        result: PromotionResult,
        image: Reference,
        requested_by: str | None,
        request_id: str | None,
        started: datetime | None,
    ) -> PromotionResult:
        """The attest phase (kpromo's) of one promoted digest: its attestation under ``.att``."""
        from imgctl.trust import PromotionFacts, attest_image, promotion_statement

        assert self.signer is not None
        finished = datetime.now(UTC)
        try:
            facts = PromotionFacts(
                source=Reference.parse(result.source_ref),
                destination=Reference.parse(result.destination_ref),
                builder=self.builder,
                started=started or finished,
                finished=finished,
                requested_by=requested_by or None,
                request_id=request_id or None,
            )
            await attest_image(self._registry, image, self.signer, promotion_statement(facts))
        except ImgctlError as exc:
            log.warning("promoted %s, but could not attest its promotion: %s", image, exc)
            return replace(result, attested=False, attestation_error=f"not attested: {exc}")
        return replace(result, attested=True)

    async def _run_spa(
        self, promotion: Promotion, started: float, on_progress: Progress | None
    ) -> PromotionResult:
        from imgctl.promotion.spa import SpaRef, sync_spa

        spa = promotion.spa
        assert isinstance(spa, SpaRef)
        assert promotion.source.spa_suffix
        assert promotion.destination.spa_suffix
        progress = None
        if on_progress is not None:

            def progress(done: int, total: int) -> None:
                on_progress(0, done, total)

        try:
            synced = await sync_spa(
                spa,
                promotion.source.spa_suffix,
                promotion.destination.spa_suffix,
                environ=self._environ,
                on_progress=progress,
            )
        except PromotionError:
            raise
        except (NotFoundError, SpaNotFoundError) as exc:
            raise SourceNotFoundError(exc.message, hint=exc.hint) from None
        except ImgctlError as exc:
            raise StorageRefusedError(exc.message, hint=exc.hint) from None
        return PromotionResult(
            kind="spa",
            source_environment=promotion.source.name,
            destination_environment=promotion.destination.name,
            source_ref=synced.source,
            destination_ref=synced.destination,
            unchanged=synced.copied == 0,
            bytes_copied=synced.bytes_copied,
            duration_ms=int((time.monotonic() - started) * 1000),
            objects_copied=synced.copied,
            objects_skipped=synced.skipped,
        )


@dataclass(frozen=True, slots=True)
class _Caller:
    """Who asked for a promotion, and when it started: what its attestation records."""

    requested_by: str | None
    request_id: str | None
    started: datetime


def landed_result(promotion: Promotion, duration_ms: int = 0) -> PromotionResult:
    """The result of a pinned image promotion found finished in its destination.

    For a copy whose end was not seen (its answer was lost, or the call was cut off after the
    tag was written): what moved is unknown, so the counts are zero.
    """
    source, destination = promotion.image_source, promotion.image_destination
    assert source is not None
    assert destination is not None
    assert source.digest is not None
    digest = str(source.digest)
    return PromotionResult(
        kind="image",
        source_environment=promotion.source.name,
        destination_environment=promotion.destination.name,
        source_ref=_pinned(source, digest),
        destination_ref=_pinned(destination, digest),
        digest=digest,
        duration_ms=duration_ms,
    )


def _pinned(reference: Reference, digest: str) -> str:
    """REGISTRY/REPO:TAG@DIGEST: the tag for people, the digest for machines."""
    return str(reference) if reference.digest else f"{reference}@{digest}"


def _split_image_ref(ref: str) -> tuple[str, str | None, Digest | None]:
    """REPO[:TAG][@DIGEST] without a registry -> (path, tag, digest)."""
    name, at, digest_text = ref.partition("@")
    digest = None
    if at:
        try:
            digest = Digest.parse(digest_text)
        except ImgctlError as exc:
            raise InvalidPromotionError(f"ref {ref!r}: {exc.message}") from None
    path, tag = name, None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = name.rpartition(":")
        if not tag:
            raise InvalidPromotionError(
                f"ref {ref!r} has an empty tag", hint="give REPO:TAG or REPO@DIGEST"
            )
    first = path.split("/", 1)[0]
    if "/" in path and ("." in first or ":" in first or first == "localhost"):
        raise InvalidPromotionError(
            f"ref {ref!r} names a registry ({first}); environments choose registries",
            hint="give REPO:TAG or REPO@DIGEST, e.g. myapp:v1.2.3",
        )
    if tag is None and digest is None:
        raise InvalidPromotionError(
            f"ref {ref!r} has no tag or digest",
            hint="promote an exact version: REPO:TAG or REPO@DIGEST, never an implicit latest",
        )
    return path, tag, digest


def _as_promotion_error(
    error: ImgctlError, source: Reference, promotion: Promotion
) -> PromotionError:
    if isinstance(error, NotFoundError):
        return SourceNotFoundError(error.message, hint=error.hint)
    if isinstance(error, TransportError):
        return _unreachable(error, promotion)
    if isinstance(error, RegistryError) and error.status in (401, 403):
        return StorageRefusedError(
            f"the server's registry credentials were refused: {error.message}",
            hint="check the server's registry credentials (IMGCTL_CREDS_*, ECR role)",
        )
    return PromotionError(f"copying {source} failed: {error}")


def _unreachable(error: TransportError, promotion: Promotion) -> UnreachableError:
    """A registry the server could not reach, named with its environment.

    The caller reached the server; what failed is the server's own connection, to a registry
    its configuration names. Saying which one keeps "the server is down" out of the picture.
    """
    host = error.host
    environment = next(
        (
            env
            for env in (promotion.destination, promotion.source)
            if env.registry and host in (env.registry, api_host(env.registry))
        ),
        None,
    )
    if host is None or environment is None:
        return UnreachableError(
            f"the server could not reach a registry: {error.message}", hint=error.hint
        )
    return UnreachableError(
        f"the server could not reach registry {host} (environment {environment.name}): "
        f"{error.message}",
        hint=f"check the server's IMGCTL_REGISTRY_{environment.name.upper()} and that the "
        "registry runs; promoting again is safe",
    )
