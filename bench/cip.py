"""Benchmark: planning kpromo manifests with ``imgctl cip``.

Default: a plain manifest of N images that are all already promoted (a no-op). Starts a local
registry, writes N small single-platform images into two repositories each (``staging/app-NNNN``
and ``prod/app-NNNN``, pushed directly with imgctl's client: no skopeo, so setup stays fast),
writes a plain manifest promoting staging -> prod, then times ``imgctl cip --manifest ... -o
json`` (a dry run) and prints wall time and registry requests per edge next to the targets
(< 10 s, <= 2 requests per edge).

``--real-tree``: the whole kubernetes/k8s.io registry.k8s.io tree (tests/data/README.md). Times
``imgctl cip --thin-manifest-dir TREE --parse-only`` (start, load, every edge), then the steps
in-process (reading the YAML, loading the tree, making the edges, picking a shard), then a real
plan of one shard: the tree's registries moved under a loopback registry holding none of its
images, so every edge of the shard costs its three HEADs.

    python bench/cip.py              # 1,000 images
    python bench/cip.py --images 200 --json
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
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from tests.support.registry import Registry, require_binary  # noqa: E402

from imgctl.oci import Digest, Reference  # noqa: E402
from imgctl.remote import RegistryClient  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def log(message: str) -> None:
    """Progress goes to stderr; results to stdout."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def populate(host: str, count: int) -> dict[str, str]:
    """Push ``count`` images to staging/ and prod/; return image name -> manifest digest."""
    layer = b"imgctl cip benchmark layer\n" * 64
    layer_digest = Digest.of(layer)
    digests: dict[str, str] = {}
    gate = asyncio.Semaphore(16)
    async with RegistryClient() as client:

        async def one(number: int) -> None:
            name = f"app-{number:04d}"
            config = json.dumps({"architecture": "amd64", "os": "linux", "n": number}).encode()
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": str(Digest.of(config)),
                        "size": len(config),
                    },
                    "layers": [
                        {"mediaType": OCI_LAYER, "digest": str(layer_digest), "size": len(layer)}
                    ],
                },
                sort_keys=True,
            ).encode()
            async with gate:
                for path in ("staging", "prod"):
                    ref = Reference.parse(f"{host}/{path}/{name}:v1")
                    for blob in (layer, config):
                        location = await client.start_upload(ref)
                        assert location is not None
                        await client.finish_upload(ref, location, Digest.of(blob), blob)
                    digests[name] = str(await client.put_manifest(ref, manifest, OCI_MANIFEST))

        await asyncio.gather(*(one(n) for n in range(count)))
    return digests


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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if the plan is wrong or a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images in the manifest")
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
    require_binary("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-cip-"))
    registry = Registry(work / "registry")
    try:
        registry.start()
        log(f"pushing {args.images} images twice to {registry.host} (untimed)")
        started = time.perf_counter()
        digests = asyncio.run(populate(registry.host, args.images))
        log(f"setup took {time.perf_counter() - started:.1f} s")
        manifest = work / "manifest.yaml"
        manifest.write_text(
            json.dumps(
                {
                    "registries": [
                        {"name": f"{registry.host}/staging", "src": True},
                        {"name": f"{registry.host}/prod"},
                    ],
                    "images": [
                        {"name": name, "dmap": {digest: ["v1"]}}
                        for name, digest in sorted(digests.items())
                    ],
                }
            )
        )
        env = os.environ | {"IMGCTL_ENABLE_IAAS_AUTH": "false"}
        command = [
            args.imgctl,
            "cip",
            "--manifest",
            str(manifest),
            "-o",
            "json",
            "--rate-limit",
            "100000",
            "--burst",
            "1000",
        ]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            print(f"bench: error: imgctl cip failed: {result.stderr.strip()}", file=sys.stderr)
            return 1
        plan = json.loads(result.stdout)
        edges = plan["summary"]["edges"]
        present = plan["summary"]["present"]
        per_edge = plan["requests"] / edges
        rows = [
            ("edges (images x tags x destinations)", f"{edges}", "-", "-"),
            ("already present", f"{present}", f"{edges}", "yes" if present == edges else "NO"),
            (
                "wall time, imgctl start included",
                f"{seconds:.2f} s",
                "< 10 s",
                "yes" if seconds < 10 else "NO",
            ),
            (
                "registry requests per edge",
                f"{per_edge:.3f}",
                "<= 2",
                "yes" if per_edge <= 2 else "NO",
            ),
            ("edges per second", f"{edges / seconds:.0f}", "-", "-"),
        ]
        print(f"\nimgctl cip plan (no-op) for {args.images} images against one local registry\n")
        print(f"{'measurement':40} {'value':>10} {'target':>10} {'met':>5}")
        print("-" * 68)
        for label, value, target, met in rows:
            print(f"{label:40} {value:>10} {target:>10} {met:>5}")
        if args.json:
            print(
                json.dumps(
                    {
                        "images": args.images,
                        "edges": edges,
                        "seconds": round(seconds, 3),
                        "requests": plan["requests"],
                        "requests_per_edge": round(per_edge, 4),
                    },
                    indent=2,
                )
            )
        return 0 if present == edges and seconds < 10 and per_edge <= 2 else 1
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
