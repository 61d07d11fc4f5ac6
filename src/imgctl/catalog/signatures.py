"""Admission's signature rule: in some environments a promoted image must also be signed.

``--require-signature ENV=KEYREF`` (repeatable; or ``IMGCTL_ADMISSION_REQUIRE_SIGNATURE``) makes
the admission webhook of ``/admission/ENV`` ask, after the catalog said "promoted", whether the
image's digest carries a cosign signature that one of ENV's keys verifies
(:func:`imgctl.trust.verify_image`, against the registry the image names). An image given by
tag is resolved to its digest in that registry, as the runtime will pull it.

Verdicts are remembered by digest in a bounded LRU: a "signed" for :attr:`SignatureRule.
POSITIVE_TTL`, a "not signed" briefly (:attr:`SignatureRule.NEGATIVE_TTL`), so that a digest
signed after a denial is admitted soon. A registry that cannot be read denies (fail closed) and
is not remembered as a verdict: the next review asks again. Entries past half their life are
re-checked in the background when asked for, so a busy cluster never waits on the registry for
an image it runs all the time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from imgctl.config import setting
from imgctl.errors import ImgctlError, NotFoundError, SignatureError, UsageError
from imgctl.oci.digest import Digest
from imgctl.oci.reference import DEFAULT_TAG, Reference

if TYPE_CHECKING:
    from imgctl.remote import RegistryClient
    from imgctl.trust import PublicKey, VerificationReport

__all__ = [
    "REQUIRE_SIGNATURE_VARIABLE",
    "SignatureRule",
    "load_signature_rule",
    "parse_requirements",
]

logger = logging.getLogger(__name__)

REQUIRE_SIGNATURE_VARIABLE: Final = "IMGCTL_ADMISSION_REQUIRE_SIGNATURE"
_FLAG: Final = "--require-signature"
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
    flags: Sequence[str], environ: Mapping[str, str]
) -> tuple[dict[str, tuple[str, ...]], str]:
    """The requirements of the flags, else of the variable (comma-separated), and their source."""
    chosen = setting(
        list(flags) or None, REQUIRE_SIGNATURE_VARIABLE, environ, parse=_split_variable
    )
    source = _FLAG if flags else REQUIRE_SIGNATURE_VARIABLE
    return parse_requirements(chosen or [], source), source


def load_signature_rule(
    flags: Sequence[str],
    environ: Mapping[str, str],
    client_factory: Callable[[], RegistryClient],
    *,
    environments: Collection[str] | None = None,
) -> SignatureRule | None:
    """The rule the flags (else the variable) ask for, keys loaded; None when none is asked for.

    ``environments`` (the server's configured ones) refuses a rule for an environment that does
    not exist; ``catalog serve`` knows none and accepts any. Raises UsageError naming the item.
    """
    required, source = requirements_from(flags, environ)
    if not required:
        return None
    from imgctl.errors import KeyRefError
    from imgctl.trust import load_public_key

    if environments is not None:
        unknown = sorted(set(required) - set(environments))
        if unknown:
            raise UsageError(
                f"{source} names environment(s) {', '.join(unknown)}, which are not configured",
                hint=f"configured: {', '.join(sorted(environments)) or 'none'}",
            )
    keys: dict[str, tuple[PublicKey, ...]] = {}
    loaded: dict[str, PublicKey] = {}
    for environment, refs in required.items():
        for ref in refs:
            if ref not in loaded:
                try:
                    loaded[ref] = load_public_key(ref, environ=environ)
                except KeyRefError as exc:
                    raise UsageError(
                        f"{source} {environment}={ref}: {exc.message}", hint=exc.hint
                    ) from None
        keys[environment] = tuple(loaded[ref] for ref in refs)
    return SignatureRule(keys, client_factory())


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


_VerdictKey = tuple[str, str, str]  # (environment, canonical name, digest)
_TagKey = tuple[str, str]  # (canonical name, tag)


class SignatureRule:
    """Which environments require a signature, by which keys, and the verdicts remembered.

    :meth:`known` answers from memory only (True: verified recently); :meth:`check` asks the
    registry when it must and never raises: None means signed, a string says why not. One
    registry check runs per digest (and per tag) at a time, whoever asks.
    """

    POSITIVE_TTL: Final = 300.0
    NEGATIVE_TTL: Final = 10.0
    # Tags move: the digest a tag names is asked again this often (the runtime pulls the tag).
    TAG_TTL: Final = 10.0
    MAX_ENTRIES: Final = 10_000

    def __init__(
        self,
        keys: Mapping[str, tuple[PublicKey, ...]],
        client: RegistryClient,
        *,
        positive_ttl: float = POSITIVE_TTL,
        negative_ttl: float = NEGATIVE_TTL,
        tag_ttl: float = TAG_TTL,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from imgctl.trust import TrustPolicy

        if not all(keys.values()):
            raise ValueError("every environment of a signature rule needs at least one key")
        self.client = client
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.tag_ttl = tag_ttl
        # The payload's docker-reference is not compared, as cosign verify and the sigstore
        # policy-controller do: a signature copied to a mirror names the primary registry.
        self._policies = {
            environment: TrustPolicy(keys=tuple(environment_keys), any_identity=True)
            for environment, environment_keys in keys.items()
        }
        self._labels = {environment: _key_label(k) for environment, k in keys.items()}
        # Values keep the reference a background re-check asks the registry about.
        self._verdicts: _Memory[_VerdictKey, tuple[str | None, Reference]] = _Memory(
            max_entries, clock
        )
        self._digests: _Memory[_TagKey, tuple[Digest, str, Reference]] = _Memory(max_entries, clock)
        self._running: dict[Hashable, asyncio.Future[object]] = {}
        self._background: set[asyncio.Task[object]] = set()

    @property
    def environments(self) -> list[str]:
        """The environments whose admission requires a signature."""
        return sorted(self._policies)

    def keys_of(self, environment: str) -> str:
        """The keys of ``environment`` as the denials name them."""
        return self._labels[environment]

    def applies(self, environment: str) -> bool:
        """Whether images admitted to ``environment`` must be signed."""
        return environment in self._policies

    def known(self, environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        """True only if a recent verdict says the image is signed; no I/O (call it on the loop).

        ``name`` is the canonical repository name and ``digest`` (else ``tag``) what the image
        names, as the catalog is asked: plain strings, so that this costs dictionary reads.
        """
        if digest is None:
            found_tag = self._digests.get((name, tag or DEFAULT_TAG))
            if found_tag is None:
                return False
            (_, digest, reference), refresh = found_tag
            if refresh:
                self._in_background(self._resolve(reference))
        found = self._verdicts.get((environment, name, digest))
        if found is None:
            return False
        (verdict, pinned), refresh = found
        if refresh:
            self._in_background(self._verdict_of(environment, pinned))
        return verdict is None

    async def check(self, environment: str, image: Reference) -> str | None:
        """None if ``image`` carries a signature by one of ``environment``'s keys, else why not."""
        try:
            digest = image.digest or await self._digest_of(image)
            pinned = image.with_digest(digest)
            found = self._verdicts.get((environment, image.name, str(digest)))
            if found is not None:
                (verdict, _), refresh = found
                if refresh:
                    self._in_background(self._verdict_of(environment, pinned))
            else:
                verdict = await self._verdict_of(environment, pinned)
        except _Unreadable as exc:
            return exc.reason
        if verdict is None:
            return None
        on = "" if image.digest is not None else f" on {digest}"
        return f"no valid signature by {self._labels[environment]}{on}: {verdict}"

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

    async def _verdict_of(self, environment: str, image: Reference) -> str | None:
        """None if ``image`` (with digest) is signed, else why not; remembered.

        Raises _Unreadable (not remembered) when the registry cannot be read.
        """
        from imgctl.trust import verify_image

        key = (environment, image.name, str(image.digest))

        async def verify() -> str | None:
            try:
                report = await verify_image(self.client, image, self._policies[environment])
            except SignatureError as exc:
                # What the registry holds is wrong (a malformed .sig manifest): a verdict.
                verdict: str | None = exc.message
            except Exception as exc:
                raise _unreadable(exc, "signatures could not be read from", image) from exc
            else:
                verdict = None if report.verified else _why_not(report)
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
                logger.warning("background signature re-check: %s", exc.reason)
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
    logger.warning("admission signature check of %s failed: %s", image, exc)
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


def _key_label(keys: Sequence[PublicKey]) -> str:
    refs = [key.ref for key in keys]
    return f"key {refs[0]}" if len(refs) == 1 else f"any of keys {', '.join(refs)}"
