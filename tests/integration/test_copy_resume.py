"""Resumable uploads: a blob upload cut part-way resumes from the registry's offset.

Real registries behind ``CutProxy`` (tests/support/cutproxy.py), which drops one connection in
the middle of a body and counts every body byte that crosses it: the bytes imgctl sends again
after a cut are counted, not guessed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imgctl.errors import RegistryError
from imgctl.oci import Descriptor, Digest, Reference, mediatypes
from imgctl.remote import CopyOptions, RegistryClient, copy_image
from imgctl.remote._upload import CHUNK_SIZE, RESUMABLE_THRESHOLD, _Upload

from ..conftest import FAST_RETRIES, IMGCTL
from ..support.bigimage import push_one_layer_image, run_watching_rss
from ..support.cutproxy import CutProxy
from ..support.embedded import EmbeddedRegistry, start_embedded
from ..support.proxy import FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of

MIB = 1 << 20
BLOCK = 4 * MIB
RSS_LIMIT_MIB = 150


@pytest.fixture
def cut_proxies() -> Iterator[Callable[..., CutProxy]]:
    started: list[CutProxy] = []

    def start(upstream: str, **kwargs: object) -> CutProxy:
        proxy = CutProxy(upstream, **kwargs).start()  # type: ignore[arg-type]
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def embedded(tmp_path: Path, request: pytest.FixtureRequest) -> EmbeddedRegistry:
    return start_embedded(tmp_path / "embedded", request.addfinalizer)


async def _push_image(target: Reference, size: int) -> tuple[str, Digest]:
    """Push an image with one layer of ``size`` random-looking bytes, streamed (no file)."""
    return await push_one_layer_image(target, size)


def _copy_cli(source: str, destination: str) -> tuple[dict[str, object], float, str]:
    """``imgctl copy`` in its own process: its summary, its peak RSS in MiB, its stderr."""
    run = run_watching_rss([IMGCTL, "copy", source, destination, "-o", "json"])
    assert run.returncode == 0, run.stderr.decode()
    [summary] = json.loads(run.stdout)
    return summary, run.peak_mib, run.stderr.decode()


def _uploads(registry: Registry, repository: str) -> list[Path]:
    """Upload sessions docker-registry keeps for ``repository``."""
    root = registry.storage / "docker/registry/v2/repositories" / repository / "_uploads"
    return sorted(root.iterdir()) if root.exists() else []


def _opened(proxy: CutProxy) -> int:
    """Upload sessions opened through ``proxy`` (not the mount probe, which opens none)."""
    return sum("mount=" not in path for _, path, _ in proxy.requests("POST", "/blobs/uploads/"))


def test_thresholds_are_what_the_docs_say() -> None:
    # docs/performance.md "Resumable uploads" explains these two numbers.
    assert RESUMABLE_THRESHOLD == 128 * MIB
    assert CHUNK_SIZE == 32 * MIB


@pytest.mark.slow
@pytest.mark.parametrize("size", [256 * MIB, 1024 * MIB], ids=["256MiB", "1GiB"])
def test_upload_cut_at_90_percent_resends_at_most_a_tenth_and_a_chunk(
    registries: Callable[..., Registry],
    repo: Callable[[str], str],
    cut_proxies: Callable[..., CutProxy],
    size: int,
) -> None:
    """A layer through a proxy that buffers bodies (as nginx does), cut once at 90 %."""
    source_registry, destination_registry = registries(), registries()
    try:
        source = f"{source_registry.host}/{repo('big')}:v1"
        digest, layer = asyncio.run(_push_image(Reference.parse(source), size))
        cut_at = size * 9 // 10
        proxy = cut_proxies(destination_registry.host, cut_upload_after=cut_at, buffer_uploads=True)
        repository = repo("big")
        destination = f"{proxy.host}/{repository}:v1"
        summary, peak_mib, _ = _copy_cli(source, destination)
        assert proxy.cuts == 1
        resent = proxy.uploaded - size
        print(
            f"cut at {cut_at / MIB:.0f} MiB of {size / MIB:.0f}: re-sent {resent / MIB:.1f} MiB "
            f"(a fresh restart: {cut_at / MIB:.0f} MiB), peak RSS {peak_mib:.0f} MiB"
        )
        assert 0 < resent <= size // 10 + CHUNK_SIZE
        assert summary["bytesCopied"] >= size  # the blob once, however often parts crossed
        assert 10 < peak_mib < RSS_LIMIT_MIB
        # One upload session from start to end: resumed, not started again.
        assert _opened(proxy) == 2  # the layer and the config
        assert digest_of(destination) == digest
        assert destination_registry.has_blob(str(layer))
        assert _uploads(destination_registry, repository) == []
    finally:
        for registry in (source_registry, destination_registry):
            registry.stop()
            subprocess.run(["rm", "-rf", str(registry.storage)], check=False)


async def test_cut_chunk_resumes_on_the_embedded_registry(
    registry: Registry,
    embedded: EmbeddedRegistry,
    repo: Callable[[str], str],
    cut_proxies: Callable[..., CutProxy],
) -> None:
    """A plain TCP cut: the embedded registry cuts the chunk back and says where it stands."""
    size, chunk = 40 * MIB, 4 * MIB
    source = Reference.parse(f"{registry.host}/{repo('src')}:v1")
    digest, _ = await _push_image(source, size)
    cut_at = size * 9 // 10 + 12345  # inside the tenth chunk
    proxy = cut_proxies(embedded.host, cut_upload_after=cut_at)
    destination = Reference.parse(f"{proxy.host}/{repo('dst')}:v1")
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, source, destination, CopyOptions(chunk_size=chunk))
    assert result.blobs_copied == 2
    assert proxy.cuts == 1
    resent = proxy.uploaded - size
    assert 0 < resent <= size // 10 + chunk
    assert _opened(proxy) == 2
    assert [s for _, _, s in proxy.requests("GET", "/blobs/uploads/")] == [204]
    assert digest_of(str(destination)) == digest


async def test_registry_that_cannot_resume_gets_a_fresh_upload(
    registry: Registry,
    registry2: Registry,
    repo: Callable[[str], str],
    cut_proxies: Callable[..., CutProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """distribution 2.8 behind a plain TCP cut refuses the stale upload: start it again."""
    size, chunk = 40 * MIB, 4 * MIB
    source = Reference.parse(f"{registry.host}/{repo('src')}:v1")
    digest, _ = await _push_image(source, size)
    cut_at = size // 2 + 777
    proxy = cut_proxies(registry2.host, cut_upload_after=cut_at)
    repository = repo("dst")
    destination = Reference.parse(f"{proxy.host}/{repository}:v1")
    caplog.set_level(logging.DEBUG, logger="imgctl.remote")
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, source, destination, CopyOptions(chunk_size=chunk))
    assert result.blobs_copied == 2
    assert proxy.cuts == 1
    # The status answer: distribution's "upload resumed at wrong offset". (Asked before the
    # registry noticed the cut, it may first answer 204 with the old offset; the chunk sent
    # there is then refused the same way.)
    statuses = [s for _, _, s in proxy.requests("GET", "/blobs/uploads/")]
    assert statuses[-1] == 404
    assert set(statuses) <= {204, 404}
    assert _opened(proxy) == 3  # layer, fresh layer, config
    assert "cannot resume the upload" in caplog.text
    assert proxy.uploaded >= cut_at + size  # everything went again
    assert digest_of(str(destination)) == digest
    # The cut session was asked to go, but distribution refuses every request naming it (the
    # same "wrong offset"): it stays until the registry's upload purging (a week by default).
    assert [s for _, _, s in proxy.requests("DELETE", "/blobs/uploads/")] == [404]
    assert len(_uploads(registry2, repository)) == 1


async def test_source_cut_resumes_the_source_with_range(
    registry: Registry,
    registry2: Registry,
    repo: Callable[[str], str],
    cut_proxies: Callable[..., CutProxy],
) -> None:
    """The source connection drops mid-blob: read on from there; the upload never notices."""
    size, chunk = 40 * MIB, 4 * MIB
    source_ref = Reference.parse(f"{registry.host}/{repo('src')}:v1")
    digest, _ = await _push_image(source_ref, size)
    source_proxy = cut_proxies(registry.host, cut_download_after=size * 6 // 10 + 4321)
    destination_proxy = cut_proxies(registry2.host)
    source = Reference.parse(f"{source_proxy.host}/{source_ref.repository}:v1")
    destination = Reference.parse(f"{destination_proxy.host}/{repo('dst')}:v1")
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, source, destination, CopyOptions(chunk_size=chunk))
    assert result.blobs_copied == 2
    assert source_proxy.cuts == 1
    # Nothing read twice, nothing sent twice: the source resumed where it was cut.
    layer_gets = source_proxy.requests("GET", "/blobs/sha256:")
    assert len(layer_gets) == 3  # the layer, its resumption, the config
    assert source_proxy.downloaded <= size + 4096
    assert destination_proxy.uploaded - size < 4096
    assert not destination_proxy.requests("GET", "/blobs/uploads/")
    assert digest_of(str(destination)) == digest


async def test_final_failure_leaves_no_upload_session(
    registry: Registry,
    registry2: Registry,
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    """Chunks refused again and again: the copy fails and deletes every session it opened."""
    size, chunk = 12 * MIB, 4 * MIB
    source = Reference.parse(f"{registry.host}/{repo('src')}:v1")
    await _push_image(source, size)
    proxy = proxy_for(registry2)
    proxy.fail(500, 1000, method="PATCH", path=r"/blobs/uploads/")
    repository = repo("dst")
    destination = Reference.parse(f"{proxy.host}/{repository}:v1")
    async with RegistryClient(options=FAST_RETRIES) as client:
        with pytest.raises(RegistryError) as caught:
            await copy_image(client, source, destination, CopyOptions(chunk_size=chunk))
    assert caught.value.status == 500
    opened = [p for m, p, s in proxy.log if m == "POST" and s == 202]
    deleted = [p for m, p, s in proxy.log if m == "DELETE" and s == 204]
    assert opened
    assert len(deleted) == len(opened)
    # No bytes left behind. (distribution 2.8 writes an empty hash state into the directory of a
    # session after deleting it, so the directories themselves stay until its upload purging.)
    assert [u for u in _uploads(registry2, repository) if (u / "data").exists()] == []


async def test_source_without_range_is_read_again_and_skipped(
    registry: Registry,
    embedded: EmbeddedRegistry,
    repo: Callable[[str], str],
    cut_proxies: Callable[..., CutProxy],
) -> None:
    """After a cut chunk, a source that ignores Range is read from 0 up to the boundary."""
    size, chunk = 40 * MIB, 4 * MIB
    source_ref = Reference.parse(f"{registry.host}/{repo('src')}:v1")
    digest, _ = await _push_image(source_ref, size)
    source_proxy = cut_proxies(registry.host, ignore_range=True)
    destination_proxy = cut_proxies(embedded.host, cut_upload_after=size * 9 // 10 + 999)
    source = Reference.parse(f"{source_proxy.host}/{source_ref.repository}:v1")
    destination = Reference.parse(f"{destination_proxy.host}/{repo('dst')}:v1")
    async with RegistryClient(options=FAST_RETRIES) as client:
        result = await copy_image(client, source, destination, CopyOptions(chunk_size=chunk))
    assert result.blobs_copied == 2
    assert destination_proxy.cuts == 1
    assert 0 < destination_proxy.uploaded - size <= chunk
    # The layer twice (the second time read from 0 and skipped to 36 MiB), then the config.
    assert [s for _, _, s in source_proxy.requests("GET", "/blobs/sha256:")] == [200, 200, 200]
    assert source_proxy.downloaded > size + size * 9 // 10
    assert digest_of(str(destination)) == digest


async def test_offset_inside_a_chunk_is_hashed_not_sent(
    registry: Registry,
    registry2: Registry,
    repo: Callable[[str], str],
    cut_proxies: Callable[..., CutProxy],
) -> None:
    """A registry holding part of the cut chunk: the source is read from the chunk's start,
    the part it holds is hashed, and only the bytes after it are sent."""
    size, chunk = 16 * MIB, 4 * MIB
    source_ref = Reference.parse(f"{registry.host}/{repo('src')}:v1")
    _, layer = await _push_image(source_ref, size)
    source_proxy = cut_proxies(registry.host)
    destination_proxy = cut_proxies(registry2.host)
    source = Reference.parse(f"{source_proxy.host}/{source_ref.repository}:v1")
    destination = Reference.parse(f"{destination_proxy.host}/{repo('dst')}:v1")
    sent: list[int] = []
    async with RegistryClient(options=FAST_RETRIES) as client:
        blob = b"".join([piece async for piece in client.iter_blob(source_ref, layer)])
        # The registry holds 6 MiB (a chunk of 4 confirmed, 2 of the next one kept from a cut).
        location = await client.start_upload(destination)
        assert location is not None
        location = await client.upload_chunk(destination, location, 0, blob[: 6 * MIB])
        uploaded_before = destination_proxy.uploaded
        desc = Descriptor(mediatypes.OCI_LAYER, layer, size)
        upload = _Upload(client, source, destination, location, desc, chunk, sent.append)
        confirmed, hasher = await upload._resume(4 * MIB, 8 * MIB, hashlib.sha256(blob[: 4 * MIB]))
        assert confirmed == 6 * MIB
        await upload.run(confirmed, hasher)
        assert await client.head_blob(destination, layer) == size
    assert destination_proxy.uploaded - uploaded_before == size - 6 * MIB
    # Read from the confirmed boundary (4 MiB), not from 0 and not from the registry's offset.
    assert source_proxy.downloaded == size - 4 * MIB
    assert sum(sent) == size - 4 * MIB
