"""Admission's signature rule: in some environments a promoted image must also be signed.

``--require-signature ENV=KEYREF`` (repeatable; or ``IMGCTL_ADMISSION_REQUIRE_SIGNATURE``) makes
the admission webhook of ``/admission/ENV`` ask, after the catalog said "promoted", whether the
image's digest carries a cosign signature that one of ENV's keys verifies
(:func:`imgctl.trust.verify_image`, against the registry the image names).
``--require-attestation ENV=KEYREF`` (``IMGCTL_ADMISSION_REQUIRE_ATTESTATION``) does the same
for a promoter's attestation: a DSSE envelope of predicate type
``https://k8s.io/promo-tools/promotion/v1`` about the digest, signed by one of ENV's keys
(:func:`imgctl.trust.list_attestations`). An environment may require both. An image given by
tag is resolved to its digest in that registry, as the runtime will pull it.

Verdicts are remembered by (digest, kind) in one bounded LRU: a "signed" / "attested" for
:attr:`SignatureRule.POSITIVE_TTL`, a "no" briefly (:attr:`SignatureRule.NEGATIVE_TTL`), so that
a digest signed or attested after a denial is admitted soon. A registry that cannot be read
denies (fail closed) and is not remembered as a verdict: the next review asks again. Entries
past half their life are re-checked in the background when asked for, so a busy cluster never
waits on the registry for an image it runs all the time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, Literal, TypeVar

from imgctl.config import setting
from imgctl.errors import ImgctlError, NotFoundError, SignatureError, UsageError
from imgctl.oci.digest import Digest
from imgctl.oci.reference import DEFAULT_TAG, Reference

if TYPE_CHECKING:
    from imgctl.remote import RegistryClient
    from imgctl.trust import AttestationCheck, PublicKey, VerificationReport

__all__ = [
    "REQUIRE_ATTESTATION_VARIABLE",
    "REQUIRE_SIGNATURE_VARIABLE",
    "Kind",
    "SignatureRule",
    "load_signature_rule",
    "parse_requirements",
]

logger = logging.getLogger(__name__)

Kind = Literal["signature", "attestation"]
"""What a rule requires of an image: a cosign signature, or a promoter's attestation."""

REQUIRE_SIGNATURE_VARIABLE: Final = "IMGCTL_ADMISSION_REQUIRE_SIGNATURE"
REQUIRE_ATTESTATION_VARIABLE: Final = "IMGCTL_ADMISSION_REQUIRE_ATTESTATION"
_FLAG: Final = "--require-signature"
# Each kind's flag and variable, in the order a denial names them.
_SOURCES: Final[dict[Kind, tuple[str, str]]] = {
    "signature": (_FLAG, REQUIRE_SIGNATURE_VARIABLE),
    "attestation": ("--require-attestation", REQUIRE_ATTESTATION_VARIABLE),
}
# What a denial calls the missing thing.
_WHAT: Final[dict[Kind, str]] = {
    "signature": "signature",
    "attestation": "promotion attestation",
}
# An environment as the webhook's path names it: catalog promotions are recorded in lower case
# (IMGCTL_REGISTRY_PROD is environment "prod"), and "/admission/Prod" would match nothing.
_ENVIRONMENT_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,62}[a-z0-9])?")
_MAX_KEY_REF: Final = 4096
_HINT: Final = (
    "give ENV=KEYREF: the environment of /admission/ENV (lower case) and a key reference "
    "(a cosign.pub or PEM public key file, a private key file, or a KMS URI such as awskms://...)"
)

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def parse_requirements(specs: Sequence[str], source: str = _FLAG) -> dict[str, tuple[str, ...]]:
    """``ENV=KEYREF`` items as {environment: key references}; UsageError naming ``source``."""
    required: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        environment, equals, ref = spec.partition("=")
        environment = environment.strip()
        ref = ref.strip()
        if not equals:
            raise UsageError(f"{source} {spec!r} has no '='", hint=_HINT)
        if not environment:
            raise UsageError(f"{source} {spec!r} names no environment", hint=_HINT)
        if not _ENVIRONMENT_RE.fullmatch(environment):
            problem = (
                "is not lower case"
                if _ENVIRONMENT_RE.fullmatch(environment.lower())
                else "is not an environment name (letters, digits, '.', '_', '-')"
            )
            raise UsageError(
                f"{source} {spec!r}: environment {environment!r} {problem}", hint=_HINT
            )
        if not ref:
            raise UsageError(f"{source} {spec!r} names no key", hint=_HINT)
        if len(ref) > _MAX_KEY_REF or any(c.isspace() or not c.isprintable() for c in ref):
            raise UsageError(
                f"{source} {spec[:80]!r}: the key reference is too long or holds whitespace",
                hint=_HINT,
            )
        refs = required.get(environment, ())
        if ref not in refs:
            required[environment] = (*refs, ref)
    return required


def _split_variable(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def requirements_from(
    flags: Sequence[str], environ: Mapping[str, str], kind: Kind = "signature"
) -> tuple[dict[str, tuple[str, ...]], str]:
    """The requirements of ``kind``'s flags, else of its variable (comma-separated), and source."""
    flag, variable = _SOURCES[kind]
    chosen = setting(list(flags) or None, variable, environ, parse=_split_variable)
    source = flag if flags else variable
    return parse_requirements(chosen or [], source), source


def load_signature_rule(
    flags: Sequence[str],
    environ: Mapping[str, str],
    client_factory: Callable[[], RegistryClient],
    *,
    environments: Collection[str] | None = None,
    attestation_flags: Sequence[str] = (),
) -> SignatureRule | None:
    """The rule the flags (else the variables) ask for, keys loaded; None when none is asked for.

    ``flags`` are ``--require-signature`` items, ``attestation_flags`` ``--require-attestation``
    items; each kind falls back to its own variable. ``environments`` (the server's configured
    ones) refuses a rule for an environment that does not exist; ``catalog serve`` knows none
    and accepts any. Raises UsageError naming the item.
    """
    from imgctl.errors import KeyRefError
    from imgctl.trust import load_public_key

    chosen: dict[Kind, Sequence[str]] = {"signature": flags, "attestation": attestation_flags}
    keys: dict[Kind, dict[str, tuple[PublicKey, ...]]] = {}
    loaded: dict[str, PublicKey] = {}  # one load per key reference, whichever kind names it
    for kind in _SOURCES:
        required, source = requirements_from(chosen[kind], environ, kind)
        if environments is not None:
            unknown = sorted(set(required) - set(environments))
            if unknown:
                raise UsageError(
                    f"{source} names environment(s) {', '.join(unknown)}, which are not configured",
                    hint=f"configured: {', '.join(sorted(environments)) or 'none'}",
                )
        keys[kind] = {}
        for environment, refs in required.items():
            for ref in refs:
                if ref not in loaded:
                    try:
                        loaded[ref] = load_public_key(ref, environ=environ)
                    except KeyRefError as exc:
                        raise UsageError(
                            f"{source} {environment}={ref}: {exc.message}", hint=exc.hint
                        ) from None
            keys[kind][environment] = tuple(loaded[ref] for ref in refs)
    if not keys["signature"] and not keys["attestation"]:
        return None
    return SignatureRule(keys["signature"], client_factory(), attestations=keys["attestation"])


@dataclass(slots=True)
class _Entry(Generic[_V]):
    value: _V
    expires: float
    refresh_at: float  # when a hit starts a background re-check (inf: never, or running)


class _Memory(Generic[_K, _V]):
    """A bounded LRU of values that expire; a hit past ``refresh_at`` asks for a re-check once."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[_K, _Entry[_V]] = OrderedDict()

    def get(self, key: _K) -> tuple[_V, bool] | None:
        """(value, whether the caller should re-check it now), or None if absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if entry.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        if entry.refresh_at <= now:
            entry.refresh_at = float("inf")  # one re-check at a time
            return entry.value, True
        return entry.value, False

    def put(self, key: _K, value: _V, ttl: float, *, refresh: bool) -> None:
        """Remember ``value`` for ``ttl`` seconds (re-checked after half of it if ``refresh``)."""
        now = self._clock()
        refresh_at = now + ttl / 2 if refresh else float("inf")
        self._entries[key] = _Entry(value, now + ttl, refresh_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: _K) -> None:
        """Forget ``key``."""
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class _Unreadable(Exception):
    """The registry could not answer: deny this review, remember nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_VerdictKey = tuple[str, str, str, Kind]  # (environment, canonical name, digest, kind)
_TagKey = tuple[str, str]  # (canonical name, tag)


class SignatureRule:
    """Which environments require a signature or an attestation, by which keys, and the verdicts.

    ``keys`` are the signature rule's keys per environment, ``attestations`` the attestation
    rule's. :meth:`known` answers from memory only (True: every required kind verified
    recently); :meth:`check` asks the registry when it must and never raises: None means
    admitted, a string says why not. One registry check runs per digest and kind (and per tag)
    at a time, whoever asks.
    """

    POSITIVE_TTL: Final = 300.0
    NEGATIVE_TTL: Final = 10.0
    # Tags move: the digest a tag names is asked again this often (the runtime pulls the tag).
    # Each tag in use costs one HEAD per half of it per replica: 1,000 tags, 33 requests/s.
    TAG_TTL: Final = 60.0
    MAX_ENTRIES: Final = 10_000

    def __init__(
        self,
        keys: Mapping[str, tuple[PublicKey, ...]],
        client: RegistryClient,
        *,
        attestations: Mapping[str, tuple[PublicKey, ...]] | None = None,
        positive_ttl: float = POSITIVE_TTL,
        negative_ttl: float = NEGATIVE_TTL,
        tag_ttl: float = TAG_TTL,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from imgctl.trust import TrustPolicy

        required: dict[Kind, Mapping[str, tuple[PublicKey, ...]]] = {
            "signature": keys,
            "attestation": attestations or {},
        }
        if not all(all(by_environment.values()) for by_environment in required.values()):
            raise ValueError("every environment of a signature rule needs at least one key")
        self.client = client
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.tag_ttl = tag_ttl
        # The payload's docker-reference (a statement's subject name) is not compared, as cosign
        # verify and the sigstore policy-controller do: a signature or attestation copied to a
        # mirror names the primary registry.
        self._policies: dict[tuple[str, Kind], TrustPolicy] = {}
        self._labels: dict[tuple[str, Kind], str] = {}
        kinds: dict[str, list[Kind]] = {}
        for kind, by_environment in required.items():
            for environment, environment_keys in by_environment.items():
                policy = TrustPolicy(keys=tuple(environment_keys), any_identity=True)
                self._policies[environment, kind] = policy
                self._labels[environment, kind] = _key_label(environment_keys)
                kinds.setdefault(environment, []).append(kind)
        # Environment -> the kinds it requires, signatures first (the order denials name them).
        self._kinds: dict[str, tuple[Kind, ...]] = {e: tuple(k) for e, k in kinds.items()}
        if required["attestation"]:
            _load_envelope_libraries()
        # Values keep the reference a background re-check asks the registry about.
        self._verdicts: _Memory[_VerdictKey, tuple[str | None, Reference]] = _Memory(
            max_entries, clock
        )
        self._digests: _Memory[_TagKey, tuple[Digest, str, Reference]] = _Memory(max_entries, clock)
        self._running: dict[Hashable, asyncio.Future[object]] = {}
        self._background: set[asyncio.Task[object]] = set()

    @property
    def environments(self) -> list[str]:
        """The environments whose admission requires a signature or an attestation."""
        return sorted(self._kinds)

    def kinds_of(self, environment: str) -> tuple[Kind, ...]:
        """What ``environment`` requires: ("signature",), ("attestation",) or both."""
        return self._kinds.get(environment, ())

    def keys_of(self, environment: str, kind: Kind = "signature") -> str:
        """The keys of ``environment``'s ``kind`` rule as the denials name them."""
        return self._labels[environment, kind]

    def applies(self, environment: str) -> bool:
        """Whether images admitted to ``environment`` must be signed or attested."""
        return environment in self._kinds

    def label(self, environment: str) -> str:
        """What is checked in ``environment``, for messages: "signature", "attestation"..."""
        return " and ".join(self._kinds.get(environment, ("signature",)))

    def known(self, environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        """True only if recent verdicts say the image has all it needs; no I/O (call on the loop).

        ``name`` is the canonical repository name and ``digest`` (else ``tag``) what the image
        names, as the catalog is asked: plain strings, so that this costs dictionary reads.
        """
        kinds = self._kinds.get(environment)
        if kinds is None:
            return False
        if digest is None:
            found_tag = self._digests.get((name, tag or DEFAULT_TAG))
            if found_tag is None:
                return False
            (_, digest, reference), refresh = found_tag
            if refresh:
                self._in_background(self._resolve(reference))
        for kind in kinds:
            found = self._verdicts.get((environment, name, digest, kind))
            if found is None:
                return False
            (verdict, pinned), refresh = found
            if refresh:
                self._in_background(self._verdict_of(environment, kind, pinned))
            if verdict is not None:
                return False
        return True

    async def check(self, environment: str, image: Reference) -> str | None:
        """None if ``image`` has what ``environment`` requires (signed, attested), else why not.

        The kinds are checked at once; a denial names each one missing, signatures first.
        """
        try:
            digest = image.digest or await self._digest_of(image)
        except _Unreadable as exc:
            return exc.reason
        pinned = image.with_digest(digest)
        on = "" if image.digest is not None else f" on {digest}"
        kinds = self._kinds[environment]
        if len(kinds) == 1:
            reasons = [await self._reason(environment, kinds[0], pinned, on)]
        else:
            reasons = await asyncio.gather(
                *(self._reason(environment, kind, pinned, on) for kind in kinds)
            )
        denied = [reason for reason in reasons if reason is not None]
        return "; ".join(denied) if denied else None

    async def _reason(self, environment: str, kind: Kind, image: Reference, on: str) -> str | None:
        """None if ``image`` (with digest) passes ``environment``'s ``kind`` rule, else why not."""
        try:
            found = self._verdicts.get((environment, image.name, str(image.digest), kind))
            if found is not None:
                (verdict, _), refresh = found
                if refresh:
                    self._in_background(self._verdict_of(environment, kind, image))
            else:
                verdict = await self._verdict_of(environment, kind, image)
        except _Unreadable as exc:
            return exc.reason
        if verdict is None:
            return None
        return f"no valid {_WHAT[kind]} by {self._labels[environment, kind]}{on}: {verdict}"

    async def aclose(self) -> None:
        """Stop the background re-checks and close the registry connections."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.client.aclose()

    # --- tags ---------------------------------------------------------------------------------

    async def _digest_of(self, image: Reference) -> Digest:
        found = self._digests.get((image.name, image.tag or DEFAULT_TAG))
        if found is not None:
            (digest, _, reference), refresh = found
            if refresh:
                self._in_background(self._resolve(reference))
            return digest
        return await self._resolve(image)

    async def _resolve(self, image: Reference) -> Digest:
        """The digest ``image``'s tag names in its registry, remembered; raises _Unreadable."""
        key = (image.name, image.tag or DEFAULT_TAG)

        async def resolve() -> Digest:
            try:
                descriptor = await self.client.head_manifest(image)
            except Exception as exc:
                raise _unreadable(exc, f"tag {key[1]!r} could not be resolved in", image) from exc
            if descriptor is None:
                self._digests.drop(key)
                raise _Unreadable(f"tag {key[1]!r} is not in {image.name}, so nothing to verify")
            resolved = descriptor.digest
            self._digests.put(key, (resolved, str(resolved), image), self.tag_ttl, refresh=True)
            return descriptor.digest

        result = await self._once(("tag", key), resolve)
        assert isinstance(result, Digest)
        return result

    # --- verdicts -----------------------------------------------------------------------------

    async def _verdict_of(self, environment: str, kind: Kind, image: Reference) -> str | None:
        """None if ``image`` (with digest) is signed / attested, else why not; remembered.

        Raises _Unreadable (not remembered) when the registry cannot be read.
        """
        from imgctl.trust import list_attestations, verify_image

        key: _VerdictKey = (environment, image.name, str(image.digest), kind)
        policy = self._policies[environment, kind]

        async def verify() -> str | None:
            verdict: str | None
            try:
                if kind == "signature":
                    report = await verify_image(self.client, image, policy)
                    verdict = None if report.verified else _why_not(report)
                else:
                    verdict = _why_not_attested(await list_attestations(self.client, image, policy))
            except SignatureError as exc:
                # What the registry holds is wrong (a malformed .sig or .att manifest): a verdict.
                verdict = exc.message
            except Exception as exc:
                raise _unreadable(exc, f"{kind}s could not be read from", image) from exc
            ttl = self.positive_ttl if verdict is None else self.negative_ttl
            self._verdicts.put(key, (verdict, image), ttl, refresh=verdict is None)
            return verdict

        result = await self._once(("verdict", key), verify)
        assert result is None or isinstance(result, str)
        return result

    # --- plumbing -----------------------------------------------------------------------------

    async def _once(self, key: Hashable, work: Callable[[], Awaitable[object]]) -> object:
        """``work()``, shared by every caller asking for ``key`` while it runs."""
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(work())
            self._running[key] = future
            future.add_done_callback(lambda _: self._running.pop(key, None))
            future.add_done_callback(_retrieve)
        # Shielded: a review that gives up must not cancel the answer others wait for.
        return await asyncio.shield(future)

    def _in_background(self, work: Awaitable[object]) -> None:
        async def quietly() -> object:
            try:
                return await work
            except _Unreadable as exc:
                logger.warning("background signature/attestation re-check: %s", exc.reason)
            return None

        task = asyncio.ensure_future(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _retrieve(future: asyncio.Future[object]) -> None:
    # An error is read by whoever waits; this keeps asyncio from calling it "never retrieved"
    # when every waiter had already given up.
    if not future.cancelled():
        future.exception()


def _unreadable(exc: Exception, what: str, image: Reference) -> _Unreadable:
    # The message may hold URLs or registry text; the log keeps it, the denial names the kind.
    if isinstance(exc, NotFoundError):
        return _Unreadable(f"{image.name} is not in its registry, so nothing to verify")
    logger.warning("admission check of %s failed: %s", image, exc)
    kind = type(exc).__name__ if isinstance(exc, ImgctlError) else "unexpected error"
    return _Unreadable(f"{what} {image.registry} ({kind}), denied to be safe")


_MAX_REASONS: Final = 3


def _why_not(report: VerificationReport) -> str:
    if not report.checks:
        return "no signatures"
    reasons = list(dict.fromkeys(check.reason for check in report.checks if not check.ok))
    shown = "; ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        shown += f" (and {len(reasons) - _MAX_REASONS} more)"
    return shown


def _load_envelope_libraries() -> None:
    """Import what verifying a DSSE envelope needs now, at start, not in the first review.

    trust imports securesystemslib when it first verifies an envelope: about 0.2 s on this
    project's machine, on the event loop, which held the first review (and every review queued
    behind it) for up to 170 ms in bench/catalog.py's cold decisions.
    """
    import importlib

    for module in ("securesystemslib.dsse", "securesystemslib.signer"):
        importlib.import_module(module)


def _why_not_attested(checks: Sequence[AttestationCheck]) -> str | None:
    """None if a promotion attestation among ``checks`` verified, else why none did."""
    from imgctl.trust import PROMOTION_PREDICATE_TYPE

    promotions = [check for check in checks if check.predicate_type == PROMOTION_PREDICATE_TYPE]
    if any(check.ok for check in promotions):
        return None
    if not checks:
        return "no attestations"
    if not promotions:
        kinds = list(dict.fromkeys(str(check.predicate_type) for check in checks))
        shown = ", ".join(kinds[:_MAX_REASONS])
        if len(kinds) > _MAX_REASONS:
            shown += f" (and {len(kinds) - _MAX_REASONS} more)"
        return f"no attestation of type {PROMOTION_PREDICATE_TYPE} (it has {shown})"
    reasons = list(dict.fromkeys(check.reason for check in promotions))
    shown = "; ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        shown += f" (and {len(reasons) - _MAX_REASONS} more)"
    return shown


def _key_label(keys: Sequence[PublicKey]) -> str:
    refs = [key.ref for key in keys]
    return f"key {refs[0]}" if len(refs) == 1 else f"any of keys {', '.join(refs)}"
