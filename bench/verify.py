"""Benchmark imgctl's OIDC token verifier against PyJWT's bare ``jwt.decode``.

Run it from the repository root::

    python bench/verify.py                 # 20,000 verifications of each
    python bench/verify.py -n 5000 --json

Setup (not timed): an RSA 2048 key is generated, a loopback OIDC issuer stub (discovery and
JWKS, in a thread of this process) publishes it, one RS256 token is minted with Dex's claims,
and a :class:`~imgctl.identity.verifier.TokenVerifier` verifies it once, which fetches and
caches the key set.

Timed on one core, in 10 alternating slices (so that other load on the machine affects both
alike), each total being N calls:

* imgctl: ``await verifier.verify(token)`` N times in one event loop (the cached path: header
  parse, key lookup, signature, claims, groups -> Principal);
* PyJWT ceiling: ``jwt.decode(token, public_key, algorithms=["RS256"], audience=..., issuer=...)``
  N times with the key object already loaded: the signature check and claim checks alone,
  without key lookup or groups. The verifier cannot beat it by much.

Afterwards the stub's counters must show exactly one discovery and one JWKS fetch: a cached
verification that touched the network would make the run invalid (exit status 1). No timing
decides the exit status: the ratio to the PyJWT ceiling of the same run is printed, and issue
21's absolute figure (5,000 verifications/s) beside it, not judged (issue 23 item 5).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python bench/verify.py``: make ``imgctl`` importable from a source checkout too, and
# keep this directory off sys.path, where bench/copy.py would shadow the standard library's copy
# (which http.server imports).
_BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(REPO_ROOT / "src") not in sys.path:
    sys.path.insert(1, str(REPO_ROOT / "src"))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

from imgctl.errors import ImgctlError  # noqa: E402
from imgctl.identity.verifier import TokenVerifier, VerifierSettings  # noqa: E402

STATED_PER_SECOND = 5_000  # issue 21's absolute figure: printed, not judged
AUDIENCE = "https://imgctl.example.com"
KID = "bench-rsa-1"
WARM_UP = 500  # untimed calls of each before timing, so both start equally warm
ROUNDS = 10


class BenchError(Exception):
    """The run is invalid (the verifier failed, or went to the network on the cached path)."""


def log(message: str) -> None:
    """Progress goes to stderr; stdout holds only the results."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


class JwksStub:
    """A loopback OIDC issuer: discovery and a one-key JWKS, counting requests."""

    def __init__(self, jwk: dict[str, Any]) -> None:
        self.fetches = {"discovery": 0, "jwks": 0}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    stub.fetches["discovery"] += 1
                    document = {"issuer": stub.issuer, "jwks_uri": f"{stub.issuer}/keys"}
                elif self.path == "/keys":
                    stub.fetches["jwks"] += 1
                    document = {"keys": [jwk]}
                else:
                    self.send_error(404)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def mint(key: rsa.RSAPrivateKey, issuer: str) -> str:
    """An RS256 token shaped like Dex's, valid for an hour."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "CgVhbGljZRIDc3No",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Liddell",
        "groups": ["engineering@example.com", "ops@example.com"],
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


async def time_verifier(verifier: TokenVerifier, token: str, count: int) -> float:
    verify = verifier.verify
    gc.collect()
    started = time.perf_counter()
    for _ in range(count):
        await verify(token)
    return time.perf_counter() - started


def time_pyjwt(token: str, key: rsa.RSAPublicKey, issuer: str, count: int) -> float:
    decode = jwt.decode
    gc.collect()
    started = time.perf_counter()
    for _ in range(count):
        decode(token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer)
    return time.perf_counter() - started


def slices(count: int, rounds: int) -> list[int]:
    """``count`` split into at most ``rounds`` near-equal positive parts."""
    rounds = min(rounds, count)
    return [count // rounds + (1 if n < count % rounds else 0) for n in range(rounds)]


def pin_to_one_core() -> str:
    """Keep the measurement on one CPU, where the OS allows it."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


async def run(count: int) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": KID, "use": "sig"}
    jwk["alg"] = "RS256"
    stub = JwksStub(jwk)
    try:
        token = mint(key, stub.issuer)
        settings = VerifierSettings(issuer_url=stub.issuer, audience=AUDIENCE)
        async with TokenVerifier(settings) as verifier:
            principal = await verifier.verify(token)  # fetches discovery and JWKS: untimed
            log(f"issuer stub at {stub.issuer}; token verified for {principal.email}")
            public_key = key.public_key()
            await time_verifier(verifier, token, WARM_UP)
            time_pyjwt(token, public_key, stub.issuer, WARM_UP)
            # Alternating slices: a load change on the machine hits both measurements alike.
            ours = ceiling = 0.0
            parts = slices(count, ROUNDS)
            for number, size in enumerate(parts, 1):
                ours += await time_verifier(verifier, token, size)
                ceiling += time_pyjwt(token, public_key, stub.issuer, size)
                log(f"round {number}/{len(parts)}: {size:,} of each timed")
        if stub.fetches != {"discovery": 1, "jwks": 1}:
            raise BenchError(f"the cached path went to the issuer: {stub.fetches}")
        return {"count": count, "imgctl_seconds": ours, "pyjwt_seconds": ceiling}
    finally:
        stub.stop()


def report(result: dict[str, Any], pinning: str) -> dict[str, Any]:
    count = result["count"]
    ours = count / result["imgctl_seconds"]
    ceiling = count / result["pyjwt_seconds"]
    ratio = ours / ceiling
    met = ours >= STATED_PER_SECOND
    print()
    print(f"OIDC token verification: RS256 (RSA 2048), {count:,} verifications each, {pinning}")
    print()
    header = f"{'measurement':<40} {'seconds':>8} {'verif/s':>10} {'us/verif':>9}"
    print(header)
    print("-" * len(header))
    rows = (
        ("imgctl TokenVerifier.verify (cached)", result["imgctl_seconds"], ours),
        ("PyJWT jwt.decode, key pre-loaded", result["pyjwt_seconds"], ceiling),
    )
    for label, seconds, rate in rows:
        print(f"{label:<40} {seconds:8.2f} {rate:10,.0f} {1e6 / rate:9.1f}")
    print()
    print(f"{'ratio / stated figure':<40} {'value':>8} {'stated':>10} {'reached':>9}")
    print("-" * len(header))
    print(f"{'imgctl / PyJWT ceiling (throughput)':<40} {ratio:7.2f}x {'-':>10} {'-':>9}")
    print(
        f"{'imgctl verifications/s (not judged)':<40} {ours:8,.0f} "
        f"{'>= ' + format(STATED_PER_SECOND, ','):>10} {'yes' if met else 'no':>9}"
    )
    print()
    print("The issuer was asked once for discovery and once for its keys, during setup.")
    return {
        "count": count,
        "pinning": pinning,
        "imgctl_per_second": round(ours, 1),
        "pyjwt_per_second": round(ceiling, 1),
        "ratio": round(ratio, 4),
        "stated_per_second_not_judged": STATED_PER_SECOND,
        "stated_reached": met,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time imgctl's cached OIDC token verification against bare PyJWT."
    )
    parser.add_argument(
        "-n", "--count", type=int, default=20_000, help="verifications of each kind"
    )
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = "not pinned" if args.no_pin else pin_to_one_core()
    try:
        result = asyncio.run(run(args.count))
    except (BenchError, ImgctlError, OSError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    summary = report(result, pinning)
    if args.json:
        print()
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
