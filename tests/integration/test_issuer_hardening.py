"""The built-in issuer as a real process: replay memory across restarts and replicas, bounded
request bodies, and logs that never hold what a caller sent in a query or a form."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from imgctl.identity._oauth import GRANT_TOKEN_EXCHANGE, TYPE_ACCESS_TOKEN, TYPE_ID_TOKEN
from imgctl.identity.sshjwt import build_claims, load_key_file, sign_jwt
from imgctl.store import JtiStore

from ..conftest import IMGCTL
from ..support.idp import Idp, start_idp
from ..support.postgres import BACKENDS, scratch_database
from ..support.sshkeys import Key, keygen

ISSUER = "https://idp.example.com"  # configured: replicas must agree on the SSH JWT's aud
AUDIENCE = "https://imgctl.example.com"
SECRET = "issuer-hardening-client-secret"
LIMIT = 64 * 1024
ACCESS_LINE = re.compile(r'"[A-Z]+ /[^"? ]*" \d{3} ')


@pytest.fixture(scope="module")
def alice(tmp_path_factory: pytest.TempPathFactory) -> Key:
    return keygen(tmp_path_factory.mktemp("alice"), "ed25519")


def issuer(
    directory: Path, alice: Key, *, keys_dir: Path, env: dict[str, str] | None = None, **extra: Any
) -> Idp:
    return start_idp(
        IMGCTL,
        directory,
        {"alice": {"keys": [alice.line], "email": "alice@example.com"}},
        audiences=[AUDIENCE],
        secret=SECRET,
        extra={"issuer": ISSUER, "keys_dir": str(keys_dir), **extra},
        env=env,
    )


@contextlib.contextmanager
def running(idp: Idp) -> Iterator[Idp]:
    try:
        yield idp
    finally:
        idp.stop()


async def ssh_jwt(key: Key, **overrides: Any) -> str:
    claims = build_claims(
        username="alice", issuer_url=ISSUER, target_audience=AUDIENCE, now=int(time.time())
    )
    claims.update(overrides)
    return await sign_jwt(load_key_file(key.private), claims)


def form(subject_token: str) -> dict[str, str]:
    return {
        "grant_type": GRANT_TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": TYPE_ACCESS_TOKEN,
        "requested_token_type": TYPE_ID_TOKEN,
        "scope": "openid email groups profile",
        "connector_id": "ssh",
        "audience": AUDIENCE,
        "client_id": "imgctl",
        "client_secret": SECRET,
    }


async def exchange(client: httpx.AsyncClient, idp: Idp, token: str) -> httpx.Response:
    return await client.post(f"{idp.url}/token", data=form(token))


def log_text(idp: Idp) -> str:
    return idp.log.read_text(errors="replace")


# ----------------------------------------------------------------- (a) jti replay memory


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_used_jti_stays_used_across_a_restart(
    backend: str, alice: Key, tmp_path: Path
) -> None:
    with scratch_database(backend, tmp_path) as url:
        keys_dir = tmp_path / "keys"
        token = await ssh_jwt(alice)
        async with httpx.AsyncClient(timeout=30) as client:
            with running(
                issuer(tmp_path / "idp", alice, keys_dir=keys_dir, database_url=url)
            ) as idp:
                first = await exchange(client, idp, token)
                assert first.status_code == 200, first.text
            with running(
                issuer(tmp_path / "idp", alice, keys_dir=keys_dir, database_url=url)
            ) as idp:
                replay = await exchange(client, idp, token)
                fresh = await exchange(client, idp, await ssh_jwt(alice))
        assert replay.status_code == 401
        assert replay.json()["error"] == "access_denied"
        assert "already used" in replay.json()["error_description"]
        assert fresh.status_code == 200, fresh.text  # the restarted issuer still works


async def test_the_default_replay_memory_is_a_file_that_survives_a_restart(
    alice: Key, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    token = await ssh_jwt(alice)
    env = {"IMGCTL_DATABASE_URL": ""}
    async with httpx.AsyncClient(timeout=30) as client:
        with running(issuer(tmp_path / "idp", alice, keys_dir=keys_dir, env=env)) as idp:
            assert (await exchange(client, idp, token)).status_code == 200
        with running(issuer(tmp_path / "idp", alice, keys_dir=keys_dir, env=env)) as idp:
            replay = await exchange(client, idp, token)
    assert replay.status_code == 401
    assert "already used" in replay.json()["error_description"]
    assert f"sqlite:///{keys_dir}/issuer.db" in log_text(idp)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_database_can_come_from_imgctl_database_url(
    backend: str, alice: Key, tmp_path: Path
) -> None:
    with scratch_database(backend, tmp_path) as url:
        token = await ssh_jwt(alice)
        env = {"IMGCTL_DATABASE_URL": url}
        async with httpx.AsyncClient(timeout=30) as client:
            with running(issuer(tmp_path / "a", alice, keys_dir=tmp_path / "ka", env=env)) as one:
                assert (await exchange(client, one, token)).status_code == 200
            # Another issuer, other keys directory: only the database is shared.
            with running(issuer(tmp_path / "b", alice, keys_dir=tmp_path / "kb", env=env)) as two:
                replay = await exchange(client, two, token)
        assert replay.status_code == 401
        assert "already used" in replay.json()["error_description"]
        assert "jti replay memory: database" in log_text(two)


async def test_the_in_memory_fallback_is_announced_and_forgets_on_restart(
    alice: Key, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    token = await ssh_jwt(alice)
    async with httpx.AsyncClient(timeout=30) as client:
        with running(
            issuer(tmp_path / "idp", alice, keys_dir=keys_dir, database_url="memory")
        ) as idp:
            assert (await exchange(client, idp, token)).status_code == 200
            replay = await exchange(client, idp, token)
        with running(
            issuer(tmp_path / "idp", alice, keys_dir=keys_dir, database_url="memory")
        ) as idp:
            # What the documentation warns of: a restarted in-memory issuer has forgotten.
            after_restart = await exchange(client, idp, token)
    assert replay.status_code == 401  # within one process it is still refused
    assert after_restart.status_code == 200
    assert log_text(idp).count("jti replay memory: in this process only") == 2
    assert not (keys_dir / "issuer.db").exists()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_issuers_on_one_database_issue_each_jwt_once(
    backend: str, alice: Key, tmp_path: Path
) -> None:
    rounds = 15
    with scratch_database(backend, tmp_path) as url:
        keys_dir = tmp_path / "keys"
        with (
            running(issuer(tmp_path / "a", alice, keys_dir=keys_dir, database_url=url)) as one,
            running(issuer(tmp_path / "b", alice, keys_dir=keys_dir, database_url=url)) as two,
        ):
            tokens = [await ssh_jwt(alice) for _ in range(rounds)]
            async with httpx.AsyncClient(timeout=60) as client:
                answers = await asyncio.gather(
                    *(exchange(client, idp, token) for token in tokens for idp in (one, two))
                )
    statuses = [answer.status_code for answer in answers]
    per_jwt = [sorted(statuses[2 * n : 2 * n + 2]) for n in range(rounds)]
    assert per_jwt == [[200, 401]] * rounds, statuses
    refused = [answer.json() for answer in answers if answer.status_code == 401]
    assert all("already used" in body["error_description"] for body in refused), refused


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_jti_table_lets_one_of_many_racing_claimers_through(
    backend: str, tmp_path: Path
) -> None:
    with scratch_database(backend, tmp_path) as url:
        one, two = await JtiStore.open(url), await JtiStore.open(url)  # two replicas
        try:
            now = datetime.now(UTC)
            until = now + timedelta(seconds=330)
            for round_ in range(10):
                jti = f"jti-{round_}"
                results = await asyncio.gather(
                    *(store.claim("alice", jti, until) for store in (one, two) * 8)
                )
                assert sorted(results) == [False] * 15 + [True], (round_, results)
            # Another user's JWT may carry the same id: it is theirs to use once.
            assert await one.claim("bob", "jti-0", until)
            assert not await two.claim("bob", "jti-0", until)
        finally:
            await one.aclose()
            await two.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_expired_jti_rows_are_pruned_and_do_not_count(backend: str, tmp_path: Path) -> None:
    with scratch_database(backend, tmp_path) as url:
        store = await JtiStore.open(url)
        try:
            now = datetime.now(UTC)
            for n in range(5):
                assert await store.claim("alice", f"old-{n}", now + timedelta(seconds=n), now=now)
            assert await store.claim("alice", "live", now + timedelta(seconds=600), now=now)
            later = now + timedelta(seconds=3)
            # old-0..old-3 have expired by then (expires_at <= later): an expired row no
            # longer blocks, and pruning removes the others that expired.
            assert await store.claim("alice", "old-0", later + timedelta(seconds=300), now=later)
            assert await store.prune(now=later) == 3  # old-1, old-2, old-3
            assert await store.count() == 3  # old-0 (taken again), old-4, live
            assert not await store.claim("alice", "live", later + timedelta(seconds=1), now=later)
        finally:
            await store.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_without_its_database_the_issuer_refuses_rather_than_risk_a_replay(
    backend: str, alice: Key, tmp_path: Path
) -> None:
    with (
        scratch_database(backend, tmp_path) as url,
        running(
            issuer(tmp_path / "idp", alice, keys_dir=tmp_path / "keys", database_url=url)
        ) as idp,
    ):
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(text("DROP TABLE issuer_jti"))
        finally:
            engine.dispose()
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await exchange(client, idp, await ssh_jwt(alice))
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    assert "access_token" not in answer.json()
    assert "cannot check the SSH JWT's jti" in log_text(idp)


def test_an_unreachable_database_stops_the_start(alice: Key, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as caught:
        issuer(
            tmp_path / "idp",
            alice,
            keys_dir=tmp_path / "keys",
            database_url="postgresql://imgctl:hunter2@127.0.0.1:1/imgctl",
        )
    message = str(caught.value)
    assert "cannot connect to the database" in message
    assert "127.0.0.1:1" in message
    assert "hunter2" not in message


def test_a_bad_database_url_in_the_config_stops_the_start(alice: Key, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as caught:
        issuer(
            tmp_path / "idp",
            alice,
            keys_dir=tmp_path / "keys",
            database_url="mysql://root:hunter2@db/imgctl",
        )
    message = str(caught.value)
    assert "database_url" in message
    assert "hunter2" not in message


# ----------------------------------------------------------------- (c) request body limit


ROUTES = [
    ("POST", "/token"),
    ("GET", "/token"),
    ("GET", "/keys"),
    ("POST", "/keys"),
    ("GET", "/healthz"),
    ("GET", "/.well-known/openid-configuration"),
    ("POST", "/no/such/path"),
]


@pytest.fixture(scope="module")
def shared_idp(tmp_path_factory: pytest.TempPathFactory, alice: Key) -> Iterator[Idp]:
    root = tmp_path_factory.mktemp("shared-idp")
    with running(issuer(root, alice, keys_dir=root / "keys", database_url="memory")) as idp:
        yield idp


def raw_request(idp: Idp, head: bytes, body_chunks: Iterable[bytes] = ()) -> bytes:
    """Send ``head`` and as much of the body as the server takes; return its whole answer."""
    port = int(urllib.parse.urlsplit(idp.url).port or 0)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # The server may answer and close before taking it all; its answer is still read.
        with contextlib.suppress(OSError):
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
        answer = b""
        with contextlib.suppress(OSError):
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
                if b"\r\n\r\n" in answer and _complete(answer):
                    break
    return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_and_json(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_declared_oversized_body_is_refused_before_it_is_sent(
    shared_idp: Idp, method: str, path: str
) -> None:
    # Only the head is sent: an answer proves nothing of the body was waited for.
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: idp\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {96 << 20}\r\n\r\n"
    ).encode()
    status, body = status_and_json(raw_request(shared_idp, head))
    assert status == 413
    assert body["error"] == "invalid_request"
    assert str(LIMIT) in body["error_description"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_chunked_oversized_body_is_refused_while_streaming(
    shared_idp: Idp, method: str, path: str
) -> None:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: idp\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()

    def chunks() -> Iterator[bytes]:
        piece = b"a=" + b"x" * 16382
        for _ in range(64):  # 1 MiB in chunks of 16 KiB, no end marker unless all is taken
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"0\r\n\r\n"

    status, body = status_and_json(raw_request(shared_idp, head, chunks()))
    assert status == 413
    assert body["error"] == "invalid_request"


def test_a_body_under_the_limit_still_reaches_the_token_endpoint(shared_idp: Idp) -> None:
    padding = "p=" + "x" * (LIMIT - 2000)
    body = urllib.parse.urlencode(form("not.a.jwt")) + "&" + padding
    answer = httpx.post(
        f"{shared_idp.url}/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert answer.status_code == 401  # judged: a malformed SSH JWT, not a too-large body
    assert "malformed SSH JWT" in answer.json()["error_description"]


def test_a_96_mib_body_does_not_grow_the_issuer(alice: Key, tmp_path: Path) -> None:
    with running(
        issuer(tmp_path / "idp", alice, keys_dir=tmp_path / "keys", database_url="memory")
    ) as idp:
        process = psutil.Process(idp.process.pid)
        before = process.memory_info().rss
        size = 96 << 20
        head = (
            f"POST /token HTTP/1.1\r\nHost: idp\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        chunk = b"x" * (1 << 20)
        answer = raw_request(idp, head, iter([chunk] * 96))
        after = process.memory_info().rss
    status, _ = status_and_json(answer)
    print(
        f"issuer RSS before {before / 2**20:.1f} MiB, after a 96 MiB body {after / 2**20:.1f} MiB"
    )
    assert status == 413
    assert after - before < 8 << 20


HEADS = {
    "long query": b"GET /healthz?q=" + b"q" * (8 << 20) + b" HTTP/1.1\r\nHost: idp\r\n\r\n",
    "long header": b"GET /healthz HTTP/1.1\r\nHost: idp\r\nX-Big: "
    + b"h" * (8 << 20)
    + b"\r\n\r\n",
    "many headers": b"GET /healthz HTTP/1.1\r\nHost: idp\r\n" + b"X-A: b\r\n" * 200_000 + b"\r\n",
}


@pytest.mark.parametrize("name", HEADS)
def test_an_oversized_request_head_is_refused(shared_idp: Idp, name: str) -> None:
    # 8 MiB of request line or headers; the body limit would be moot if these were unbounded.
    answer = raw_request(shared_idp, HEADS[name])
    assert answer.split(b" ", 2)[1] == b"400", answer[:200]


def test_a_request_head_under_the_limit_is_answered(shared_idp: Idp) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: idp\r\nX-Big: " + b"h" * 8000 + b"\r\n\r\n"
    status, body = status_and_json(raw_request(shared_idp, head))
    assert (status, body) == (200, {"status": "ok"})


# ----------------------------------------------------------------- (d) nothing secret in logs


def test_no_query_or_form_value_reaches_the_log(alice: Key, tmp_path: Path) -> None:
    sent: list[str] = []

    def secret() -> str:
        value = f"S3CR3T{secrets.token_hex(12)}"
        sent.append(value)
        return value

    methods = ["GET", "POST", "PUT", "DELETE"]
    paths = ["/token", "/keys", "/healthz", "/.well-known/openid-configuration", "/nope", "/"]
    with running(
        issuer(tmp_path / "idp", alice, keys_dir=tmp_path / "keys", database_url="memory")
    ) as idp:
        requests = 0
        with httpx.Client(timeout=30) as client:
            for method in methods:
                for path in paths:
                    query = {"client_secret": secret(), "subject_token": secret(), "x": secret()}
                    data = {"client_secret": secret(), "subject_token": secret()}
                    content = urllib.parse.urlencode(data) if method != "GET" else None
                    answer = client.request(
                        method,
                        f"{idp.url}{path}",
                        params=query,
                        content=content,
                        headers={
                            "Content-Type": "application/x-www-form-urlencoded",
                            "Authorization": f"Basic {secret()}",
                        },
                    )
                    requests += 1
                    assert answer.status_code in {200, 400, 401, 404, 405}, answer.text
            # A too-large body and a refused token request, secrets in both query and form.
            big = {"client_secret": secret(), "pad": "y" * (LIMIT + 1)}
            too_large = client.post(
                f"{idp.url}/token", params={"client_secret": secret()}, data=big
            )
            refused = client.post(
                f"{idp.url}/token",
                params={"subject_token": secret()},
                data=form(secret()) | {"client_secret": secret()},
            )
            requests += 2
    log = log_text(idp)
    leaked = [value for value in sent if value in log or value[6:] in log]
    assert leaked == [], log
    assert "S3CR3T" not in log
    assert (too_large.status_code, refused.status_code) == (413, 401)
    # Each request still leaves one line: method, path without its query, status.
    access = [line for line in log.splitlines() if ACCESS_LINE.search(line)]
    # start_idp polls /healthz until the issuer answers: those lines are not counted.
    assert sum('"GET /healthz"' not in line for line in access) == requests - 1, log
    assert sum('"GET /nope" 404' in line for line in access) == 1, log
    assert sum('"POST /token" 413' in line for line in access) == 1, log
