"""Benchmark promotion through ``imgctl server`` against the copy engine it wraps.

Run it from the repository root (it needs ``docker-registry``, ``skopeo`` and OpenSSH on PATH,
and the test extra: ``pip install -e '.[test]'``)::

    python bench/promote.py            # 20 images x 2 platforms x 2 layers of 1 MiB
    python bench/promote.py --quick    # 4 images, a quick demonstration
    python bench/promote.py --repeat 5 --json

Setup (not timed): two registries on loopback (dev and prod), N multi-arch images with unique
random content built as OCI layouts and pushed to dev with skopeo (``bench/app-NN:v1``), the
built-in issuer (``imgctl idp serve``) with one user, an ssh-agent holding that user's key,
and ``imgctl server`` (dev -> prod, where prod is ``PROD/promoted``; a SQLite audit database in
the temporary directory; no Slack). One OIDC token is fetched with ``imgctl token``.

Timed, in one run:

* (b) server, cold: N ``Promote`` calls over one ``grpc.aio`` channel, 8 at a time, into the
  empty ``PROD/promoted/...``. It runs before (a), so if the registry storing each blob once
  helps the second cold copy, it helps the copy engine, not the server;
* (a) copy engine, cold: one ``imgctl copy --from-file`` process (start-up included) copying
  the same N images to the empty ``PROD/copied/...``;
* then ``--repeat`` rounds of the no-ops, each round:
  (c) the same N ``Promote`` calls again (every answer must say ``unchanged``),
  (d) the same ``imgctl copy --from-file`` again,
  (e) ``imgctl.remote.copy_images`` in this process on (b)'s pairs, one call per image,
  8 at a time, with a warmed-up ``RegistryClient``: what the server's copy engine alone costs;
  (f) the same N ``Promote`` calls one at a time: the latency of a no-op promotion with
  nothing else running.

The server's overhead per no-op promotion is (c - e) / N: token verification, gRPC, planning,
the audit row (SQLite, committed before the answer) and the audit log line. Its target is
under 20 ms. Every cold destination digest is read back with skopeo and compared with the
source; the audit table must hold one ``promote`` row per call. Any failure ends the run with a
non-zero exit status; a missed target is reported, not treated as an error.

All processes are stopped and the temporary directory removed at the end, on errors and on
SIGTERM too (unless ``--keep``). Everything talks only to 127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python bench/promote.py``, this file's directory comes first on sys.path, where
# bench/copy.py would shadow the standard library's ``copy`` (which dataclasses imports). Drop
# that entry and put the repository root there instead, so ``bench.copy`` and ``tests.support``
# import as packages.
_BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Awaitable, Callable, Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

from bench.copy import (  # noqa: E402
    MB,
    TAG,
    BenchError,
    Image,
    Registries,
    log,
    prepare_images,
    verify_digests,
    write_pairs,
)
from tests.support.idp import start_idp  # noqa: E402
from tests.support.registry import Registry, free_port, require_binary  # noqa: E402
from tests.support.sshkeys import Agent, keygen  # noqa: E402

AUDIENCE = "https://imgctl-bench.example.com"
CLIENT_SECRET = "bench-client-secret"  # a throwaway issuer on loopback
GROUP = "engineering@example.com"
USER = "bench"
CONCURRENCY = 8
TARGET_OVERHEAD_MS = 20.0
PROMOTED = "promoted"  # prod's repository prefix for the server
COPIED = "copied"  # where imgctl copy writes on the same registry
SERVER_GRACE = 10
COMMAND_TIMEOUT = 600.0
CALL_TIMEOUT = 120.0
START_TIMEOUT = 60.0

# Measurement keys, in the order they are printed.
COPY_COLD = "copy_cold"
SERVER_COLD = "server_cold"
SERVER_NOOP = "server_noop"
COPY_NOOP = "copy_noop"
ENGINE_NOOP = "engine_noop"
SERVER_NOOP_SEQ = "server_noop_seq"

LABELS = {
    COPY_COLD: "(a) imgctl copy --from-file, cold",
    SERVER_COLD: f"(b) server Promote x{CONCURRENCY}, cold",
    SERVER_NOOP: f"(c) server Promote x{CONCURRENCY}, no-op",
    COPY_NOOP: "(d) imgctl copy --from-file, no-op",
    ENGINE_NOOP: f"(e) copy_images in-process x{CONCURRENCY}, no-op",
    SERVER_NOOP_SEQ: "(f) server Promote x1, no-op",
}
COLD = frozenset({COPY_COLD, SERVER_COLD})

_T = TypeVar("_T")


# ---------------------------------------------------------------------------------- helpers


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with ``fraction`` of them at or below it."""
    ordered = sorted(values)
    # round() first: 0.95 * 20 must give rank 19, not 20 through a float error.
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def base_env(home: Path) -> dict[str, str]:
    """A minimal environment: no proxies, docker config or cloud keychains from the caller."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return env | {"HOME": str(home), "USER": USER, "IMGCTL_ENABLE_IAAS_AUTH": "false"}


def run_command(
    argv: Sequence[str], what: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; BenchError with the end of its output if it fails."""
    result = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, timeout=COMMAND_TIMEOUT, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-2000:] or "(no output)"
        raise BenchError(f"{what} exited with {result.returncode}: {detail}")
    return result


async def timed_async(work: Callable[[], Awaitable[_T]]) -> tuple[float, _T]:
    """Seconds ``work`` takes and its result, after flushing dirty pages of earlier steps."""
    await asyncio.to_thread(os.sync)
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


# ---------------------------------------------------------------------------------- processes


@dataclass
class Server:
    """A running ``imgctl server``: its addresses, process, log and audit database."""

    grpc_address: str
    http_address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    database: str

    def stop(self) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it is still there after the grace period."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SERVER_GRACE + 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def rss_mib(self) -> float | None:
        """Resident memory of the server process, if psutil is installed."""
        try:
            import psutil
        except ImportError:
            return None
        try:
            rss: int = psutil.Process(self.process.pid).memory_info().rss
        except psutil.Error:
            return None
        return rss / (1 << 20)


def start_server(
    imgctl: str, root: Path, dev: Registry, prod: Registry, issuer: str, stack: ExitStack
) -> Server:
    """``imgctl server`` promoting dev -> prod (``PROD/promoted``) on free loopback ports."""
    home = root / "server-home"
    home.mkdir()
    database = f"sqlite:///{root / 'server-state' / 'imgctl.db'}"
    env = base_env(home) | {
        "OIDC_ISSUER_URL": issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_ALLOWED_GROUPS": GROUP,
        "IMGCTL_REGISTRY_DEV": dev.host,
        "IMGCTL_REGISTRY_PROD": f"{prod.host}/{PROMOTED}",
        "IMGCTL_DEFAULT_SOURCE": "dev",
        "IMGCTL_DATABASE_URL": database,
    }
    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log_path = root / "server.log"
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            [
                imgctl,
                "server",
                "--bind-address",
                grpc_address,
                "--http-address",
                http_address,
                "--grace",
                str(SERVER_GRACE),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(grpc_address, http_address, process, log_path, database)
    stack.callback(server.stop)  # registered before waiting: a server that hangs is stopped too
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"http://{http_address}/readyz", timeout=1):
                return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(
                    f"imgctl server did not start: {log_path.read_text()[-2000:]}"
                ) from None
            time.sleep(0.05)


def get_token(imgctl: str, root: Path, agent: Agent, issuer: str) -> str:
    """One OIDC token for the benchmark user, signed in with the agent's key."""
    home = root / "client-home"
    home.mkdir(exist_ok=True)
    env = base_env(home) | {"SSH_AUTH_SOCK": agent.socket, "IMGCTL_CLIENT_SECRET": CLIENT_SECRET}
    result = run_command(
        [imgctl, "token", "-u", USER, "--dex-url", issuer, "--audience", AUDIENCE, "--no-cache"],
        "imgctl token",
        env,
    )
    return result.stdout.strip()


# ---------------------------------------------------------------------------------- measurements


@dataclass
class Pass:
    """One timed pass over the N images: wall seconds and, for the server, each call's latency."""

    seconds: float
    latencies: list[float] = field(default_factory=list)


async def promote_all(
    stub: Any,
    token: str,
    images: Sequence[Image],
    *,
    expect_unchanged: bool,
    concurrency: int = CONCURRENCY,
) -> Pass:
    """Promote every image (dev -> prod), ``concurrency`` calls at a time; check every answer."""
    import grpc

    from imgctl.v1 import imgctl_pb2 as pb

    gate = asyncio.Semaphore(concurrency)
    metadata = (("authorization", f"Bearer {token}"),)
    latencies: list[float] = []

    async def one(image: Image) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                answer = await stub.Promote(
                    pb.PromoteRequest(ref=f"{image.repository}:{TAG}", destination="prod"),
                    metadata=metadata,
                    timeout=CALL_TIMEOUT,
                )
            except grpc.aio.AioRpcError as error:
                raise BenchError(
                    f"promote {image.repository}: {error.code().name}: {error.details()}"
                ) from None
            latencies.append(time.perf_counter() - started)
        if answer.digest != image.built.digest:
            raise BenchError(
                f"promote {image.repository}: digest {answer.digest}, "
                f"the source is {image.built.digest}"
            )
        if answer.unchanged != expect_unchanged:
            raise BenchError(
                f"promote {image.repository}: unchanged={answer.unchanged}, "
                f"expected {expect_unchanged}"
            )

    async def run() -> None:
        await asyncio.gather(*(one(image) for image in images))

    seconds, _ = await timed_async(run)
    return Pass(seconds, latencies)


async def imgctl_copy(
    imgctl: str, pairs: Path, count: int, env: dict[str, str], expected: str
) -> Pass:
    """One ``imgctl copy --from-file`` process; all ``count`` pairs must report ``expected``."""

    def run() -> subprocess.CompletedProcess[str]:
        return run_command([imgctl, "copy", "--from-file", str(pairs)], "imgctl copy", env)

    async def work() -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run)

    seconds, result = await timed_async(work)
    statuses = Counter(line.split(None, 1)[0] for line in result.stdout.splitlines() if line)
    if statuses != Counter({expected: count}):
        raise BenchError(f"imgctl copy: expected {count} x {expected!r}, got {dict(statuses)}")
    return Pass(seconds)


async def engine_noop(client: Any, pairs: Sequence[tuple[Any, Any]]) -> Pass:
    """``copy_images`` once per pair, ``CONCURRENCY`` at a time, as the server calls it."""
    from imgctl.remote import copy_images

    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(pair: tuple[Any, Any]) -> None:
        async with gate:
            [result] = await copy_images(client, [pair])
        if result.status != "unchanged":
            raise BenchError(f"copy_images {pair[1]}: {result.status} ({result.error})")

    async def run() -> None:
        await asyncio.gather(*(one(pair) for pair in pairs))

    seconds, _ = await timed_async(run)
    return Pass(seconds)


@dataclass
class Results:
    """Every pass of every measurement, plus facts for the report."""

    passes: dict[str, list[Pass]] = field(default_factory=lambda: {k: [] for k in LABELS})
    audit_rows: int = 0
    server_rss_mib: float | None = None

    def add(self, key: str, result: Pass) -> None:
        self.passes[key].append(result)
        log(f"  {LABELS[key]}: {result.seconds:.3f} s")

    def median(self, key: str) -> float:
        return statistics.median(p.seconds for p in self.passes[key])

    def latencies(self, key: str) -> list[float]:
        return [value for p in self.passes[key] for value in p.latencies]


async def measure(
    args: argparse.Namespace,
    images: Sequence[Image],
    dev: Registry,
    prod: Registry,
    server: Server,
    token: str,
    workdir: Path,
) -> Results:
    """Everything timed, in one event loop shared by the gRPC client and the in-process engine."""
    import grpc

    from imgctl.authn import default_keychain
    from imgctl.oci import Reference
    from imgctl.remote import ClientOptions, RegistryClient
    from imgctl.store import AuditStore
    from imgctl.v1 import imgctl_pb2 as pb
    from imgctl.v1 import imgctl_pb2_grpc as pb_grpc

    results = Results()
    home = workdir / "client-home"
    copy_env = base_env(home)
    pairs = workdir / "pairs.txt"
    write_pairs(pairs, images, dev.host, f"{prod.host}/{COPIED}")
    promoted = [
        (
            Reference.parse(image.ref(dev.host)),
            Reference.parse(image.ref(f"{prod.host}/{PROMOTED}")),
        )
        for image in images
    ]

    async with grpc.aio.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.ImgCtlStub(channel)  # type: ignore[no-untyped-call]
        # Connect before timing: a long-lived client pays this once, not per promotion.
        info = await stub.ServerInfo(pb.ServerInfoRequest(), timeout=CALL_TIMEOUT)
        if info.audience != AUDIENCE:
            raise BenchError(f"the server says its audience is {info.audience!r}")

        log("cold")
        results.add(SERVER_COLD, await promote_all(stub, token, images, expect_unchanged=False))
        results.add(
            COPY_COLD, await imgctl_copy(args.imgctl, pairs, len(images), copy_env, "copied")
        )
        for prefix in (PROMOTED, COPIED):
            await asyncio.to_thread(verify_digests, images, dev.host, f"{prod.host}/{prefix}")
        log(f"  verified {2 * len(images)} destination digests with skopeo: all match the source")

        # The same keychain the server builds from the same kind of environment (no docker
        # config, no cloud keychains), so the two engines do the same requests.
        keychain = default_keychain(base_env(home), home)
        async with RegistryClient(keychain, ClientOptions()) as client:
            # Warm-up, untimed: the server's client already pinged both registries and holds
            # open connections; this one must too before the comparison means anything.
            await engine_noop(client, promoted)
            for round_number in range(1, args.repeat + 1):
                log(f"no-op round {round_number} of {args.repeat}")
                results.add(
                    SERVER_NOOP, await promote_all(stub, token, images, expect_unchanged=True)
                )
                results.add(
                    COPY_NOOP,
                    await imgctl_copy(args.imgctl, pairs, len(images), copy_env, "unchanged"),
                )
                results.add(ENGINE_NOOP, await engine_noop(client, promoted))
                results.add(
                    SERVER_NOOP_SEQ,
                    await promote_all(stub, token, images, expect_unchanged=True, concurrency=1),
                )

    results.server_rss_mib = server.rss_mib()
    async with await AuditStore.open(server.database) as store:
        results.audit_rows = await store.count(action="promote")
    expected_rows = len(images) * (1 + 2 * args.repeat)
    if results.audit_rows != expected_rows:
        raise BenchError(
            f"the audit table holds {results.audit_rows} promote rows, expected {expected_rows}"
        )
    return results


# ---------------------------------------------------------------------------------- report


def report(args: argparse.Namespace, images: Sequence[Image], results: Results) -> dict[str, Any]:
    """Print the table and the comparisons; return the same as a JSON-ready document."""
    count = len(images)
    blob_count = sum(len(image.blobs) for image in images)
    blob_bytes = sum(blob.size for image in images for blob in image.blobs)
    medians = {key: results.median(key) for key in LABELS}
    latency = {
        key: (len(values), statistics.median(values), percentile(values, 0.95))
        for key in (SERVER_NOOP, SERVER_NOOP_SEQ)
        for values in [results.latencies(key)]
    }
    overhead = (medians[SERVER_NOOP] - medians[ENGINE_NOOP]) / count
    overhead_met = overhead * 1000 < TARGET_OVERHEAD_MS

    print()
    print(
        f"imgctl promote benchmark: {count} images x {args.platforms} platforms x "
        f"{args.layers} layers of {args.layer_mib} MiB"
    )
    print(
        f"blob data: {blob_bytes / MB:.1f} MB in {blob_count} blobs (layers + configs); "
        f"cold: single run; no-op: median of {args.repeat} runs"
    )
    python = platform.python_version()
    print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {python}")
    print()
    header = f"{'measurement':<40} {'seconds':>8} {'ms/image':>9} {'images/s':>9}"
    print(header)
    print("-" * len(header))
    for key, label in LABELS.items():
        seconds = medians[key]
        print(f"{label:<40} {seconds:8.3f} {seconds / count * 1000:9.1f} {count / seconds:9.1f}")
    print()
    for key, at_once in ((SERVER_NOOP, CONCURRENCY), (SERVER_NOOP_SEQ, 1)):
        calls, median, p95 = latency[key]
        print(
            f"no-op Promote latency, {calls} calls {at_once} at a time: "
            f"median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
        )
    print()
    comparison = f"{'comparison':<40} {'value':>9} {'target':>9} {'met':>5}"
    print(comparison)
    print("-" * len(comparison))
    print(
        f"{'server overhead per no-op, (c - e) / N':<40} {overhead * 1000:6.1f} ms "
        f"{f'< {TARGET_OVERHEAD_MS:.0f} ms':>9} {'yes' if overhead_met else 'NO':>5}"
    )
    ratios = {
        "server cold / imgctl copy cold (b / a)": medians[SERVER_COLD] / medians[COPY_COLD],
        "server no-op / imgctl copy no-op (c / d)": medians[SERVER_NOOP] / medians[COPY_NOOP],
        "server no-op / engine no-op (c / e)": medians[SERVER_NOOP] / medians[ENGINE_NOOP],
    }
    for label, value in ratios.items():
        print(f"{label:<40} {value:8.2f}x {'-':>9} {'-':>5}")
    print()
    # (d) is a new imgctl process doing what (e) does in this warm process: the difference is
    # the process's start-up (interpreter, imports, connections), measured in this run.
    startup = medians[COPY_NOOP] - medians[ENGINE_NOOP]
    print(
        f"(a) and (d) include starting the imgctl process: (d) - (e) = {startup:.3f} s in this "
        "run; (b), (c), (e) and (f) reuse warm connections."
    )
    print(
        f"audit rows written: {results.audit_rows} (one per Promote call)"
        + (
            f"; server RSS at the end: {results.server_rss_mib:.0f} MiB"
            if results.server_rss_mib is not None
            else ""
        )
    )
    return {
        "parameters": {
            "images": count,
            "platforms": args.platforms,
            "layers": args.layers,
            "layer_mib": args.layer_mib,
            "repeat": args.repeat,
            "concurrency": CONCURRENCY,
        },
        "blob_bytes": blob_bytes,
        "blob_count": blob_count,
        "measurements": {
            key: {
                "label": LABELS[key],
                "median_seconds": round(medians[key], 4),
                "runs_seconds": [round(p.seconds, 4) for p in results.passes[key]],
                "ms_per_image": round(medians[key] / count * 1000, 2),
            }
            for key in LABELS
        },
        "noop_latency_ms": {
            key: {"calls": calls, "median": round(median * 1000, 2), "p95": round(p95 * 1000, 2)}
            for key, (calls, median, p95) in latency.items()
        },
        "server_overhead_per_noop_ms": {
            "value": round(overhead * 1000, 2),
            "target": TARGET_OVERHEAD_MS,
            "met": overhead_met,
        },
        "ratios": {label: round(value, 4) for label, value in ratios.items()},
        "copy_process_startup_seconds": round(startup, 4),
        "audit_rows": results.audit_rows,
        "server_rss_mib": (
            round(results.server_rss_mib, 1) if results.server_rss_mib is not None else None
        ),
        "digests_verified": True,
    }


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; --quick picks 4 images."""
    parser = argparse.ArgumentParser(
        description="Time promotions through imgctl server against the copy engine alone."
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--images", type=int, default=None, help="images to promote (default 20)")
    size.add_argument("--quick", action="store_true", help="4 images: a fast demonstration")
    parser.add_argument("--platforms", type=int, default=2, help="platforms per image index")
    parser.add_argument("--layers", type=int, default=2, help="layers per platform manifest")
    parser.add_argument("--layer-mib", type=float, default=1, help="approximate MiB per layer")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds of the no-op measurements; the median is reported (default 5, --quick 3)",
    )
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where registries and the audit database live (default: the system temp dir)",
    )
    default_imgctl = Path(sys.executable).parent / "imgctl"
    parser.add_argument(
        "--imgctl",
        default=str(default_imgctl) if default_imgctl.exists() else shutil.which("imgctl"),
        help="imgctl executable (default: the one installed with this Python)",
    )
    args = parser.parse_args(argv)
    args.images = 4 if args.quick else (args.images if args.images is not None else 20)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.layer_mib == int(args.layer_mib):
        args.layer_mib = int(args.layer_mib)
    for name in ("images", "platforms", "layers", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.layer_mib <= 0:
        parser.error("--layer-mib must be positive")
    if not args.imgctl:
        parser.error("imgctl not found; pass --imgctl PATH")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through main's finally blocks, so SIGTERM cleans up like Ctrl-C does.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Set everything up, measure, report; always stop every process and remove the temp dir."""
    args = parse_args(argv)
    for binary in ("docker-registry", "skopeo", "ssh-agent", "ssh-add", "ssh-keygen"):
        require_binary(binary)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="imgctl-bench-promote-", dir=args.work_dir))
    with ExitStack() as stack:
        # Callbacks run last-registered first: processes stop before the directory goes.
        if args.keep:
            stack.callback(log, f"kept {workdir}")
        else:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        registries = Registries(workdir)
        stack.callback(registries.stop_all)
        try:
            dev, prod = registries.start("dev"), registries.start("prod")
            log(
                f"building and pushing {args.images} images to {dev.host} "
                f"(untimed; work dir {workdir})"
            )
            started = time.perf_counter()
            images = prepare_images(
                workdir,
                dev,
                args.images,
                args.platforms,
                args.layers,
                int(args.layer_mib * (1 << 20)),
            )
            key = keygen(workdir / "keys", "ed25519", name=USER)
            agent = Agent(workdir / "agent")
            stack.callback(agent.stop)
            agent.add(key)
            idp = start_idp(
                args.imgctl,
                workdir / "idp",
                {USER: {"keys": [key.line], "email": f"{USER}@example.com", "groups": [GROUP]}},
                audiences=[AUDIENCE],
                secret=CLIENT_SECRET,
            )
            stack.callback(idp.stop)
            server = start_server(args.imgctl, workdir, dev, prod, idp.url, stack)
            token = get_token(args.imgctl, workdir, agent, idp.url)
            log(f"setup took {time.perf_counter() - started:.1f} s")
            results = asyncio.run(measure(args, images, dev, prod, server, token, workdir))
            code = server.stop()
            if code != 0:
                raise BenchError(
                    f"imgctl server exited with {code} on SIGTERM: "
                    f"{server.log_path.read_text()[-2000:]}"
                )
            summary = report(args, images, results)
            if args.json:
                print()
                print(json.dumps(summary, indent=2))
            return 0
        except (BenchError, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"bench: error: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
