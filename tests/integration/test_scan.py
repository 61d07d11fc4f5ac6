"""Scanning real registries: pagination, exclusions, policies, throttling, auth failures."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from imgctl.oci import Reference
from imgctl.remote import ClientOptions
from imgctl.scan.scanner import MemoryScanState, Scanner, format_duration, tag_revision
from imgctl.scan.watches import WatchConfig, parse_watches
from imgctl.store import WatchState

from ..conftest import PASSWORD, USER, PushedImage, Tls
from ..support.httpd import CheckedHTTPServer
from ..support.proxy import FaultProxy
from ..support.registry import Registry, add_tags

FAST = ClientOptions(backoff=0.01, max_backoff=0.05)
MANY = 2500
SIGNATURES = 12  # cosign-style tags the default exclusion list must drop


def config(*watches: dict[str, Any], **top: Any) -> WatchConfig:
    return parse_watches({"watches": list(watches), **top}, source="test-watches.yaml")


def watch(name: str, image: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "interval": "1m", **fields}


@dataclass
class BigRepo:
    registry: Registry
    repository: str
    image: PushedImage
    tags: list[str]  # every tag, signatures included


@pytest.fixture(scope="module")
def big_repo(registries: Callable[..., Registry], layouts: Callable[..., Any]) -> BigRepo:
    """One repository with 2,500 semver tags, 12 signature tags and 'latest'."""
    from ..support.skopeo import push_layout

    registry = registries()
    repository = "scan/many"
    built = layouts(tag="0.0.0")
    push_layout(built.oci_ref, f"{registry.host}/{repository}:0.0.0")
    versions = [f"{i // 100}.{i % 100}.0" for i in range(MANY)]
    signatures = [f"sha256-{i:064x}.sig" for i in range(SIGNATURES)]
    tags = [*versions, *signatures, "latest"]
    asyncio.run(add_tags(f"{registry.host}/{repository}:0.0.0", tags[1:]))
    return BigRepo(
        registry, repository, PushedImage(f"{registry.host}/{repository}:0.0.0", built), tags
    )


async def test_2500_tags_through_a_registry_capping_pages_at_100(
    big_repo: BigRepo, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(big_repo.registry)
    proxy.paginate_tags = True
    proxy.tag_page_cap = 100  # like Quay: asks for 1,000, gets 100 and a Link
    watches = config(
        watch(
            "many",
            f"{proxy.host}/{big_repo.repository}",
            policy={"semver": {"range": ">=1.0.0"}},
        )
    )
    async with Scanner(watches, options=FAST) as scanner:
        state = await scanner.scan(watches.watches[0])
    expected = [t for t in big_repo.tags if not t.endswith(".sig")]
    assert state.ready == "True", state.message
    assert state.reason == "Succeeded"
    assert len(state.tags) == MANY + 1 == len(expected)
    assert set(state.tags) == set(expected)
    assert state.revision == tag_revision(expected)
    assert state.latest_tag == "24.99.0"
    assert state.latest_digest == big_repo.image.digest
    pages = [p for m, p, _ in proxy.log if m == "GET" and "/tags/list" in p]
    assert len(pages) >= (MANY + SIGNATURES + 1) // 100
    assert all("n=1000" in p or "last=" in p for p in pages)


async def test_a_registry_refusing_large_pages_is_asked_for_smaller_ones(
    big_repo: BigRepo, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(big_repo.registry)
    proxy.paginate_tags = True
    proxy.tag_page_max = 500  # like distribution 3: a larger n is a 400
    watches = config(watch("many", f"{proxy.host}/{big_repo.repository}"))
    async with Scanner(watches, options=FAST) as scanner:
        state = await scanner.scan(watches.watches[0])
    assert state.ready == "True", state.message
    assert len(state.tags) == MANY + 1
    statuses = [s for m, p, s in proxy.log if "/tags/list" in p]
    assert statuses[0] == 400
    assert set(statuses[1:]) == {200}


async def test_status_json_is_flux_shaped(big_repo: BigRepo) -> None:
    watches = config(
        watch(
            "many",
            f"{big_repo.registry.host}/{big_repo.repository}",
            interval="90s",
            exclusionList=["^latest$", "^1[0-9]\\."],
            policy={"semver": {"range": "~2.5"}},
        )
    )
    async with Scanner(watches, options=FAST) as scanner:
        (status,) = await scanner.scan_all()
    body = status.as_json()
    assert body["canonicalImageName"] == f"{big_repo.registry.host}/{big_repo.repository}"
    assert body["interval"] == "1m30s"
    result = body["lastScanResult"]
    assert isinstance(result, dict)
    # The custom list replaces the default: signatures are back, 'latest' and 10.x-19.x are out.
    assert result["tagCount"] == MANY - 1000 + SIGNATURES
    # Flux's latestTags: the first ten in descending (string) order.
    kept = [t for t in big_repo.tags if not re.search(r"^latest$|^1[0-9]\.", t)]
    assert len(kept) == result["tagCount"]
    assert result["latestTags"] == sorted(kept, reverse=True)[:10]
    (condition,) = body["conditions"]  # type: ignore[misc]
    assert condition["type"] == "Ready"
    assert condition["status"] == "True"
    assert condition["reason"] == "Succeeded"
    assert body["policy"] == {
        "spec": {"semver": {"range": "~2.5"}},
        "latestTag": "2.5.0",
        "latestDigest": big_repo.image.digest,
        "latestImage": f"{big_repo.registry.host}/{big_repo.repository}:2.5.0",
    }
    json.dumps(body)  # serialisable as is


async def test_auth_failure_is_reported_while_other_watches_scan(
    htpasswd_registry: Registry,
    registry: Registry,
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    private = push_image(htpasswd_registry, tag="1.0.0", creds=f"{USER}:{PASSWORD}")
    public = push_image(registry, tag="2.0.0")
    private_repo = Reference.parse(private.ref).repository
    docker_config = tmp_path / "config.json"
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    docker_config.write_text(json.dumps({"auths": {htpasswd_registry.host: {"auth": auth}}}))
    bad = tmp_path / "bad-password"
    bad.write_text("not-the-password\n")
    image = f"{htpasswd_registry.host}/{private_repo}"
    watches = config(
        watch("anonymous", image),
        watch("wrong-password", image, credentials={"username": USER, "passwordFile": str(bad)}),
        watch("password", image, credentials={"username": USER, "password": PASSWORD}),
        watch("docker-config", image, credentials={"dockerConfig": str(docker_config)}),
        watch("public", Reference.parse(public.ref).name, policy={"semver": {"range": "*"}}),
    )
    async with Scanner(watches, options=FAST, environ={}, home=tmp_path) as scanner:
        statuses = {s.watch.name: s.state for s in await scanner.scan_all()}
    for name in ("anonymous", "wrong-password"):
        assert statuses[name].ready == "False"
        assert statuses[name].reason == "AuthenticationFailed"
        assert "401" in statuses[name].message
    for name in ("password", "docker-config"):
        assert statuses[name].ready == "True", statuses[name].message
        assert statuses[name].tags == ("1.0.0",)
    assert statuses["public"].ready == "True"
    assert statuses["public"].latest_tag == "2.0.0"
    assert statuses["public"].latest_digest == public.digest
    for state in statuses.values():
        assert PASSWORD not in state.message


class RecordingState(MemoryScanState):
    """Memory state that remembers every saved state, per watch, with the time it was saved."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[tuple[float, WatchState]]] = {}

    async def save(self, state: WatchState) -> None:
        await super().save(state)
        self.history.setdefault(state.name, []).append((time.monotonic(), state))


async def test_throttled_registry_backs_off_and_recovers_without_holding_up_others(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    throttled = push_image(registry, tag="1.0.0")
    steady = push_image(registry, tag="3.0.0")
    proxy = proxy_for(registry)
    # Each scan makes 1 + 2 retries; 6 refusals fail the first two scans outright.
    proxy.fail(429, 6, path="/tags/list", headers={"Retry-After": "1"})
    throttled_repo = Reference.parse(throttled.ref).repository
    watches = config(
        watch("throttled", f"{proxy.host}/{throttled_repo}", interval="1s", timeout="10s"),
        watch("steady", Reference.parse(steady.ref).name, interval="1s"),
        concurrency=1,  # even with one slot, the throttled watch must not starve the other
    )
    state = RecordingState()
    stop = asyncio.Event()
    scanner = Scanner(watches, state=state, options=FAST)
    task = asyncio.create_task(scanner.run(stop))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            history = state.history.get("throttled", [])
            if history and history[-1][1].ready == "True":
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        await scanner.aclose()
    throttled_history = [s for _, s in state.history["throttled"]]
    assert [s.ready for s in throttled_history[:2]] == ["False", "False"]
    assert throttled_history[0].reason == "ReadOperationFailed"
    assert "429" in throttled_history[0].message
    assert throttled_history[1].failures == 2
    assert throttled_history[-1].ready == "True"
    assert throttled_history[-1].failures == 0
    assert throttled_history[-1].tags == ("1.0.0",)
    # While the throttled watch failed and backed off, the other one kept its 1 s schedule.
    first_failure = state.history["throttled"][0][0]
    recovered = state.history["throttled"][-1][0]
    steady_scans = [t for t, s in state.history["steady"] if first_failure <= t <= recovered]
    assert len(steady_scans) >= 2
    assert all(s.ready == "True" for _, s in state.history["steady"])
    assert sum(1 for m, p, s in proxy.log if s == 429) == 6


async def test_failure_keeps_the_last_good_result(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    pushed = push_image(registry, tag="1.2.3")
    proxy = proxy_for(registry)
    repository = Reference.parse(pushed.ref).repository
    watches = config(
        watch("app", f"{proxy.host}/{repository}", policy={"semver": {"range": "1.x"}})
    )
    async with Scanner(watches, options=FAST) as scanner:
        good = await scanner.scan(watches.watches[0])
        proxy.fail(500, 100, path="/tags/list")
        bad = await scanner.scan(watches.watches[0])
    assert good.ready == "True"
    assert bad.ready == "False"
    assert bad.reason == "ReadOperationFailed"
    assert "500" in bad.message
    assert (bad.tags, bad.revision, bad.scan_time) == (good.tags, good.revision, good.scan_time)
    assert (bad.latest_tag, bad.latest_digest) == ("1.2.3", pushed.digest)
    assert bad.transition_time > good.transition_time


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    done.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


async def test_a_scan_that_hangs_is_cut_at_its_timeout(silent_server: str) -> None:
    watches = config(watch("hangs", f"{silent_server}/app", interval="1m", timeout="1s"))
    started = time.monotonic()
    async with Scanner(watches, options=FAST) as scanner:
        state = await scanner.scan(watches.watches[0])
    assert time.monotonic() - started < 5
    assert state.ready == "False"
    assert state.reason == "ReadOperationFailed"
    assert state.message == "scan timed out after 1s"


async def test_policy_failure_is_reported(
    registry: Registry, push_image: Callable[..., PushedImage]
) -> None:
    pushed = push_image(registry, tag="build-7")
    watches = config(
        watch("numbers", Reference.parse(pushed.ref).name, policy={"numerical": {"order": "asc"}})
    )
    async with Scanner(watches, options=FAST) as scanner:
        state = await scanner.scan(watches.watches[0])
    assert state.ready == "False"
    assert state.reason == "PolicyFailed"
    assert "build-7" in state.message
    assert state.tags == ("build-7",)


async def test_suspended_watches_are_not_scanned(
    registry: Registry, push_image: Callable[..., PushedImage]
) -> None:
    pushed = push_image(registry, tag="1.0.0")
    watches = config(watch("paused", Reference.parse(pushed.ref).name, suspend=True))
    async with Scanner(watches, options=FAST) as scanner:
        (status,) = await scanner.scan_all()
        assert scanner.scans == 0
    assert status.state.reason == "Suspended"
    assert status.as_json()["lastScanResult"] is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (1, "1s"), (90, "1m30s"), (60, "1m0s"), (5400, "1h30m0s")],
)
def test_durations_print_like_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


async def test_per_watch_certificates(
    registries: Callable[..., Registry],
    tls: Tls,
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    """A private CA (caFile) and a client certificate (certFile/keyFile), each per watch."""
    mtls = registries(tls_cert=tls.cert, tls_key=tls.key, scheme="https", client_cas=[tls.ca_file])
    client = tls.ca.issue_cert("imgctl-scan-client")
    cert, key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    cert_dir = tmp_path / "certs.d"
    cert_dir.mkdir()
    tls.ca.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
    client.cert_chain_pems[0].write_to_path(str(cert_dir / "client.cert"))
    client.private_key_pem.write_to_path(str(cert_dir / "client.key"))
    pushed = push_image(mtls, tag="1.0.0", cert_dir=cert_dir)
    image = Reference.parse(pushed.ref).name
    ca_only = {"caFile": str(tls.ca_file)}
    both = ca_only | {"certFile": str(cert), "keyFile": str(key)}
    client_only = {"certFile": str(cert), "keyFile": str(key)}
    watches = config(
        watch("no-ca", image),
        watch("ca-only", image, certificates=ca_only),
        watch("client-cert", image, certificates=both, policy={"semver": {"range": "*"}}),
        # insecure: the registry's own certificate is accepted without its CA, for this watch.
        watch("insecure", image, certificates=client_only, insecure=True),
        watch("client-cert-no-ca", image, certificates=client_only),
    )
    async with Scanner(watches, options=FAST, environ={}, home=tmp_path) as scanner:
        states = {s.watch.name: s.state for s in await scanner.scan_all()}
    assert states["no-ca"].ready == "False"
    assert "certificate" in states["no-ca"].message.lower()
    assert states["ca-only"].ready == "False"  # the registry wants a client certificate
    assert "client certificate" in states["ca-only"].message
    assert states["client-cert"].ready == "True", states["client-cert"].message
    assert states["client-cert"].latest_digest == pushed.digest
    assert states["insecure"].ready == "True", states["insecure"].message
    assert states["insecure"].tags == ("1.0.0",)
    # The same watch without insecure: the unknown CA is refused, so insecure did the above.
    assert states["client-cert-no-ca"].ready == "False"
    assert "certificate" in states["client-cert-no-ca"].message.lower()


async def test_concurrency_bounds_the_scans_running_at_once(silent_server: str) -> None:
    """Four scans that each hang until their 1 s timeout: two waves with two slots."""
    hanging = [watch(f"w{i}", f"{silent_server}/app{i}", timeout="1s") for i in range(4)]
    elapsed = {}
    for slots in (2, 4):
        watches = config(*hanging, concurrency=slots)
        started = time.monotonic()
        async with Scanner(watches, options=FAST) as scanner:
            statuses = await scanner.scan_all()
        elapsed[slots] = time.monotonic() - started
        assert [s.state.message for s in statuses] == ["scan timed out after 1s"] * 4
    assert elapsed[2] >= 2.0, elapsed  # never more than two at a time
    assert elapsed[4] < 2.0, elapsed  # with four slots they all ran together


async def test_next_scans_are_spread_by_jitter(
    registry: Registry, push_image: Callable[..., PushedImage]
) -> None:
    pushed = push_image(registry, tag="1.0.0")
    watches = config(watch("app", Reference.parse(pushed.ref).name, interval="100s"))
    async with Scanner(watches, options=FAST) as scanner:
        delays = []
        for _ in range(8):
            state = await scanner.scan(watches.watches[0])
            assert state.ready == "True", state.message
            delays.append((state.next_scan_at - state.updated_at).total_seconds())
    assert all(90 <= delay <= 110 for delay in delays), delays  # the interval +-10%
    assert len({round(delay, 3) for delay in delays}) > 1, delays  # not in lockstep


async def test_a_failing_policy_backs_off_instead_of_rescanning_every_second(
    registry: Registry, push_image: Callable[..., PushedImage]
) -> None:
    pushed = push_image(registry, tag="build-7")
    image = Reference.parse(pushed.ref).name
    watches = config(watch("numbers", image, interval="1h", policy={"numerical": {}}))
    async with Scanner(watches, options=FAST) as scanner:
        states = [await scanner.scan(watches.watches[0]) for _ in range(4)]
    assert [s.reason for s in states] == ["PolicyFailed"] * 4
    assert [s.failures for s in states] == [1, 2, 3, 4]
    delays = [(s.next_scan_at - s.updated_at).total_seconds() for s in states]
    for delay, backoff in zip(delays, (1, 2, 4, 8), strict=True):
        assert 0.9 * backoff <= delay <= 1.1 * backoff, delays


@pytest.fixture
def stalling_registry() -> Iterator[tuple[str, threading.Event]]:
    """A registry that lists one tag, then never answers the HEAD for its digest.

    docker-registry cannot be made to stall on one request, so this is a stand-in that speaks
    just enough of the protocol: /v2/, the tag list, and a manifest HEAD that hangs until the
    event is set.
    """
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/v2/app/tags/list"):
                self._answer(b'{"name": "app", "tags": ["1.0.0"]}')
            else:
                self._answer(b"{}")

        def do_HEAD(self) -> None:
            release.wait(30)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = CheckedHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", release
    release.set()
    server.shutdown()
    server.server_close()
    server.check()


async def test_the_timeout_covers_resolving_the_latest_digest(
    stalling_registry: tuple[str, threading.Event],
) -> None:
    host, _ = stalling_registry
    watches = config(watch("app", f"{host}/app", timeout="1s", policy={"semver": {"range": "*"}}))
    started = time.monotonic()
    async with Scanner(watches, options=FAST) as scanner:
        state = await scanner.scan(watches.watches[0])
    assert time.monotonic() - started < 5
    assert state.ready == "False"
    assert state.reason == "ReadOperationFailed"
    assert state.message == "scan timed out after 1s"
