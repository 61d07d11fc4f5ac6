"""The first request to a registry (``GET /v2/``, the ping) under the client's one retry policy.

A registry's brief hiccup on first contact (503, 429 with Retry-After, a reset connection) must be
retried like any other request, not fail a whole promotion; a registry that stays down still fails
with a clear error once the retry budget is spent. Requests are counted at the server, never timed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from imgctl.authn import Credential, StaticKeychain
from imgctl.errors import AuthenticationError, RegistryError, TransportError
from imgctl.oci import Reference
from imgctl.remote import ClientOptions, RateLimiter, RegistryClient, copy_image

from ..conftest import FAST_RETRIES, PASSWORD, USER, PushedImage
from ..support.httpserver import ScriptedServer, ServerConnection, response
from ..support.proxy import FaultProxy
from ..support.registry import Registry, free_port
from ..support.skopeo import digest_of
from ..support.tokenserver import TokenServer

PING = r"^/v2/$"
# Retries that cost next to nothing in time: the tests count requests instead of waiting.
BUDGET = 3
FAST = ClientOptions(retries=BUDGET, backoff=0.001, max_backoff=0.002)


class RecordingLimiter(RateLimiter):
    """The client's limiter, remembering every pause it was asked for (Retry-After of a 429)."""

    def __init__(self) -> None:
        super().__init__()
        self.paused: list[float] = []

    def pause(self, seconds: float) -> None:
        """Record, then pause as usual."""
        self.paused.append(seconds)
        super().pause(seconds)


def ref(value: str) -> Reference:
    return Reference.parse(value)


def pings(proxy: FaultProxy) -> list[int]:
    """Statuses of the ``GET /v2/`` requests that reached the proxy, in order."""
    return [status for method, path, status in proxy.log if method == "GET" and path == "/v2/"]


# ---------------------------------------------------------------------- a real registry, proxied


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_ping_retries_5xx_then_succeeds(
    status: int, registry: Registry, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    proxy.fail(status, 2, method="GET", path=PING)
    async with RegistryClient(options=FAST) as client:
        assert await client.ping(proxy.host) == f"http://{proxy.host}"
        assert client.stats.retries == 2
    assert pings(proxy) == [status, status, 200]


async def test_ping_honours_retry_after_of_429_and_pauses_everyone(
    registry: Registry, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    proxy.fail(429, 1, method="GET", path=PING, headers={"Retry-After": "1"})
    limiter = RecordingLimiter()
    async with RegistryClient(options=FAST, limiter=limiter) as client:
        assert await client.ping(proxy.host) == f"http://{proxy.host}"
    # The registry's own delay, not the client's backoff (at most 0.002 s here).
    assert limiter.paused == [1.0]
    assert pings(proxy) == [429, 200]


# Retry-After values a registry may send that are no number of seconds to wait, each with the
# pause the client must take instead: the header read as far as it reads (within the cap), or its
# own backoff (at most FAST's max_backoff) when it does not read at all.
ODD_RETRY_AFTER = [
    ("nan", 0.0, 0.002),
    ("NaN", 0.0, 0.002),
    ("Jan 1 2000 00:00:00 -9999999999999999999", 0.0, 0.002),  # OverflowError in the date parser
    ("Mon, 01 Jan 2000 99:99:99 GMT", 0.0, 0.002),
    ("soon", 0.0, 0.002),
    ("inf", 0.05, 0.05),
    ("1e999", 0.05, 0.05),
    ("-3", 0.0, 0.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),  # a date in the past: no wait
]


@pytest.mark.parametrize(("value", "low", "high"), ODD_RETRY_AFTER)
async def test_ping_survives_any_retry_after_value(
    value: str,
    low: float,
    high: float,
    registry: Registry,
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    proxy = proxy_for(registry)
    proxy.fail(429, 1, method="GET", path=PING, headers={"Retry-After": value})
    limiter = RecordingLimiter()
    options = ClientOptions(retries=BUDGET, backoff=0.001, max_backoff=0.002, max_retry_after=0.05)
    async with RegistryClient(options=options, limiter=limiter) as client:
        assert await client.ping(proxy.host) == f"http://{proxy.host}"
    assert len(limiter.paused) == 1
    assert low <= limiter.paused[0] <= high, limiter.paused
    assert pings(proxy) == [429, 200]


async def test_ping_failing_briefly_does_not_fail_a_copy(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    image = push_image(registry)
    source_proxy, destination_proxy = proxy_for(registry), proxy_for(registry2)
    source_proxy.fail(503, 2, method="GET", path=PING)
    destination_proxy.fail(429, 1, method="GET", path=PING, headers={"Retry-After": "0"})
    destination_proxy.fail(0, 1, method="GET", path=PING)  # then the connection drops once
    source = ref(image.ref.replace(registry.host, source_proxy.host, 1))
    destination = ref(f"{destination_proxy.host}/{repo('promoted')}:v1")
    async with RegistryClient(options=FAST) as client:
        result = await copy_image(client, source, destination)
    assert str(result.digest) == image.digest
    assert pings(source_proxy) == [503, 503, 200]
    assert pings(destination_proxy) == [429, 0, 200]
    assert digest_of(f"{registry2.host}/{destination.repository}:v1") == image.digest


async def test_ping_persistent_5xx_fails_clearly_after_the_budget(
    registry: Registry, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    proxy.fail(503, 100, method="GET", path=PING)
    async with RegistryClient(options=FAST) as client:
        with pytest.raises(RegistryError) as caught:
            await client.get_manifest(ref(f"{proxy.host}/any/thing:v1"))
    assert caught.value.status == 503
    message = str(caught.value)
    assert proxy.host in message
    assert "503" in message
    assert f"{BUDGET + 1} times" in message
    assert "does not look like an OCI registry" not in message
    assert pings(proxy) == [503] * (BUDGET + 1)
    # Nothing but the ping was sent: no request went ahead without knowing the registry.
    assert len(proxy.log) == BUDGET + 1


async def test_ping_persistent_429_fails_clearly_after_the_budget(
    registry: Registry, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    proxy.fail(429, 100, method="GET", path=PING, headers={"Retry-After": "0"})
    async with RegistryClient(options=FAST) as client:
        with pytest.raises(RegistryError) as caught:
            await client.ping(proxy.host)
    assert caught.value.status == 429
    assert f"{BUDGET + 1} times" in str(caught.value)
    assert pings(proxy) == [429] * (BUDGET + 1)


async def test_ping_non_retryable_answer_is_not_retried(
    registry: Registry, proxy_for: Callable[[Registry], FaultProxy]
) -> None:
    proxy = proxy_for(registry)
    proxy.fail(418, 100, method="GET", path=PING)
    async with RegistryClient(options=FAST) as client:
        with pytest.raises(RegistryError) as caught:
            await client.ping(proxy.host)
    assert caught.value.status == 418
    assert "does not look like an OCI registry" in str(caught.value)
    assert pings(proxy) == [418]


async def test_token_server_hiccups_are_retried_too(
    registries: Callable[..., Registry],
    token_server: TokenServer,
    repo: Callable[[str], str],
) -> None:
    # The token request is the other request a client sends outside the repository API.
    token_proxy = FaultProxy(f"127.0.0.1:{token_server.port}").start()
    try:
        auth = {**token_server.registry_auth(), "realm": f"http://{token_proxy.host}/token"}
        registry = registries(token=auth)
        token_proxy.fail(503, 1, method="GET", path="^/token")
        token_proxy.fail(429, 1, method="GET", path="^/token", headers={"Retry-After": "0"})
        token_proxy.fail(0, 1, method="GET", path="^/token")
        keychain = StaticKeychain(Credential(USER, PASSWORD))
        async with RegistryClient(keychain, FAST) as client:
            target = ref(f"{registry.host}/{repo('tokens')}:v1")
            assert await client.head_manifest(target) is None
        statuses = [status for method, _, status in token_proxy.log if method == "GET"]
        assert statuses == [503, 429, 0, 200]
        # A refusal is an answer, not a hiccup: one request, no retry.
        token_proxy.fail(401, 100, method="GET", path="^/token")
        token_proxy.log.clear()
        async with RegistryClient(StaticKeychain(Credential(USER, "wrong")), FAST) as client:
            with pytest.raises(AuthenticationError):
                await client.head_manifest(ref(f"{registry.host}/{repo('tokens')}:v1"))
        assert [status for _, _, status in token_proxy.log] == [401]
    finally:
        token_proxy.stop()


# ---------------------------------------------------------------------- resets (scripted server)


class ResettingRegistry:
    """A loopback ``/v2/`` endpoint that resets (TCP RST) its first ``resets`` HTTP requests.

    Bytes that are not HTTP (a TLS ClientHello) get a 400, as docker-registry's Go server
    answers them, so a client probing https on a plain-HTTP port learns it quickly.
    """

    def __init__(self, resets: int) -> None:
        self.resets = resets
        self.http_requests: list[str] = []
        self.tls_hellos = 0
        self.server = ScriptedServer(self.handle)

    async def handle(self, connection: ServerConnection) -> None:
        while True:
            first = await connection.reader.read(1)
            if not first:
                return
            if first == b"\x16":
                self.tls_hellos += 1
                connection.send(response(400, b"Client sent an HTTP request to an HTTPS server.\n"))
                await connection.flush()
                return
            head = first + await connection.reader.readuntil(b"\r\n\r\n")
            self.http_requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            if len(self.http_requests) <= self.resets:
                connection.reset()
                return
            connection.send(
                response(
                    200,
                    b"{}",
                    reason="OK",
                    headers=[
                        ("Content-Type", "application/json"),
                        ("Docker-Distribution-Api-Version", "registry/2.0"),
                    ],
                )
            )
            await connection.flush()


@pytest.fixture
async def resetting() -> AsyncIterator[Callable[[int], Awaitable[ResettingRegistry]]]:
    started: list[ResettingRegistry] = []

    async def start(resets: int) -> ResettingRegistry:
        registry = ResettingRegistry(resets)
        await registry.server.start()
        started.append(registry)
        return registry

    yield start
    for registry in started:
        await registry.server.aclose()


async def test_ping_retries_a_reset_connection(
    resetting: Callable[[int], Awaitable[ResettingRegistry]],
) -> None:
    fake = await resetting(2)
    host = f"127.0.0.1:{fake.server.port}"
    async with RegistryClient(options=FAST) as client:
        assert await client.ping(host) == f"http://{host}"
    assert fake.http_requests == ["GET /v2/ HTTP/1.1"] * 3
    assert not fake.server.errors


async def test_ping_persistent_resets_fail_clearly_after_the_budget(
    resetting: Callable[[int], Awaitable[ResettingRegistry]],
) -> None:
    fake = await resetting(1000)
    host = f"127.0.0.1:{fake.server.port}"
    async with RegistryClient(options=FAST) as client:
        with pytest.raises(TransportError) as caught:
            await client.ping(host)
    message = str(caught.value)
    assert f"http://{host}" in message
    assert f"{BUDGET + 1} times" in message
    assert len(fake.http_requests) == BUDGET + 1
    assert not fake.server.errors


async def test_ping_refused_connection_fails_at_once_naming_the_host() -> None:
    # Issue 22: a refused connection (nothing listens on the port) is not transient the way a
    # reset or a 503 is (a registry restarting behind a load balancer answers 502/503): it is
    # not retried, and the error says which host refused. A closed plain-HTTP port is not tried
    # again over https either.
    port = free_port()
    async with RegistryClient(options=FAST) as client:
        with pytest.raises(TransportError) as caught:
            await client.ping(f"127.0.0.1:{port}")
        assert client.stats.requests == 1
        assert client.stats.retries == 0
    message = str(caught.value)
    assert f"127.0.0.1:{port} refused the connection" in message
    assert "times" not in message
    assert "running" in (caught.value.hint or "")


async def test_fast_retries_fixture_still_pings_a_healthy_registry(registry: Registry) -> None:
    async with RegistryClient(options=FAST_RETRIES) as client:
        assert await client.ping(registry.host) == f"http://{registry.host}"
        assert client.stats.requests == 1
        assert client.stats.retries == 0
