"""Scanning repositories: list tags, apply the policy, keep a Flux-like status per watch.

:class:`Scanner` scans one watch (:meth:`Scanner.scan`), every watch once (:meth:`scan_all`),
or keeps scanning them on their intervals (:meth:`run`). Watches that reach a registry with
the same credentials and TLS share a client (its connections and its limiter); a registry that
fails one watch slows that watch only, and the others keep their schedule. A failed scan is
retried with exponential backoff, never later than the watch's interval. With the watches
file's ``rateLimit``, the watches of one registry share one token bucket (and a 429's pause),
and their first scans are spread over the time that rate needs for them, instead of all
starting at once.

State goes through a :class:`ScanState` — :class:`~imgctl.store.ScanStore` in the server, so
replicas sharing a database take turns (a claim is a lease), or :class:`MemoryScanState` for
``imgctl scan --once``.

With a :class:`~imgctl.scan.reload.WatchesFile`, :meth:`Scanner.run` also follows the file: a
watch added or changed is scanned at once with its new spec (after any scan of its old spec has
finished), a removed one stops after the scan it may be running; the others keep their schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from imgctl.authn import (
    Credential,
    DockerConfigKeychain,
    Keychain,
    StaticKeychain,
    default_keychain,
)
from imgctl.errors import (
    AuthenticationError,
    ImgctlError,
    PermissionDeniedError,
    PolicyError,
)
from imgctl.remote import ClientOptions, RateLimiter, RegistryClient, RegistryTLS, TLSConfig
from imgctl.scan._status import LATEST_TAGS, WatchStatus, format_duration, tag_revision
from imgctl.scan.policy import ImagePolicy
from imgctl.scan.state import MemoryScanState, ScanState, WatchState
from imgctl.scan.watches import AutoPromotion, Watch, WatchConfig, WatchCredentials, WatchTLS

if TYPE_CHECKING:
    from imgctl.scan.reload import WatchesFile

__all__ = [
    "LATEST_TAGS",
    "MemoryScanState",
    "OnConfig",
    "OnScan",
    "Promote",
    "ScanState",
    "Scanner",
    "WatchStatus",
    "format_duration",
    "tag_revision",
]

log = logging.getLogger("imgctl.scan")

MIN_BACKOFF = 1.0
REQUESTS_PER_SCAN = 2  # a tag list that fits one page and the latest tag's HEAD
RATE_BURST = 5  # requests a registry's shared bucket lets through at once
JITTER = 0.1  # +-10% on every delay, so watches with one interval do not scan in lockstep
# A changed watch whose row another replica holds (it is scanning it) is asked for again after
# this, doubling up to EARLY_RETRY_MAX, until that scan has finished and it can be taken.
EARLY_RETRY = 0.5
EARLY_RETRY_MAX = 30.0

Promote = Callable[[Watch, str, str], Awaitable[None]]
"""Auto-promotion hook: (watch, tag, digest); raises when the promotion failed."""

OnScan = Callable[[Watch, WatchState, float], None]
"""Told of every finished scan: (watch, its new state, seconds it took); for metrics."""

OnConfig = Callable[[WatchConfig], None]
"""Told of every new version of the watches file :meth:`Scanner.run` puts in force."""


@dataclass(slots=True)
class _Running:
    """One watch's scan loop in :meth:`Scanner.run`: its spec and how to retire it."""

    watch: Watch
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Scanner:
    """Scans the watches of one :class:`~imgctl.scan.watches.WatchConfig`."""

    def __init__(
        self,
        config: WatchConfig,
        *,
        state: ScanState | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
        options: ClientOptions | None = None,
        promote: Promote | None = None,
        on_scan: OnScan | None = None,
        on_config: OnConfig | None = None,
        watches_file: WatchesFile | None = None,
        owner: str | None = None,
        retries: int = 2,
        max_retry_after: float = 10.0,
        claim_margin: float = 30.0,
    ) -> None:
        self.config = config
        self.state: ScanState = state or MemoryScanState()
        self._environ = dict(os.environ if environ is None else environ)
        self._home = home or Path.home()
        # Within one scan a throttled request is retried a little (honouring Retry-After, but
        # never for long); beyond that the scheduler's backoff takes over, so a watch that is
        # being throttled gives its concurrency slot back instead of sitting on it.
        self._options = replace(
            options or ClientOptions(), retries=retries, max_retry_after=max_retry_after
        )
        self._promote = promote
        self._on_scan = on_scan
        self._on_config = on_config
        # Followed by run(): a new version that loads replaces ``config``.
        self.watches_file = watches_file
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        # A claim lasts the watch's timeout plus this; an auto-promotion (not bounded by the
        # timeout) keeps extending it, so no other replica scans and promotes the same tag.
        self.claim_margin = claim_margin
        # By registry, credentials and TLS, not by name: watches that reach one registry the
        # same way share a client (one ping, one pool of kept-alive connections, not 1,000),
        # and a changed watch gets a client with its new credentials and TLS while a scan of
        # its old spec may still be using the old one.
        self._clients: dict[_Access, RegistryClient] = {}
        self._client_users: Counter[_Access] = Counter()  # scan loops of run() using each
        # With a rateLimit: one token bucket per registry, shared by its watches' clients.
        self._limiters: dict[str, RateLimiter] = {}
        self._default_keychain: Keychain | None = None
        self._slots = asyncio.Semaphore(config.concurrency)
        self._running: dict[str, _Running] = {}  # the scan loops of run(), by watch name
        self._retiring: dict[str, asyncio.Task[None]] = {}  # loops finishing a scan of an old spec
        self._tasks: set[asyncio.Task[None]] = set()  # every loop not yet ended
        self._scheduling = False  # run() is running
        self.scans = 0  # scans finished (any outcome), for tests and metrics

    async def aclose(self) -> None:
        """Close every registry connection."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> Scanner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ status

    async def status(self, watch: Watch) -> WatchStatus:
        """The watch's last known status (``Unknown`` before its first scan)."""
        state = await self.state.get(watch.name)
        if state is None or state.image != watch.canonical_image_name:
            state = WatchState(name=watch.name, image=watch.canonical_image_name)
        if watch.suspend:
            state = replace(
                state,
                ready="Unknown" if state.scan_time is None else state.ready,
                reason="Suspended",
                message="scanning is suspended (suspend: true)",
            )
        return WatchStatus(watch, state)

    async def statuses(self) -> list[WatchStatus]:
        """Every watch's status, in the watches file's order."""
        return [await self.status(watch) for watch in self.config.watches]

    # ------------------------------------------------------------------ scanning

    async def scan_all(self) -> list[WatchStatus]:
        """Scan every watch that is not suspended once, at most ``concurrency`` at a time."""

        async def one(watch: Watch) -> None:
            async with self._slots:
                await self.scan(watch)

        await asyncio.gather(*(one(w) for w in self.config.watches if not w.suspend))
        return await self.statuses()

    async def scan(self, watch: Watch) -> WatchState:
        """Scan ``watch`` now, save and return its new state (failures are states too)."""
        previous = await self.state.get(watch.name)
        if previous is None or previous.image != watch.canonical_image_name:
            # A new watch, or its image changed in the file: the old tags say nothing.
            previous = WatchState(name=watch.name, image=watch.canonical_image_name)
        started = datetime.now(UTC)
        clock = time.monotonic()
        try:
            # The timeout bounds the whole scan: the listing and the latest tag's digest.
            async with asyncio.timeout(watch.timeout):
                tags = await self._list_tags(watch)
                state = await self._succeeded(previous, watch, tags, started)
        except TimeoutError:
            state = self._failed(
                previous,
                "ReadOperationFailed",
                f"scan timed out after {format_duration(watch.timeout)}",
                watch,
            )
        except (AuthenticationError, PermissionDeniedError) as exc:
            state = self._failed(previous, "AuthenticationFailed", str(exc), watch)
        except ImgctlError as exc:
            state = self._failed(previous, "ReadOperationFailed", str(exc), watch)
        if (
            watch.auto_promote is not None
            and self._promote is not None
            and state.latest_tag
            and state.latest_digest
            and (state.latest_tag, state.latest_digest)
            != (state.promoted_tag, state.promoted_digest)
        ):
            if self.config.get(watch.name) != watch:
                # The watches file changed (or dropped) this watch while it was scanned: its
                # old rule no longer holds. A changed watch is scanned again at once.
                log.info("scan %s: not auto-promoting: the watch changed meanwhile", watch.name)
            else:
                async with self._holding(watch):
                    state = await self._auto_promote(watch, watch.auto_promote, state)
        await self.state.save(state)
        self.scans += 1
        if self._on_scan is not None:
            self._on_scan(watch, state, time.monotonic() - clock)
        return state

    async def _list_tags(self, watch: Watch) -> list[str]:
        client = self._client(watch)
        tags: list[str] = []
        async for tag in client.iter_tags(watch.reference):
            if not watch.excluded(tag):
                tags.append(tag)
        return tags

    async def _succeeded(
        self, previous: WatchState, watch: Watch, tags: list[str], started: datetime
    ) -> WatchState:
        now = datetime.now(UTC)
        ready, reason = "True", "Succeeded"
        message = f"successful scan: found {len(tags)} tags"
        latest_tag: str | None = None
        latest_digest: str | None = None
        if watch.policy is not None:
            try:
                latest_tag, latest_digest = await self._resolve(watch, watch.policy, tags)
            except PolicyError as exc:
                ready, reason = "False", "PolicyFailed"
                message = f"found {len(tags)} tags, but the policy failed: {exc}"
            except ImgctlError as exc:
                ready, reason = "False", "ReadOperationFailed"
                message = f"found {len(tags)} tags, but resolving the latest one failed: {exc}"
            else:
                if latest_tag is None:
                    message += f"; no tag matches the policy ({watch.policy.describe()})"
                else:
                    message += (
                        f"; latest image tag for {watch.canonical_image_name} is {latest_tag}"
                    )
        failures = 0 if ready == "True" else previous.failures + 1
        if failures:
            log.warning("scan %s: %s", watch.name, message)
        else:
            log.info("scan %s: %s", watch.name, message)
        return replace(
            previous,
            image=watch.canonical_image_name,
            tags=tuple(sorted(tags)),
            revision=tag_revision(tags),
            scan_time=started,
            ready=ready,
            reason=reason,
            message=message,
            transition_time=now if previous.ready != ready else previous.transition_time,
            failures=failures,
            latest_tag=latest_tag if ready == "True" else previous.latest_tag,
            latest_digest=latest_digest if ready == "True" else previous.latest_digest,
            # A policy that keeps failing backs off like a registry that does: 1 s, 2 s, 4 s...
            # up to the interval, not a full listing every second until someone fixes it.
            next_scan_at=now + timedelta(seconds=self._delay(watch, failures)),
            owner=None,  # the claim ends with the scan: a changed watch may be taken early
            updated_at=now,
        )

    async def _resolve(
        self, watch: Watch, policy: ImagePolicy, tags: list[str]
    ) -> tuple[str | None, str | None]:
        latest = policy.latest(tags)
        if latest is None:
            return None, None
        descriptor = await self._client(watch).head_manifest(watch.reference.with_tag(latest))
        if descriptor is None:  # deleted between the listing and now: the next scan tells
            raise ImgctlError(f"tag {latest} disappeared while the scan ran")
        return latest, str(descriptor.digest)

    def _failed(self, previous: WatchState, reason: str, message: str, watch: Watch) -> WatchState:
        now = datetime.now(UTC)
        failures = previous.failures + 1
        log.warning("scan %s failed (%s): %s", watch.name, reason, message)
        # The last good scan result stays: a registry outage does not empty the tag list.
        return replace(
            previous,
            image=watch.canonical_image_name,
            ready="False",
            reason=reason,
            message=message,
            transition_time=now if previous.ready != "False" else previous.transition_time,
            failures=failures,
            next_scan_at=now + timedelta(seconds=self._delay(watch, failures)),
            owner=None,
            updated_at=now,
        )

    async def _auto_promote(
        self, watch: Watch, rule: AutoPromotion, state: WatchState
    ) -> WatchState:
        assert self._promote is not None
        assert state.latest_tag
        assert state.latest_digest
        try:
            await self._promote(watch, state.latest_tag, state.latest_digest)
        except Exception as exc:  # audited by the promotion path; retried on the next scan
            text = exc.message if isinstance(exc, ImgctlError) else str(exc) or type(exc).__name__
            log.warning(
                "auto-promotion of %s:%s from %s to %s failed: %s",
                watch.canonical_image_name,
                state.latest_tag,
                rule.source,
                rule.destination,
                text,
            )
            return replace(
                state,
                message=f"{state.message}; auto-promotion to {rule.destination} failed: {text}",
            )
        log.info(
            "auto-promoted %s:%s (%s) from %s to %s",
            watch.canonical_image_name,
            state.latest_tag,
            state.latest_digest,
            rule.source,
            rule.destination,
        )
        return replace(
            state,
            promoted_tag=state.latest_tag,
            promoted_digest=state.latest_digest,
            message=f"{state.message}; promoted {state.latest_tag} to {rule.destination}",
        )

    def _lease(self, watch: Watch) -> float:
        return watch.timeout + self.claim_margin

    @contextlib.asynccontextmanager
    async def _holding(self, watch: Watch) -> AsyncIterator[None]:
        """Keep this replica's claim on ``watch`` alive while the body runs."""
        lease = self._lease(watch)

        async def renew() -> None:
            while True:
                await asyncio.sleep(lease / 3)
                try:
                    if not await self.state.extend(watch.name, owner=self.owner, lease=lease):
                        log.warning("scan %s: the claim was taken over meanwhile", watch.name)
                except Exception as exc:  # the database is down, say: try again
                    log.warning("scan %s: could not extend the claim: %s", watch.name, exc)

        renewing = asyncio.ensure_future(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    def _delay(self, watch: Watch, failures: int) -> float:
        """Seconds until the next scan: the interval, or a shorter backoff after failures."""
        delay = watch.interval
        if failures:
            delay = min(watch.interval, MIN_BACKOFF * 2 ** min(failures - 1, 20))
        return delay * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (spread, not secrecy)

    # ------------------------------------------------------------------ the schedule

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Scan every watch on its interval until ``stop`` is set (or the task is cancelled).

        With a watches file, follow it: :meth:`reconfigure` with each new version that loads.
        """
        stop = stop or asyncio.Event()
        self._scheduling = True
        for watch in self.config.watches:
            if not watch.suspend:
                self._start(watch, early=None)
        follow = None
        if self.watches_file is not None:
            follow = asyncio.create_task(self._follow(self.watches_file, stop), name="reload")
        try:
            await stop.wait()
        finally:
            self._scheduling = False
            tasks = [*self._tasks, *([follow] if follow is not None else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._running.clear()
            self._retiring.clear()
            self._client_users.clear()  # the loops are gone; aclose() closes their clients

    async def _follow(self, watches_file: WatchesFile, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep(watches_file.interval, stop)
            try:
                # Reading and parsing a changed file is blocking work: not on the event loop.
                config = await asyncio.to_thread(watches_file.poll)
                if config is not None and not stop.is_set():
                    self.reconfigure(config)
            except Exception:  # a bug, not a bad file (poll reports those): keep following
                log.exception("watches file %s: could not reload", watches_file.path)

    def reconfigure(self, config: WatchConfig) -> None:
        """Put ``config`` in force: start added or changed watches at once, stop removed ones.

        A watch whose spec changed (or that auto-promotes, when ``serviceIdentity`` changed) is
        scanned again at once, once any scan of its old spec has finished; unchanged watches
        keep their schedule. Their rows stay in the state, so a watch added back resumes with
        its last result (and is not promoted again).
        """
        old, self.config = self.config, config
        if config.concurrency != old.concurrency:
            # Scans running hold the old semaphore and give it back; new ones take this one.
            self._slots = asyncio.Semaphore(config.concurrency)
        if config.rate_limit != old.rate_limit:
            for limiter in self._limiters.values():
                limiter.set_rate(config.rate_limit, RATE_BURST)
        if not self._scheduling:
            if self._on_config is not None:
                self._on_config(config)
            return
        identity_changed = config.service_identity != old.service_identity
        changed: list[str] = []
        removed: list[str] = []
        for name, running in list(self._running.items()):
            watch = config.get(name)
            promotes = watch is not None and watch.auto_promote is not None
            if watch == running.watch and not (identity_changed and promotes):
                continue
            running.stop.set()  # ends after the scan it may be running, never in the middle
            if running.task is not None:
                self._retiring[name] = running.task
            del self._running[name]
            (removed if watch is None or watch.suspend else changed).append(name)
        added = [
            w.name
            for w in config.watches
            if not w.suspend and w.name not in self._running and w.name not in changed
        ]
        for watch in config.watches:
            if not watch.suspend and watch.name not in self._running:
                self._start(watch, early=True)
        if added or changed or removed:
            log.info(
                "watches file %s: %s",
                config.source,
                "; ".join(
                    f"{what} {', '.join(names)}"
                    for what, names in (
                        ("added", added),
                        ("changed", changed),
                        ("stopped", removed),
                    )
                    if names
                ),
            )
        if self._on_config is not None:
            self._on_config(config)

    def _start(self, watch: Watch, *, early: bool | None) -> None:
        running = _Running(watch)
        after = self._retiring.get(watch.name)
        running.task = asyncio.create_task(
            self._loop(running, early=early, after=after), name=f"scan {watch.name}"
        )
        self._tasks.add(running.task)
        running.task.add_done_callback(self._tasks.discard)
        self._running[watch.name] = running

    async def _loop(
        self, running: _Running, *, early: bool | None, after: asyncio.Task[None] | None
    ) -> None:
        watch, stop = running.watch, running.stop
        self._client_users[_access(watch)] += 1
        if after is not None:
            # A scan of the watch's old spec may be running: let it finish (and save) first.
            await asyncio.wait([after])
        else:
            await _sleep(self._first_delay(watch), stop)
        if early is None:
            # At start-up: the schedule stored is kept unless the file changed what it was for.
            early = await self._schedule_is_stale(watch)
            keep_trying = False
        else:
            keep_trying = early
        retry = EARLY_RETRY
        while not stop.is_set():
            try:
                async with self._slots:
                    due = await self.state.claim(
                        watch.name,
                        watch.canonical_image_name,
                        owner=self.owner,
                        lease=self._lease(watch),
                        early=early,
                    )
                    if due is None:
                        early = False
                        state = await self.scan(watch)
                        due = state.next_scan_at
                    elif early and keep_trying:
                        # Another replica is scanning it: take it as soon as that scan ends.
                        due = min(due, datetime.now(UTC) + timedelta(seconds=retry))
                        retry = min(retry * 2, EARLY_RETRY_MAX)
                    else:
                        early = False
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is down, say: try again later, keep the others
                log.exception("scan %s: could not run", watch.name)
                due = datetime.now(UTC) + timedelta(seconds=self._delay(watch, 1))
            wait = (due - datetime.now(UTC)).total_seconds()
            await _sleep(max(0.05, wait), stop)
        if self._retiring.get(watch.name) is asyncio.current_task():
            del self._retiring[watch.name]
        access = _access(watch)
        self._client_users[access] -= 1
        if self._client_users[access] <= 0:  # no loop left, running or retiring, to use it
            del self._client_users[access]
            client = self._clients.pop(access, None)
            if client is not None:
                await client.aclose()

    def _first_delay(self, watch: Watch) -> float:
        """Seconds before a watch's first claim, so that many watches do not start at once.

        Without a rate limit: up to 2 s at random. With one, the watches of a registry take
        turns evenly over the time the rate needs for one scan of each (never more than the
        interval): 1,000 watches at 40 requests a second start 50 ms apart, not in one burst
        that would hold every concurrency slot in the bucket's queue, their timeouts running.
        """
        rate = self.config.rate_limit
        if rate is None:
            return random.uniform(0, min(watch.interval * JITTER, 2.0))  # noqa: S311
        registry = watch.reference.registry
        peers = [
            w for w in self.config.watches if not w.suspend and w.reference.registry == registry
        ]
        try:
            place = next(i for i, w in enumerate(peers) if w.name == watch.name)
        except StopIteration:  # not in the file (any more): no turn to keep
            return 0.0
        window = min(watch.interval * (1 - JITTER), len(peers) * REQUESTS_PER_SCAN / rate)
        return window * place / len(peers)

    async def _schedule_is_stale(self, watch: Watch) -> bool:
        """Whether the stored next scan was planned for another image or a longer interval."""
        try:
            state = await self.state.get(watch.name)
        except Exception:  # the claim that follows reports a database that does not answer
            return False
        if state is None:
            return False
        if state.image != watch.canonical_image_name:
            return True
        latest = datetime.now(UTC) + timedelta(seconds=watch.interval * (1 + JITTER))
        return state.next_scan_at > latest

    # ------------------------------------------------------------------ clients

    def _client(self, watch: Watch) -> RegistryClient:
        access = _access(watch)
        client = self._clients.get(access)
        if client is None:
            registry = watch.reference.registry
            client = RegistryClient(
                self._keychain(watch),
                self._client_options(watch),
                limiter=_WatchLimiter(lambda: self._limiter(registry)),
            )
            self._clients[access] = client
        return client

    def _limiter(self, registry: str) -> RateLimiter | None:
        """The registry's shared bucket under a rateLimit; None: the client's own (no limit)."""
        rate = self.config.rate_limit
        if rate is None:
            return None
        limiter = self._limiters.get(registry)
        if limiter is None:
            limiter = self._limiters[registry] = RateLimiter(rate, RATE_BURST)
        return limiter

    def _keychain(self, watch: Watch) -> Keychain:
        credentials = watch.credentials
        registry = watch.reference.registry
        if credentials.username is not None:
            return StaticKeychain(
                Credential(credentials.username, credentials.password),
                [registry],
                name="watch",
                origin=f"credentials of watch {watch.name}",
            )
        if credentials.docker_config is not None:
            return DockerConfigKeychain.for_file(credentials.docker_config, self._environ)
        if self._default_keychain is None:
            self._default_keychain = default_keychain(self._environ, self._home)
        return self._default_keychain

    def _client_options(self, watch: Watch) -> ClientOptions:
        options = self._options
        tls = watch.tls
        registry = watch.reference.registry
        if tls.ca_file or tls.cert_file:
            base = options.tls.for_registry(registry)
            config = TLSConfig(
                ca_files=base.ca_files + ((str(tls.ca_file),) if tls.ca_file else ()),
                client_cert=str(tls.cert_file) if tls.cert_file else base.client_cert,
                client_key=str(tls.key_file) if tls.key_file else base.client_key,
                verify=base.verify,
            )
            hosts = {**options.tls.hosts, registry: config}
            options = replace(options, tls=RegistryTLS(options.tls.default, hosts))
        if tls.insecure:
            options = replace(options, insecure_registries=options.insecure_registries | {registry})
        return options


_Access = tuple[str, WatchCredentials, WatchTLS]


def _access(watch: Watch) -> _Access:
    """What a watch's client depends on: the registry, the credentials, the TLS settings."""
    return (watch.reference.registry, watch.credentials, watch.tls)


class _WatchLimiter:
    """A watch client's limiter: its registry's shared bucket while a rateLimit is in force.

    Without one, the client's own (no rate; a 429 pauses the watches sharing the client).
    Asked at every request, so a watches file that sets or drops rateLimit applies to scans
    already running.
    """

    def __init__(self, shared: Callable[[], RateLimiter | None]) -> None:
        self._shared = shared
        self._own = RateLimiter(None)

    def _current(self) -> RateLimiter:
        return self._shared() or self._own

    @property
    def pauses(self) -> int:
        """Pauses of the limiter in force."""
        return self._current().pauses

    @property
    def paused_for(self) -> float:
        """Seconds left in the pause of the limiter in force."""
        return self._current().paused_for

    async def acquire(self) -> None:
        """Wait for a turn of the limiter in force."""
        await self._current().acquire()

    def pause(self, seconds: float) -> None:
        """Pause the limiter in force (under a rateLimit: every watch of the registry)."""
        self._current().pause(seconds)


async def _sleep(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
