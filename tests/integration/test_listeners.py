"""Every imgctl daemon refuses a port that is in use instead of sharing it.

gRPC sets SO_REUSEPORT on its listeners by default, so a second ``imgctl server`` on the same
port used to start, and the kernel split the traffic between the two (two configurations, two
audit databases). The occupant here sets SO_REUSEPORT too, as a gRPC listener does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import IMGCTL

_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINSJC8qeQCYs/yrxpcc57KyF03Iaclnu+J+rQax/u/Ke alice"


@pytest.fixture
def occupied() -> Iterator[int]:
    """A loopback port held by a listener that allows port sharing (as gRPC's do)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return base | {
        "HOME": str(home),
        "OIDC_ISSUER_URL": "http://127.0.0.1:9/",
        "OIDC_AUDIENCE": "https://imgctl.example.com",
        "IMGCTL_REGISTRY_DEV": "127.0.0.1:5000",
        "IMGCTL_REGISTRY_PROD": "127.0.0.1:5001",
        "IMGCTL_DATABASE_URL": f"sqlite:///{home / 'imgctl.db'}",
    }


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=60,
    )


def _daemons(port: int, tmp_path: Path) -> dict[str, list[str]]:
    idp = tmp_path / "idp.yaml"
    users = {"alice": {"keys": [_SSH_KEY], "email": "alice@example.com"}}
    idp.write_text(json.dumps({"staticClients": [{"id": "imgctl", "secret": "s"}], "users": users}))
    here = f"127.0.0.1:{port}"
    return {
        "server --bind-address": ["server", "--bind-address", here, "--http-address", ""],
        "server --http-address": [
            "server",
            "--bind-address",
            f"127.0.0.1:{_free()}",
            "--http-address",
            here,
        ],
        "catalog serve": ["catalog", "serve", "--http-address", here],
        "idp serve": ["idp", "serve", "--config", str(idp), "--address", here],
        "registry serve": [
            "registry",
            "serve",
            "--root",
            str(tmp_path / "root"),
            "--address",
            here,
        ],
    }


@pytest.mark.parametrize(
    "daemon",
    [
        "server --bind-address",
        "server --http-address",
        "catalog serve",
        "idp serve",
        "registry serve",
    ],
)
def test_a_port_in_use_is_refused(daemon: str, occupied: int, tmp_path: Path) -> None:
    result = _run(_daemons(occupied, tmp_path)[daemon], tmp_path)
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{occupied}" in result.stderr
    assert "another process listens there" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_server_on_the_same_grpc_port_does_not_start(tmp_path: Path) -> None:
    grpc_port = _free()
    first_home, second_home = tmp_path / "first", tmp_path / "second"
    first_home.mkdir()
    second_home.mkdir()
    log = (tmp_path / "first.log").open("wb")
    first = subprocess.Popen(
        [IMGCTL, "server", "--bind-address", f"127.0.0.1:{grpc_port}", "--http-address", ""],
        env=_env(first_home),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_listening(first, tmp_path / "first.log")
        second = subprocess.run(
            [IMGCTL, "server", "--bind-address", f"127.0.0.1:{grpc_port}", "--http-address", ""],
            env=_env(second_home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2, second.stderr
        assert f"cannot listen on 127.0.0.1:{grpc_port}" in second.stderr
        # It stopped before opening its database: nothing was created in its state.
        assert not (second_home / "imgctl.db").exists()
        assert first.poll() is None
    finally:
        first.terminate()
        first.wait(timeout=30)
        log.close()


def _wait_listening(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while "imgctl server: listening on" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server did not start: {log.read_text()}")
        time.sleep(0.05)
