"""``imgctl version``: the client's version, commit, build date, Python and platform; the server's.

Like ``kubectl version``: a configured server is asked (ServerInfo) and a server that cannot be
reached is a warning, exit 0; ``imgctl version`` never fails, even from a copy of the sources
that was never built (no ``_version.py``), in a git checkout or outside one.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import imgctl

from ..conftest import IMGCTL
from ..support.deployment import (
    ENGINEERING,
    Identity,
    server_env,
    start_identity,
    start_server,
    stop_process,
)
from ..support.registry import Registry, free_port

SRC = Path(imgctl.__file__).resolve().parent


def _version(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTL_")}
    return subprocess.run(
        [IMGCTL, "version", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ | (env or {}),
    )


def test_client_version_names_version_commit_build_python_platform() -> None:
    result = _version("-o", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no server configured: none asked, nothing to warn about
    document = json.loads(result.stdout)
    assert list(document) == ["clientVersion"]
    client = document["clientVersion"]
    assert client["version"] == imgctl.__version__
    assert re.fullmatch(r"[0-9a-f]{7,40}", client["gitCommit"]), client
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", client["buildDate"]), client
    assert client["python"] == f"{platform.python_version()} ({platform.python_implementation()})"
    assert client["platform"].startswith(f"{sys.platform}/")
    # The same in YAML and as text, and --version stays the short form.
    assert "clientVersion:\n  version: " in _version("-o", "yaml").stdout
    text = _version().stdout
    assert f"Client Version: {imgctl.__version__}\n" in text
    assert f"Git Commit:     {client['gitCommit']}\n" in text
    short = subprocess.run([IMGCTL, "--version"], capture_output=True, text=True, timeout=60)
    assert short.stdout == f"imgctl {imgctl.__version__}\n"


def _run_copy(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The copied sources, never built: no imgctl/_version.py beside them.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "imgctl", "version", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tree,
        env=environ | {"PYTHONPATH": str(tree / "src")},
    )


def _sources(tree: Path) -> None:
    shutil.copytree(SRC, tree / "src" / "imgctl", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "src" / "imgctl" / "_version.py").unlink(missing_ok=True)
    (tree / "pyproject.toml").write_text('[project]\nname = "imgctl"\n')


def test_sources_never_built_say_unknown_outside_git(tmp_path: Path) -> None:
    _sources(tmp_path)
    result = _run_copy(tmp_path, "-o", "json")
    assert result.returncode == 0, result.stderr
    client = json.loads(result.stdout)["clientVersion"]
    assert client["gitCommit"] == "unknown"
    assert client["buildDate"] == "unknown"
    assert client["version"] != ""


def test_sources_never_built_ask_git_in_a_checkout(tmp_path: Path) -> None:
    _sources(tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "sources"], check=True)
    subprocess.run([*git, "tag", "v9.8.7"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result = _run_copy(tmp_path, "-o", "json")
    assert result.returncode == 0, result.stderr
    client = json.loads(result.stdout)["clientVersion"]
    assert client["gitCommit"] == head
    assert client["version"] == "v9.8.7"
    assert re.match(r"\d{4}-\d\d-\d\dT", client["buildDate"]), client


def test_an_unreachable_server_is_a_warning_not_a_failure() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = _version("-o", "json", env={"IMGCTL_SERVER": address})
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)) == ["clientVersion"]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"imgctl: warning: cannot reach the imgctl server at {address}")
    # --client asks no server at all.
    quiet = _version("--client", env={"IMGCTL_SERVER": address})
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert "Server Version" not in quiet.stdout


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    with contextlib.ExitStack() as cleanup:
        users = {"alice": ("alice@example.com", [ENGINEERING])}
        yield start_identity(tmp_path_factory.mktemp("identity"), users, cleanup)


def test_a_configured_server_answers_its_version(
    identity: Identity, registry: Registry, registry2: Registry, tmp_path: Path
) -> None:
    process, address, _, _ = start_server(tmp_path, server_env(identity.idp, registry, registry2))
    try:
        result = _version("-o", "json", "--server", address)
        text = _version(env={"IMGCTL_SERVER": address})
    finally:
        stop_process(process)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["serverVersion"] == {"version": imgctl.__version__, "address": address}
    assert f"Server Version: {imgctl.__version__} ({address})\n" in text.stdout
