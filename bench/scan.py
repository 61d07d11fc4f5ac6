"""Benchmark: scanning a repository with thousands of tags, beside ``skopeo list-tags``.

Setup (untimed): a local docker-registry with one repository holding ``--tags`` semver tags
(one image, many tags). Then, in the same run, median of ``--repeat`` runs each:

* ``skopeo list-tags`` — the peer: lists the tags, nothing more;
* ``imgctl scan --config W --once -o json`` — lists the tags, applies the exclusion list and a
  semver policy, resolves the latest tag's digest (interpreter start included);
* the same scan in process (``Scanner.scan``), without interpreter start;

each directly against the registry (which answers every tag in one response) and through a
loopback proxy that pages tags 100 at a time with ``Link`` headers, the way Quay does. Prints
seconds and imgctl/skopeo ratios.

The proxy (tests/support/proxy.py) sets TCP_NODELAY, as registries do: without it each page
waited about 40 ms for a delayed ACK on a kept-alive connection, as imgctl's are.

    python bench/scan.py                 # 2,500 tags
    python bench/scan.py --tags 10000 --repeat 5

``--watches N`` measures the other end (issue 21 target 6): N watches (default 1,000, each its
own repository in one local docker-registry, three semver tags) scanned by one server's
scanner in process — :class:`~imgctl.scan.scanner.Scanner.run` with the server's database-backed
state (SQLite) — at ``--interval`` (default 60 s) for ``--rounds`` intervals (default 3), the
watches file's ``rateLimit`` set to ``--rate-limit`` requests per second for the registry
(default 40). A counting proxy in its own process sees every request. Prints, per interval,
the scans finished against N; the requests per scan; the busiest second's requests against the
limit (the ratio must stay at most 1, with the token bucket's burst of 5 on top); the busiest
second's scan starts against the even spread N/interval; and the scanner's CPU seconds per
round (this process: the scanner, its database and its HTTP clients; the proxy is not in it).
Exit status 1 when a watch was not scanned, the p99 lag is over 5 % of the interval, or the
busiest second is over the limit plus the burst: ratios to the run's own interval and limit,
no absolute time (issue 23 item 5). The tags mode's exit status says only whether a scan was
wrong; its ratios to skopeo are printed, not judged.

    python bench/scan.py --watches 1000 --interval 60 --rounds 3 --rate-limit 40
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
ROOT = _BENCH_DIR.parent
# bench/copy.py would shadow the standard library's copy module: keep this directory off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from tests.support.layout import build_image  # noqa: E402
from tests.support.proxy import FaultProxy  # noqa: E402
from tests.support.registry import Registry, add_tags, require_binary  # noqa: E402
from tests.support.skopeo import push_layout  # noqa: E402

REPOSITORY = "bench/many"


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` calls."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def _proxy_process(upstream: str, connection: Any) -> None:
    """Run a counting proxy; send its port, then, when told to stop, its arrivals."""
    proxy = FaultProxy(upstream).start()
    connection.send(proxy.port)
    connection.recv()
    proxy.stop()
    connection.send(list(proxy.arrivals))


def watches_main(args: argparse.Namespace) -> int:
    """N watches at one interval through a counting proxy: completion, requests, spread, CPU."""
    import multiprocessing

    from imgctl.scan.scanner import Scanner
    from imgctl.scan.watches import load_watches
    from imgctl.store import ScanStore

    require_binary("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-watches-"))
    registry = Registry(work / "registry")
    parent, child = multiprocessing.get_context("fork").Pipe()
    proxy_process: Any = None
    try:
        registry.start()
        built = build_image(work / "layout", tag="1.0.0", layers=1)
        push_layout(built.oci_ref, f"{registry.host}/{REPOSITORY}:1.0.0")
        asyncio.run(add_tags(f"{registry.host}/{REPOSITORY}:1.0.0", ["1.1.0", "0.9.0"]))
        # N repositories holding the same image: docker-registry's storage is links, so a copy
        # of the repository's directory is a repository (untimed setup, no N pushes).
        repositories = registry.storage / "docker/registry/v2/repositories"
        for n in range(args.watches):
            shutil.copytree(repositories / REPOSITORY, repositories / f"watch/r{n:05d}")
        proxy_process = multiprocessing.get_context("fork").Process(
            target=_proxy_process, args=(registry.host, child), daemon=True
        )
        proxy_process.start()
        host = f"127.0.0.1:{parent.recv()}"
        interval = args.interval
        lines = [f"rateLimit: {args.rate_limit:g}"] if args.rate_limit else []
        lines += [f"concurrency: {args.concurrency}", "watches:"]
        for n in range(args.watches):
            lines += [
                f"  - name: w{n:05d}",
                f"    image: {host}/watch/r{n:05d}",
                f"    interval: {interval:g}s",
                "    policy: {semver: {range: '>=0.0.0'}}",
            ]
        watches_file = work / "watches.yaml"
        watches_file.write_text("\n".join(lines) + "\n")
        config = load_watches(watches_file)
        # (start, end, ready, watch, next scan due) of every scan
        finished: list[tuple[float, float, str, str, float]] = []

        async def run() -> tuple[float, float]:
            state = await ScanStore.open(f"sqlite:///{work}/state/imgctl.db")
            stop = asyncio.Event()

            def on_scan(watch: Any, new: Any, seconds: float) -> None:
                end = time.time()
                due = new.next_scan_at.timestamp()
                finished.append((end - seconds, end, new.ready, watch.name, due))

            async with Scanner(config, state=state, environ={}, on_scan=on_scan) as scanner:
                cpu = time.process_time()
                started = time.time()
                task = asyncio.create_task(scanner.run(stop))
                await asyncio.sleep(interval * args.rounds)
                stop.set()
                await task
                cpu = time.process_time() - cpu
            await state.aclose()
            return started, cpu

        log(f"scanning {args.watches} watches every {interval:g} s for {args.rounds} intervals")
        started, cpu = asyncio.run(run())
        parent.send("stop")
        arrivals: list[tuple[float, str, str]] = parent.recv()
    finally:
        if proxy_process is not None and proxy_process.is_alive():
            proxy_process.terminate()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    rounds = args.rounds
    print(f"\n{args.watches:,} watches, interval {interval:g} s, {rounds} intervals")
    print(f"{'interval':>8} {'scans':>7} {'watches':>7} {'vs N':>6} {'failed':>6} {'requests':>9}")
    for k in range(rounds):
        low, high = started + k * interval, started + (k + 1) * interval
        scans = [f for f in finished if low <= f[1] < high]
        watched = len({f[3] for f in scans})
        requests = sum(1 for a in arrivals if low <= a[0] < high)
        failed = sum(1 for f in scans if f[2] != "True")
        share = watched / args.watches
        print(f"{k + 1:>8} {len(scans):>7} {watched:>7} {share:>6.2f} {failed:>6} {requests:>9}")
    # Every watch on its interval: each scan starts when its watch is due (the interval, ±10%
    # jitter, after the last), not later because the scanner could not keep up. The lag of a
    # scan: its start minus the time the previous scan of its watch set for it.
    by_watch: dict[str, list[tuple[float, float]]] = {}
    for f in finished:
        by_watch.setdefault(f[3], []).append((f[0], f[4]))
    lags = sorted(
        later[0] - earlier[1]
        for scans_of in by_watch.values()
        for earlier, later in itertools.pairwise(sorted(scans_of))
    )
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("inf")
    print(
        f"\nwatches scanned: {len(by_watch)} of {args.watches}; lag of a scan behind its due "
        f"time: median {statistics.median(lags) if lags else float('inf'):.2f} s, "
        f"p99 {p99:.2f} s, max {max(lags, default=float('inf')):.2f} s"
    )
    kinds = Counter(f"{method} {_kind(path)}" for _, method, path in arrivals)
    scans_total = max(1, len(finished))
    print(
        "\nrequests per scan: "
        + ", ".join(f"{name} {count / scans_total:.2f}" for name, count in kinds.most_common())
        + f"; all {len(arrivals) / scans_total:.2f}"
    )
    seconds = Counter(int(a[0] - started) for a in arrivals)
    peak = max(seconds.values(), default=0)
    limit = args.rate_limit
    if limit:
        ratio = peak / limit
        print(f"busiest second: {peak} requests; limit {limit:g}/s (burst 5): ratio {ratio:.2f}")
    else:
        print(f"busiest second: {peak} requests; no rate limit configured")
    starts = Counter(int(f[0] - started) for f in finished)
    even = args.watches / interval
    busiest = max(starts.values(), default=0)
    print(
        f"busiest second: {busiest} scans started; even spread {even:.1f}/s: "
        f"ratio {busiest / even:.1f}"
    )
    print(
        f"scanner CPU: {cpu:.1f} s in {rounds} intervals, {cpu / rounds:.2f} s per round "
        f"({cpu / scans_total * 1000:.2f} ms per scan)"
    )
    # Keeping up: every watch scanned, and 99% of scans within 5% of the interval of their time.
    complete = len(by_watch) == args.watches and p99 <= interval * 0.05
    within = not limit or peak <= limit + 5
    print(
        "\nevery watch scanned on its interval (p99 lag <= 5% of it): "
        f"{'yes' if complete else 'NO'}; rate limit respected: {'yes' if within else 'NO'}"
    )
    return 0 if complete and within else 1


def _kind(path: str) -> str:
    """What a registry request is, for counting: tags list, manifest, ping, token."""
    if path.rstrip("/") == "/v2" or path == "/v2/":
        return "ping /v2/"
    if "/tags/list" in path:
        return "tags/list"
    if "/manifests/" in path:
        return "manifest"
    return path.split("?", 1)[0][:30]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a result is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=2500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--imgctl", default=str(Path(sys.executable).parent / "imgctl"))
    parser.add_argument("--watches", type=int, default=0, help="N watches mode (see above)")
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate-limit", type=float, default=40.0, help="0: none")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    if args.watches:
        return watches_main(args)
    require_binary("docker-registry")
    skopeo = require_binary("skopeo")
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-scan-"))
    registry = Registry(work / "registry")
    proxy: FaultProxy | None = None
    try:
        registry.start()
        built = build_image(work / "layout", tag="0.0.0", layers=1)
        push_layout(built.oci_ref, f"{registry.host}/{REPOSITORY}:0.0.0")
        tags = [f"{i // 100}.{i % 100}.0" for i in range(1, args.tags)]
        log(f"tagging {args.tags} tags (untimed)")
        asyncio.run(add_tags(f"{registry.host}/{REPOSITORY}:0.0.0", tags))
        proxy = FaultProxy(registry.host, paginate_tags=True, tag_page_cap=100).start()
        latest = f"{(args.tags - 1) // 100}.{(args.tags - 1) % 100}.0"
        env = os.environ | {"IMGCTL_ENABLE_IAAS_AUTH": "false"}
        results: dict[str, dict[str, list[float]]] = {}
        for label, host in (("one response", registry.host), ("pages of 100", proxy.host)):
            watches = work / f"watches-{host.rsplit(':', 1)[1]}.yaml"
            watches.write_text(
                "watches:\n  - name: many\n"
                f"    image: {host}/{REPOSITORY}\n    interval: 5m\n"
                "    policy: {semver: {range: '>=0.0.0'}}\n"
            )

            def run_skopeo(host: str = host) -> None:
                listed = subprocess.run(
                    [skopeo, "list-tags", "--tls-verify=false", f"docker://{host}/{REPOSITORY}"],
                    capture_output=True,
                    check=True,
                )
                count = len(json.loads(listed.stdout)["Tags"])
                if count != args.tags:
                    raise RuntimeError(f"skopeo listed {count} tags, expected {args.tags}")

            def run_imgctl(watches: Path = watches) -> None:
                scanned = subprocess.run(
                    [args.imgctl, "scan", "--config", str(watches), "--once", "-o", "json"],
                    capture_output=True,
                    check=True,
                    env=env,
                )
                [status] = json.loads(scanned.stdout)["watches"]
                check(status["lastScanResult"]["tagCount"], status["policy"]["latestTag"])

            def run_in_process(watches: Path = watches) -> None:
                from imgctl.scan.scanner import Scanner
                from imgctl.scan.watches import load_watches

                async def scan() -> None:
                    config = load_watches(watches)
                    async with Scanner(config, environ={}) as scanner:
                        state = await scanner.scan(config.watches[0])
                    check(len(state.tags), state.latest_tag)

                asyncio.run(scan())

            def check(count: int, chosen: str | None) -> None:
                if count != args.tags or chosen != latest:
                    raise RuntimeError(f"scan found {count} tags, latest {chosen}")

            run_skopeo()  # warm the page cache, and the imports of the in-process scan
            run_imgctl()
            run_in_process()
            log(f"timing, {label}")
            results[label] = {
                "skopeo list-tags": timed(run_skopeo, args.repeat),
                "imgctl scan --once": timed(run_imgctl, args.repeat),
                "imgctl Scanner.scan (in process)": timed(run_in_process, args.repeat),
            }
        # What the command line costs before any scan: interpreter start and imports.
        empty = work / "watches-empty.yaml"
        empty.write_text("watches: []\n")
        startup = statistics.median(
            timed(
                lambda: subprocess.run(
                    [args.imgctl, "scan", "--config", str(empty), "--once"],
                    capture_output=True,
                    check=True,
                    env=env,
                ),
                args.repeat,
            )
        )
        print(f"\nscanning one repository with {args.tags:,} tags, median of {args.repeat}\n")
        print(f"{'registry answers':16} {'measurement':34} {'seconds':>8} {'vs skopeo':>10}")
        print("-" * 71)
        for label, rows in results.items():
            peer = statistics.median(rows["skopeo list-tags"])
            for name, seconds in rows.items():
                median = statistics.median(seconds)
                print(f"{label:16} {name:34} {median:8.3f} {median / peer:9.2f}x")
        print(f"\nimgctl start-up alone (imgctl scan --once, no watches): {startup:.3f} s")
        return 0
    finally:
        if proxy is not None:
            proxy.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
