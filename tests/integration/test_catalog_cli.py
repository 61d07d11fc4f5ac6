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
    assert refused.returncode == 3  # no token: not authenticated (README "Exit codes")
    assert "token" in refused.stderr
    wrong = run(
        "put",
        image_id,
        "--name",
        "registry.example.com/team/app",
        "--catalog-url",
        catalog,
        "--token",
        "not-the-token",
    )
    assert wrong.returncode == 3, wrong.stderr
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
    removed = run("rm", image_id, "-e", "prod", "--catalog-url", catalog, "--token", "write-me")
    assert removed.returncode == 0, removed.stderr
    missing = run("get", image_id, "--catalog-url", catalog)
    assert missing.returncode == 5
    unreachable = run("ls", "--catalog-url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 6
    assert "--catalog-url URL (IMGCTL_CATALOG_URL)" in unreachable.stderr


def put(catalog: str, image_id: str, name: str, environment: str) -> None:
    made = run(
        "put",
        image_id,
        "--name",
        name,
        "--tag",
        "v1",
        "-e",
        environment,
        "--catalog-url",
        catalog,
        "--token",
        "write-me",
    )
    assert made.returncode == 0, made.stderr


def environments(catalog: str, image_id: str) -> list[str]:
    listed = run("ls", "--catalog-url", catalog, "--sort", "id", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return sorted(
        e.get("environment", "") for e in json.loads(listed.stdout) if e["id"] == image_id
    )


def test_rm_needs_an_environment_or_all_of_them(catalog: str) -> None:
    put(catalog, DIGEST, "registry.example.com/team/app", "prod")
    refused = run("rm", DIGEST, "--catalog-url", catalog, "--token", "write-me")
    assert refused.returncode == 2
    assert "--environment" in refused.stderr
    assert "--all-environments" in refused.stderr
    both = run(
        "rm", DIGEST, "-e", "prod", "--all-environments", "--catalog-url", catalog,
        "--token", "write-me",
    )  # fmt: skip
    assert both.returncode == 2
    assert "--all-environments" in both.stderr
    assert environments(catalog, DIGEST) == ["prod"]


def test_rm_one_environment_says_what_it_removed(catalog: str) -> None:
    for environment in ("dev", "staging", "prod"):
        put(catalog, DIGEST, "registry.example.com/team/app", environment)
    removed = run("rm", DIGEST, "-e", "prod", "--catalog-url", catalog, "--token", "write-me")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == f"removed {DIGEST} (registry.example.com/team/app) from prod\n"
    assert environments(catalog, DIGEST) == ["dev", "staging"]
    # Repeatable: one command withdraws it from several environments, each one said.
    removed = run(
        "rm", DIGEST, "-e", "dev", "-e", "staging", "--catalog-url", catalog,
        "--token", "write-me", "-o", "json",
    )  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {
        "id": DIGEST,
        "removed": [
            {"id": DIGEST, "name": "registry.example.com/team/app", "environment": "dev"},
            {"id": DIGEST, "name": "registry.example.com/team/app", "environment": "staging"},
        ],
        "absent": [],
    }
    assert environments(catalog, DIGEST) == []


def test_rm_of_something_absent_says_so_and_exits_5(catalog: str) -> None:
    put(catalog, DIGEST, "registry.example.com/team/app", "dev")
    absent = run("rm", DIGEST, "-e", "prod", "--catalog-url", catalog, "--token", "write-me")
    assert absent.returncode == 5
    assert absent.stdout == ""
    assert f"no entry of {DIGEST} in prod" in absent.stderr
    assert "imgctl catalog ls" in absent.stderr  # the hint
    # One environment absent of two: the other is still withdrawn, and the command says both.
    partly = run(
        "rm", DIGEST, "-e", "dev", "-e", "prod", "--catalog-url", catalog,
        "--token", "write-me",
    )  # fmt: skip
    assert partly.returncode == 5
    assert partly.stdout == f"removed {DIGEST} (registry.example.com/team/app) from dev\n"
    assert f"no entry of {DIGEST} in prod" in partly.stderr
    nowhere = run(
        "rm", DIGEST, "--all-environments", "--catalog-url", catalog, "--token", "write-me"
    )
    assert nowhere.returncode == 5
    assert f"no entry of {DIGEST} in any environment" in nowhere.stderr


def test_rm_all_environments_lists_each_one(catalog: str) -> None:
    for environment in ("prod", "dev"):
        put(catalog, DIGEST, "registry.example.com/team/app", environment)
    put(catalog, DIGEST, "registry.example.com/team/other", "prod")
    removed = run(
        "rm", DIGEST, "--all-environments", "--catalog-url", catalog, "--token", "write-me"
    )
    assert removed.returncode == 0, removed.stderr
    assert sorted(removed.stdout.splitlines()) == [
        f"removed {DIGEST} (registry.example.com/team/app) from dev",
        f"removed {DIGEST} (registry.example.com/team/app) from prod",
        f"removed {DIGEST} (registry.example.com/team/other) from prod",
    ]
    assert environments(catalog, DIGEST) == []


def test_delete_without_an_environment_keeps_imagelist_behaviour(catalog: str) -> None:
    """API clients (imagelist's) still remove every entry of an id, answered with 204."""
    import httpx

    put(catalog, DIGEST, "registry.example.com/team/app", "prod")
    put(catalog, DIGEST, "registry.example.com/team/app", "dev")
    headers = {"Authorization": "Bearer write-me"}
    answer = httpx.delete(f"{catalog}/images/{DIGEST}", headers=headers)
    assert answer.status_code == 204
    assert environments(catalog, DIGEST) == []
    assert httpx.delete(f"{catalog}/images/{DIGEST}", headers=headers).status_code == 204


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        # imgctl's error shape {"error": {"code", "message"}}
        (("ls", "--sort", "bogus"), "sort must be one of", "imgctl catalog ls --help"),
        (("get", "sha256:" + "34" * 32), "no image with id", "imgctl catalog ls"),
        (
            ("put", DIGEST, "--name", "registry.example.com/team/app"),
            "a valid bearer token is required",
            "--token",
        ),
        (
            (
                "put",
                DIGEST,
                "--name",
                "registry.example.com/app:v1",
                "-e",
                "prod",
                "--token",
                "write-me",
            ),
            "must be a repository without a tag or digest",
            "imgctl catalog put --help",
        ),
        (("rm", DIGEST, "--all-environments"), "a valid bearer token is required", "--token"),
    ],
)
def test_api_errors_are_printed_as_their_message_with_a_hint(
    catalog: str, args: tuple[str, ...], message: str, hint: str
) -> None:
    answer = run(*args, "--catalog-url", catalog)
    assert answer.returncode != 0
    [line] = answer.stderr.splitlines()
    assert line.startswith("imgctl: error: ")
    assert message in line
    assert hint in line
    assert "{" not in line
    assert "'code'" not in line


@pytest.mark.parametrize(
    "args",
    [
        ("ls",),
        ("get", DIGEST),
        ("put", DIGEST, "--name", "registry.example.com/team/app", "--token", "write-me"),
        ("rm", DIGEST, "--all-environments", "--token", "write-me"),
    ],
)
def test_fastapi_errors_are_printed_as_their_message(catalog: str, args: tuple[str, ...]) -> None:
    """A URL that is not the catalog's base: FastAPI answers {"detail": "Not Found"}."""
    answer = run(*args, "--catalog-url", f"{catalog}/not-the-catalog")
    assert answer.returncode != 0
    [line] = answer.stderr.splitlines()
    assert "{" not in line
    assert "Not Found" in line
    assert "--catalog-url" in line  # the hint: the URL is not a catalog's


def test_writes_to_a_catalog_without_a_tokens_file_are_not_allowed(tmp_path: Path) -> None:
    # Writes turned off (no tokens file): a refusal of the write, exit 4 as any "not allowed".
    with catalog_server(IMGCTL, tmp_path, token=None) as url:
        image_id = f"registry.example.com/team/app@{DIGEST}"
        result = run(
            "put", image_id, "--name", "registry.example.com/team/app", "--catalog-url", url
        )
    assert result.returncode == 4, result.stderr
    assert "catalog writes are turned off" in result.stderr
    assert result.stderr.count("\n") == 1
