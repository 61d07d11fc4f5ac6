"""Resumable uploads (issue 21 target 5): what a cut costs, and what chunks cost uncut.

Run from the repository root (needs ``docker-registry``)::

    python bench/resume.py                 # 256 MiB blob, medians of 3
    python bench/resume.py --size 1024     # a 1 GiB layer
    python bench/resume.py --quick         # 128 MiB (the threshold), one round

It pushes one image with a single layer of ``--size`` MiB into a source docker-registry, then:

1. **Chunks versus one PUT, nothing cut.** The layer is copied in-process
   (``imgctl.remote.copy_images``) into a fresh repository of a destination docker-registry, as
   one streamed PUT (the path below the threshold) and in PATCH chunks of 16, 32 and 64 MiB.
   Wall seconds, this process's CPU and the destination registry's CPU per copy; ratios to the
   PUT. This is the measurement behind the threshold and the chunk size.
2. **A cut at 90 %.** ``imgctl copy`` (its own process, peak RSS read from /proc) through
   ``CutProxy`` (tests/support/cutproxy.py), which drops the connection once when 90 % of the
   layer has crossed it and counts every body byte: into docker-registry behind a proxy that
   buffers bodies (as nginx does; distribution 2.8 itself refuses a session after a cut, see
   docs/registry.md) and into the embedded registry over a plain TCP path. The yardstick in the
   same run is a fresh restart: the same cut with chunking switched off (in-process), which is
   what imgctl did before and what a client without resumption does.

3. **A no-op copy** of the same image into a repository that holds it already (``imgctl copy``,
   its own process, peak RSS from /proc): the interpreter, imports, client and manifests without a
   byte of the layer. Its peak RSS is the yardstick of the resumed copies'.

Printed: bytes re-sent after the cut (sent in all minus the layer) as a ratio to the restart's,
and each resumed copy's peak RSS as a ratio to the no-op copy's. The exit status depends only on
those ratios (issue 23 item 5): 2 when a resumed copy re-sent more than ``MAX_RESENT_TO_RESTART``
of the restart's bytes or peaked above ``MAX_RSS_TO_NOOP`` of the no-op copy's RSS. Issue 21's
absolute figures (re-send at most 10 % of the layer plus one chunk; peak RSS under 150 MiB) are
printed beside them, not judged. Sizes under the resumable threshold (128 MiB) do not resume:
there the ratio to the restart is about 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402

from tests.support.bigimage import push_one_layer_image, run_watching_rss  # noqa: E402
from tests.support.cutproxy import CutProxy  # noqa: E402
from tests.support.embedded import IMGCTL, start_embedded  # noqa: E402
from tests.support.registry import Registry, require_binary  # noqa: E402

from imgctl.oci import Reference  # noqa: E402
from imgctl.remote import ClientOptions, CopyOptions, RegistryClient, copy_images  # noqa: E402
from imgctl.remote import _copy as copy_engine  # noqa: E402
from imgctl.remote import _upload as upload  # noqa: E402

MIB = 1 << 20
BLOCK = 4 * MIB
# What decides the exit status (issue 23 item 5), ratios to yardsticks of the same run:
# - re-sent bytes over the restart's: a cut at 90 % re-sends what of its last chunk went before
#   the cut, at most one chunk. Measured (docs/performance.md "Resumable uploads", 2026-12-07):
#   0.028x at 256 MiB and 1 GiB; 0.167x at 128 MiB (--quick, the smallest size that resumes: the
#   cut falls 19.2 MiB into the last of four chunks). 0.25x leaves 1.5x over the worst and fails a
#   copy that lost its place by more than a quarter of what a restart re-sends;
# - peak RSS over a no-op copy's (the same process minus the layer's bytes): the resumed copies
#   measured 34 MiB at 256 MiB and 1 GiB; with --quick (2026-12-07, load 8), 33-34 MiB against
#   the no-op's 29 MiB, 1.13-1.19x. A copy holding one 32 MiB chunk in memory would add more than
#   the whole process holds (over 2x); 1.5x fails it and leaves 1.26x over the highest for the
#   upload's buffers and the connections a resumed copy keeps.
MAX_RESENT_TO_RESTART = 0.25
MAX_RSS_TO_NOOP = 1.5
# Issue 21 target 5 stated this absolutely (with 10 % + one chunk): printed, not judged.
STATED_RSS_MIB = 150
OPTIONS = ClientOptions(backoff=0.05, max_backoff=0.2)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def push_image(target: Reference, size: int) -> None:
    await push_one_layer_image(target, size)


def copy_in_process(source: str, destination: str, chunk_size: int | None, chunked: bool) -> None:
    """One copy with a fresh client; ``chunked=False`` switches resumable chunks off."""
    saved = copy_engine.wants_chunks
    if not chunked:
        copy_engine.wants_chunks = lambda size, chunk_size, attempt: False  # type: ignore[assignment]

    async def run() -> None:
        async with RegistryClient(options=OPTIONS) as client:
            [result] = await copy_images(
                client,
                [(Reference.parse(source), Reference.parse(destination))],
                CopyOptions(chunk_size=chunk_size),
            )
        if result.error is not None:
            raise result.error

    try:
        asyncio.run(run())
    finally:
        copy_engine.wants_chunks = saved  # type: ignore[assignment]


def copy_cli(source: str, destination: str) -> float:
    """``imgctl copy`` in its own process; its peak RSS in MiB."""
    run = run_watching_rss([IMGCTL, "copy", source, destination, "-o", "json"])
    if run.returncode != 0:
        raise SystemExit(f"imgctl copy failed: {run.stderr.decode()}")
    return run.peak_mib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="layer size in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are printed")
    parser.add_argument("--quick", action="store_true", help="128 MiB, one round")
    parser.add_argument("--work-dir", type=Path, default=None, help="registry storage parent")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeat = 128, 1
    size = args.size * MIB
    require_binary("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imgctl-resume-", dir=args.work_dir))
    stops: list[Callable[[], object]] = []
    try:
        source_registry = Registry(work / "source").start()
        destination_registry = Registry(work / "destination").start()
        embedded = start_embedded(work / "embedded" / "root", stops.append)
        for registry in (source_registry, destination_registry):
            stops.append(registry.stop)
        assert destination_registry.process is not None
        source = f"{source_registry.host}/bench/big:v1"
        asyncio.run(push_image(Reference.parse(source), size))
        load = os.getloadavg()
        print(
            f"imgctl resumable uploads: one layer of {args.size} MiB, medians of {args.repeat}; "
            f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )

        # 1. chunks versus one PUT, nothing cut
        variants: list[tuple[str, int | None, bool]] = [
            ("one streamed PUT", None, False),
            ("PATCH chunks of 16 MiB", 16 * MIB, True),
            ("PATCH chunks of 32 MiB", 32 * MIB, True),
            ("PATCH chunks of 64 MiB", 64 * MIB, True),
        ]
        figures: dict[str, list[tuple[float, float, float]]] = {v[0]: [] for v in variants}
        for _ in range(args.repeat):
            for label, chunk, chunked in variants:
                destination = f"{destination_registry.host}/bench/c-{uuid.uuid4().hex[:8]}:v1"
                pid = destination_registry.process.pid
                before = (process_cpu(pid), time.process_time())
                started = time.perf_counter()
                copy_in_process(source, destination, chunk, chunked)
                wall = time.perf_counter() - started
                figures[label].append(
                    (wall, time.process_time() - before[1], process_cpu(pid) - before[0])
                )
        print("\n1. nothing cut: copy into docker-registry")
        print(
            f"{'upload':<26}{'wall s':>9}{'imgctl CPU':>12}{'registry CPU':>14}{'wall ratio':>12}"
        )
        base = statistics.median(f[0] for f in figures[variants[0][0]])
        for label, _, _ in variants:
            wall, own, reg = (statistics.median(f[i] for f in figures[label]) for i in range(3))
            print(f"{label:<26}{wall:>9.2f}{own:>12.2f}{reg:>14.2f}{wall / base:>11.2f}x")

        # 2. a cut at 90 %
        cut_at = size * 9 // 10
        target = size // 10 + upload.CHUNK_SIZE
        rows: dict[str, list[tuple[int, float]]] = {}
        noops: list[float] = []
        for _ in range(args.repeat):
            cases: list[tuple[str, str, bool, bool]] = [
                ("restart (no resumption)", destination_registry.host, True, False),
                (
                    "resumed: docker-registry, buffering proxy",
                    destination_registry.host,
                    True,
                    True,
                ),
                ("resumed: embedded registry, TCP cut", embedded.host, False, True),
            ]
            for label, upstream, buffered, resumable in cases:
                proxy = CutProxy(upstream, cut_upload_after=cut_at, buffer_uploads=buffered).start()
                try:
                    destination = f"{proxy.host}/bench/r-{uuid.uuid4().hex[:8]}:v1"
                    if resumable:
                        peak = copy_cli(source, destination)
                    else:
                        copy_in_process(source, destination, None, chunked=False)
                        peak = float("nan")
                    rows.setdefault(label, []).append((proxy.uploaded - size, peak))
                finally:
                    proxy.stop()
            # 3. the RSS yardstick: the same copy into a repository that holds the image already.
            held = f"{destination_registry.host}/bench/noop:v1"
            if not noops:
                copy_in_process(source, held, None, chunked=True)  # untimed: fills the repository
            noops.append(copy_cli(source, held))
        noop = statistics.median(noops)
        print(
            f"\n2. cut once at {cut_at / MIB:.0f} MiB (90 %); checks: re-sent <= "
            f"{MAX_RESENT_TO_RESTART:g}x the restart's, peak RSS <= {MAX_RSS_TO_NOOP:g}x the "
            f"no-op copy's ({noop:.0f} MiB)"
        )
        print(
            f"{'copy':<44}{'re-sent MiB':>12}{'vs restart':>12}{'peak RSS':>10}{'vs no-op':>10}"
            f"{'checks':>8}"
        )
        restart = statistics.median(r[0] for r in rows["restart (no resumption)"])
        missed = False
        stated: list[str] = []
        for label, values in rows.items():
            resent = statistics.median(v[0] for v in values)
            peak = max(v[1] for v in values)
            met, to_noop = "-", "-"
            if label != "restart (no resumption)":
                ok = resent / restart <= MAX_RESENT_TO_RESTART and peak / noop <= MAX_RSS_TO_NOOP
                missed |= not ok
                met = "met" if ok else "NOT met"
                to_noop = f"{peak / noop:.2f}x"
                stated.append(
                    f"{label}: re-sent {resent / MIB:.1f} MiB "
                    f"({'within' if resent <= target else 'over'} {target / MIB:.1f} MiB), "
                    f"peak RSS {peak:.0f} MiB "
                    f"({'under' if peak < STATED_RSS_MIB else 'over'} {STATED_RSS_MIB} MiB)"
                )
            rss = "-" if peak != peak else f"{peak:.0f} MiB"
            print(
                f"{label:<44}{resent / MIB:>12.1f}{resent / restart:>11.3f}x{rss:>10}"
                f"{to_noop:>10}{met:>8}"
            )
        print(f"{'no-op copy (RSS yardstick)':<44}{'':>12}{'':>12}{noop:>6.0f} MiB{'1.00x':>10}")
        print(
            "issue 21's absolute figures, not judged (10 % of the layer + one "
            f"{upload.CHUNK_SIZE // MIB} MiB chunk; {STATED_RSS_MIB} MiB):"
        )
        for line in stated:
            print(f"  {line}")
        return 2 if missed else 0
    finally:
        for stop in reversed(stops):
            stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
