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
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a result is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=2500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--imgctl", default=str(Path(sys.executable).parent / "imgctl"))
    args = parser.parse_args(argv)
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
