"""Ordinary bad input gets one clear error line and a failing exit status, never a traceback.

Every flag that takes a file is fed a binary file, a Latin-1 file, an empty file and a
directory; the numeric flags get 0, negative, nan and inf. Each command runs as a real process
(a daemon that wrongly accepted its input would start serving: the time-out catches that).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import IMGCTL

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINSJC8qeQCYs/yrxpcc57KyF03Iaclnu+J+rQax/u/Ke a"
SRC, DST = "127.0.0.1:9/a/b:1", "127.0.0.1:9/a/c:1"

TLS = ("--tls-cert", "{F}", "--tls-key", "{F}")

# (name, argv with {F} for the bad file); the rest of each command line is valid.
FILE_FLAGS: list[tuple[str, list[str]]] = [
    ("copy --from-file", ["copy", "--from-file", "{F}"]),
    ("copy --registry-ca-cert-path", ["copy", "--registry-ca-cert-path", "{F}", SRC, DST]),
    (
        "copy --registry-client-cert",
        ["copy", "--registry-client-cert", "{F}", "--registry-client-key", "{F}", SRC, DST],
    ),
    ("copy --config", ["copy", "--config", "{F}", SRC, DST]),
    ("ls --config", ["ls", "--config", "{F}", "127.0.0.1:9/a/b"]),
    ("cip --manifest", ["cip", "--manifest", "{F}"]),
    ("cip --thin-manifest-dir", ["cip", "--thin-manifest-dir", "{D}"]),
    ("token --pubkey-file", ["token", "--pubkey-file", "{F}", "--dex-url", "http://127.0.0.1:9"]),
    ("promote --ca-cert", ["promote", "a/b:1", "-d", "prod", "--ca-cert", "{F}"]),
    ("idp serve --config", ["idp", "serve", "--config", "{F}", "--address", "127.0.0.1:0"]),
    ("idp rotate-key --config", ["idp", "rotate-key", "--config", "{F}"]),
    (
        "idp serve --tls-cert",
        ["idp", "serve", "--config", "{IDP}", "--address", "127.0.0.1:0", *TLS],
    ),
    ("registry serve --htpasswd", ["registry", "serve", "--root", "{R}", "--htpasswd", "{F}"]),
    ("scan --config", ["scan", "--once", "--config", "{F}"]),
    ("server --policy-file", ["server", "--http-address", "", "--policy-file", "{F}"]),
    ("server --tokens-file", ["server", "--tokens-file", "{F}"]),
    ("catalog serve --tokens-file", ["catalog", "serve", "--tokens-file", "{F}"]),
    ("server --watches", ["server", "--http-address", "", "--watches", "{F}"]),
    (
        "server --tls-cert",
        ["server", "--http-address", "", "--tls-cert", "{F}", "--tls-key", "{F}"],
    ),
]


def _binary(path: Path) -> None:
    path.write_bytes(bytes(random.Random(7).randrange(256) for _ in range(4096)))


def _latin1(path: Path) -> None:
    path.write_bytes("users:\n  jos\xe9: {}\n".encode("latin-1"))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _directory(path: Path) -> None:
    path.mkdir()


KINDS: dict[str, Callable[[Path], None]] = {
    "binary": _binary,
    "latin1": _latin1,
    "empty": _empty,
    "directory": _directory,
}


def _env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return base | {
        "HOME": str(home),
        "OIDC_ISSUER_URL": "http://127.0.0.1:9/",
        "OIDC_AUDIENCE": "https://imgctl.example.com",
        "IMGCTL_REGISTRY_DEV": "127.0.0.1:5000",
        "IMGCTL_REGISTRY_PROD": "127.0.0.1:5001",
        "IMGCTL_DATABASE_URL": f"sqlite:///{home / 'imgctl.db'}",
        "IMGCTL_SERVER": "127.0.0.1:9",
        "IMGCTL_CATALOG_URL": "http://127.0.0.1:9",
    }


def _run(argv: list[str], home: Path) -> tuple[int | None, str]:
    try:
        result = subprocess.run(
            [IMGCTL, *argv],
            capture_output=True,
            text=True,
            env=_env(home),
            cwd=home,
            stdin=subprocess.DEVNULL,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return None, "still running after 20 s: the bad input was accepted"
    return result.returncode, result.stdout + result.stderr


def _problems(kind: str, tmp_path: Path) -> list[str]:
    """Run every file flag with one kind of bad file; the list of what went wrong."""

    def one(index: int, name: str, template: list[str]) -> str | None:
        home = tmp_path / f"{kind}-{index}"
        home.mkdir()
        bad = home / "bad-input"
        KINDS[kind](bad)
        manifests = home / "thin" / "manifests" / "app"
        manifests.mkdir(parents=True)
        KINDS[kind](manifests / "promoter-manifest.yaml")
        idp = home / "idp.yaml"
        idp.write_text(
            json.dumps({"staticClients": [{"id": "c"}], "users": {"a": {"keys": [KEY]}}})
        )
        values = {"{F}": str(bad), "{D}": str(home / "thin"), "{IDP}": str(idp)}
        values["{R}"] = str(home / "root")
        argv = [values.get(arg, arg) for arg in template]
        status, output = _run(argv, home)
        if status is None or status == 0:
            return f"{name} ({kind}): exit status {status}: {output[-300:]}"
        if "Traceback" in output or not ("imgctl: error:" in output or "─ Error ─" in output):
            return f"{name} ({kind}): no clear error:\n{output[-1500:]}"
        return None

    with ThreadPoolExecutor(4) as pool:
        found = pool.map(lambda item: one(item[0], *item[1]), enumerate(FILE_FLAGS))
        return [problem for problem in found if problem]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_file_flag_refuses_a_bad_file_clearly(kind: str, tmp_path: Path) -> None:
    problems = _problems(kind, tmp_path)
    assert not problems, "\n\n".join(problems)


NUMBERS = [
    (flag, value, argv)
    for flag, argv, values in [
        ("copy --rate-limit", ["copy", SRC, DST, "--rate-limit"], ["0", "-1", "nan", "inf"]),
        (
            "cip --rate-limit",
            ["cip", "--manifest", "/dev/null", "--rate-limit"],
            ["0", "-1", "nan"],
        ),
        # Zero seconds of grace is a valid choice: stop at once.
        ("server --grace", ["server", "--grace"], ["-1", "nan", "inf"]),
    ]
    for value in values
]


@pytest.mark.parametrize(
    ("flag", "value", "argv"), NUMBERS, ids=[f"{f} {v}" for f, v, _ in NUMBERS]
)
def test_numbers_out_of_range_are_usage_errors(
    flag: str, value: str, argv: list[str], tmp_path: Path
) -> None:
    status, output = _run([*argv, value], tmp_path)
    assert status == 2, output
    assert f"Invalid value for '{flag.split()[1]}'" in output
    assert "Traceback" not in output
