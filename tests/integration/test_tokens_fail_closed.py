"""A tokens file that stops loading refuses every write token, through a real server's HTTP PUT.

`imgctl server` and `imgctl catalog serve` run as processes on loopback with a tokens file. Each
broken edit below (most of them a revocation of "ci" written wrongly) is swapped in atomically:
from then on every PUT is 401, the log says why with the file and line and quotes no token, and
the next good file is served again. A tokens file that does not load at start stops both.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.deployment import start_server, stop_process

CI, OTHER = "tok-ci-2Jd9qLw", "tok-other-8Hs1"


def tokens_yaml(ci_disabled: str = "false", extra: str = "") -> str:
    return (
        "tokens:\n"
        f"- name: ci\n  token: {CI}\n  description: CI\n  is_disabled: {ci_disabled}\n{extra}"
        f"- name: other\n  token: {OTHER}\n  is_disabled: false\n"
    )


# (what the edit is, the file) -- none of them may leave any token usable.
BROKEN = [
    ("revoked as a quoted string", tokens_yaml('"true"')),
    ("revoked as 'True'", tokens_yaml("'True'")),
    ("revoked with an empty value", tokens_yaml("")),
    (
        "revoked with a typo in the key",
        tokens_yaml().replace(
            "  is_disabled: false\n- name: o", "  is_disable: true\n- name: o", 1
        ),
    ),
    ("revoked below the old value", tokens_yaml(extra="  is_disabled: true\n")),
    ("revoked in another case", tokens_yaml(extra="  Is_Disabled: true\n")),
    (
        "revoked, then enabled again under another name",
        tokens_yaml("true") + f"- name: ci2\n  token: {CI}\n",
    ),
    (
        "revoked, and merged back in",
        tokens_yaml("true").replace("- name: ci\n", "- &ci\n  name: ci\n")
        + "- <<: *ci\n  name: ci3\n  is_disabled: false\n",
    ),
    ("two entries for one name", tokens_yaml(extra="- name: CI\n  token: tok-x\n")),
    ("an unknown key", tokens_yaml(extra="  expires: 2030-01-01\n")),
    ("not YAML", "tokens: [\n"),
    ("empty", ""),
    ("binary", "\x00\x01\x02"),
]


@dataclass
class Served:
    url: str
    tokens: Path
    log: Path


def _write(path: Path, text: str) -> None:
    # Atomically, as a config management tool or a Kubernetes secret update does.
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    os.replace(new, path)


def _put(url: str, token: str, image: str) -> int:
    body = json.dumps({"id": image, "name": "app", "tags": []}).encode()
    request = urllib.request.Request(
        f"{url}/images",
        data=body,
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _until(url: str, token: str, wanted: int) -> None:
    """PUT until the answer is ``wanted``: the file is looked at again every half second."""
    deadline = time.monotonic() + 20
    status = 0
    while time.monotonic() < deadline:
        status = _put(url, token, "probe")
        if status == wanted or (wanted == 200 and status == 201):
            return
        time.sleep(0.1)
    raise AssertionError(f"PUT answered {status}, never {wanted}")


def _env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    return base | {
        "HOME": str(home),
        "OIDC_ISSUER_URL": "http://127.0.0.1:9/dex",
        "OIDC_AUDIENCE": "https://imgctl.example.com",
        "IMGCTL_REGISTRY_DEV": "127.0.0.1:5000",
        "IMGCTL_REGISTRY_PROD": "127.0.0.1:5001",
        "IMGCTL_DATABASE_URL": f"sqlite:///{home / 'imgctl.db'}",
        "IMGCTL_ENABLE_IAAS_AUTH": "false",
    }


@pytest.fixture(params=["server", "catalog serve"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    if request.param == "catalog serve":
        with catalog_server(IMGCTL, tmp_path, token=CI) as url:
            tokens = tmp_path / "tokens.yaml"
            _write(tokens, tokens_yaml())
            yield Served(url, tokens, tmp_path / "catalog.log")
        return
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(tokens_yaml())
    process, _, http_address, log = start_server(
        tmp_path, _env(tmp_path), "--tokens-file", str(tokens)
    )
    try:
        yield Served(f"http://{http_address}", tokens, log)
    finally:
        stop_process(process)


def test_every_broken_edit_refuses_every_token_until_fixed(served: Served) -> None:
    _until(served.url, CI, 200)
    for number, (what, text) in enumerate(BROKEN):
        _write(served.tokens, text)
        _until(served.url, CI, 401)
        # Refused, and it stays so for every token, whatever is asked.
        statuses = [_put(served.url, token, f"img-{number}") for token in (CI, OTHER, "tok-x")]
        assert statuses == [401, 401, 401], what
        _write(served.tokens, tokens_yaml())
        _until(served.url, OTHER, 200)
        assert _put(served.url, CI, f"img-{number}") in (200, 201), what
    log = served.log.read_text()
    refusals = [
        line for line in log.splitlines() if "every token is refused until it is fixed" in line
    ]
    assert len(refusals) == len(BROKEN), log
    assert all(f"tokens file {served.tokens}" in line for line in refusals)
    assert sum("line " in line for line in refusals) >= len(BROKEN) - 3, refusals
    for secret in (CI, OTHER, "tok-x"):
        assert secret not in log


def test_a_deleted_file_refuses_every_token_until_it_is_back(served: Served) -> None:
    _until(served.url, CI, 200)
    served.tokens.unlink()
    _until(served.url, CI, 401)
    assert _put(served.url, OTHER, "x") == 401
    _write(served.tokens, tokens_yaml("true"))
    _until(served.url, OTHER, 200)
    assert _put(served.url, CI, "x") == 401  # revoked, properly this time


@pytest.mark.parametrize("command", ["server", "catalog serve"])
@pytest.mark.parametrize(
    "what",
    ["revoked as a quoted string", "revoked with a typo in the key", "two entries for one name"],
)
def test_a_tokens_file_that_does_not_load_stops_the_start(
    command: str, what: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(dict(BROKEN)[what])
    address = "127.0.0.1:0"
    argv = [IMGCTL, *command.split(), "--http-address", address, "--tokens-file", str(tokens)]
    if command == "server":
        argv += ["--bind-address", address]
    result = subprocess.run(argv, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"imgctl: error: tokens file {tokens}: " in output
    assert "Traceback" not in output
    assert CI not in output
    assert OTHER not in output
