"""A shared request budget: a token bucket that every request draws from, and a pause switch.

When any registry answers 429, ``pause()`` stops every request sharing the limiter, not only
the one that was refused: a registry that throttles one connection is throttling all of them.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token bucket: ``rate`` requests per second, ``burst`` at once; ``rate=None``: no limit."""

    def __init__(self, rate: float | None = None, burst: int = 5) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.pauses = 0

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                if self.rate is None:
                    return
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (a later deadline is kept)."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    @property
    def paused_for(self) -> float:
        """Seconds left in the current pause, 0 when not paused."""
        return max(0.0, self._paused_until - time.monotonic())
