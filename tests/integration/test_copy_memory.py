"""A 1 GiB layer streams through imgctl without being held in memory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable

import pytest

from imgctl.oci import Digest, Reference, mediatypes
from imgctl.remote import RegistryClient

from ..conftest import IMGCTL
from ..support.registry import Registry
from ..support.skopeo import digest_of

GIB = 1 << 30
BLOCK = 4 << 20
RSS_LIMIT_MIB = 150


def _blocks() -> list[bytes]:
    # Eight distinct random blocks cycled: no compression tricks, cheap to generate.
    return [os.urandom(BLOCK) for _ in range(8)]


async def _push_big_image(target: Reference) -> str:
    blocks = _blocks()
    digester = hashlib.sha256()
    for i in range(GIB // BLOCK):
        digester.update(blocks[i % len(blocks)])
    layer_digest = Digest("sha256", digester.hexdigest())

    async def stream() -> AsyncIterator[bytes]:
        for i in range(GIB // BLOCK):
            yield blocks[i % len(blocks)]

    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    async with RegistryClient() as client:
        await client.push_blob(target, layer_digest, stream(), GIB)
        await client.push_blob(target, Digest.of(config), config, len(config))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "config": {
                    "mediaType": mediatypes.OCI_CONFIG,
                    "digest": str(Digest.of(config)),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": mediatypes.OCI_LAYER, "digest": str(layer_digest), "size": GIB}
                ],
            }
        ).encode()
        return str(await client.put_manifest(target, manifest, mediatypes.OCI_MANIFEST))


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
        process = subprocess.Popen(
            [IMGCTL, "copy", source, destination, "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # VmHWM is the peak RSS of the process image since exec; it only grows, so the
        # last reading before exit bounds the whole copy. (ru_maxrss from wait4 would also
        # count pages the child shared with this test process before exec.)
        peak_kib = 0
        status_file = f"/proc/{process.pid}/status"
        while process.poll() is None:
            try:
                with open(status_file) as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak_kib = max(peak_kib, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.05)
        stdout, stderr = process.communicate()
        elapsed = time.monotonic() - started
        assert process.returncode == 0, stderr.decode()
        [summary] = json.loads(stdout)
        assert summary["bytesCopied"] >= GIB
        peak_mib = peak_kib / 1024
        print(f"1 GiB layer copied in {elapsed:.1f}s, peak RSS {peak_mib:.0f} MiB")
        assert 10 < peak_mib < RSS_LIMIT_MIB
        assert digest_of(destination) == digest
    finally:
        for registry in (source_registry, destination_registry):
            registry.stop()
            subprocess.run(["rm", "-rf", str(registry.storage)], check=False)
