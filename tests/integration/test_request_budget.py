"""The request budget kpromo splits between promotion and signing (issue 19 item 5).

One RequestBudget of 40 requests/s behind a RegistryClient; a counting proxy in front of a real
docker-registry stamps every request's arrival. Busy workers of both shares run at once, so
each share takes all it is given: 70 % and 30 % of the rate, then, once promotion is released,
signing alone takes all of it; a 429 on a signing request holds the promotion share too.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from imgctl.oci import Reference
from imgctl.remote import ClientOptions, RegistryClient, RequestBudget

from ..support.proxy import FaultProxy
from ..support.registry import Registry

RATE = 40.0
WORKERS = 6  # per share: many more than a share's turns need, so each share stays busy
FAST = ClientOptions(backoff=0.01, max_backoff=0.05)


def count(proxy: FaultProxy, repository: str, start: float, end: float) -> int:
    """Requests for ``repository`` that reached the registry between ``start`` and ``end``."""
    prefix = f"/v2/{repository}/"
    return sum(1 for at, _, path in proxy.arrivals if path.startswith(prefix) and start <= at < end)


def per_second(proxy: FaultProxy, repository: str, start: float, end: float) -> float:
    return count(proxy, repository, start, end) / (end - start)


async def busy(
    client: RegistryClient, budget: RequestBudget, share: str, ref: str, stop: asyncio.Event
) -> None:
    """HEAD a tag again and again, drawing from ``share``, until ``stop``."""
    reference = Reference.parse(ref)
    with budget.share(share):
        while not stop.is_set():
            await client.head_manifest(reference)


def start_workers(
    client: RegistryClient, budget: RequestBudget, share: str, ref: str, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    return [asyncio.ensure_future(busy(client, budget, share, ref, stop)) for _ in range(WORKERS)]


async def test_budget_splits_70_30_and_signing_gets_it_all_after_promotion(
    registry: Registry, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    budget = RequestBudget(RATE, burst=2, weights={"promotion": 0.7, "signing": 0.3})
    async with RegistryClient(options=FAST, limiter=budget) as client:
        await client.ping(proxy.host)
        promoting, signing = asyncio.Event(), asyncio.Event()
        tasks = start_workers(client, budget, "promotion", f"{proxy.host}/promo:x", promoting)
        tasks += start_workers(client, budget, "signing", f"{proxy.host}/sign:x", signing)
        begin = time.time()
        await asyncio.sleep(3.0)
        split = time.time()
        promoting.set()
        budget.release("promotion")
        await asyncio.sleep(2.5)
        end = time.time()
        signing.set()
        await asyncio.gather(*tasks)

    assert budget.rates() == {"promotion": RATE, "signing": RATE}
    # The first half second is left out: the buckets start full (their burst).
    window = (begin + 0.5, split)
    promotion = per_second(proxy, "promo", *window)
    signing_share = per_second(proxy, "sign", *window)
    assert 0.85 * 28 <= promotion <= 1.1 * 28, (promotion, signing_share)
    assert 0.8 * 12 <= signing_share <= 1.15 * 12, (promotion, signing_share)
    # Every whole second of the split, not only the average.
    for second in range(2):
        start = begin + 0.5 + second
        assert 20 <= count(proxy, "promo", start, start + 1) <= 34
        assert 7 <= count(proxy, "sign", start, start + 1) <= 17
    # Once promotion is done, signing alone sends at the whole rate (after the workers of the
    # promotion share have finished their last request).
    alone = per_second(proxy, "sign", split + 0.5, end)
    assert 0.85 * RATE <= alone <= 1.1 * RATE, alone
    assert count(proxy, "promo", split + 0.5, end) == 0


async def test_a_429_for_signing_pauses_promotion_too(
    registry: Registry, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    budget = RequestBudget(RATE, burst=2, weights={"promotion": 0.7, "signing": 0.3})
    async with RegistryClient(options=FAST, limiter=budget) as client:
        await client.ping(proxy.host)
        stop = asyncio.Event()
        tasks = start_workers(client, budget, "promotion", f"{proxy.host}/promo:x", stop)
        tasks += start_workers(client, budget, "signing", f"{proxy.host}/sign:x", stop)
        await asyncio.sleep(1.0)
        injected = time.time()
        proxy.fail(429, 1, method="HEAD", path=r"^/v2/sign/", headers={"Retry-After": "1"})
        await asyncio.sleep(2.5)
        stop.set()
        await asyncio.gather(*tasks)

    assert budget.pauses == 1
    stamps = sorted(
        at for at, _, path in proxy.arrivals if path.startswith(("/v2/promo/", "/v2/sign/"))
    )
    gaps = [(later - earlier, earlier) for earlier, later in itertools.pairwise(stamps)]
    pause, paused_at = max(gaps)
    # The 429 asked for a second: no request of either share reached the registry meanwhile
    # (without the pause, requests are 1/40 s apart)...
    assert 0.9 <= pause <= 1.5, pause
    assert paused_at >= injected
    assert sorted(gaps)[-2][0] < 0.3  # ...and that was the only pause
    # ...and both shares went on afterwards, at their rates.
    resumed = paused_at + pause
    assert count(proxy, "promo", resumed + 0.2, resumed + 1.2) >= 20
    assert count(proxy, "sign", resumed + 0.2, resumed + 1.2) >= 7
