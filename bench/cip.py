"""Benchmark: planning kpromo manifests with ``imgctl cip``, and how its cost grows.

Default: for each size N of ``--sizes`` (images), a local docker-registry holding N small
single-platform images twice, in ``staging/app-RRRRR`` and ``prod/app-RRRRR`` (``--per-repository``
images, tags ``vN``, to a repository), written straight into the registry's filesystem layout
(untimed, in ``--work-dir``, /dev/shm by default: pushing 50,000 images through the API would
take a quarter of an hour, writing them to a busy disk minutes, to a tmpfs seconds), and a plain
manifest promoting staging -> prod where every edge is already present. Its requests: one HEAD
per edge, one tag list per source repository (imgctl looks for referrers by their digest tags:
docker-registry has no referrers API, which one probe tells it) and the ping, so requests per edge
are 1 + (repositories + 2) / edges: 1.0052 at 10,000 with 200 images a repository (the real
registry.k8s.io tree has about 880 edges per source repository), 2.0 with one.
Then, per size:

* ``--repeat`` rounds, alternating which goes first, time (a) ``imgctl cip --manifest ... -o json``
  (a dry run, interpreter start included, the rate limit raised for the local registry), (a')
  ``imgctl cip --manifest ... --parse-only`` (the same start, manifest and edges, no request) and
  (b) the request floor: a bare keep-alive ``http.client`` loop issuing exactly the requests
  imgctl made in its first run (HEADs of the tags, tag lists, the referrers API probe, the
  ping), as many at once as imgctl (16);
* the registry's access log counts the requests of every run: imgctl's own count must match it,
  and every imgctl run must make the same requests.

It prints per size the medians of wall time and CPU (imgctl, the floor, the registry), registry
requests per edge, imgctl's time over the floor's, and the growth: time per edge at each size and
its ratio between the largest and the smallest size (linear: about 1). Every check is a ratio to
what the same run measured: imgctl's time over (its ``--parse-only`` run + the floor's) <= 1.5
at every size, imgctl's
requests over the fewest a plan can send (a HEAD per edge, a tag list per source repository, the
probe and the ping) = 1, and the time per edge at the largest size over the smallest <= 1.25.
Exit status 1 when a plan is wrong (an edge not found present, imgctl's request count not what
the registry saw) or a check fails; no absolute time decides it.

``--real-tree``: the whole kubernetes/k8s.io registry.k8s.io tree (tests/data/README.md). Times
``imgctl cip --thin-manifest-dir TREE --parse-only`` (start, load, every edge), then the steps
in-process (reading the YAML, loading the tree, making the edges, picking a shard), then a real
plan of one shard: the tree's registries moved under a loopback registry holding none of its
images, so every edge of the shard costs its three HEADs.

    python bench/cip.py --sizes 1000,10000,50000 --repeat 3   # the growth curve
    python bench/cip.py --sizes 1000 --repeat 1 --json
    python bench/cip.py --real-tree  # tests/data/k8s.io/576d58a4.../registry.k8s.io
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python bench/cip.py``, this file's directory comes first on sys.path, where
# bench/copy.py would shadow the standard library's ``copy``. Put the repository root there.
_BENCH_DIR = Path(__file__).resolve().parent
ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from statistics import median  # noqa: E402
from typing import Any  # noqa: E402

from tests.support.registry import Registry, require_binary  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def log(message: str) -> None:
    """Progress goes to stderr; results to stdout."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


REAL_TREE = (
    ROOT
    / "tests"
    / "data"
    / "k8s.io"
    / "576d58a4e8553ac4ae81f3dcde680ed5ff4ebc3b"
    / "registry.k8s.io"
)


def _best(runs: int, work: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``work`` (the machine is shared: the rest is noise)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def real_tree(args: argparse.Namespace) -> int:
    """Load, make the edges of, and plan a shard of the real registry.k8s.io tree."""
    import resource

    import yaml

    from imgctl._internal import strict_yaml
    from imgctl.promotion.manifests import edges_of, load_thin_tree
    from imgctl.promotion.plan import select_shard

    tree = Path(args.real_tree)
    if not (tree / "manifests").is_dir():
        print(f"bench: error: no thin tree at {tree}; see tests/data/README.md", file=sys.stderr)
        return 1
    env = os.environ | {"IMGCTL_ENABLE_IAAS_AUTH": "false"}
    command = [args.imgctl, "cip", "--thin-manifest-dir", str(tree), "--parse-only", "-o", "json"]
    walls: list[float] = []
    for _ in range(args.runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        walls.append(time.perf_counter() - started)
        if result.returncode != 0:
            print(f"bench: error: imgctl cip failed: {result.stderr.strip()}", file=sys.stderr)
            return 1
    parsed = json.loads(result.stdout)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    biggest = max((tree / "images").glob("*/images.yaml"), key=lambda p: p.stat().st_size)
    text = biggest.read_text()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    strict_s = _best(args.runs, lambda: strict_yaml.compose(text))
    plain_s = _best(args.runs, lambda: yaml.compose(text, Loader=loader))
    load_s = _best(args.runs, lambda: load_thin_tree(tree))
    manifests = load_thin_tree(tree).manifests
    edges_s = _best(args.runs, lambda: edges_of(manifests))
    edges = edges_of(manifests)
    shard_s = _best(args.runs, lambda: select_shard(edges, 0, args.shard_count))

    planned = _plan_a_shard(args, tree, env)
    if planned is None:
        return 1
    plan_s, plan = planned
    in_shard = plan["summary"]["edges"]
    rows = [
        ("tree", f"{tree.parent.name[:8]} {tree.name}"),
        (
            "manifests / images / digests",
            f"{parsed['manifests']} / {parsed['images']} / {parsed['digests']}",
        ),
        ("edges", f"{parsed['edges']:,}"),
        ("warnings (entries left out)", f"{len(parsed['warnings'])}"),
        ("imgctl cip --parse-only, wall, best", f"{min(walls):.2f} s"),
        ("  its peak memory", f"{peak_mib:.0f} MiB"),
        (f"strict YAML, biggest file ({len(text) / 1e6:.2f} MB)", f"{strict_s:.3f} s"),
        ("  PyYAML compose, same file", f"{plain_s:.3f} s"),
        ("load_thin_tree (every file)", f"{load_s:.2f} s"),
        ("edges_of", f"{edges_s:.2f} s"),
        (f"select_shard (1 of {args.shard_count})", f"{shard_s:.2f} s"),
        (f"plan of shard 0 of {args.shard_count}, wall", f"{plan_s:.2f} s"),
        (
            "  its edges, all lost (nothing in the registry)",
            f"{in_shard} ({plan['summary']['lost']})",
        ),
        (
            "  registry requests",
            f"{plan['requests']} ({plan['requests'] / max(in_shard, 1):.2f} per edge)",
        ),
    ]
    print(f"\nimgctl cip on the real kubernetes/k8s.io tree ({len(walls)} runs, best)\n")
    for label, value in rows:
        print(f"{label:52} {value:>22}")
    if args.json:
        print(json.dumps(dict(rows), indent=2))
    return 0


def _plan_a_shard(
    args: argparse.Namespace, tree: Path, env: dict[str, str]
) -> tuple[float, dict[str, Any]] | None:
    """Plan one shard with every registry of ``tree`` moved under a loopback registry."""
    import yaml

    require_binary("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-cip-tree-"))
    registry = Registry(work / "registry")
    try:
        registry.start()
        moved = work / "tree"
        for manifest in (tree / "manifests").glob("*/promoter-manifest.yaml"):
            document = yaml.safe_load(manifest.read_text())
            for entry in document["registries"]:
                entry["name"] = f"{registry.host}/{entry['name']}"
            target = moved / "manifests" / manifest.parent.name / manifest.name
            target.parent.mkdir(parents=True)
            target.write_text(json.dumps(document))
            images = tree / "images" / manifest.parent.name / "images.yaml"
            (moved / "images" / manifest.parent.name).mkdir(parents=True)
            shutil.copyfile(images, moved / "images" / manifest.parent.name / "images.yaml")
        command = [
            args.imgctl,
            "cip",
            "--thin-manifest-dir",
            str(moved),
            "-o",
            "json",
            "--shard-index",
            "0",
            "--shard-count",
            str(args.shard_count),
            "--rate-limit",
            "100000",
            "--burst",
            "1000",
        ]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            print(f"bench: error: imgctl cip failed: {result.stderr.strip()}", file=sys.stderr)
            return None
        plan: dict[str, Any] = json.loads(result.stdout)
        return seconds, plan
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


# What imgctl asks a registry for when it reads a manifest (imgctl.oci MANIFEST_ACCEPT).
MANIFEST_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.artifact.manifest.v1+json"
)
CONCURRENCY = 16  # imgctl.promotion.plan.make_plan's default, matched by the floor
GROWTH_LIMIT = 1.25  # time per edge, largest size over smallest: above this it is not linear
# imgctl's wall time over the floor of the same run: its own work before any request
# (``--parse-only``: start, manifests, edges) plus the same requests from a bare loop. 1.03-1.19
# measured (200 to 10,000 images, load 3-6): above 1.5, imgctl's request path costs half again
# what the requests themselves do.
FLOOR_LIMIT = 1.5


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_layout(storage: Path, count: int, per_repository: int) -> dict[str, dict[str, str]]:
    """Write ``count`` images into docker-registry's filesystem layout, in staging/ and prod/.

    Every image shares one layer and one config; its manifest differs by an annotation, so each
    has its own digest. Returns repository -> {digest: tag}. The layout is distribution's
    (registry/storage/paths.go): blobs by digest, and per repository the links to its layers,
    its manifest revisions and its tags.
    """
    v2 = storage / "docker" / "registry" / "v2"
    blobs = v2 / "blobs" / "sha256"

    def put_blob(data: bytes) -> str:
        hex_ = _sha256(data)
        folder = blobs / hex_[:2] / hex_
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").write_bytes(data)
        return hex_

    def link(path: str, hex_: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            out.write(f"sha256:{hex_}")

    layer = b"imgctl cip benchmark layer\n" * 64
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer_hex, config_hex = put_blob(layer), put_blob(config)
    images: dict[str, dict[str, str]] = {}
    for number in range(count):
        repository = f"app-{number // per_repository:05d}"
        tag = f"v{number}"
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": f"sha256:{config_hex}",
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": OCI_LAYER, "digest": f"sha256:{layer_hex}", "size": len(layer)}
                ],
                "annotations": {"org.example.imgctl.bench": str(number)},
            },
            sort_keys=True,
        ).encode()
        hex_ = put_blob(manifest)
        images.setdefault(repository, {})[f"sha256:{hex_}"] = tag
        for path in ("staging", "prod"):
            root = f"{v2}/repositories/{path}/{repository}"
            if number % per_repository == 0:  # the repository's first image: its layer links
                for blob in (layer_hex, config_hex):
                    link(f"{root}/_layers/sha256/{blob}/link", blob)
            link(f"{root}/_manifests/revisions/sha256/{hex_}/link", hex_)
            link(f"{root}/_manifests/tags/{tag}/current/link", hex_)
            link(f"{root}/_manifests/tags/{tag}/index/sha256/{hex_}/link", hex_)
    return images


def write_manifest(path: Path, host: str, images: dict[str, dict[str, str]]) -> int:
    """A plain promoter manifest staging -> prod on ``host``; returns its number of edges."""
    path.write_text(
        json.dumps(
            {
                "registries": [
                    {"name": f"{host}/staging", "src": True},
                    {"name": f"{host}/prod"},
                ],
                "images": [
                    {"name": name, "dmap": {digest: [tag] for digest, tag in dmap.items()}}
                    for name, dmap in sorted(images.items())
                ],
            }
        )
    )
    return sum(len(dmap) for dmap in images.values())


def _cip_command(args: argparse.Namespace, manifest: Path) -> list[str]:
    return [
        args.imgctl,
        "cip",
        "--manifest",
        str(manifest),
        "-o",
        "json",
        "--rate-limit",
        "1000000",
        "--burst",
        "1000",
    ]


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


@dataclass
class Timing:
    """One timed run: wall seconds, its own CPU seconds and the registry's."""

    wall: float
    cpu: float
    registry_cpu: float


@dataclass
class SizeResult:
    """Everything measured at one size."""

    images: int
    repositories: int
    edges: int
    present: int = -1  # edges every imgctl run found present (-1: they disagreed)
    requests: int = -1  # per imgctl run (-1: runs disagreed, or with the access log)
    counted: Counter[str] = field(default_factory=Counter)  # the registry's count, by kind
    imgctl: list[Timing] = field(default_factory=list)
    floor: list[Timing] = field(default_factory=list)
    local: list[Timing] = field(default_factory=list)  # imgctl cip --parse-only: no requests
    loads: list[float] = field(default_factory=list)  # 1-minute load average at each run

    def check_imgctl(self, plan: dict[str, Any], seen: list[tuple[str, str, int]]) -> None:
        """Keep one run's plan and requests; any disagreement between runs or counts shows."""
        counted = Counter(_kind(m, p) for m, p, _ in seen)
        present = plan["summary"]["present"] if plan["summary"]["edges"] == self.edges else -1
        requests = plan["requests"] if plan["requests"] == len(seen) else -1
        if not self.imgctl:
            self.present, self.requests, self.counted = present, requests, counted
            return
        if present != self.present:
            self.present = -1
        if requests != self.requests or counted != self.counted:
            self.requests = -1

    def med(self, runs: list[Timing], what: str) -> float:
        return median(getattr(t, what) for t in runs)


def run_imgctl(args: argparse.Namespace, manifest: Path, registry_pid: int) -> tuple[Timing, Any]:
    """Time one ``imgctl cip`` dry run; returns the timing and its JSON plan."""
    env = os.environ | {"IMGCTL_ENABLE_IAAS_AUTH": "false"}
    cpu0, reg0 = _children_cpu(), _cpu_of(registry_pid)
    started = time.perf_counter()
    result = subprocess.run(
        _cip_command(args, manifest), capture_output=True, text=True, env=env, timeout=1800
    )
    wall = time.perf_counter() - started
    timing = Timing(wall, _children_cpu() - cpu0, _cpu_of(registry_pid) - reg0)
    if result.returncode != 0:
        raise RuntimeError(f"imgctl cip failed ({result.returncode}): {result.stderr.strip()}")
    return timing, json.loads(result.stdout)


def run_local(args: argparse.Namespace, manifest: Path, registry_pid: int) -> Timing:
    """Time ``imgctl cip --parse-only`` of the same manifest: start, load, edges; no request."""
    env = os.environ | {"IMGCTL_ENABLE_IAAS_AUTH": "false"}
    command = [args.imgctl, "cip", "--manifest", str(manifest), "--parse-only"]
    cpu0, reg0 = _children_cpu(), _cpu_of(registry_pid)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"imgctl cip --parse-only failed: {result.stderr.strip()}")
    return Timing(wall, _children_cpu() - cpu0, _cpu_of(registry_pid) - reg0)


def run_floor(host: str, requests: list[tuple[str, str, int]], registry_pid: int) -> Timing:
    """Issue ``requests`` (method, path, expected status) over CONCURRENCY keep-alive
    connections; time them."""
    failures: list[str] = []

    def worker(share: list[tuple[str, str, int]]) -> None:
        connection = http.client.HTTPConnection(host, timeout=60)
        try:
            for method, path, status in share:
                headers = {"Accept": MANIFEST_ACCEPT} if "/manifests/" in path else {}
                connection.request(method, path, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != status:
                    failures.append(f"{method} {path}: {response.status}")
        finally:
            connection.close()

    shares = [requests[i::CONCURRENCY] for i in range(CONCURRENCY)]
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares if share]
    cpu0, reg0 = time.process_time(), _cpu_of(registry_pid)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    timing = Timing(wall, time.process_time() - cpu0, _cpu_of(registry_pid) - reg0)
    if failures:
        raise RuntimeError(f"the floor's requests failed: {failures[:3]}")
    return timing


def _kind(method: str, path: str) -> str:
    if path.rstrip("/") == "/v2":
        return "ping"
    if method == "HEAD" and "/manifests/" in path:
        return "HEAD manifest"
    if "/tags/list" in path:
        return "tag list"
    if "/referrers/" in path:
        return "referrers API"
    return f"{method} other"


class CountingRegistry(Registry):
    """A docker-registry with its access log on: it counts every request it answers."""

    def _config(self) -> str:
        return super()._config().replace("    disabled: true", "    disabled: false")

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def requests_since(self, offset: int) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request answered since ``offset`` in the log."""
        with open(self.log_path, "rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode("utf-8", "replace")
        return [(m.group(1), m.group(2), int(m.group(3))) for m in _ACCESS_LINE.finditer(text)]


# distribution's access log: combined log format, one line per answered request.
_ACCESS_LINE = re.compile(r'^\S+ - - \[[^\]]*\] "([A-Z]+) (\S+) HTTP/[0-9.]+" (\d+) ', re.M)


def measure_size(args: argparse.Namespace, images_count: int, work: Path) -> SizeResult:
    """Populate a registry with ``images_count`` images, then time imgctl and the floor.

    The registry's access log counts what each run asked; the first imgctl run's requests are
    what the floor replays.
    """
    registry = CountingRegistry(work / f"registry-{images_count}")
    started = time.perf_counter()
    images = write_layout(registry.storage, images_count, args.per_repository)
    log(f"{images_count} images written in {time.perf_counter() - started:.1f} s (untimed)")
    try:
        registry.start()
        assert registry.process is not None
        pid = registry.process.pid
        manifest = work / f"manifest-{images_count}.json"
        edges = write_manifest(manifest, registry.host, images)
        result = SizeResult(images_count, len(images), edges)
        recorded: list[tuple[str, str, int]] = []
        for round_ in range(args.repeat):
            # Alternate which goes first: neither always meets a warm (or a busy) machine.
            # The first round starts with imgctl: the floor replays what it asked.
            order = ("imgctl", "floor") if round_ % 2 == 0 else ("floor", "imgctl")
            for which in order:
                result.loads.append(os.getloadavg()[0])
                offset = registry.log_size()
                if which == "imgctl":
                    timing, plan = run_imgctl(args, manifest, pid)
                    seen = registry.requests_since(offset)
                    if not recorded:
                        recorded = seen
                    result.check_imgctl(plan, seen)
                    result.imgctl.append(timing)
                    result.local.append(run_local(args, manifest, pid))
                else:
                    result.floor.append(run_floor(registry.host, recorded, pid))
                    seen = registry.requests_since(offset)
                    if len(seen) != len(recorded):
                        raise RuntimeError(
                            f"the floor sent {len(recorded)} requests, the registry saw {len(seen)}"
                        )
            log(
                f"{images_count}: round {round_ + 1}: imgctl {result.imgctl[-1].wall:.2f} s, "
                f"floor {result.floor[-1].wall:.2f} s"
            )
        return result
    finally:
        registry.stop()
        shutil.rmtree(registry.root, ignore_errors=True)


def report(args: argparse.Namespace, results: list[SizeResult]) -> int:
    """Print the table, the growth and the targets; the exit status follows from them."""
    loads = [load for r in results for load in r.loads]
    print(
        f"\nimgctl cip plan (dry run, every edge present), one local docker-registry, "
        f"{args.per_repository} images per repository, medians of {args.repeat} round(s), "
        f"1-minute load average {min(loads):.1f}-{max(loads):.1f} during the runs\n"
    )
    header = (
        f"{'images':>7} {'edges':>7} {'req/edge':>9} {'HEAD':>7} {'tags':>6} "
        f"{'imgctl s':>9} {'cpu s':>7} {'floor s':>8} {'cpu s':>7} {'x floor':>8} "
        f"{'parse s':>8} {'reg cpu':>8} {'us/edge':>8} {'floor us/edge':>14}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        wall, floor = r.med(r.imgctl, "wall"), r.med(r.floor, "wall")
        print(
            f"{r.images:>7} {r.edges:>7} {r.requests / r.edges:>9.4f} "
            f"{r.counted['HEAD manifest']:>7} {r.counted['tag list']:>6} "
            f"{wall:>9.2f} {r.med(r.imgctl, 'cpu'):>7.2f} {floor:>8.2f} "
            f"{r.med(r.floor, 'cpu'):>7.2f} {wall / floor:>8.2f} {r.med(r.local, 'wall'):>8.2f} "
            f"{r.med(r.imgctl, 'registry_cpu'):>8.2f} {wall / r.edges * 1e6:>8.0f} "
            f"{floor / r.edges * 1e6:>14.0f}"
        )
    checks: list[tuple[str, str, str, bool]] = []
    for r in results:
        checks.append(
            (
                f"{r.images}: every edge found present",
                f"{r.present}",
                f"{r.edges}",
                r.present == r.edges,
            )
        )
        checks.append(
            (
                f"{r.images}: imgctl's request count = the registry's, every run",
                f"{sum(r.counted.values())}",
                "equal",
                r.requests == sum(r.counted.values()),
            )
        )
    for r in results:
        # The floor of a whole run: imgctl's work before any request (start, manifests, edges:
        # --parse-only) plus the same requests sent by a bare loop.
        ratio = r.med(r.imgctl, "wall") / (r.med(r.local, "wall") + r.med(r.floor, "wall"))
        checks.append(
            (
                f"{r.images}: imgctl over parse-only + request floor",
                f"{ratio:.2f}",
                f"<= {FLOOR_LIMIT:g}",
                ratio <= FLOOR_LIMIT,
            )
        )
        # The fewest requests a plan of edges that are all present can send.
        fewest = r.edges + r.repositories + 2
        checks.append(
            (
                f"{r.images}: requests over the fewest ({fewest})",
                f"{r.requests / fewest:.4f}",
                "= 1",
                r.requests == fewest,
            )
        )
    growth: dict[str, float] = {}
    if len(results) > 1:
        small, large = results[0], results[-1]
        per_small = small.med(small.imgctl, "wall") / small.edges
        for r in results[1:]:
            ratio = r.med(r.imgctl, "wall") / r.edges / per_small
            floor_ratio = (r.med(r.floor, "wall") / r.edges) / (
                small.med(small.floor, "wall") / small.edges
            )
            cpu_ratio = (r.med(r.imgctl, "cpu") / r.edges) / (
                small.med(small.imgctl, "cpu") / small.edges
            )
            growth[f"{r.images}/{small.images}"] = ratio
            print(
                f"time per edge at {r.images} over {small.images}: imgctl {ratio:.2f}, "
                f"floor {floor_ratio:.2f}; imgctl's CPU per edge {cpu_ratio:.2f} (linear: about "
                "1, less while the start-up weighs on the smallest size)"
            )
        ratio = growth[f"{large.images}/{small.images}"]
        checks.append(
            (
                f"time per edge, {large.images} over {small.images} images",
                f"{ratio:.2f}",
                f"<= {GROWTH_LIMIT}",
                ratio <= GROWTH_LIMIT,
            )
        )
    print(f"\n{'check':56} {'value':>16} {'target':>10} {'met':>4}")
    print("-" * 89)
    for label, value, target, met in checks:
        print(f"{label:56} {value:>16} {target:>10} {'yes' if met else 'NO':>4}")
    if args.json:
        print(
            json.dumps(
                {
                    "per_repository": args.per_repository,
                    "repeat": args.repeat,
                    "load_average": [min(loads), max(loads)],
                    "sizes": [
                        {
                            "images": r.images,
                            "repositories": r.repositories,
                            "edges": r.edges,
                            "requests": r.requests,
                            "requests_by_kind": dict(r.counted),
                            "imgctl": [vars(t) for t in r.imgctl],
                            "floor": [vars(t) for t in r.floor],
                            "parse_only": [vars(t) for t in r.local],
                        }
                        for r in results
                    ],
                    "growth": growth,
                },
                indent=2,
            )
        )
    return 0 if all(met for *_, met in checks) else 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a plan is wrong or a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="1000,10000,50000",
        help="images per run, comma-separated, smallest first (default: 1000,10000,50000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per size (medians)")
    parser.add_argument(
        "--per-repository",
        type=int,
        default=200,
        help="images (digests, one tag each) per repository (default 200)",
    )
    parser.add_argument(
        "--work-dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="where the registries keep their files (default: /dev/shm, a tmpfs, if there is "
        "one: writing 50,000 images there takes seconds, on a busy disk many minutes)",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument(
        "--imgctl", default=str(Path(sys.executable).parent / "imgctl"), help="imgctl to run"
    )
    parser.add_argument(
        "--real-tree",
        nargs="?",
        const=str(REAL_TREE),
        default=None,
        metavar="DIR",
        help="time the real registry.k8s.io tree instead (default: tests/data/k8s.io/...)",
    )
    parser.add_argument("--runs", type=int, default=3, help="--real-tree: timings per step")
    parser.add_argument(
        "--shard-count", type=int, default=100, help="--real-tree: plan shard 0 of this many"
    )
    args = parser.parse_args(argv)
    if args.real_tree:
        return real_tree(args)
    try:
        sizes = sorted(int(size) for size in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes: give whole numbers separated by commas, not {args.sizes!r}")
    if not sizes or not all(0 < size <= 1_000_000 for size in sizes):
        parser.error("--sizes: each between 1 and 1,000,000")
    if not 1 <= args.repeat <= 100 or not 1 <= args.per_repository <= 100_000:
        parser.error("--repeat: 1 to 100; --per-repository: 1 to 100,000")
    require_binary("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-cip-", dir=args.work_dir))
    try:
        results = [measure_size(args, size, work) for size in sizes]
    except RuntimeError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(args, results)


if __name__ == "__main__":
    sys.exit(main())
