"""``imgctl copy --src-creds/--dest-creds``: one password per side, before every other source.

Two docker-registries with htpasswd auth, each knowing a different user and password.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from ..conftest import IMGCTL, PushedImage
from ..support.registry import Registry
from ..support.skopeo import digest_of

SOURCE_USER, SOURCE_PASSWORD = "sam", "source side secret"
DEST_USER, DEST_PASSWORD = "dora", "destination: side secret"  # a colon in the password


def _htpasswd_registry(
    registries: Callable[..., Registry], directory: Path, user: str, password: str
) -> Registry:
    path = directory / f"{user}.htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{user}:{hashed}\n")
    return registries(htpasswd=path)


@pytest.fixture(scope="module")
def two_registries(
    registries: Callable[..., Registry], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Registry, Registry]:
    directory = tmp_path_factory.mktemp("sides")
    return (
        _htpasswd_registry(registries, directory, SOURCE_USER, SOURCE_PASSWORD),
        _htpasswd_registry(registries, directory, DEST_USER, DEST_PASSWORD),
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No credentials but what the test gives: an empty docker config, no IMGCTL_* ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGCTL_", "DOCKER_"))}
    (tmp_path / "docker").mkdir(exist_ok=True)
    env.update(DOCKER_CONFIG=str(tmp_path / "docker"), HOME=str(tmp_path), **extra)
    env["IMGCTL_ENABLE_IAAS_AUTH"] = "false"
    return env


def _imgctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # A session of its own: no controlling terminal, so nothing is asked on /dev/tty.
    return subprocess.run(
        [IMGCTL, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_each_side_uses_its_own_credentials_before_the_other_sources(
    two_registries: tuple[Registry, Registry],
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    source_registry, dest_registry = two_registries
    image = push_image(source_registry, creds=f"{SOURCE_USER}:{SOURCE_PASSWORD}")
    destination = f"{dest_registry.host}/{repo('sides')}:v1"
    # The flags' username/password (for every registry) is wrong for both: the side flags win.
    copied = _imgctl(
        _env(tmp_path),
        "copy",
        image.ref,
        destination,
        "--src-creds",
        f"{SOURCE_USER}:{SOURCE_PASSWORD}",
        "--dest-creds",
        f"{DEST_USER}:{DEST_PASSWORD}",
        "--registry-username",
        "mallory",
        "--registry-password",
        "wrong",
        "-o",
        "json",
    )
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout)[0]["status"] == "copied"
    assert digest_of(destination, creds=f"{DEST_USER}:{DEST_PASSWORD}") == image.digest


def test_the_variables_do_the_same_and_swapped_credentials_are_refused(
    two_registries: tuple[Registry, Registry],
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    source_registry, dest_registry = two_registries
    image = push_image(source_registry, creds=f"{SOURCE_USER}:{SOURCE_PASSWORD}")
    destination = f"{dest_registry.host}/{repo('sides-env')}:v1"
    env = _env(
        tmp_path,
        IMGCTL_SRC_CREDS=f"{SOURCE_USER}:{SOURCE_PASSWORD}",
        IMGCTL_DEST_CREDS=f"{DEST_USER}:{DEST_PASSWORD}",
    )
    copied = _imgctl(env, "copy", image.ref, destination)
    assert copied.returncode == 0, copied.stderr

    swapped = _imgctl(
        _env(tmp_path),
        "copy",
        image.ref,
        f"{dest_registry.host}/{repo('sides-swapped')}:v1",
        "--src-creds",
        f"{DEST_USER}:{DEST_PASSWORD}",
        "--dest-creds",
        f"{SOURCE_USER}:{SOURCE_PASSWORD}",
    )
    assert swapped.returncode == 1
    # The source refuses the destination's password: it was sent to the source.
    assert f"manifest {image.ref}: 401" in swapped.stderr, swapped.stderr


def test_a_missing_password_without_a_terminal_is_a_usage_error(tmp_path: Path) -> None:
    refused = _imgctl(
        _env(tmp_path), "copy", "127.0.0.1:1/a:v1", "127.0.0.1:1/b:v1", "--src-creds", "sam"
    )
    assert refused.returncode == 2, refused.stderr
    assert "--src-creds 'sam' has no password" in refused.stderr
    empty_user = _imgctl(
        _env(tmp_path), "copy", "127.0.0.1:1/a:v1", "127.0.0.1:1/b:v1", "--dest-creds", ":pw"
    )
    assert empty_user.returncode == 2
    assert "has no user name" in empty_user.stderr
