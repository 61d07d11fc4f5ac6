"""Ctrl-C during a copy: exit 130, and the destination holds no bytes of the unfinished upload.

The source sits behind a proxy that slows blob bodies down, so the copy is caught mid-upload.
Each destination's filesystem shows every upload session it still holds: docker-registry's
``repositories/<name>/_uploads/<uuid>/{data,startedat}``, the embedded registry's
``uploads/<uuid>/data``.

docker-registry 2.8 refuses every request for an upload whose last request was cut in its
body, the DELETE too (``upload resumed at wrong offset``), so it is tested with chunks, the
in-flight one of which imgctl lets land before it deletes the session; its answer to that
DELETE leaves an empty ``_uploads/<uuid>/hashstates/sha256/0`` behind (its blob writer's close
after the cancel writes it), no bytes. The streamed PUT is tested against the embedded
registry, which, as the OCI distribution spec says, cancels an upload on DELETE whatever it
holds.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imgctl.cli._exit import EXIT_INTERRUPTED
from imgctl.oci import Reference

from ..conftest import IMGCTL
from ..support.bigimage import push_one_layer_image
from ..support.embedded import start_embedded
from ..support.proxy import FaultProxy
from ..support.registry import Registry

MIB = 1 << 20


def _distribution_sessions(registry: Registry, repository: str) -> list[Path]:
    """docker-registry's upload sessions of ``repository`` that it still knows (and their bytes).

    A session is its ``startedat`` (without it every request for the upload is 404
    BLOB_UPLOAD_UNKNOWN) and ``data``.
    """
    root = registry.storage / "docker/registry/v2/repositories" / repository / "_uploads"
    if not root.exists():
        return []
    return sorted(
        path for name in ("data", "startedat") for path in root.glob(f"*/{name}") if path.exists()
    )


def _distribution_bytes(registry: Registry, repository: str) -> int:
    root = registry.storage / "docker/registry/v2/repositories" / repository / "_uploads"
    return sum(path.stat().st_size for path in root.glob("*/data")) if root.exists() else 0


def _interrupt_mid_upload(argv: list[str], uploaded: Callable[[], int]) -> tuple[int, str]:
    """Run ``argv``; once the destination holds 8 MiB of the upload, Ctrl-C. Exit and stderr."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while uploaded() < 8 * MIB:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the upload never got under way"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr.decode()


def _slow_source(
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    repository: str,
) -> tuple[Registry, str]:
    """A 64 MiB one-layer image whose blob GETs come at 8 MiB/s: the source to copy."""
    source_registry = registries()
    asyncio.run(
        push_one_layer_image(Reference.parse(f"{source_registry.host}/{repository}:v1"), 64 * MIB)
    )
    proxy = proxy_for(source_registry)
    proxy.throttle_bytes_per_second = 8 * MIB  # 8 s for the layer: time to interrupt it
    return source_registry, f"{proxy.host}/{repository}:v1"


def test_ctrl_c_mid_chunked_upload_deletes_the_session_in_docker_registry(
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    repo: Callable[[str], str],
) -> None:
    repository = repo("interrupted")
    source_registry, source = _slow_source(registries, proxy_for, repository)
    destination_registry = registries()
    try:
        code, stderr = _interrupt_mid_upload(
            [
                IMGCTL,
                "copy",
                source,
                f"{destination_registry.host}/{repository}:v1",
                "--chunk-size",
                "4",
            ],
            lambda: _distribution_bytes(destination_registry, repository),
        )
        assert code == EXIT_INTERRUPTED, stderr
        assert "Traceback" not in stderr, stderr
        # The session is gone: docker-registry answers 404 for it and holds none of its bytes.
        assert _distribution_sessions(destination_registry, repository) == []
        assert _distribution_bytes(destination_registry, repository) == 0
        assert not destination_registry.has_tag(repository, "v1")
    finally:
        for registry in (source_registry, destination_registry):
            registry.stop()


def test_ctrl_c_mid_streamed_put_deletes_the_session(
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    repo: Callable[[str], str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    repository = repo("interrupted")
    source_registry, source = _slow_source(registries, proxy_for, repository)
    embedded = start_embedded(tmp_path / "embedded", request.addfinalizer)
    uploads = embedded.root / "uploads"

    def uploaded() -> int:
        return sum(path.stat().st_size for path in uploads.glob("*/data"))

    try:
        # 64 MiB: below the chunking threshold, one streamed PUT.
        code, stderr = _interrupt_mid_upload(
            [IMGCTL, "copy", source, f"{embedded.host}/{repository}:v1"], uploaded
        )
        assert code == EXIT_INTERRUPTED, stderr
        assert "Traceback" not in stderr, stderr
        assert sorted(uploads.iterdir()) == []
    finally:
        source_registry.stop()
