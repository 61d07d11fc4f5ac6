"""A shared request budget: token buckets that every request draws from, and a pause switch.

When any registry answers 429, ``pause()`` stops every request sharing the limiter, not only
the one that was refused: a registry that throttles one connection is throttling all of them.

``RequestBudget`` splits one rate between named shares (kpromo: 70 % promotion, 30 % signing).
Which share a request draws from is the share the running task entered with
``budget.share(name)`` (a context variable, so the tasks a phase starts inherit it); the shares
have one pause switch, so a 429 holds them all. ``release(name)`` hands a share's rate to the
others once its work is done (kpromo: after the promote phase, signing gets the whole budget).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = ["Limiter", "PauseSwitch", "RateLimiter", "RequestBudget"]


class Limiter(Protocol):
    """What a registry session needs of a rate limit: wait for a turn, pause everyone."""

    @property
    def pauses(self) -> int:
        """How many times a pause was started (or made longer)."""

    async def acquire(self) -> None:
        """Wait until a request may be sent."""

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now."""

    @property
    def paused_for(self) -> float:
        """Seconds left in the current pause."""


class PauseSwitch:
    """A deadline before which no request sharing it is sent (a 429's Retry-After)."""

    def __init__(self) -> None:
        self.until = 0.0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (a later deadline is kept)."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self.until:
            self.until = until
            self.pauses += 1

    @property
    def remaining(self) -> float:
        """Seconds left, 0 when not paused."""
        return max(0.0, self.until - time.monotonic())


class RateLimiter:
    """Token bucket: ``rate`` requests per second, ``burst`` at once; ``rate=None``: no limit.

    ``switch`` is the pause switch it obeys; limiters given the same switch pause together.
    """

    def __init__(
        self, rate: float | None = None, burst: int = 5, *, switch: PauseSwitch | None = None
    ) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._switch = switch or PauseSwitch()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._switch.until:
                    await asyncio.sleep(self._switch.until - now)
                    continue
                if self.rate is None:
                    return
                self._refill(now)
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def set_rate(self, rate: float | None, burst: int) -> None:
        """Change the rate from now on (tokens earned at the old rate are kept, up to ``burst``)."""
        _check(rate, burst)
        self._refill(time.monotonic())
        self.rate, self.burst = rate, burst
        self._tokens = min(float(burst), self._tokens)

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (a later deadline is kept)."""
        self._switch.pause(seconds)

    @property
    def pauses(self) -> int:
        """How many times a pause was started (or made longer)."""
        return self._switch.pauses

    @property
    def paused_for(self) -> float:
        """Seconds left in the current pause, 0 when not paused."""
        return self._switch.remaining


_SHARE: ContextVar[str | None] = ContextVar("imgctl_request_share", default=None)


class RequestBudget:
    """One request rate split between named shares by weight, with one pause switch.

    ``weights`` maps share names to fractions of ``rate`` (they need not add up to 1: each
    share gets ``rate * weight / total``); the first share is where requests made outside any
    ``share()`` block, or in an unknown share, draw from. Each share is a token bucket of its
    own, so a busy share never takes another's turns; ``rate=None`` is no limit at all.
    """

    def __init__(
        self, rate: float | None, burst: int = 5, weights: Mapping[str, float] | None = None
    ) -> None:
        _check(rate, burst)
        weights = dict(weights or {"default": 1.0})
        if not weights or any(not 0 < w < float("inf") for w in weights.values()):
            raise ValueError(f"share weights must be positive, got {weights}")
        self.rate = rate
        self.burst = burst
        self._switch = PauseSwitch()
        self._weights = weights
        self._default = next(iter(weights))
        self._limiters = {name: RateLimiter(rate, burst, switch=self._switch) for name in weights}
        # Where requests of each share go: itself, until it is released into another.
        self._route = {name: name for name in weights}
        self._rebalance()

    def _rebalance(self) -> None:
        active = {name: self._weights[name] for name in set(self._route.values())}
        total = sum(active.values())
        for name, weight in active.items():
            fraction = weight / total
            rate = None if self.rate is None else self.rate * fraction
            self._limiters[name].set_rate(rate, max(1, round(self.burst * fraction)))

    @contextmanager
    def share(self, name: str) -> Iterator[None]:
        """Requests made in this block (and by tasks started in it) draw from share ``name``."""
        token = _SHARE.set(name)
        try:
            yield
        finally:
            _SHARE.reset(token)

    def release(self, name: str) -> None:
        """Share ``name`` is done: its rate goes to the other shares, by weight.

        Requests still made in it draw from the heaviest of them. The last share is never
        released.
        """
        if name not in self._route or self._route[name] != name:
            return
        others = {n for n in set(self._route.values()) if n != name}
        if not others:
            return
        heir = max(others, key=lambda n: self._weights[n])
        for share, target in self._route.items():
            if target == name:
                self._route[share] = heir
        self._rebalance()

    def rates(self) -> dict[str, float | None]:
        """The requests per second each share may send now (a released share: its heir's)."""
        return {name: self._limiters[target].rate for name, target in self._route.items()}

    def _limiter(self) -> RateLimiter:
        name = _SHARE.get() or self._default
        return self._limiters[self._route.get(name, self._route[self._default])]

    async def acquire(self) -> None:
        """Wait until a request of the current share may be sent."""
        await self._limiter().acquire()

    def pause(self, seconds: float) -> None:
        """Hold every request of every share for ``seconds`` from now."""
        self._switch.pause(seconds)

    @property
    def pauses(self) -> int:
        """How many times a pause was started (or made longer)."""
        return self._switch.pauses

    @property
    def paused_for(self) -> float:
        """Seconds left in the current pause, 0 when not paused."""
        return self._switch.remaining


def _check(rate: float | None, burst: int) -> None:
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, got {burst}")
