"""Many watches of one registry under the watches file's rateLimit (issue 21 target 6).

Properties, not times: the watches of one registry share one token bucket, so the requests
the registry sees never outrun it (at most the burst plus the rate times the time since the
bucket was made: a loaded machine only makes requests later, never earlier); each scan is two
requests (the tag list and the latest tag's HEAD), and watches that reach the registry alike
share one client (one ping); the first scans
are spread evenly over the time the rate needs rather than started at once.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from imgctl.errors import UsageError
from imgctl.oci import Reference
from imgctl.remote import ClientOptions
from imgctl.scan.scanner import RATE_BURST, REQUESTS_PER_SCAN, MemoryScanState, Scanner
from imgctl.scan.watches import WatchConfig, parse_watches

from ..conftest import PushedImage
from ..support.proxy import FaultProxy
from ..support.registry import Registry

FAST = ClientOptions(backoff=0.01, max_backoff=0.05)


def config(count: int, host: str, **top: Any) -> WatchConfig:
    watches = [
        {
            "name": f"w{n:03d}",
            "image": f"{host}/many/r{n:03d}",
            "interval": "1h",
            "policy": {"semver": {"range": ">=0.0.0"}},
        }
        for n in range(count)
    ]
    return parse_watches({"watches": watches, **top}, source="test-watches.yaml")


async def test_watches_of_one_registry_share_the_rate_limit(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    pushed = push_image(registry, tag="1.0.0")
    # Twelve repositories holding the image: docker-registry's storage is links.
    repositories = registry.storage / "docker/registry/v2/repositories"
    source = repositories / Reference.parse(pushed.ref).repository
    for n in range(12):
        shutil.copytree(source, repositories / f"many/r{n:03d}")
    proxy = proxy_for(registry)
    rate = 8.0
    watches = config(12, proxy.host, rateLimit=rate, concurrency=8)
    done = asyncio.Event()

    def on_scan(*_: object) -> None:
        if scanner.scans >= 12:  # counted before the call
            done.set()

    scanner = Scanner(watches, state=MemoryScanState(), options=FAST, on_scan=on_scan)
    stop = asyncio.Event()
    started = time.time()
    task = asyncio.create_task(scanner.run(stop))
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        stop.set()
        await task
        await scanner.aclose()
    elapsed = time.time() - started
    statuses = await scanner.statuses()
    assert [s.state.ready for s in statuses] == ["True"] * 12
    assert {s.state.latest_tag for s in statuses} == {"1.0.0"}
    # One bucket for the registry, shared by the twelve clients.
    assert list(scanner._limiters) == [proxy.host]
    kinds = [(method, path) for _, method, path in proxy.arrivals]
    pings = [k for k in kinds if k[1] == "/v2/"]
    lists = [k for k in kinds if "/tags/list" in k[1]]
    heads = [k for k in kinds if k[0] == "HEAD" and "/manifests/" in k[1]]
    assert len(lists) == len(heads) == 12
    assert len(pings) == 1  # the twelve watches reach the registry alike: one client
    assert len(kinds) == len(pings) + REQUESTS_PER_SCAN * 12
    # Never more than the bucket allows since it was made (before the first request).
    first = min(t for t, _, _ in proxy.arrivals)
    for t, _, _ in proxy.arrivals:
        sent_by_then = sum(1 for u, _, _ in proxy.arrivals if u <= t)
        assert sent_by_then <= RATE_BURST + rate * (t - first) + 1, (t - first, sent_by_then)
    # 36 requests at 8 a second cannot be sent in less than (36 - burst) / 8 seconds.
    assert elapsed >= (len(kinds) - RATE_BURST) / rate


def test_first_scans_are_spread_evenly_over_what_the_rate_needs() -> None:
    watches = config(1000, "registry.example", rateLimit=40)
    scanner = Scanner(watches, state=MemoryScanState())
    delays = sorted(scanner._first_delay(w) for w in watches.watches)
    # 1,000 watches, 2 requests each, at 40 a second: one start every 50 ms over 50 s.
    step = REQUESTS_PER_SCAN / 40
    assert delays == pytest.approx([n * step for n in range(1000)])
    # A rate too high to need spreading: the interval's 90 % at most, whatever the count.
    slow = config(1000, "registry.example", rateLimit=1)
    scanner = Scanner(slow, state=MemoryScanState())
    assert max(scanner._first_delay(w) for w in slow.watches) <= 3600 * 0.9
    # Without a rate limit: up to 2 s at random, as before.
    free = config(50, "registry.example")
    scanner = Scanner(free, state=MemoryScanState())
    assert all(0 <= scanner._first_delay(w) <= 2.0 for w in free.watches)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "more than 0"),
        (-1, "more than 0"),
        (20_000, "at most 10000"),
        ("fast", "must be a number"),
        (True, "must be a number"),
    ],
)
def test_bad_rate_limits_are_refused(value: object, words: str) -> None:
    with pytest.raises(UsageError, match="rateLimit") as caught:
        config(1, "registry.example", rateLimit=value)
    assert words in str(caught.value)


def test_rate_limit_is_read() -> None:
    assert config(1, "registry.example", rateLimit=2.5).rate_limit == 2.5
    assert config(1, "registry.example").rate_limit is None
