"""Benchmark: signing 100 promoted images, as ``imgctl cip --sign-key`` and the server do.

Starts a local docker-registry, pushes N small single-platform images straight into ``prod/``
with imgctl's client (untimed: they stand for images just promoted), then signs every digest
with an ECDSA P-256 key through ``imgctl.promotion.signing.sign_images`` (``sign_image`` per
digest, ``--max-signature-ops`` at a time) and times it, counting registry requests with the
client's own counter. Rows, all in the same run:

* first signing, 50 at a time (the default) and one at a time;
* the same digests again (kpromo's "a second run signs nothing": each is found signed);
* the named limit: one manifest GET, one blob push (POST + PUT) and one manifest PUT per image,
  4 requests: what appending one signature layer needs at the least (the payload's blob; the
  config blob and the read-back are imgctl's own choices, see the breakdown);
* a breakdown of one image's requests, read from a counting proxy in front of the registry.

    python bench/sign.py              # 100 images
    python bench/sign.py --images 20 --json
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python bench/sign.py``, this file's directory comes first on sys.path, where
# bench/copy.py would shadow the standard library's ``copy``. Put the repository root there.
_BENCH_DIR = Path(__file__).resolve().parent
ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from tests.support.proxy import FaultProxy  # noqa: E402
from tests.support.registry import Registry, require_binary  # noqa: E402

from imgctl.oci import Digest, Reference  # noqa: E402
from imgctl.promotion.signing import sign_images  # noqa: E402
from imgctl.remote import RegistryClient  # noqa: E402
from imgctl.trust import Signer, load_signer  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
# One manifest GET + one blob push (POST + PUT) + one manifest PUT.
LIMIT_REQUESTS = 4


def log(message: str) -> None:
    """Progress goes to stderr; results to stdout."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def populate(host: str, names: list[str]) -> list[Reference]:
    """Push one small image per name to prod/NAME:v1; return each REPO@DIGEST."""
    layer = b"imgctl sign benchmark layer\n" * 64
    refs: list[Reference] = []
    gate = asyncio.Semaphore(16)
    async with RegistryClient() as client:

        async def one(name: str) -> None:
            config = json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()
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
                        {
                            "mediaType": OCI_LAYER,
                            "digest": str(Digest.of(layer)),
                            "size": len(layer),
                        }
                    ],
                },
                sort_keys=True,
            ).encode()
            ref = Reference.parse(f"{host}/prod/{name}:v1")
            async with gate:
                for blob in (layer, config):
                    await client.push_blob(ref, Digest.of(blob), blob, len(blob))
                digest = await client.put_manifest(ref, manifest, OCI_MANIFEST)
            refs.append(Reference.parse(f"{host}/prod/{name}@{digest}"))

        await asyncio.gather(*(one(name) for name in names))
    return sorted(refs, key=str)


def make_signer(directory: Path) -> Signer:
    """An ECDSA P-256 key in a PEM file, loaded as imgctl loads --sign-key."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / "release.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return load_signer(str(path))


async def sign(
    host: str, refs: list[Reference], signer: Signer, max_ops: int
) -> tuple[float, int, Counter[str]]:
    """(seconds, registry requests, outcome counts) of signing every ref once."""
    async with RegistryClient() as client:
        await client.ping(host)  # the ping is the connection's, not the signatures'
        before = client.stats.requests
        started = time.perf_counter()
        results = await sign_images(client, refs, signer, max_ops=max_ops)
        seconds = time.perf_counter() - started
        requests = client.stats.requests - before
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"bench: signing failed: {failed[0].error}")
    return seconds, requests, Counter(r.status for r in results)


def breakdown(proxy: FaultProxy, since: int) -> Counter[str]:
    """The proxy's requests after ``since``, by method and kind (manifest, blob, upload)."""
    kinds: Counter[str] = Counter()
    for method, path, status in proxy.log[since:]:
        if path.rstrip("/") == "/v2":
            continue  # the connection's ping, not the signature's
        if "/manifests/" in path:
            kind = "manifest"
        elif re.search(r"/blobs/uploads/?$", path.split("?")[0]):
            kind = "upload start"
        elif "/blobs/uploads/" in path:
            kind = "upload finish"
        else:
            kind = "blob"
        kinds[f"{method} {kind} -> {status}"] += 1
    return kinds


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the registry, push, sign (three ways), and measure one image through a proxy."""
    require_binary("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-sign-"))
    registry = Registry(work / "registry").start()
    proxy = FaultProxy(registry.host).start()
    try:
        signer = make_signer(work)
        count = args.images
        log(f"pushing {2 * count + 1} images to {registry.host} (untimed)")
        concurrent = asyncio.run(populate(registry.host, [f"app-{n:04d}" for n in range(count)]))
        serial = asyncio.run(populate(registry.host, [f"one-{n:04d}" for n in range(count)]))
        [single] = asyncio.run(populate(proxy.host, ["breakdown"]))

        log(f"signing {count} digests, {args.max_ops} at a time")
        first = asyncio.run(sign(registry.host, concurrent, signer, args.max_ops))
        log(f"signing {count} other digests, one at a time")
        sequential = asyncio.run(sign(registry.host, serial, signer, 1))
        log(f"signing the first {count} again (all found signed)")
        again = asyncio.run(sign(registry.host, concurrent, signer, args.max_ops))
        mark = len(proxy.log)
        asyncio.run(sign(proxy.host, [single], signer, 1))
        parts = breakdown(proxy, mark)
    finally:
        proxy.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    def row(measured: tuple[float, int, Counter[str]]) -> dict[str, Any]:
        seconds, requests, outcomes = measured
        return {
            "seconds": round(seconds, 3),
            "ms_per_image": round(1000 * seconds / count, 2),
            "requests_per_image": round(requests / count, 2),
            "ratio_to_limit": round(requests / count / LIMIT_REQUESTS, 2),
            "outcomes": dict(outcomes),
        }

    return {
        "images": count,
        "limit_requests_per_image": LIMIT_REQUESTS,
        f"first signing, {args.max_ops} at a time": row(first),
        "first signing, one at a time": row(sequential),
        "again (already signed)": row(again),
        "one image, by request (proxy)": dict(sorted(parts.items())),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="promoted images to sign")
    parser.add_argument("--max-ops", type=int, default=50, help="signatures at once")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    results = run(args)
    print(f"signing {results['images']} promoted images on a local docker-registry")
    print(
        f"{'measurement':40} {'wall':>8} {'ms/image':>9} {'requests/image':>15} "
        f"{'vs limit (4)':>13}"
    )
    for name, row in results.items():
        if not isinstance(row, dict) or "seconds" not in row:
            continue
        print(
            f"{name:40} {row['seconds']:>7.2f}s {row['ms_per_image']:>9.2f} "
            f"{row['requests_per_image']:>15.2f} {row['ratio_to_limit']:>12.2f}x"
        )
    print(
        f"{'limit: manifest GET + blob push + PUT':40} {'':>8} {'':>9} {LIMIT_REQUESTS:>15.2f} "
        f"{1:>12.2f}x"
    )
    print("one image's first signature, request by request:")
    for kind, number in results["one image, by request (proxy)"].items():
        print(f"  {number}  {kind}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
