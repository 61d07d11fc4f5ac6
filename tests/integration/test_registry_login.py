"""``imgctl registry login``/``logout`` against docker-registry with htpasswd auth.

The login goes into docker's config.json (other settings kept, mode 0600) after the registry
accepted it, and every registry command finds it there through the keychain.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import IMGCTL, PASSWORD, USER, PushedImage
from ..support.registry import Registry

OTHER = {
    "auths": {"other.example:5000": {"auth": base64.b64encode(b"x:y").decode()}},
    "detachKeys": "ctrl-e,e",
    "psFormat": "table {{.ID}}",
}


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    directory = tmp_path / "docker"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(OTHER))
    return directory


def _run(
    docker_config: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGCTL_", "DOCKER_"))}
    env.update(
        DOCKER_CONFIG=str(docker_config),
        HOME=str(docker_config.parent),
        IMGCTL_ENABLE_IAAS_AUTH="false",
    )
    # A session of its own: no terminal to ask a password on.
    return subprocess.run(
        [IMGCTL, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        start_new_session=True,
    )


def _config(docker_config: Path) -> dict[str, object]:
    return json.loads((docker_config / "config.json").read_text())  # type: ignore[no-any-return]


def test_login_saves_verified_credentials_the_keychain_then_uses(
    htpasswd_registry: Registry, push_image: Callable[..., PushedImage], docker_config: Path
) -> None:
    image = push_image(htpasswd_registry, creds=f"{USER}:{PASSWORD}")
    host = htpasswd_registry.host
    # Before: no credentials, the registry refuses.
    assert _run(docker_config, "digest", image.ref).returncode != 0

    logged_in = _run(
        docker_config,
        "registry",
        "login",
        host,
        "-u",
        USER,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert logged_in.returncode == 0, logged_in.stderr
    assert logged_in.stdout.strip() == "Login Succeeded"
    config = _config(docker_config)
    auths = config["auths"]
    assert isinstance(auths, dict)
    assert auths[host] == {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    # Everything else is as it was, and the file is the user's only.
    assert auths["other.example:5000"] == OTHER["auths"]["other.example:5000"]  # type: ignore[index]
    assert config["detachKeys"] == OTHER["detachKeys"]
    assert config["psFormat"] == OTHER["psFormat"]
    assert stat.S_IMODE((docker_config / "config.json").stat().st_mode) == 0o600
    assert list(docker_config.iterdir()) == [docker_config / "config.json"]  # no temporary left

    digest = _run(docker_config, "digest", image.ref)
    assert digest.returncode == 0, digest.stderr
    assert digest.stdout.strip() == image.digest
    explained = _run(docker_config, "auth", "explain", image.ref)
    assert "config.json" in explained.stdout + explained.stderr

    logged_out = _run(docker_config, "registry", "logout", host)
    assert logged_out.returncode == 0, logged_out.stderr
    config = _config(docker_config)
    assert config["auths"] == OTHER["auths"]
    assert config["detachKeys"] == OTHER["detachKeys"]
    assert _run(docker_config, "digest", image.ref).returncode != 0
    again = _run(docker_config, "registry", "logout", host)
    assert again.returncode == 0
    assert f"Not logged in to {host}" in again.stderr


def test_a_wrong_password_is_refused_and_nothing_is_saved(
    htpasswd_registry: Registry, docker_config: Path
) -> None:
    before = (docker_config / "config.json").read_bytes()
    refused = _run(
        docker_config,
        "registry",
        "login",
        htpasswd_registry.host,
        "-u",
        USER,
        "--password-stdin",
        stdin="not the password",
    )
    assert refused.returncode == 3, refused.stderr  # EXIT_UNAUTHENTICATED
    assert f"{htpasswd_registry.host} refused the credentials of {USER!r}" in refused.stderr
    assert "not the password" not in refused.stderr
    assert (docker_config / "config.json").read_bytes() == before
    # --no-verify saves without asking (crane's way), for a registry out of reach.
    saved = _run(
        docker_config,
        "registry",
        "login",
        "registry.invalid",
        "-u",
        "ci",
        "--password-stdin",
        "--no-verify",
        stdin="pw",
    )
    assert saved.returncode == 0, saved.stderr
    assert "registry.invalid" in _config(docker_config)["auths"]  # type: ignore[operator]


def test_a_password_flag_warns_and_a_broken_config_is_never_overwritten(
    htpasswd_registry: Registry, docker_config: Path
) -> None:
    warned = _run(
        docker_config, "registry", "login", htpasswd_registry.host, "-u", USER, "-p", PASSWORD
    )
    assert warned.returncode == 0, warned.stderr
    assert "imgctl: warning: a password on the command line" in warned.stderr

    broken = b'{"auths": {"a": {"auth": "eDp5"}},\n  "oops"\n'
    (docker_config / "config.json").write_bytes(broken)
    refused = _run(
        docker_config,
        "registry",
        "login",
        htpasswd_registry.host,
        "-u",
        USER,
        "--password-stdin",
        stdin=PASSWORD,
    )
    assert refused.returncode == 2, refused.stderr
    assert "is not valid JSON" in refused.stderr
    assert "refusing to overwrite it" in refused.stderr
    assert (docker_config / "config.json").read_bytes() == broken
    no_password = _run(docker_config, "registry", "login", htpasswd_registry.host, "-u", USER)
    assert no_password.returncode == 2
    assert "--password-stdin" in no_password.stderr


def test_login_to_a_token_auth_registry_asks_its_token_server(
    token_registry: Registry, docker_config: Path
) -> None:
    host = token_registry.host
    ok = _run(
        docker_config, "registry", "login", host, "-u", USER, "--password-stdin", stdin=PASSWORD
    )
    assert ok.returncode == 0, ok.stderr
    refused = _run(
        docker_config, "registry", "login", host, "-u", USER, "--password-stdin", stdin="wrong"
    )
    assert refused.returncode == 3, refused.stderr
    # The saved login is the first one: a refused login changes nothing.
    saved = _config(docker_config)["auths"]
    assert saved[host] == {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}  # type: ignore[index]
