"""Benchmark: admission decisions per second and p99 latency against a 100,000-image catalog.

Fills a catalog (SQLite in a temp dir, or ``--database-url``) with N promoted images, serves the
catalog API and the admission webhook with uvicorn on a loopback port (``imgctl catalog serve``),
and sends AdmissionReviews for a Pod with 3 containers (all promoted, so every decision reads the
catalog three times) from a client process with keep-alive connections. In the same run it
measures a bare FastAPI endpoint that only parses the review and answers "allowed" — the ceiling
of the HTTP stack. Targets: p99 < 10 ms and >= 1,000 decisions/s on this 2-core machine.

    python bench/catalog.py                 # 100,000 images
    python bench/catalog.py --images 10000 --seconds 5

Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import create_engine  # noqa: E402
from tests.support.registry import free_port  # noqa: E402

ENVIRONMENT = "prod"
REGISTRY = "registry.example.com"


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def digest_of(number: int) -> str:
    """A made-up but well-formed digest for image ``number``."""
    return "sha256:" + f"{number:064x}"


async def fill(url: str, count: int) -> None:
    """Record ``count`` promoted images (untimed setup), in bulk inserts of 5,000 rows.

    One ``record_promotion`` per image would take minutes for 100,000; the rows written here
    are the ones it writes (same table, same columns, tags as a JSON list).
    """
    from datetime import UTC, datetime

    from imgctl.store import CatalogStore
    from imgctl.store._schema import CATALOG_IMAGES
    from imgctl.store._url import parse_url

    store = await CatalogStore.open(url)  # creates and migrates the schema
    await store.aclose()
    engine = create_engine(parse_url(url))
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            for start in range(0, count, 5000):
                connection.execute(
                    CATALOG_IMAGES.insert(),
                    [
                        {
                            "id": digest_of(n),
                            "environment": ENVIRONMENT,
                            "name": f"{REGISTRY}/team-{n % 100}/app-{n}",
                            "tags": json.dumps([f"v{n % 7}.0"]),
                            "promoted_by": "bench@example.com",
                            "promoted_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for n in range(start, min(count, start + 5000))
                    ],
                )
    finally:
        engine.dispose()


def review(count: int, n: int) -> bytes:
    """An AdmissionReview for a Pod with 3 promoted containers (by digest and by tag)."""
    picks = [(n * 7919) % count, (n * 104729) % count, (n * 1299709) % count]
    images = [f"{REGISTRY}/team-{p % 100}/app-{p}@{digest_of(p)}" for p in picks[:2]] + [
        f"{REGISTRY}/team-{picks[2] % 100}/app-{picks[2]}:v{picks[2] % 7}.0"
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"bench-{n}", "namespace": "apps"},
        "spec": {
            "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
        },
    }
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"00000000-0000-0000-0000-{n:012d}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:apps:deployer"},
            "object": pod,
            "dryRun": False,
        },
    }
    return json.dumps(body).encode()


CEILING_APP = """
import json, sys
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
import uvicorn
app = FastAPI()
@app.post("/admission/{environment}")
async def admit(environment: str, request: Request):
    body = json.loads(await request.body())
    return JSONResponse({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                         "response": {"uid": body["request"]["uid"], "allowed": True}})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Until ``url`` answers (any HTTP status)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server on {url} did not start") from None
            time.sleep(0.05)


def hammer(
    port: int, bodies: list[bytes], seconds: float, connections: int, work: Path
) -> dict[str, float]:
    """Load with wrk (a C load generator, so the client is not the bottleneck): rate, p50, p99."""
    script = work / "admission.lua"
    quoted = ",\n".join("[==[" + body.decode() + "]==]" for body in bodies)
    script.write_text(
        "local bodies = {\n" + quoted + "\n}\n"
        "local n = 0\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  n = n % #bodies + 1\n"
        f'  return wrk.format(nil, "/admission/{ENVIRONMENT}", nil, bodies[n])\n'
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests,\n'
        "    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,\n"
        "    summary.errors.status + summary.errors.connect + summary.errors.read\n"
        "    + summary.errors.timeout))\n"
        "end\n"
    )
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {result.stdout} {result.stderr}")
    _, requests, duration, p50, tail, errors = line.split()
    return {
        "rate": int(requests) / float(duration),
        "p50": float(p50),
        "p99": float(tail),
        "errors": float(errors),
    }


def _denied(port: int, bodies: list[bytes]) -> float:
    """How many of ``bodies`` are denied (all should be allowed): a correctness check."""
    denied = 0
    for body in bodies:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/admission/{ENVIRONMENT}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
        denied += not answer["response"]["allowed"]
    return float(denied)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a decision is wrong or a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="distinct reviews, cycled")
    parser.add_argument("--seconds", type=int, default=10, help="load duration per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="connections")
    parser.add_argument("--database-url", help="default: SQLite in a temp dir")
    parser.add_argument("--imgctl", default=str(Path(sys.executable).parent / "imgctl"))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: error: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-catalog-"))
    url = args.database_url or f"sqlite:///{work / 'catalog.db'}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        log(f"recording {args.images} promoted images in {url.split('@')[-1]} (untimed)")
        started = time.perf_counter()
        asyncio.run(fill(url, args.images))
        log(f"setup took {time.perf_counter() - started:.1f} s")
        bodies = [review(args.images, n) for n in range(args.requests)]
        results = {}
        for label, argv_for in (
            (
                "imgctl admission (catalog lookups)",
                lambda port: [
                    args.imgctl,
                    "catalog",
                    "serve",
                    "--http-address",
                    f"127.0.0.1:{port}",
                    "--database-url",
                    url,
                ],
            ),
            (
                "bare FastAPI endpoint (ceiling)",
                lambda port: [
                    sys.executable,
                    "-c",
                    CEILING_APP,
                    str(port),
                ],
            ),
        ):
            port = free_port()
            env = os.environ | {"IMGCTL_ENABLE_IAAS_AUTH": "false"}
            process = subprocess.Popen(
                argv_for(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            processes.append(process)
            wait_ready(f"http://127.0.0.1:{port}/openapi.json", process)
            hammer(port, bodies, 2, args.concurrency, work)  # warm up
            results[label] = hammer(port, bodies, args.seconds, args.concurrency, work)
            denied = _denied(port, bodies[:50])
            results[label]["denied"] = denied
            process.terminate()
            process.wait(timeout=30)
        print(
            f"\nadmission decisions: Pod with 3 containers, catalog of {args.images:,} images, "
            f"wrk for {args.seconds} s, {args.concurrency} connections\n"
        )
        print(f"{'endpoint':38} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'denied':>7}")
        print("-" * 77)
        for label, r in results.items():
            print(
                f"{label:38} {r['rate']:12.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
                f"{int(r['denied']):7d}"
            )
        chosen = results["imgctl admission (catalog lookups)"]
        rate, tail, denied = chosen["rate"], chosen["p99"], int(chosen["denied"] + chosen["errors"])
        print(
            f"\ntargets: p99 < 10 ms: {'met' if tail < 10 else 'NOT met'} ({tail:.2f} ms); "
            f">= 1,000 decisions/s: {'met' if rate >= 1000 else 'NOT met'} ({rate:.0f}/s)"
        )
        return 0 if denied == 0 and tail < 10 and rate >= 1000 else 1
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
