"""Benchmark: admission decisions per second and p99 latency against a 100,000-image catalog.

Fills a catalog (SQLite in a temp dir, or ``--database-url``: PostgreSQL gets a schema of its
own, dropped afterwards) with N promoted images through ``CatalogStore.import_images`` (the bulk
import of ``imgctl catalog import``), serves the catalog API and the admission webhook with
uvicorn on a loopback port (``imgctl catalog serve``), and loads it with ``wrk`` (a C load
generator, keep-alive connections) with AdmissionReviews for a Pod with 3 containers (2 by
digest, 1 by tag, all promoted). Rows, in the same run:

* imgctl, repeated Pods: 300 different Pods cycled, as a cluster re-admits the same images
  (replicas, restarts, rollouts);
* imgctl, every Pod new: no Pod's images were asked about before (the warm-up uses other
  images), so no decision can be a remembered answer: each is answered by the catalog kept in
  memory and followed through its change feed (``CatalogStore.follow``);
* imgctl, repeated Pods, signatures required: ``--require-signature prod=KEY``, with 300 real
  images (``--signed-images``) pushed to an ``imgctl registry serve`` on loopback, signed with
  ``imgctl.trust.sign_image`` and recorded in the catalog; 300 Pods of 3 of them (2 by digest, 1
  by tag) cycled. The first decision of the first 50 Pods is timed alone first (the registry is
  asked: tag, signatures), then the warm-up fills the verdict memory;
* the same with ``--require-attestation prod=KEY`` instead (the 300 images also carry a
  promotion attestation, ``imgctl.trust.attest_image``), and with both rules; timed the same way;
* a bare FastAPI endpoint that only parses the review and allows it;
* a bare ASGI endpoint doing the same under uvicorn with no framework (the HTTP stack's ceiling,
  the yardstick).

Each round starts every row's server afresh (every other round in reverse order); medians of
``--rounds`` (3) are printed, every row with its rate, p99 and the server's CPU per decision,
and its rate and p99 as ratios to the bare ASGI row of the same round.
The exit status depends only on ratios to the bare ASGI row of each round and on no wrong
answer: the repeated-Pod row at >= 0.8x its rate, the every-Pod-new row at >= 0.25x its rate and
<= 5x its p99. Issue 21's absolute figures for the every-Pod-new row (p99 < 10 ms,
>= 3,000 decisions/s) are printed beside them, not judged.

    python bench/catalog.py                 # 100,000 images, SQLite
    python bench/catalog.py --database-url postgresql://127.0.0.1:5432/test
    python bench/catalog.py --images 10000 --seconds 5
    python bench/catalog.py --signed-images 0   # without the signature and attestation rows

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
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

from tests.support.registry import free_port  # noqa: E402

ENVIRONMENT = "prod"
REGISTRY = "registry.example.com"


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def digest_of(number: int) -> str:
    """A made-up but well-formed digest for image ``number``."""
    return "sha256:" + f"{number:064x}"


async def fill(url: str, count: int) -> float:
    """Record ``count`` promoted images with ``CatalogStore.import_images`` (untimed setup).

    The bulk import ``imgctl catalog import FILE`` runs (one transaction); returns its seconds.
    """
    from datetime import UTC, datetime

    from imgctl.store import CatalogStore, ImportImage

    now = datetime.now(UTC)
    images = [
        ImportImage(
            environment=ENVIRONMENT,
            name=f"{REGISTRY}/team-{n % 100}/app-{n}",
            id=digest_of(n),
            tags=(f"v{n % 7}.0",),
            promoted_by="bench@example.com",
            promoted_at=now,
        )
        for n in range(count)
    ]
    store = await CatalogStore.open(url)  # creates and migrates the schema
    try:
        started = time.perf_counter()
        await store.import_images(images)
        return time.perf_counter() - started
    finally:
        await store.aclose()


def _pod_images(count: int, picks: list[int]) -> list[str]:
    """Two images by digest and one by tag, all promoted."""
    return [f"{REGISTRY}/team-{p % 100}/app-{p}@{digest_of(p)}" for p in picks[:2]] + [
        f"{REGISTRY}/team-{picks[2] % 100}/app-{picks[2]}:v{picks[2] % 7}.0"
    ]


def _review_body(n: int, images: list[str]) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"bench-{n}", "namespace": "apps"},
        "spec": {
            "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
        },
    }
    return {
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


SIGNED_TAG = "v1"


def _signed_image(i: int) -> tuple[bytes, bytes, bytes]:
    """(config, layer, manifest) of signed image ``i``: small, distinct, a real OCI image."""
    layer = f"signed image {i}\n".encode() * 8
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
            },
        },
        sort_keys=True,
    ).encode()

    def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        },
        sort_keys=True,
    ).encode()
    return config, layer, manifest


async def push_and_sign(registry: str, count: int, key: Path) -> list[tuple[str, str]]:
    """Push ``count`` images to ``registry``, sign and attest each (untimed); (name, digest)s.

    The attestation is a promotion statement, as ``imgctl server --sign-key`` writes it.
    """
    from datetime import UTC, datetime

    from imgctl.oci.digest import Digest
    from imgctl.oci.reference import Reference
    from imgctl.remote import ClientOptions, RegistryClient
    from imgctl.trust import (
        PromotionFacts,
        attest_image,
        load_signer,
        promotion_statement,
        sign_image,
    )

    signer = load_signer(str(key))
    gate = asyncio.Semaphore(8)
    done: list[tuple[str, str]] = [("", "")] * count
    now = datetime.now(UTC)

    async def one(client: RegistryClient, i: int) -> None:
        async with gate:
            ref = Reference.parse(f"{registry}/signed/app-{i}:{SIGNED_TAG}")
            config, layer, manifest = _signed_image(i)
            for blob in (config, layer):
                await client.push_blob(ref, Digest.of(blob), blob, len(blob))
            digest = await client.put_manifest(
                ref, manifest, "application/vnd.oci.image.manifest.v1+json"
            )
            pinned = ref.with_digest(digest)
            await sign_image(client, pinned, signer)
            facts = PromotionFacts(
                source=pinned,
                destination=pinned,
                builder="urn:imgctl:server:bench",
                started=now,
                finished=now,
                requested_by="bench@example.com",
                request_id=f"bench-{i}",
            )
            await attest_image(client, pinned, signer, promotion_statement(facts))
            done[i] = (ref.name, str(digest))

    async with RegistryClient(options=ClientOptions(proxies={})) as client:
        await asyncio.gather(*(one(client, i) for i in range(count)))
    return done


def write_key_pair(work: Path) -> tuple[Path, Path]:
    """A plain PEM ECDSA P-256 pair for the signature row."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = work / "bench.key", work / "bench.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


async def record_signed(url: str, images: list[tuple[str, str]]) -> None:
    """Record the signed images as promoted to prod (untimed), with the same bulk import."""
    from datetime import UTC, datetime

    from imgctl.store import CatalogStore, ImportImage

    now = datetime.now(UTC)
    store = await CatalogStore.open(url)
    try:
        await store.import_images(
            [
                ImportImage(
                    environment=ENVIRONMENT,
                    name=name,
                    id=digest,
                    tags=(SIGNED_TAG,),
                    promoted_by="bench@example.com",
                    promoted_at=now,
                )
                for name, digest in images
            ]
        )
    finally:
        await store.aclose()


def signed_review(images: list[tuple[str, str]], n: int) -> bytes:
    """Repeated Pod ``n`` of the signature row: two signed images by digest, one by tag."""
    count = len(images)
    a, b, c = (images[(n * k) % count] for k in (7919, 104729, 1299709))
    pod = [f"{a[0]}@{a[1]}", f"{b[0]}@{b[1]}", f"{c[0]}:{SIGNED_TAG}"]
    return json.dumps(_review_body(n, pod)).encode()


def cold_decisions(port: int, bodies: list[bytes]) -> tuple[float, float, int]:
    """Each body decided once, one at a time: (p50 ms, max ms, denied)."""
    times: list[float] = []
    denied = 0
    for body in bodies:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/admission/{ENVIRONMENT}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
        times.append((time.perf_counter() - started) * 1000)
        denied += not answer["response"]["allowed"]
    times.sort()
    return times[len(times) // 2], times[-1], denied


def review(count: int, n: int) -> bytes:
    """An AdmissionReview for repeated Pod ``n``, its images spread over the catalog."""
    picks = [(n * 7919) % count, (n * 104729) % count, (n * 1299709) % count]
    return json.dumps(_review_body(n, _pod_images(count, picks))).encode()


def new_pod_picks(count: int, n: int) -> list[int]:
    """Request ``n`` of the "every Pod new" row: images 3n, 3n+1, 3n+2 (mod count)."""
    return [(3 * n + i) % count for i in range(3)]


def new_pod_review(count: int, n: int) -> bytes:
    """The body the Lua script of the "every Pod new" row sends as request ``n``."""
    return json.dumps(_review_body(n, _pod_images(count, new_pod_picks(count, n)))).encode()


def new_pod_lua(count: int, start: int) -> str:
    """wrk's request(): :func:`new_pod_review` for n = start + thread, then every other n."""
    marker = 987654321  # a number that appears nowhere else in the body
    template = json.dumps(
        _review_body(marker, _pod_images(count, [marker, marker + 1, marker + 2]))
    ).replace("%", "%%")
    fields = {
        f"{marker:012d}": "%012d",  # the uid
        f"bench-{marker}": "bench-%d",
        f"{digest_of(marker)}": "sha256:%064x",
        f"{digest_of(marker + 1)}": "sha256:%064x",
    }
    for literal, placeholder in fields.items():
        template = template.replace(literal, placeholder, 1)
    # What is left in order: team-%d/app-%d (x3, around the digests and the tag).
    for k in range(3):
        p = marker + k
        template = template.replace(f"team-{p % 100}/app-{p}", "team-%d/app-%d", 1)
    template = template.replace(f":v{(marker + 2) % 7}.0", ":v%d.0", 1)
    return (
        "local counter = 0\n"
        "setup = function(thread) thread:set('first', counter); counter = counter + 1 end\n"
        f"init = function(args) n = {start} + first - 2 end\n"
        f"local template = [==[{template}]==]\n"
        "request = function()\n"
        "  n = n + 2\n"
        f"  local a, b, c = (3 * n) % {count}, (3 * n + 1) % {count}, (3 * n + 2) % {count}\n"
        "  local body = string.format(template, n, n, a % 100, a, a, b % 100, b, b,\n"
        "    c % 100, c, c % 7)\n"
        f'  return wrk.format("POST", "/admission/{ENVIRONMENT}", nil, body)\n'
        "end\n"
    )


FASTAPI_APP = """
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

ASGI_APP = """
import json, sys
import uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["method"] != "POST":  # the readiness probe
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.loads(b"".join(chunks))
    data = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": body["request"]["uid"], "allowed": True}}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
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


def cycling_lua(bodies: list[bytes]) -> str:
    """wrk's request(): the given bodies, in turn."""
    quoted = ",\n".join("[==[" + body.decode() + "]==]" for body in bodies)
    return (
        "local bodies = {\n" + quoted + "\n}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n % #bodies + 1\n"
        f'  return wrk.format("POST", "/admission/{ENVIRONMENT}", nil, bodies[n])\n'
        "end\n"
    )


def hammer(
    port: int, request_lua: str, seconds: float, connections: int, work: Path
) -> dict[str, float]:
    """Load with wrk (a C load generator, so the client is not the bottleneck): rate, p50, p99."""
    script = work / "admission.lua"
    script.write_text(
        'wrk.headers["Content-Type"] = "application/json"\n'
        + request_lua
        + "done = function(summary, latency, requests)\n"
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
        "requests": float(requests),
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


def _libpq(url: str) -> str:
    """``url`` as psycopg takes it (no SQLAlchemy driver name)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def scratch_schema(url: str) -> tuple[str, str]:
    """Create a fresh schema in the PostgreSQL database at ``url``: (schema, URL using it)."""
    import uuid

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    schema = f"imgctl_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, scoped.render_as_string(hide_password=False)


def drop_schema(url: str, schema: str) -> None:
    """Drop the bench's schema again."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    bare = make_url(url).difference_update_query(["options"])
    with psycopg.connect(_libpq(bare.render_as_string(hide_password=False)), autocommit=True) as c:
        c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


REPEATED = "imgctl admission, repeated Pods"
EVERY_NEW = "imgctl admission, every Pod new"
FASTAPI = "bare FastAPI endpoint (ceiling)"
ASGI = "bare ASGI endpoint (uvicorn alone)"
# What decides the exit status: ratios to the bare ASGI row of the same round (issue 23 item 5).
# Repeated Pods: issue 21's 0.8x. Every Pod new (0.41x the rate, 2.2-2.4x the p99 measured on
# 2026-12-07; a webhook waiting on its database answered 0.03x): at least a quarter of the
# rate, at most 5 times the p99.
MIN_REPEATED_TO_ASGI = 0.8
MIN_EVERY_NEW_TO_ASGI = 0.25
MAX_EVERY_NEW_P99_TO_ASGI = 5.0
# Issue 21 stated these absolutely; printed beside the ratios, never judged.
EVERY_NEW_P99_MS = 10.0
EVERY_NEW_RATE = 3000.0


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(
    rounds: list[dict[str, dict[str, float]]],
    colds: list[dict[str, tuple[float, float, int]]],
    args: argparse.Namespace,
    warm_start: int,
) -> int:
    """Print medians of the rounds, ratios to the bare rows and the targets; 0 if all are met.

    A ratio is taken in each round (both rows measured in that round) and its median printed.
    The exit status depends only on ratios to the bare ASGI row (repeated Pods' rate, every Pod
    new's rate and p99) and on no wrong answer (issue 23 item 5); issue 21's absolute figures
    and the other rows' ratios are printed, not judged.
    """
    labels = list(rounds[0])

    def median(label: str, field: str) -> float:
        return _median([r[label][field] for r in rounds])

    def ratio(label: str, field: str, base: str = ASGI) -> float:
        return _median([r[label][field] / r[base][field] for r in rounds])

    print(
        f"\nadmission decisions: Pod with 3 containers, catalog of {args.images:,} images, "
        f"wrk for {args.seconds} s, {args.concurrency} connections; medians of "
        f"{len(rounds)} rounds (load average {os.getloadavg()[0]:.1f} at the end)\n"
    )
    print(
        f"{'endpoint':38} {'decisions/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'CPU us':>7} "
        f"{'denied':>6} {'rate/ASGI':>10} {'p99/ASGI':>9}"
    )
    print("-" * 102)
    for label in labels:
        denied = sum(int(r[label]["denied"]) for r in rounds)
        print(
            f"{label:38} {median(label, 'rate'):12.0f} {median(label, 'p50'):7.2f} "
            f"{median(label, 'p99'):7.2f} {median(label, 'cpu_us'):7.1f} {denied:6d} "
            f"{ratio(label, 'rate'):9.2f}x {ratio(label, 'p99'):8.2f}x"
        )
    print("(CPU us: the server process's user + system CPU per decision during the load)")
    for label in colds[0]:
        p50 = _median([cold[label][0] for cold in colds])
        most = max(cold[label][1] for cold in colds)
        print(
            f"\n{label.removeprefix('imgctl admission, ')}, first decision of each of 50 Pods "
            f"alone (registry asked): p50 {p50:.2f} ms, max {most:.2f} ms"
        )
    sent = max(r[EVERY_NEW]["rate"] for r in rounds) * args.seconds
    if sent > warm_start:
        # Each round's server is a new process: nothing it remembers was asked before that
        # round. Within a round, images come round again after images / 3 Pods: by then the
        # parse cache (4,096 strings) has long dropped them, and with the catalog in memory no
        # answer is remembered per question, so such a Pod costs what a new one does.
        print(
            f"note: the 'every Pod new' row sent up to {sent:.0f} Pods in a round; its images "
            f"come round again after {args.images // 3:,} Pods, long out of the parse cache"
        )
    print(
        f"\nimgctl (repeated Pods) / bare FastAPI: {ratio(REPEATED, 'rate', FASTAPI):.2f}x "
        f"the rate, {ratio(REPEATED, 'p99', FASTAPI):.2f}x the p99"
    )
    print(
        f"imgctl (every Pod new) / imgctl (repeated Pods): "
        f"{ratio(EVERY_NEW, 'rate', REPEATED):.2f}x the rate, "
        f"{ratio(EVERY_NEW, 'p99', REPEATED):.2f}x the p99, "
        f"{ratio(EVERY_NEW, 'cpu_us', REPEATED):.2f}x the CPU per decision"
    )
    wrong = sum(int(r[label]["denied"] + r[label]["errors"]) for r in rounds for label in r)
    wrong += sum(denied for cold in colds for _, _, denied in cold.values())
    repeated_ratio = ratio(REPEATED, "rate")
    new_p99, new_rate = median(EVERY_NEW, "p99"), median(EVERY_NEW, "rate")
    asgi_p99, asgi_rate = median(ASGI, "p99"), median(ASGI, "rate")
    checks = [
        (
            f"repeated Pods >= {MIN_REPEATED_TO_ASGI}x the bare ASGI rate",
            repeated_ratio >= MIN_REPEATED_TO_ASGI,
            f"{repeated_ratio:.2f}x; per round: "
            + ", ".join(f"{r[REPEATED]['rate'] / r[ASGI]['rate']:.2f}x" for r in rounds),
        ),
        (
            f"every Pod new >= {MIN_EVERY_NEW_TO_ASGI}x the bare ASGI rate",
            ratio(EVERY_NEW, "rate") >= MIN_EVERY_NEW_TO_ASGI,
            f"{ratio(EVERY_NEW, 'rate'):.2f}x: {new_rate:.0f}/s, bare ASGI {asgi_rate:.0f}/s",
        ),
        (
            f"every Pod new p99 <= {MAX_EVERY_NEW_P99_TO_ASGI:g}x the bare ASGI p99",
            ratio(EVERY_NEW, "p99") <= MAX_EVERY_NEW_P99_TO_ASGI,
            f"{ratio(EVERY_NEW, 'p99'):.2f}x: {new_p99:.2f} ms, bare ASGI {asgi_p99:.2f} ms",
        ),
        ("no wrong answer or error", wrong == 0, str(wrong)),
    ]
    print("\nchecks (ratios to the bare ASGI row of each round; they decide the exit status):")
    for what, met, figure in checks:
        print(f"  {what}: {'met' if met else 'NOT met'} ({figure})")
    print(
        f"issue 21's absolute figures, not judged: every Pod new p99 {new_p99:.2f} ms "
        f"(stated < {EVERY_NEW_P99_MS:g} ms), {new_rate:.0f}/s (stated >= {EVERY_NEW_RATE:,.0f})"
    )
    return 0 if all(met for _, met, _ in checks) else 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a decision is wrong or a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="distinct repeated Pods")
    parser.add_argument("--seconds", type=int, default=10, help="load duration per row")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every row; medians are reported"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="connections")
    parser.add_argument("--database-url", help="default: SQLite in a temp dir")
    parser.add_argument("--imgctl", default=str(Path(sys.executable).parent / "imgctl"))
    parser.add_argument(
        "--signed-images",
        type=int,
        default=300,
        help="real signed and attested images of the signature and attestation rows (0: none)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: error: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-catalog-"))
    url = args.database_url or f"sqlite:///{work / 'catalog.db'}"
    schema = None
    if url.startswith("postgres"):
        # A schema of its own: the database's other tables (and an earlier run) stay apart.
        schema, url = scratch_schema(url)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        log(f"importing {args.images} promoted images into {url.split('@')[-1]} (untimed)")
        seconds = asyncio.run(fill(url, args.images))
        log(f"CatalogStore.import_images took {seconds:.1f} s")
        bodies = [review(args.images, n) for n in range(args.requests)]
        # The "every Pod new" row warms up on Pods from n = images / 4 and is measured from
        # n = 0: neither meets the other's images unless the run sends images / 4 Pods.
        warm_start = args.images // 4
        new_bodies = [new_pod_review(args.images, n) for n in range(50)]
        imgctl = [
            args.imgctl,
            "catalog",
            "serve",
            "--database-url",
            url,
            "--http-address",
        ]
        cycling = cycling_lua(bodies)
        new_pods = (new_pod_lua(args.images, warm_start), new_pod_lua(args.images, 0))
        fastapi = [sys.executable, "-c", FASTAPI_APP]
        asgi = [sys.executable, "-c", ASGI_APP]
        rows: list[tuple[str, list[str], tuple[str, str], list[bytes]]] = [
            (REPEATED, imgctl, (cycling, cycling), bodies[:50]),
            (EVERY_NEW, imgctl, new_pods, new_bodies),
        ]
        trust_labels = {
            "imgctl admission, signatures required": ("--require-signature",),
            "imgctl admission, attestations required": ("--require-attestation",),
            "imgctl admission, both required": ("--require-signature", "--require-attestation"),
        }
        if args.signed_images > 0:
            registry_port = free_port()
            registry = f"127.0.0.1:{registry_port}"
            processes.append(
                subprocess.Popen(
                    [
                        *(args.imgctl, "registry", "serve", "--root", str(work / "registry")),
                        *("--address", registry),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_ready(f"http://{registry}/v2/", processes[-1])
            private, public = write_key_pair(work)
            log(f"pushing, signing, attesting {args.signed_images} images in {registry} (untimed)")
            started = time.perf_counter()
            signed = asyncio.run(push_and_sign(registry, args.signed_images, private))
            asyncio.run(record_signed(url, signed))
            log(f"setup took {time.perf_counter() - started:.1f} s")
            signed_bodies = [signed_review(signed, n) for n in range(args.requests)]
            signed_cycling = cycling_lua(signed_bodies)
            for label, flags in trust_labels.items():
                rule = [item for flag in flags for item in (flag, f"{ENVIRONMENT}={public}")]
                rows.append(
                    (
                        label,
                        [*imgctl[:-1], *rule, imgctl[-1]],
                        (signed_cycling, signed_cycling),
                        signed_bodies[:50],
                    )
                )
        rows += [
            (FASTAPI, fastapi, (cycling, cycling), bodies[:50]),
            (ASGI, asgi, (cycling, cycling), bodies[:50]),
        ]
        rounds: list[dict[str, dict[str, float]]] = []
        colds: list[dict[str, tuple[float, float, int]]] = []
        for number in range(args.rounds):
            log(f"round {number + 1} of {args.rounds}")
            # Every other round in reverse order, so that no row always runs first or last.
            order = rows if number % 2 == 0 else rows[::-1]
            results, cold = measure_rows(order, args, trust_labels, work, processes)
            rounds.append({label: results[label] for label, *_ in rows})
            colds.append(cold)
        return report(rounds, colds, args, warm_start)

    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
        if schema is not None:
            drop_schema(url, schema)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Row = tuple[str, list[str], tuple[str, str], list[bytes]]


def measure_rows(
    rows: list[Row],
    args: argparse.Namespace,
    trust_labels: dict[str, tuple[str, ...]],
    work: Path,
    processes: list[subprocess.Popen[bytes]],
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[float, float, int]]]:
    """One round: each row's server started fresh, warmed up, loaded, checked and stopped."""
    results: dict[str, dict[str, float]] = {}
    cold: dict[str, tuple[float, float, int]] = {}
    for label, command, (warm_lua, run_lua), checks in rows:
        port = free_port()
        address = f"127.0.0.1:{port}" if command[0] == args.imgctl else str(port)
        env = os.environ | {"IMGCTL_ENABLE_IAAS_AUTH": "false"}
        process = subprocess.Popen(
            [*command, address], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        processes.append(process)
        wait_ready(f"http://127.0.0.1:{port}/openapi.json", process)
        if label in trust_labels:
            cold[label] = cold_decisions(port, checks)
        hammer(port, warm_lua, 2, args.concurrency, work)
        before = process_cpu(process.pid)
        result = hammer(port, run_lua, args.seconds, args.concurrency, work)
        # The server's own CPU per decision: what a noisy machine's rates hide.
        result["cpu_us"] = (process_cpu(process.pid) - before) / result["requests"] * 1e6
        result["denied"] = _denied(port, checks)
        results[label] = result
        process.terminate()
        process.wait(timeout=30)
    return results, cold


if __name__ == "__main__":
    sys.exit(main())
