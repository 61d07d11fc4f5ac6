"""A 1 GiB layer streams through imgctl without being held in memory."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable

import pytest

from imgctl.oci import Reference

from ..conftest import IMGCTL
from ..support.bigimage import push_one_layer_image, random_blocks, run_watching_rss
from ..support.registry import Registry
from ..support.skopeo import digest_of

GIB = 1 << 30
BLOCK = 4 << 20
RSS_LIMIT_MIB = 150


async def _push_big_image(target: Reference) -> str:
    # Eight distinct random blocks cycled: no compression tricks, cheap to generate.
    digest, _ = await push_one_layer_image(target, GIB, random_blocks(8))
    return digest


@pytest.mark.slow
def test_one_gib_layer_copies_in_bounded_memory(
    registries: Callable[..., Registry], repo: Callable[[str], str]
) -> None:
    source_registry, destination_registry = registries(), registries()
    try:
        source = f"{source_registry.host}/{repo('big')}:v1"
        digest = asyncio.run(_push_big_image(Reference.parse(source)))
        destination = f"{destination_registry.host}/{repo('big')}:v1"
        started = time.monotonic()
        run = run_watching_rss([IMGCTL, "copy", source, destination, "-o", "json"])
        elapsed = time.monotonic() - started
        assert run.returncode == 0, run.stderr.decode()
        [summary] = json.loads(run.stdout)
        assert summary["bytesCopied"] >= GIB
        peak_mib = run.peak_mib
        print(f"1 GiB layer copied in {elapsed:.1f}s, peak RSS {peak_mib:.0f} MiB")
        assert 10 < peak_mib < RSS_LIMIT_MIB
        assert digest_of(destination) == digest
    finally:
        for registry in (source_registry, destination_registry):
            registry.stop()
            subprocess.run(["rm", "-rf", str(registry.storage)], check=False)
