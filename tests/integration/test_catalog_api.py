"""The catalog REST API (imagelist's, improved) through httpx against the ASGI app."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from imgctl.catalog.api import create_catalog_app
from imgctl.catalog.tokens import TokenFile
from imgctl.errors import UsageError
from imgctl.store import CatalogStore

DIGEST = "sha256:" + "c" * 64
GOOD, OTHER, DISABLED = "tok-good-LF8zuwb2dJMjZ", "tok-other-9xQ", "tok-disabled-77"


def tokens_yaml(*entries: tuple[str, str, bool]) -> str:
    lines = ["tokens:"]
    for name, token, disabled in entries:
        lines += [
            f"  - name: {name}",
            f"    token: '{token}'",
            "    description: test",
            f"    is_disabled: {'true' if disabled else 'false'}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tokens_path(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_yaml(("ci", GOOD, False), ("old", DISABLED, True)))
    return path


class MakeClient(Protocol):
    def __call__(
        self, tokens: TokenFile | None, *, anonymous_writes: bool = False
    ) -> httpx.AsyncClient: ...


@pytest.fixture
async def make_client(store: CatalogStore) -> AsyncIterator[MakeClient]:
    clients: list[httpx.AsyncClient] = []

    def make(tokens: TokenFile | None, *, anonymous_writes: bool = False) -> httpx.AsyncClient:
        app = create_catalog_app(store, tokens, anonymous_writes=anonymous_writes)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def write(path: Path, content: str) -> None:
    path.write_text(content)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)


# --- endpoints ----------------------------------------------------------------------------


async def test_crud_round_trip(make_client: MakeClient) -> None:
    client = make_client(None, anonymous_writes=True)
    body = {"id": "f569d31f", "name": "myorg/apache2", "tags": ["v0.2.5", "latest"]}
    created = await client.put("/images", json=body)
    assert created.status_code == 200
    image = created.json()
    assert set(image) == {"created_at", "updated_at", "id", "name", "tags"}
    assert image["created_at"].endswith("Z")
    assert (image["id"], image["name"], image["tags"]) == (
        "f569d31f",
        "myorg/apache2",
        body["tags"],
    )

    # Kept quirk: an update changes only the tags.
    updated = await client.put("/images", json={"id": "f569d31f", "name": "other", "tags": ["v3"]})
    assert updated.status_code == 200
    assert updated.json()["name"] == "myorg/apache2"
    assert updated.json()["tags"] == ["v3"]
    assert updated.json()["created_at"] == image["created_at"]

    # Improvement: an empty list clears the tags.
    cleared = await client.put("/images", json={"id": "f569d31f", "name": "x", "tags": []})
    assert cleared.status_code == 200
    assert cleared.json()["tags"] == []

    got = await client.get("/images/f569d31f")
    assert got.status_code == 200
    assert got.json() == cleared.json()
    listed = await client.get("/images")
    assert listed.json() == [cleared.json()]

    assert (await client.delete("/images/f569d31f")).status_code == 204
    assert_json_error(await client.get("/images/f569d31f"), 404)
    # Kept quirk: deleting an unknown id is still 204.
    deleted = await client.delete("/images/never-existed")
    assert deleted.status_code == 204
    assert deleted.content == b""


async def test_ids_with_slashes_and_at_signs(make_client: MakeClient) -> None:
    client = make_client(None, anonymous_writes=True)
    weird = f"registry.example.com/team/app@{DIGEST}"
    response = await client.put("/images", json={"id": weird, "name": "team/app", "tags": ["a"]})
    assert response.status_code == 200
    got = await client.get(f"/images/{weird}")
    assert got.status_code == 200
    assert got.json()["id"] == weird
    assert (await client.get(f"/images/{weird}/extra")).status_code == 404
    assert (await client.delete(f"/images/{weird}")).status_code == 204
    assert (await client.get(f"/images/{weird}")).status_code == 404


async def test_list_filters_and_sorting(make_client: MakeClient) -> None:
    client = make_client(None, anonymous_writes=True)
    for body in (
        {"id": "b", "name": "zeta", "tags": ["v1"]},
        {"id": "a", "name": "docker.io/library/alpha", "tags": ["v2"]},
        {
            "id": f"c@{DIGEST}",
            "name": "docker.io/library/alpha",
            "tags": ["v1"],
            "environment": "prod",
        },
    ):
        assert (await client.put("/images", json=body)).status_code == 200
        await asyncio.sleep(0.01)

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/images{query}")
        assert response.status_code == 200
        return [image["id"] for image in response.json()]

    assert await ids("") == [f"c@{DIGEST}", "a", "b"]
    assert await ids("?sort=id") == [f"c@{DIGEST}", "b", "a"]
    assert await ids("?sort=name") == ["b", "a", f"c@{DIGEST}"] or await ids("?sort=name") == [
        "b",
        f"c@{DIGEST}",
        "a",
    ]
    assert await ids("?sort=created_at") == [f"c@{DIGEST}", "a", "b"]
    assert sorted(await ids("?name=docker.io/library/alpha")) == ["a", f"c@{DIGEST}"]
    assert await ids("?environment=prod") == [f"c@{DIGEST}"]
    assert sorted(await ids("?tag=v1")) == ["b", f"c@{DIGEST}"]
    assert await ids(f"?digest={DIGEST}") == [f"c@{DIGEST}"]
    assert await ids("?name=docker.io/library/alpha&tag=v1") == [f"c@{DIGEST}"]
    prod = (await client.get("/images?environment=prod")).json()[0]
    assert prod["environment"] == "prod"
    assert (await client.get(f"/images/c@{DIGEST}?environment=prod")).status_code == 200
    assert (await client.get(f"/images/c@{DIGEST}?environment=dev")).status_code == 404
    assert_json_error(await client.get("/images?sort=tags"), 400)


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"not json", 400),
        (b"[]", 422),
        (b'{"id": "x", "name": "y"}', 422),
        (b'{"id": "", "name": "y", "tags": []}', 422),
        (b'{"id": "x", "name": "y", "tags": "latest"}', 422),
        (b'{"id": "x", "name": "y", "tags": [1]}', 422),
        (b'{"id": 5, "name": "y", "tags": []}', 422),
    ],
)
async def test_put_validation_errors_are_json(
    make_client: MakeClient, content: bytes, status: int
) -> None:
    client = make_client(None, anonymous_writes=True)
    response = await client.put(
        "/images", content=content, headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, status)
    assert (await client.get("/images")).json() == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nginx", "use 'docker.io/library/nginx'"),
        ("index.docker.io/library/nginx", "use 'docker.io/library/nginx'"),
        ("registry.example.com/app:v1", "without a tag or digest"),
        (f"registry.example.com/app@{DIGEST}", "without a tag or digest"),
        ("Registry.example.com/App", "not a valid repository name"),
        ("https://registry.example.com/app", "not a valid repository name"),
    ],
)
async def test_put_with_an_environment_needs_the_canonical_name(
    make_client: MakeClient, name: str, message: str
) -> None:
    client = make_client(None, anonymous_writes=True)
    body = {"id": DIGEST, "name": name, "tags": ["v1"], "environment": "prod"}
    response = await client.put("/images", json=body)
    assert_json_error(response, 422)
    assert message in response.json()["error"]["message"]
    assert (await client.get("/images")).json() == []
    # Without an environment (imagelist's own use) any name is kept as given.
    del body["environment"]
    assert (await client.put("/images", json=body)).status_code == 200


async def test_health_ping(store: CatalogStore, make_client: MakeClient, db_url: str) -> None:
    client = make_client(None)
    response = await client.get("/health/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    down = await CatalogStore.open(db_url)
    await down.aclose()  # every call now fails with StoreError, like an unreachable database
    app = create_catalog_app(down, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert_json_error(await c.get("/health/ping"), 503)


async def test_openapi(make_client: MakeClient) -> None:
    response = await make_client(None).get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "imgctl catalog"


async def test_openapi_documents_the_image_object(make_client: MakeClient) -> None:
    schema = (await make_client(None).get("/openapi.json")).json()
    listed = schema["paths"]["/images"]["get"]["responses"]["200"]["content"]
    assert listed["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/ImageOut"
    }
    one = schema["paths"]["/images/{id}"]["get"]["responses"]["200"]["content"]
    assert one["application/json"]["schema"] == {"$ref": "#/components/schemas/ImageOut"}
    image = schema["components"]["schemas"]["ImageOut"]
    # imagelist's fields are required; imgctl's are optional, signed/attested among them.
    assert set(image["required"]) == {"created_at", "updated_at", "id", "name", "tags"}
    for field in ("environment", "promoted_by", "signed", "attested"):
        assert field in image["properties"]
    assert {"type": "boolean"} in image["properties"]["attested"]["anyOf"]


# --- auth ---------------------------------------------------------------------------------


async def test_writes_need_a_valid_token(make_client: MakeClient, tokens_path: Path) -> None:
    client = make_client(TokenFile(tokens_path))
    body = {"id": "x", "name": "app", "tags": []}
    for headers in (
        {},
        auth("wrong"),
        auth(DISABLED),
        auth(""),
        {"Authorization": f"Basic {GOOD}"},
        {"Authorization": GOOD},
    ):
        response = await client.put("/images", json=body, headers=headers)
        assert_json_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert_json_error(await client.delete("/images/x", headers=headers), 401)
    assert (await client.get("/images")).json() == []
    assert (await client.put("/images", json=body, headers=auth(GOOD))).status_code == 200
    assert (await client.get("/images/x")).status_code == 200  # reads are open
    assert (await client.delete("/images/x", headers=auth(GOOD))).status_code == 204


def test_token_file_check(tokens_path: Path, tmp_path: Path) -> None:
    tokens = TokenFile(tokens_path)
    assert tokens.check(GOOD) == "ci"
    assert tokens.check(DISABLED) is None
    assert tokens.check("") is None
    assert tokens.check(GOOD + "x") is None


async def eventually(tokens: TokenFile, token: str, expected: str | None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 2.0:
        if tokens.check(token) == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"token check did not become {expected!r} within 2 s")


async def test_reload_after_in_place_edit(tokens_path: Path) -> None:
    tokens = TokenFile(tokens_path)
    assert tokens.check(OTHER) is None
    with tokens_path.open("w") as handle:  # same inode, truncated and rewritten
        handle.write(tokens_yaml(("ci", OTHER, False)))
    await eventually(tokens, OTHER, "ci")
    assert tokens.check(GOOD) is None


async def test_reload_after_atomic_rename(tokens_path: Path) -> None:
    tokens = TokenFile(tokens_path)
    assert tokens.check(GOOD) == "ci"
    new = tokens_path.with_name("tokens.yaml.tmp")
    new.write_text(tokens_yaml(("deploy", OTHER, False), ("ci", GOOD, True)))
    os.replace(new, tokens_path)
    await eventually(tokens, OTHER, "deploy")
    assert tokens.check(GOOD) is None


async def test_reload_after_kubernetes_secret_symlink_swap(tmp_path: Path) -> None:
    # What the kubelet does: tokens.yaml -> ..data/tokens.yaml, ..data -> ..<timestamp>/,
    # and an update writes a new timestamped dir and renames a new ..data symlink over the old.
    mount = tmp_path / "secret"
    mount.mkdir()
    first = mount / "..2024_01_01_00_00_00.1"
    first.mkdir()
    (first / "tokens.yaml").write_text(tokens_yaml(("ci", GOOD, False)))
    (mount / "..data").symlink_to(first.name)
    (mount / "tokens.yaml").symlink_to("..data/tokens.yaml")
    tokens = TokenFile(mount / "tokens.yaml")
    assert tokens.check(GOOD) == "ci"

    second = mount / "..2024_01_01_00_01_00.2"
    second.mkdir()
    (second / "tokens.yaml").write_text(tokens_yaml(("ci", OTHER, False)))
    (mount / "..data_tmp").symlink_to(second.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    for child in first.iterdir():
        child.unlink()
    first.rmdir()
    await eventually(tokens, OTHER, "ci")
    assert tokens.check(GOOD) is None


async def test_deleted_file_means_no_tokens_and_recreated_file_counts(
    tokens_path: Path, make_client: MakeClient
) -> None:
    tokens = TokenFile(tokens_path)
    client = make_client(tokens)
    os.unlink(tokens_path)
    await eventually(tokens, GOOD, None)
    body = {"id": "x", "name": "app", "tags": []}
    assert_json_error(await client.put("/images", json=body, headers=auth(GOOD)), 401)
    write(tokens_path, tokens_yaml(("ci", GOOD, False)))
    await eventually(tokens, GOOD, "ci")
    assert (await client.put("/images", json=body, headers=auth(GOOD))).status_code == 200


# Each is a broken edit of the file; most would revoke "ci" if they loaded.
BROKEN_EDITS = [
    "tokens: [unclosed\n  token: 'SECRET-IN-BROKEN-FILE'",
    "tokens: {name: x}\n",
    "- just a list\n",
    "tokens:\n  - name: x\n    token: 'SECRET-IN-BROKEN-FILE'\n    is_disabled: maybe\n",
    "tokens:\n  - token: 'SECRET-IN-BROKEN-FILE'\n",
    "",
    "\x00\x01binary",
    *(
        tokens_yaml(("ci", GOOD, False)).replace("is_disabled: false", f"is_disabled: {value}")
        for value in ('"true"', "'True'", '"yes"', "1", "")
    ),
    tokens_yaml(("ci", GOOD, False)).replace("is_disabled", "is_disable"),
    tokens_yaml(("ci", GOOD, False)).replace("description", "SECRET-IN-BROKEN-FILE"),
    tokens_yaml(("ci", GOOD, False)) + "    is_disabled: true\n",
    tokens_yaml(("ci", GOOD, False)) + "    Is_Disabled: true\n",
    tokens_yaml(("ci", GOOD, True), ("ci-again", GOOD, False)),
    tokens_yaml(("ci", GOOD, False), ("CI", OTHER, False)),
    "tokens:\n- &ci {name: ci, token: SECRET-IN-BROKEN-FILE, is_disabled: true}\n"
    "- {<<: *ci, is_disabled: false}\n",
]


@pytest.mark.parametrize("content", BROKEN_EDITS)
def test_a_file_that_stops_loading_refuses_every_token_until_fixed(
    tokens_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = TokenFile(tokens_path, interval=0.0)
    assert tokens.check(GOOD) == "ci"
    tokens_path.write_text(content)
    with caplog.at_level("WARNING", logger="imgctl.catalog.tokens"):
        assert tokens.check(GOOD) is None
        assert tokens.check(OTHER) is None
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert f"tokens file {tokens_path} " in record.getMessage()
    assert "every token is refused until it is fixed" in record.getMessage()
    for secret in ("SECRET-IN-BROKEN-FILE", GOOD, OTHER):
        assert secret not in caplog.text
    tokens_path.write_text(tokens_yaml(("ci", OTHER, False)))
    assert tokens.check(OTHER) == "ci"


@pytest.mark.parametrize("content", BROKEN_EDITS)
def test_a_file_that_does_not_load_cannot_be_used(tokens_path: Path, content: str) -> None:
    tokens_path.write_text(content)
    with pytest.raises(UsageError) as caught:
        TokenFile(tokens_path)
    assert caught.value.message.startswith(f"tokens file {tokens_path}: ")
    for secret in ("SECRET-IN-BROKEN-FILE", GOOD, OTHER):
        assert secret not in str(caught.value)


def test_a_missing_unreadable_or_directory_file_cannot_be_used(tmp_path: Path) -> None:
    for path, problem in [
        (tmp_path / "missing.yaml", "does not exist"),
        (tmp_path, "is a directory, not a file"),
    ]:
        with pytest.raises(UsageError, match=f"^tokens file {path}: {problem}"):
            TokenFile(path)


def test_changes_are_checked_at_most_every_half_second(tokens_path: Path) -> None:
    tokens = TokenFile(tokens_path)
    assert tokens.check(GOOD) == "ci"
    tokens_path.unlink()
    assert tokens.check(GOOD) == "ci"  # within 0.5 s of the last look: not checked yet
    time.sleep(0.55)
    assert tokens.check(GOOD) is None
