"""What the cloud credential sources (ECR, GCP, ACR, ghcr) share: token caching, host matching.

Each cloud keychain answers only for its own hosts and is anonymous (with a ``detail`` saying
why) everywhere else. The cloud SDKs (boto3, google-auth) are optional, synchronous and slow to
import, so they are imported only when a host of theirs is asked about, and called in a worker
thread. Every keychain reads its environment from the mapping it was built with, never from
``os.environ`` directly. Which of them run, and in which order, is ``_default``'s to say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "IAAS_SWITCH_HINT",
    "REFRESH_MARGIN",
    "SKEW_FLOOR",
    "Entry",
    "TokenCache",
    "Unavailable",
    "cache_until",
    "normalise_host",
]

# Refresh this long before a token's stated expiry, so a token never dies mid-copy.
REFRESH_MARGIN = 300.0
# How long to keep a token whose expiry is already past when it arrives (see cache_until).
SKEW_FLOOR = 300.0

IAAS_SWITCH_HINT = "or set IMGCTL_ENABLE_IAAS_AUTH=false to skip cloud credentials"


def cache_until(now: float, expires_at: float | None, default_ttl: float) -> float:
    """When to stop serving a token from cache, given the expiry its issuer claims."""
    if expires_at is None:
        return now + default_ttl
    if expires_at <= now:
        # The token says it has already expired as it arrives: our clock is ahead of the
        # issuer's, or the issuer does not tell the truth (moto's ECR says 2015). Fetching again
        # on every request would hammer the API and get the same answer, so keep it for a short
        # floor and let the registry judge whether it still works.
        return now + SKEW_FLOOR
    return expires_at - min(REFRESH_MARGIN, (expires_at - now) / 2)


def normalise_host(registry: str) -> str | None:
    """Lower-case host without ``:443``; None when another port is given (not a cloud host)."""
    host = registry.lower()
    if host.endswith(":443"):
        host = host[:-4]
    return None if ":" in host or not host else host


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Entry(Generic[_V]):
    """A cached value and the clock reading until which it may be served."""

    value: _V
    until: float


class TokenCache(Generic[_K, _V]):
    """Values by key until their deadline; concurrent misses on one key share one fetch."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[_K, Entry[_V]] = {}
        self._locks: dict[_K, asyncio.Lock] = {}

    def _fresh(self, key: _K) -> Entry[_V] | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.until:
            return entry
        return None

    async def get(self, key: _K, fetch: Callable[[], Awaitable[Entry[_V]]]) -> _V:
        """The cached value for ``key``, fetching it (once, however many callers wait) if stale."""
        entry = self._fresh(key)
        if entry is not None:
            return entry.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._fresh(key)
            if entry is None:
                entry = await fetch()
                self._entries[key] = entry
            return entry.value


class Unavailable(Exception):
    """The source cannot act here (SDK not installed, no ambient credentials): anonymous."""
