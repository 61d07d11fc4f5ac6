"""Who may write to the catalog, and how much: issue 15, items 6, 7 and 12 (the API part).

- Secure by default: without a tokens file, ``PUT``/``DELETE`` are refused (403, with what to
  configure) unless the operator passes ``--allow-anonymous-catalog-writes``
  (``IMGCTL_ALLOW_ANONYMOUS_CATALOG_WRITES``), which the server announces with a WARNING line.
  Checked in-process and on real ``imgctl server`` / ``imgctl catalog serve`` processes.
- ``PUT /images`` reads at most its 1 MiB limit of a body, whatever ``Content-Length`` says
  (chunked, honest, lying), and reads nothing before the caller is authorised. In-process, the
  bytes the app pulls from the ASGI server are counted; tests/integration/test_input_bounds.py
  measures a real server's memory.
- ``PUT /images`` answers 200 on create, as imagelist does.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgctl.catalog.api import MAX_BODY_BYTES, create_catalog_app
from imgctl.catalog.tokens import TokenFile
from imgctl.store import CatalogStore

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.deployment import stop_process, wait_http
from ..support.postgres import BACKENDS, scratch_database
from ..support.registry import free_port

DIGEST = "sha256:" + "e" * 64
TOKEN = "catalog-writes-token-5Qm"
BODY = {"id": DIGEST, "name": "registry.example.com/team/app", "tags": ["v1"]}


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CatalogStore]:
    with scratch_database(request.param, tmp_path) as url:
        catalog = await CatalogStore.open(url)
        try:
            yield catalog
        finally:
            await catalog.aclose()


@pytest.fixture
def tokens(tmp_path: Path) -> TokenFile:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - name: ci\n    token: {TOKEN}\n    is_disabled: false\n")
    return TokenFile(path)


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def assert_refused_for_lack_of_configuration(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "writes_disabled"
    for needed in ("--tokens-file", "IMGCTL_TOKENS_FILE", "--allow-anonymous-catalog-writes"):
        assert needed in error["message"]


# --- secure by default, in-process --------------------------------------------------------


async def test_without_tokens_writes_are_refused_by_default(store: CatalogStore) -> None:
    await store.put("kept", "registry.example.com/kept", ["v1"])
    async with client_of(create_catalog_app(store, None)) as client:
        assert_refused_for_lack_of_configuration(await client.put("/images", json=BODY))
        # No credential can help: a bearer token is refused the same way.
        refused = await client.put(
            "/images", json=BODY, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert_refused_for_lack_of_configuration(refused)
        assert_refused_for_lack_of_configuration(await client.delete("/images/kept"))
        # Reads stay open, and nothing was written or deleted.
        listed = (await client.get("/images")).json()
        assert [image["id"] for image in listed] == ["kept"]


async def test_anonymous_writes_when_the_operator_opts_in(store: CatalogStore) -> None:
    async with client_of(create_catalog_app(store, None, anonymous_writes=True)) as client:
        created = await client.put("/images", json=BODY)
        assert created.status_code == 200, created.text
        assert (await client.delete(f"/images/{DIGEST}")).status_code == 204
        assert (await client.get("/images")).json() == []


def test_tokens_and_anonymous_writes_together_are_a_contradiction(
    store: CatalogStore, tokens: TokenFile
) -> None:
    with pytest.raises(ValueError, match="anonymous"):
        create_catalog_app(store, tokens, anonymous_writes=True)


async def test_put_answers_200_on_create_and_on_update(
    store: CatalogStore, tokens: TokenFile
) -> None:
    async with client_of(create_catalog_app(store, tokens)) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        created = await client.put("/images", json=BODY, headers=headers)
        assert (created.status_code, created.json()["tags"]) == (200, ["v1"])
        updated = await client.put("/images", json=BODY | {"tags": ["v2"]}, headers=headers)
        assert (updated.status_code, updated.json()["tags"]) == (200, ["v2"])


# --- bounded bodies, in-process -----------------------------------------------------------

CHUNK = 64 * 1024


@dataclass
class Exchange:
    """One ASGI request driven by hand: the body offered in chunks, the bytes the app took."""

    chunks: int
    content_length: int | None
    token: str | None = TOKEN
    last: bytes = b""
    taken: int = 0
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    async def run(self, app: Any) -> Exchange:
        headers = [(b"content-type", b"application/json"), (b"host", b"t")]
        if self.content_length is not None:
            headers.append((b"content-length", str(self.content_length).encode()))
        if self.token is not None:
            headers.append((b"authorization", f"Bearer {self.token}".encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "PUT",
            "scheme": "http",
            "path": "/images",
            "raw_path": b"/images",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        offered = 0
        filler = b" " * CHUNK

        async def receive() -> dict[str, Any]:
            nonlocal offered
            if offered < self.chunks:
                offered += 1
                chunk = self.last if offered == self.chunks and self.last else filler
                self.taken += len(chunk)
                return {"type": "http.request", "body": chunk, "more_body": offered < self.chunks}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")

        await app(scope, receive, send)
        return self


FIFTY_MIB_CHUNKS = 50 * 1024 * 1024 // CHUNK


@pytest.mark.parametrize(
    ("case", "content_length"),
    [
        ("chunked, no Content-Length", None),
        ("Content-Length lies low", 100),
        ("Content-Length lies at the limit", MAX_BODY_BYTES),
    ],
)
async def test_a_50_mib_body_is_refused_after_at_most_the_limit(
    store: CatalogStore, tokens: TokenFile, case: str, content_length: int | None
) -> None:
    app = create_catalog_app(store, tokens)
    exchange = await Exchange(FIFTY_MIB_CHUNKS, content_length).run(app)
    assert exchange.status == 413, exchange.body
    assert b'"too_large"' in exchange.body
    assert str(MAX_BODY_BYTES) in exchange.body.decode()
    # One chunk past the limit at most; the old code read all 50 MiB, then refused.
    assert exchange.taken <= MAX_BODY_BYTES + CHUNK, case
    assert exchange.headers.get("connection") == "close"


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    store: CatalogStore, tokens: TokenFile
) -> None:
    app = create_catalog_app(store, tokens)
    exchange = await Exchange(FIFTY_MIB_CHUNKS, 50 * 1024 * 1024).run(app)
    assert exchange.status == 413
    assert exchange.taken == 0


async def test_nothing_is_read_before_the_caller_is_authorised(
    store: CatalogStore, tokens: TokenFile
) -> None:
    for app in (create_catalog_app(store, tokens), create_catalog_app(store, None)):
        exchange = await Exchange(FIFTY_MIB_CHUNKS, None, token="wrong").run(app)
        assert exchange.status in (401, 403)
        assert exchange.taken == 0


async def test_a_body_of_exactly_the_limit_is_read(store: CatalogStore, tokens: TokenFile) -> None:
    # Valid JSON padded with spaces to exactly MAX_BODY_BYTES, in chunks: accepted.
    document = b'{"id": "exact", "name": "registry.example.com/app", "tags": []}'
    chunks, remainder = divmod(MAX_BODY_BYTES - len(document), CHUNK)
    assert remainder + len(document) <= CHUNK
    exchange = Exchange(chunks + 1, None)
    exchange.last = b" " * remainder + document
    # The filler goes first: JSON allows leading whitespace.
    await exchange.run(create_catalog_app(store, tokens))
    assert exchange.taken == MAX_BODY_BYTES
    assert exchange.status == 200, exchange.body
    over = Exchange(chunks + 1, None)
    over.last = b" " * (remainder + 1) + document
    await over.run(create_catalog_app(store, tokens))
    assert over.status == 413


# --- secure by default, real servers ------------------------------------------------------


def base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL")
    return {k: v for k, v in os.environ.items() if k in keep}


def test_catalog_serve_refuses_anonymous_writes_unless_opted_in(tmp_path: Path) -> None:
    (tmp_path / "closed").mkdir()
    with catalog_server(IMGCTL, tmp_path / "closed", token=None, env=base_env()) as url:
        assert_refused_for_lack_of_configuration(httpx.put(f"{url}/images", json=BODY))
        assert_refused_for_lack_of_configuration(httpx.delete(f"{url}/images/{DIGEST}"))
        assert httpx.get(f"{url}/images").json() == []
    log = (tmp_path / "closed" / "catalog.log").read_text()
    assert "catalog writes are refused" in log

    for name, flags, env in (
        ("flag", ["--allow-anonymous-catalog-writes"], base_env()),
        ("env", [], base_env() | {"IMGCTL_ALLOW_ANONYMOUS_CATALOG_WRITES": "true"}),
    ):
        (tmp_path / name).mkdir()
        with catalog_server(IMGCTL, tmp_path / name, token=None, flags=flags, env=env) as url:
            assert httpx.put(f"{url}/images", json=BODY).status_code == 200
        log = (tmp_path / name / "catalog.log").read_text()
        warnings = [line for line in log.splitlines() if " WARNING " in line]
        assert any("ANYONE" in line and "catalog" in line for line in warnings), log


def test_catalog_serve_refuses_tokens_and_anonymous_writes_together(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - name: ci\n    token: {TOKEN}\n    is_disabled: false\n")
    result = subprocess.run(
        [
            *(IMGCTL, "catalog", "serve", "--http-address", f"127.0.0.1:{free_port()}"),
            *("--database-url", f"sqlite:///{tmp_path / 'c.db'}"),
            *("--tokens-file", str(tokens), "--allow-anonymous-catalog-writes"),
        ],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
    )
    assert result.returncode != 0
    assert "--allow-anonymous-catalog-writes" in result.stderr
    assert "--tokens-file" in result.stderr


def server_env(tmp_path: Path) -> dict[str, str]:
    """Enough for `imgctl server` to start; nothing here is contacted by these tests."""
    return base_env() | {
        "HOME": str(tmp_path),
        "OIDC_ISSUER_URL": "http://127.0.0.1:9/",
        "OIDC_AUDIENCE": "https://imgctl.example.com",
        "OIDC_ALLOWED_GROUPS": "engineering",
        "IMGCTL_REGISTRY_DEV": "127.0.0.1:9",
        "IMGCTL_REGISTRY_PROD": "127.0.0.1:9/prod",
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'imgctl.db'}",
    }


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, env: dict[str, str], *flags: str) -> tuple[str, Path]:
        http = f"127.0.0.1:{free_port()}"
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen(
            [
                *(IMGCTL, "server", "--bind-address", f"127.0.0.1:{free_port()}"),
                *("--http-address", http, *flags),
            ],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        wait_http(f"http://{http}/healthz", process, log)
        return f"http://{http}", log

    yield start
    for process in started:
        stop_process(process)


def test_server_refuses_anonymous_catalog_writes_unless_opted_in(
    tmp_path: Path, start_server: Any
) -> None:
    env = server_env(tmp_path)
    url, log = start_server("closed", env)
    assert_refused_for_lack_of_configuration(httpx.put(f"{url}/images", json=BODY))
    assert_refused_for_lack_of_configuration(httpx.delete(f"{url}/images/{DIGEST}"))
    assert httpx.get(f"{url}/images").json() == []

    url, log = start_server("open", env, "--allow-anonymous-catalog-writes")
    assert httpx.put(f"{url}/images", json=BODY).status_code == 200
    warnings = [line for line in log.read_text().splitlines() if " WARNING " in line]
    assert any("ANYONE" in line and "catalog" in line for line in warnings)

    env_open = env | {"IMGCTL_ALLOW_ANONYMOUS_CATALOG_WRITES": "1"}
    url, log = start_server("open-env", env_open)
    assert httpx.delete(f"{url}/images/{DIGEST}").status_code == 204


def test_server_refuses_tokens_and_anonymous_writes_together(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - name: ci\n    token: {TOKEN}\n    is_disabled: false\n")
    env = server_env(tmp_path) | {"IMGCTL_ALLOW_ANONYMOUS_CATALOG_WRITES": "true"}
    result = subprocess.run(
        [
            *(IMGCTL, "server", "--bind-address", f"127.0.0.1:{free_port()}"),
            *("--http-address", f"127.0.0.1:{free_port()}", "--tokens-file", str(tokens)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--allow-anonymous-catalog-writes" in result.stderr


# --- one error shape ----------------------------------------------------------------------


async def test_the_webhook_and_the_api_answer_errors_in_one_shape(
    store: CatalogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgctl.catalog import admission

    async def nothing_promoted(env: str, name: str, digest: str | None, tag: str | None) -> bool:
        return False

    monkeypatch.setattr(admission, "MAX_REVIEW_BYTES", 64)
    app = admission.AdmissionWebhook(
        create_catalog_app(store, None), nothing_promoted, admission.Exemptions()
    )
    async with client_of(app) as client:
        answers = {
            "api 403": await client.put("/images", json=BODY),
            "api 400": await client.get("/images?sort=nonsense"),
            "api 404": await client.get("/images/unknown"),
            "webhook 400": await client.post("/admission/prod", content=b"[not json"),
            "webhook 405": await client.get("/admission/prod"),
            "webhook 413": await client.post("/admission/prod", content=b" " * 65),
        }
        monkeypatch.setattr(admission, "MAX_REVIEW_BYTES", 8 << 20)

        def explode(request: Any) -> Any:
            raise KeyError("a bug")

        monkeypatch.setattr(admission, "_images", explode)  # what a decision walks
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "operation": "CREATE", "kind": {"kind": "Pod"}},
        }
        answers["webhook 500"] = await client.post("/admission/prod", json=review)
    for case, answer in answers.items():
        assert str(answer.status_code) == case.split()[1], (case, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), case
        body = answer.json()
        assert list(body) == ["error"], case
        assert sorted(body["error"]) == ["code", "message"], case
        assert all(isinstance(value, str) and value for value in body["error"].values()), case
