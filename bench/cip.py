"""Benchmark: planning a kpromo manifest of N images that are all already promoted (a no-op).

Starts a local registry, writes N small single-platform images into two repositories each
(``staging/app-NNNN`` and ``prod/app-NNNN``, pushed directly with imgctl's client: no skopeo, so
setup stays fast), writes a plain manifest promoting staging -> prod, then times
``imgctl cip --manifest ... -o json`` (a dry run) and prints wall time and registry requests per
edge next to the targets (< 10 s, <= 2 requests per edge).

    python bench/cip.py              # 1,000 images
    python bench/cip.py --images 200 --json
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

from tests.support.registry import Registry, require_binary  # noqa: E402

from imgctl.oci import Digest, Reference  # noqa: E402
from imgctl.registry import RegistryClient  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if the plan is wrong or a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images in the manifest")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument(
        "--imgctl", default=str(Path(sys.executable).parent / "imgctl"), help="imgctl to run"
    )
    args = parser.parse_args(argv)
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
