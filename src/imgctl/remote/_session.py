"""The registry session: hosts, ping, connections, retries, credentials and tokens per scope.

A ``Session`` owns the connection pools (one httpx client per distinct TLS config), what it has
learned about each registry (scheme, auth challenge, cached tokens per scope), the one retry
policy of registry traffic and the shared rate limiter. ``RegistryClient`` builds the registry
API on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Self
from urllib.parse import urljoin, urlsplit

import httpx

from imgctl import __version__
from imgctl._internal.hosts import is_loopback
from imgctl._internal.retry import backoff_delay, retry_after
from imgctl.authn import AnonymousKeychain, Credential, Keychain
from imgctl.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentConnectionError,
    PermissionDeniedError,
    RegistryError,
    TransportError,
)
from imgctl.remote._auth import (
    Challenge,
    Token,
    basic_authorization,
    fetch_token,
    pick_challenge,
)
from imgctl.remote._http import (
    RegistryHTTP,
    api_host,
    error_detail,
    proxy_routes,
    transport_error,
)
from imgctl.remote._ratelimit import Limiter, RateLimiter
from imgctl.remote._tls import RegistryTLS, TLSConfig
from imgctl.remote._trace import log as trace
from imgctl.remote._trace import traced
from imgctl.remote._transport import StreamTransport

__all__ = ["ClientOptions", "Host", "Session", "TransferStats"]

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# One warning per retry: the CLI shows them on stderr (imgctl.cli._flags), the server logs them.
log = logging.getLogger("imgctl.remote.retry")


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How the client connects: TLS, plain-HTTP exceptions, timeouts, retries, rate limit."""

    insecure_registries: frozenset[str] = frozenset()
    proxies: Mapping[str, str] | None = None  # None: HTTP(S)_PROXY/NO_PROXY from the environment
    tls: RegistryTLS = field(default_factory=RegistryTLS)
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_connections: int = 32
    retries: int = 5
    backoff: float = 0.25
    max_backoff: float = 20.0
    max_retry_after: float = 120.0
    rate_limit: float | None = None
    burst: int = 5
    user_agent: str = f"imgctl/{__version__}"


@dataclass(slots=True)
class TransferStats:
    """Counters for what went over the wire, for reports and tests."""

    requests: int = 0
    retries: int = 0
    bytes_downloaded: int = 0
    bytes_uploaded: int = 0


@dataclass(slots=True)
class Host:
    """What we learned about one registry: its base URL and how it wants to be authenticated."""

    registry: str
    base_url: str
    tls: TLSConfig
    challenge: Challenge | None = None
    tokens: dict[tuple[str, ...], Token] = field(default_factory=dict)
    token_locks: dict[tuple[str, ...], asyncio.Lock] = field(default_factory=dict)


class Session:
    """Connections, hosts, retries and auth for requests to any number of registries."""

    def __init__(
        self,
        keychain: Keychain | None = None,
        options: ClientOptions | None = None,
        *,
        limiter: Limiter | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self.keychain: Keychain = keychain or AnonymousKeychain()
        self.limiter: Limiter = limiter or RateLimiter(self.options.rate_limit, self.options.burst)
        self.stats = TransferStats()
        self._insecure = frozenset(self.options.insecure_registries)
        self._hosts: dict[str, Host] = {}
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._credentials: dict[tuple[str, str], Credential] = {}
        self._push_repositories: set[tuple[str, str]] = set()
        # Learned per registry: does a mount from the repository that already holds a blob
        # answer 201? Then one POST can replace HEAD + POST before an upload (copy engine).
        self.self_mounts: dict[str, bool] = {}
        # Learned per registry: does it serve the referrers API? A registry without it is asked
        # once for the client's lifetime; the sha256-<hex> tag index stands in afterwards.
        self.referrers_api: dict[str, bool] = {}
        self._referrers_probes: dict[str, asyncio.Lock] = {}
        self._clients: dict[TLSConfig, httpx.AsyncClient] = {}
        # Blob upload sessions opened and neither finished nor cancelled yet, by their URL's
        # path: (registry, repository, the latest location). Closing the client deletes them
        # (RegistryClient.cancel_open_uploads), so an interrupted copy leaves none behind.
        self.open_uploads: dict[str, tuple[str, str, str]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    # ------------------------------------------------------------------ connections

    def _http(self, config: TLSConfig) -> httpx.AsyncClient:
        client = self._clients.get(config)
        if client is None:
            timeout = httpx.Timeout(
                self.options.read_timeout, connect=self.options.connect_timeout, pool=None
            )
            # httpx reads proxy variables only when it builds the transport itself; ours is
            # given, so proxies from the environment are mounted here (httpx's own transport).
            mounts: dict[str, httpx.AsyncBaseTransport | None] = {
                pattern: None
                if proxy is None
                else httpx.AsyncHTTPTransport(proxy=proxy, verify=config.context())
                for pattern, proxy in proxy_routes(self.options.proxies).items()
            }
            client = RegistryHTTP(
                mounts=mounts,
                transport=StreamTransport(
                    config.context,
                    max_connections_per_origin=self.options.max_connections,
                    keepalive_expiry=30,
                ),
                timeout=timeout,
                # Registries must hand over bytes exactly as stored: no transfer compression.
                headers={"User-Agent": self.options.user_agent, "Accept-Encoding": "identity"},
            )
            self._clients[config] = client
        return client

    def _allows_plain_http(self, registry: str) -> bool:
        return registry in self._insecure or is_loopback(registry)

    async def _host(self, registry: str) -> Host:
        """Find the scheme and the auth challenge of a registry (pinging it once)."""
        host = self._hosts.get(registry)
        if host is not None:
            return host
        lock = self._host_locks.setdefault(registry, asyncio.Lock())
        async with lock:
            host = self._hosts.get(registry)
            if host is None:
                host = await self._ping(registry)
                self._hosts[registry] = host
        return host

    async def _ping(self, registry: str) -> Host:
        api = api_host(registry)
        insecure = registry in self._insecure
        tls = self.options.tls.for_registry(registry)
        if insecure:
            tls = replace(tls, verify=False)
        if is_loopback(registry):
            # Loopback traffic never leaves the machine: try plain HTTP first, it is cheaper.
            schemes = ["http", "https"]
        elif insecure:
            schemes = ["https", "http"]
        else:
            schemes = ["https"]
        client = self._http(tls)
        answered: list[str] = []  # the base URL whose scheme answered

        async def probe() -> httpx.Response:
            # One attempt tries each scheme once; the retry policy repeats whole attempts, so
            # a hiccup on first contact is retried before the scheme is even known.
            first_error: TransportError | None = None
            for position, scheme in enumerate(schemes):
                base = f"{scheme}://{api}"
                try:
                    response = await self._exchange(client, "GET", f"{base}/v2/", {})
                except httpx.TransportError as exc:
                    first_error = first_error or transport_error(base, exc)
                    if scheme == "http" and isinstance(exc, httpx.ConnectError):
                        break  # nothing listens on the port: https there cannot fare better
                    continue
                if scheme == "http" and response.status_code == 400 and position + 1 < len(schemes):
                    # A TLS server answers plain HTTP with 400: it wants https; the https
                    # attempt's error (if any) is the one worth reporting.
                    continue
                answered[:] = [base]
                return response
            assert first_error is not None  # only a 400 over http moves on, never the last
            raise first_error

        response = await self._retrying(probe, replayable=True)
        status = response.status_code
        host = Host(registry, answered[0], tls)
        if status == 401:
            host.challenge = pick_challenge(response.headers.get_list("www-authenticate"))
        elif status in _RETRY_STATUSES:
            code, message = error_detail(response)
            raise RegistryError(
                f"{registry} is unavailable: GET /v2/ answered {status} ({message}) "
                f"{self.options.retries + 1} times in a row",
                status=status,
                code=code,
                hint="the registry is down or overloaded; try again later",
            )
        elif status >= 400 and status != 404:
            code, message = error_detail(response)
            raise RegistryError(
                f"{registry} does not look like an OCI registry: GET /v2/ answered "
                f"{status} {message}",
                status=status,
                code=code,
            )
        return host

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        content: bytes | AsyncIterable[bytes] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One HTTP request, drawn from the shared rate limit; no retries."""
        await self.limiter.acquire()
        self.stats.requests += 1
        request = client.build_request(method, url, headers=headers, content=content)
        if trace.isEnabledFor(logging.DEBUG):  # imgctl -v: the HTTP trace (remote._trace)

            def send(request: httpx.Request) -> Awaitable[httpx.Response]:
                return client.send(request, stream=stream, follow_redirects=follow_redirects)

            return await traced(request, send)
        return await client.send(request, stream=stream, follow_redirects=follow_redirects)

    async def _send_raw(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        content: bytes | AsyncIterable[bytes] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One HTTP exchange under the retry policy (see ``_retrying``)."""

        async def attempt() -> httpx.Response:
            try:
                return await self._exchange(
                    client,
                    method,
                    url,
                    headers,
                    content=content,
                    stream=stream,
                    follow_redirects=follow_redirects,
                )
            except httpx.TransportError as exc:
                raise transport_error(url, exc) from None

        replayable = content is None or isinstance(content, bytes)
        return await self._retrying(attempt, replayable=replayable)

    async def _retrying(
        self, attempt: Callable[[], Awaitable[httpx.Response]], *, replayable: bool
    ) -> httpx.Response:
        """The one retry policy of registry traffic, for every request the client sends.

        A connection that fails (reset, closed without an answer, timed out) and the answers
        429, 500, 502, 503 and 504 are retried up to ``options.retries`` times, after the
        registry's Retry-After or else an exponential backoff with jitter; a 429 pauses every
        request sharing the rate limiter. A refused connection is not retried: nothing listens
        there, and waiting does not change that (a registry restarting behind a load balancer
        answers 502/503, which are retried); crane does not retry it either. Nor is a host name
        that does not resolve (EAI_NONAME; a resolver that does not answer is retried). Only
        requests whose body can be sent again are retried; each retry is one warning ("retrying
        n/N").
        The last answer is returned as it is; the last failure is raised.
        """
        retries = self.options.retries if replayable else 0
        tries = 0
        while True:
            tries += 1
            try:
                response = await attempt()
            except PermanentConnectionError:
                raise
            except TransportError as exc:
                if tries <= retries:
                    self.stats.retries += 1
                    delay = self.backoff(tries)
                    log.warning("%s; retrying %d/%d in %.1f s", exc.message, tries, retries, delay)
                    await asyncio.sleep(delay)
                    continue
                if tries > 1:
                    raise TransportError(
                        f"{exc.message} (tried {tries} times)", hint=exc.hint, host=exc.host
                    ) from None
                raise
            status = response.status_code
            if status in _RETRY_STATUSES and tries <= retries:
                self.stats.retries += 1
                delay = self._retry_after(response, tries)
                log.warning(
                    "%s answered %d to %s %s; retrying %d/%d in %.1f s",
                    response.request.url.netloc.decode("ascii", "replace"),
                    status,
                    response.request.method,
                    response.request.url.path,
                    tries,
                    retries,
                    delay,
                )
                await response.aclose()
                if status == 429:
                    self.limiter.pause(delay)
                else:
                    await asyncio.sleep(delay)
                continue
            return response

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (exponential, with jitter)."""
        return backoff_delay(attempt, self.options.backoff, self.options.max_backoff)

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        """The registry's Retry-After (within ``max_retry_after``), else our backoff."""
        value = response.headers.get("retry-after")
        seconds = retry_after(value, cap=self.options.max_retry_after)
        return self.backoff(attempt) if seconds is None else seconds

    # ------------------------------------------------------------------ auth

    def want_push(self, registry: str, repository: str) -> None:
        """Ask for push as well as pull whenever a token for this repository is fetched."""
        self._push_repositories.add((registry, repository))

    def _scope(self, registry: str, repository: str, push: bool = False) -> str:
        pushing = push or (registry, repository) in self._push_repositories
        return f"repository:{repository}:{'pull,push' if pushing else 'pull'}"

    async def _credential(self, registry: str, repository: str) -> Credential:
        key = (registry, repository)
        credential = self._credentials.get(key)
        if credential is None:
            credential = await self.keychain.resolve(registry, repository)
            self._credentials[key] = credential
        return credential

    def _may_send_secret(self, url: str, registry: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return True
        return self._allows_plain_http(registry) or is_loopback(parts.netloc)

    async def _authorization(
        self, host: Host, repository: str, scopes: tuple[str, ...]
    ) -> str | None:
        challenge = host.challenge
        if challenge is None:
            return None
        credential = await self._credential(host.registry, repository)
        if challenge.scheme == "basic":
            if credential.username is None or credential.password is None:
                return None
            if not self._may_send_secret(host.base_url, host.registry):
                raise AuthenticationError(
                    f"{host.registry} asks for a password over plain HTTP; refusing to send it",
                    hint="serve the registry over HTTPS",
                )
            return basic_authorization(credential.username, credential.password)
        if challenge.scheme == "bearer":
            if credential.registry_token:
                return f"Bearer {credential.registry_token}"
            token = await self._token(host, credential, scopes)
            return f"Bearer {token}" if token else None
        return None

    async def _token(self, host: Host, credential: Credential, scopes: tuple[str, ...]) -> str:
        token = host.tokens.get(scopes)
        if token is not None and token.fresh():
            return token.value
        lock = host.token_locks.setdefault(scopes, asyncio.Lock())
        async with lock:
            token = host.tokens.get(scopes)
            if token is not None and token.fresh():
                return token.value
            token = await self._fetch_token(host, credential, scopes)
            host.tokens[scopes] = token
            return token.value

    async def _fetch_token(
        self, host: Host, credential: Credential, scopes: tuple[str, ...]
    ) -> Token:
        challenge = host.challenge
        assert challenge is not None
        realm = challenge.realm
        if not realm:
            raise AuthenticationError(f"{host.registry} sent a Bearer challenge without a realm")
        realm_url = urljoin(host.base_url + "/", realm)
        secret = bool(credential.username or credential.identity_token)
        if secret and not self._may_send_secret(realm_url, host.registry):
            raise AuthenticationError(
                f"token server {realm_url} of {host.registry} is plain HTTP; refusing to send "
                "credentials to it",
                hint="fix the registry's auth realm to use https",
            )
        client = self._http(host.tls)

        def send(
            method: str, url: str, headers: Mapping[str, str], content: bytes | None
        ) -> Awaitable[httpx.Response]:
            return self._send_raw(client, method, url, headers, content=content)

        return await fetch_token(send, realm_url, challenge.service, credential, scopes)

    # ------------------------------------------------------------------ request core

    async def _request(
        self,
        method: str,
        registry: str,
        repository: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        stream: bool = False,
        extra_scopes: Iterable[str] = (),
        push: bool = False,
        url: str | None = None,
    ) -> httpx.Response:
        """Send an authorised request under the retry policy; renew a stale token once on 401."""
        host = await self._host(registry)
        client = self._http(host.tls)
        target = url or f"{host.base_url}{path}"
        # Registry-wide calls (the catalog) have no repository: only their own scopes apply.
        if repository:
            scopes = (self._scope(registry, repository, push), *extra_scopes)
        else:
            scopes = tuple(extra_scopes)
        replayable = content is None or isinstance(content, bytes)
        reauthenticated = False
        while True:
            request_headers = dict(headers or {})
            authorization = await self._authorization(host, repository, scopes)
            if authorization:
                request_headers["Authorization"] = authorization
            response = await self._send_raw(
                client,
                method,
                target,
                request_headers,
                content=content,
                stream=stream,
                follow_redirects=method in ("GET", "HEAD"),
            )
            status = response.status_code
            if status == 401 and not reauthenticated and replayable:
                # Token expired or scope too narrow, or first contact with a repository that
                # challenges where /v2/ did not: learn the challenge and try once more.
                reauthenticated = True
                challenge = pick_challenge(response.headers.get_list("www-authenticate"))
                if challenge is not None:
                    host.challenge = challenge
                host.tokens.pop(scopes, None)
                await response.aclose()
                continue
            return response

    async def _raise_for_status(
        self, response: httpx.Response, what: str, registry: str, repository: str
    ) -> None:
        if response.status_code < 400:
            return
        if response.is_stream_consumed is False:
            await response.aread()
        code, message = error_detail(response)
        status = response.status_code
        text = f"{what}: {status} {message}".rstrip()
        if status == 401:
            credential = await self._credential(registry, repository)
            raise AuthenticationError(
                text,
                status=status,
                code=code,
                hint="this registry needs credentials (--registry-username/--registry-password)"
                if credential.anonymous
                else "the registry refused the credentials",
            )
        if status == 403 or code == "DENIED":
            raise PermissionDeniedError(text, status=status, code=code)
        if status == 404:
            # A missing manifest never comes here: get_manifest and head_manifest answer it
            # (RegistryClient's manifest_not_found, with the tag asked for and the hint).
            hint = None
            if code == "NAME_UNKNOWN":
                hint = f"the repository {registry}/{repository} does not exist"
            raise NotFoundError(
                f"{what} not found ({code or status})", status=status, code=code, hint=hint
            )
        raise RegistryError(text, status=status, code=code)
