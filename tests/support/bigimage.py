"""Images of one big layer, pushed as a stream (never held), and a process's peak RSS.

Shared by the copy tests that move large layers (memory, resumable uploads) and
``bench/resume.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from imgctl.oci import Digest, Reference, mediatypes
from imgctl.remote import RegistryClient

BLOCK = 4 << 20


def random_blocks(count: int = 4) -> list[bytes]:
    """``count`` random blocks of 4 MiB: cycled, they make a layer nothing can compress."""
    return [os.urandom(BLOCK) for _ in range(count)]


def layer_pieces(size: int, blocks: Sequence[bytes]) -> Iterator[bytes]:
    """``size`` bytes of ``blocks`` cycled, a block (or the last part of one) at a time."""
    left, i = size, 0
    while left:
        piece = blocks[i % len(blocks)][: min(len(blocks[0]), left)]
        left -= len(piece)
        i += 1
        yield piece


async def push_one_layer_image(
    target: Reference, size: int, blocks: Sequence[bytes] | None = None
) -> tuple[str, Digest]:
    """Push an OCI image of one ``size``-byte layer to ``target``: its digest and the layer's."""
    blocks = blocks or random_blocks()
    digester = hashlib.sha256()
    for piece in layer_pieces(size, blocks):
        digester.update(piece)
    layer = Digest("sha256", digester.hexdigest())

    async def stream() -> AsyncIterator[bytes]:
        for piece in layer_pieces(size, blocks):
            yield piece

    # The size in the config makes images of different sizes different images.
    config = json.dumps({"architecture": "amd64", "os": "linux", "size": size}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {
                "mediaType": mediatypes.OCI_CONFIG,
                "digest": str(Digest.of(config)),
                "size": len(config),
            },
            "layers": [{"mediaType": mediatypes.OCI_LAYER, "digest": str(layer), "size": size}],
        }
    ).encode()
    async with RegistryClient() as client:
        await client.push_blob(target, layer, stream(), size)
        await client.push_blob(target, Digest.of(config), config, len(config))
        digest = await client.put_manifest(target, manifest, mediatypes.OCI_MANIFEST)
    return str(digest), layer


@dataclass(frozen=True)
class Finished:
    """A process that ran to its end: exit status, output and its peak RSS."""

    returncode: int
    stdout: bytes
    stderr: bytes
    peak_mib: float


def run_watching_rss(argv: Sequence[str]) -> Finished:
    """Run ``argv`` to its end, reading its peak RSS (VmHWM) from /proc while it runs."""
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # VmHWM is the peak RSS of the process image since exec; it only grows, so the last reading
    # before exit bounds the whole run (ru_maxrss from wait4 would also count pages the child
    # shared with this process before exec). Output goes to pipes read at the end: a run that
    # writes more than a pipe holds must not be measured this way.
    peak_kib = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    return Finished(process.returncode, stdout, stderr, peak_kib / 1024)
