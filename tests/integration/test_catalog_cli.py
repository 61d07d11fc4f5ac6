"""`imgctl catalog` commands against a real `imgctl catalog serve` process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.registry import free_port

DIGEST = "sha256:" + "12" * 32


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[str]:
    with catalog_server(IMGCTL, tmp_path) as url:
        yield url


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [IMGCTL, "catalog", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_put_ls_get_rm(catalog: str) -> None:
    image_id = f"registry.example.com/team/app@{DIGEST}"
    refused = run(
        "put",
        image_id,
        "--name",
        "registry.example.com/team/app",
        "--tag",
        "v1",
        "--catalog-url",
        catalog,
    )
    assert refused.returncode == 1
    assert "token" in refused.stderr
    made = run(
        "put",
        image_id,
        "--name",
        "registry.example.com/team/app",
        "--tag",
        "v1",
        "--tag",
        "latest",
        "-e",
        "prod",
        "--catalog-url",
        catalog,
        "--token",
        "write-me",
    )
    assert made.returncode == 0, made.stderr
    listed = run("ls", "--catalog-url", catalog, "-e", "prod", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["id"] == image_id
    assert sorted(entry["tags"]) == ["latest", "v1"]
    got = run("get", image_id, "--catalog-url", catalog)
    assert got.returncode == 0, got.stderr
    assert "registry.example.com/team/app@" in got.stdout
    assert run("rm", image_id, "--catalog-url", catalog, "--token", "write-me").returncode == 0
    missing = run("get", image_id, "--catalog-url", catalog)
    assert missing.returncode == 5
    unreachable = run("ls", "--catalog-url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 6
