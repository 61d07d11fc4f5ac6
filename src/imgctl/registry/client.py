"""The OCI distribution client: one ``RegistryClient`` talks to any number of registries.

It owns the connection pools, the auth state of each registry (challenge, cached tokens per
scope), the retry policy and the shared rate limiter. Everything is async (httpx); blob
bodies stream in both directions and are never held whole in memory.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from imgctl import __version__
from imgctl.authn import AnonymousKeychain, Credential, Keychain
from imgctl.errors import (
    AuthenticationError,
    DigestMismatchError,
    InvalidManifestError,
    NotFoundError,
    PermissionDeniedError,
    RegistryError,
    TransportError,
)
from imgctl.oci import mediatypes as mt
from imgctl.oci.digest import Digest
from imgctl.oci.manifest import Descriptor, Index, Manifest, parse_manifest
from imgctl.oci.reference import DEFAULT_REGISTRY, Reference
from imgctl.registry._auth import Challenge, Token, parse_challenges
from imgctl.registry._transport import StreamTransport
from imgctl.registry.ratelimit import RateLimiter
from imgctl.registry.tls import CA_FLAG, CERT_FLAG, KEY_FLAG, RegistryTLS, TLSConfig

__all__ = [
    "ClientOptions",
    "FetchedManifest",
    "RegistryClient",
    "TransferStats",
    "is_loopback",
    "proxy_routes",
]

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_DOCKER_HUB_API = "registry-1.docker.io"
_CLIENT_CERT_ALERTS = ("ALERT_CERTIFICATE_REQUIRED", "ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA")


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


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """Manifest bytes exactly as the registry sent them, their digest, and what they say."""

    data: bytes
    parsed: Manifest | Index
    digest: Digest

    @property
    def media_type(self) -> str:
        """The manifest's media type."""
        return self.parsed.media_type

    @property
    def descriptor(self) -> Descriptor:
        """A descriptor pointing at these bytes."""
        return Descriptor(self.media_type, self.digest, len(self.data))


@dataclass(slots=True)
class _Host:
    """What we learned about one registry: its base URL and how it wants to be authenticated."""

    registry: str
    base_url: str
    tls: TLSConfig
    challenge: Challenge | None = None
    tokens: dict[tuple[str, ...], Token] = field(default_factory=dict)
    token_locks: dict[tuple[str, ...], asyncio.Lock] = field(default_factory=dict)


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore Set-Cookie."""


class _RegistryHTTP(httpx.AsyncClient):
    """An httpx client that keeps no cookies.

    The distribution API does not use them (crane and skopeo keep none either), and httpx's
    cookie handling builds urllib requests for every response: about a twentieth of the
    client's CPU in a copy.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty."""
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass


_NO_COOKIES = _NoCookies()


def is_loopback(registry: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1, with or without a port."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_routes(proxies: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Mount patterns for HTTP_PROXY/HTTPS_PROXY/ALL_PROXY and NO_PROXY, read as curl does.

    ``proxies`` maps ``http``/``https``/``all``/``no`` as ``urllib.request.getproxies()``
    does; None reads the environment. A pattern mapped to None goes direct.
    """
    if proxies is None:
        from urllib.request import getproxies_environment

        proxies = getproxies_environment()
    routes: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        proxy = proxies.get(scheme)
        if proxy:
            routes[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    if not routes:
        return {}
    for entry in (e.strip() for e in proxies.get("no", "").split(",")):
        if not entry:
            continue
        if entry == "*":
            return {}
        if "://" in entry:
            routes[entry] = None
            continue
        try:
            address = ipaddress.ip_address(entry.strip("[]"))
        except ValueError:
            # Like curl: "example.com" covers itself and its subdomains, ".example.com" only
            # the subdomains.
            routes[f"all://*{entry}"] = None
            continue
        routes[f"all://[{address}]" if address.version == 6 else f"all://{address}"] = None
    return routes


def _api_host(registry: str) -> str:
    return _DOCKER_HUB_API if registry == DEFAULT_REGISTRY else registry


def _error_detail(response: httpx.Response) -> tuple[str | None, str]:
    """First distribution error code and a readable message from an error body."""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
    except (ValueError, UnicodeDecodeError):
        errors = None
    if errors and isinstance(errors, list) and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code") or "") or None
        message = str(first.get("message") or code or "")
        detail = first.get("detail")
        if detail and isinstance(detail, str | int | float):
            message += f": {detail}"
        return code, message
    text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    return None, text or response.reason_phrase


class RegistryClient:
    """Async client for the OCI distribution API across many registries.

    Use as ``async with RegistryClient(keychain) as client:``.
    """

    def __init__(
        self,
        keychain: Keychain | None = None,
        options: ClientOptions | None = None,
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self.keychain: Keychain = keychain or AnonymousKeychain()
        self.limiter = limiter or RateLimiter(self.options.rate_limit, self.options.burst)
        self.stats = TransferStats()
        self._insecure = frozenset(self.options.insecure_registries)
        self._hosts: dict[str, _Host] = {}
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._credentials: dict[tuple[str, str], Credential] = {}
        self._push_repositories: set[tuple[str, str]] = set()
        # Learned per registry: does a mount from the repository that already holds a blob
        # answer 201? Then one POST can replace HEAD + POST before an upload (copy engine).
        self.self_mounts: dict[str, bool] = {}
        self._clients: dict[TLSConfig, httpx.AsyncClient] = {}

    async def __aenter__(self) -> RegistryClient:
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
            client = _RegistryHTTP(
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

    async def _host(self, registry: str) -> _Host:
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

    async def _ping(self, registry: str) -> _Host:
        api = _api_host(registry)
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
                    first_error = first_error or _transport_error(base, exc)
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
        host = _Host(registry, answered[0], tls)
        if status == 401:
            host.challenge = _pick_challenge(response.headers.get_list("www-authenticate"))
        elif status in _RETRY_STATUSES:
            code, message = _error_detail(response)
            raise RegistryError(
                f"{registry} is unavailable: GET /v2/ answered {status} ({message}) "
                f"{self.options.retries + 1} times in a row",
                status=status,
                code=code,
                hint="the registry is down or overloaded; try again later",
            )
        elif status >= 400 and status != 404:
            code, message = _error_detail(response)
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
                raise _transport_error(url, exc) from None

        replayable = content is None or isinstance(content, bytes)
        return await self._retrying(attempt, replayable=replayable)

    async def _retrying(
        self, attempt: Callable[[], Awaitable[httpx.Response]], *, replayable: bool
    ) -> httpx.Response:
        """The one retry policy of registry traffic, for every request the client sends.

        A connection that fails (refused, reset, closed without an answer, timed out) and the
        answers 429, 500, 502, 503 and 504 are retried up to ``options.retries`` times, after
        the registry's Retry-After or else an exponential backoff with jitter; a 429 pauses
        every request sharing the rate limiter. Only requests whose body can be sent again
        are retried. The last answer is returned as it is; the last failure is raised.
        """
        retries = self.options.retries if replayable else 0
        tries = 0
        while True:
            tries += 1
            try:
                response = await attempt()
            except TransportError as exc:
                if tries <= retries:
                    self.stats.retries += 1
                    await asyncio.sleep(self.backoff(tries))
                    continue
                if tries > 1:
                    raise TransportError(
                        f"{exc.message} (tried {tries} times)", hint=exc.hint
                    ) from None
                raise
            status = response.status_code
            if status in _RETRY_STATUSES and tries <= retries:
                self.stats.retries += 1
                delay = self._retry_after(response, tries)
                await response.aclose()
                if status == 429:
                    self.limiter.pause(delay)
                else:
                    await asyncio.sleep(delay)
                continue
            return response

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (exponential, with jitter)."""
        delay = min(self.options.max_backoff, self.options.backoff * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        value = response.headers.get("retry-after")
        if value:
            try:
                seconds = float(value)
            except ValueError:
                from email.utils import parsedate_to_datetime  # rare: HTTP-date form

                try:
                    seconds = parsedate_to_datetime(value).timestamp() - time.time()
                except (TypeError, ValueError):
                    seconds = self.backoff(attempt)
            return min(max(seconds, 0.0), self.options.max_retry_after)
        return self.backoff(attempt)

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
        self, host: _Host, repository: str, scopes: tuple[str, ...]
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
            pair = f"{credential.username}:{credential.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if challenge.scheme == "bearer":
            if credential.registry_token:
                return f"Bearer {credential.registry_token}"
            token = await self._token(host, credential, scopes)
            return f"Bearer {token}" if token else None
        return None

    async def _token(self, host: _Host, credential: Credential, scopes: tuple[str, ...]) -> str:
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
        self, host: _Host, credential: Credential, scopes: tuple[str, ...]
    ) -> Token:
        challenge = host.challenge
        assert challenge is not None
        realm = challenge.realm
        if not realm:
            raise AuthenticationError(f"{host.registry} sent a Bearer challenge without a realm")
        realm_url = urljoin(host.base_url + "/", realm)
        service = challenge.service
        client = self._http(host.tls)
        headers: dict[str, str] = {"Accept": "application/json"}
        secret = bool(credential.username or credential.identity_token)
        if secret and not self._may_send_secret(realm_url, host.registry):
            raise AuthenticationError(
                f"token server {realm_url} of {host.registry} is plain HTTP; refusing to send "
                "credentials to it",
                hint="fix the registry's auth realm to use https",
            )
        if credential.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "client_id": "imgctl",
                "scope": " ".join(scopes),
            }
            if service:
                form["service"] = service
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = await self._send_raw(
                client, "POST", realm_url, headers, content=urlencode(form).encode()
            )
        else:
            query: list[tuple[str, str]] = [("service", service)] if service else []
            query += [("scope", scope) for scope in scopes]
            separator = "&" if "?" in realm_url else "?"
            url = realm_url + (separator + urlencode(query) if query else "")
            if credential.username is not None and credential.password is not None:
                pair = f"{credential.username}:{credential.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            response = await self._send_raw(client, "GET", url, headers)
        if response.status_code in (401, 403):
            who = "anonymous access" if credential.anonymous else "the credentials"
            raise AuthenticationError(
                f"token server {realm_url} refused {who} for {' '.join(scopes)}"
                f" ({response.status_code})",
                status=response.status_code,
                hint="check the registry credentials"
                if not credential.anonymous
                else "this registry needs credentials (--registry-username/--registry-password)",
            )
        if response.status_code != 200:
            code, message = _error_detail(response)
            raise AuthenticationError(
                f"token server {realm_url} answered {response.status_code}: {message}",
                status=response.status_code,
                code=code,
            )
        try:
            body = response.json()
        except ValueError:
            raise AuthenticationError(f"token server {realm_url} sent a non-JSON answer") from None
        if not isinstance(body, dict):
            raise AuthenticationError(f"token server {realm_url} sent no token")
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"token server {realm_url} sent no token")
        expires_in = body.get("expires_in")
        lifetime = 60.0
        if isinstance(expires_in, int | float) and expires_in > 0:
            lifetime = float(expires_in)
        return Token(value, time.monotonic() + lifetime)

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
                challenge = _pick_challenge(response.headers.get_list("www-authenticate"))
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
        code, message = _error_detail(response)
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
            hint = None
            if what.startswith("manifest ") and code != "NAME_UNKNOWN":
                hint = f"list the tags with: imgctl ls {registry}/{repository}"
            elif code == "NAME_UNKNOWN":
                hint = f"the repository {registry}/{repository} does not exist"
            raise NotFoundError(
                f"{what} not found ({code or status})", status=status, code=code, hint=hint
            )
        raise RegistryError(text, status=status, code=code)

    # ------------------------------------------------------------------ API

    async def ping(self, registry: str) -> str:
        """Check that ``registry`` speaks the distribution API; return its base URL."""
        return (await self._host(registry)).base_url

    async def get_manifest(self, ref: Reference) -> FetchedManifest:
        """Fetch a manifest by tag or digest, byte-exact, verifying its digest."""
        response = await self._request(
            "GET",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            headers={"Accept": mt.MANIFEST_ACCEPT},
            stream=True,
        )
        try:
            await self._raise_for_status(response, f"manifest {ref}", ref.registry, ref.repository)
            length = int(response.headers.get("content-length") or 0)
            if length > MAX_MANIFEST_BYTES:
                raise InvalidManifestError(
                    f"manifest {ref} is {length} bytes; refusing more than {MAX_MANIFEST_BYTES}"
                )
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_raw():
                total += len(chunk)
                if total > MAX_MANIFEST_BYTES:
                    raise InvalidManifestError(
                        f"manifest {ref} is larger than {MAX_MANIFEST_BYTES} bytes"
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        data = b"".join(chunks)
        self.stats.bytes_downloaded += len(data)
        parsed = _parse(data, response.headers.get("content-type"), str(ref))
        if ref.digest is not None:
            try:
                ref.digest.verify(data)
            except DigestMismatchError as exc:
                raise DigestMismatchError(f"manifest {ref}: {exc.message}") from None
            digest = ref.digest
        else:
            digest = Digest.of(data)
            header = response.headers.get("docker-content-digest")
            if header and header.startswith("sha256:") and header != str(digest):
                raise DigestMismatchError(
                    f"manifest {ref}: registry says {header} but the bytes hash to {digest}"
                )
        return FetchedManifest(data, parsed, digest)

    async def head_manifest(self, ref: Reference) -> Descriptor | None:
        """Descriptor of a manifest without fetching it; None when it does not exist."""
        response = await self._request(
            "HEAD",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            headers={"Accept": mt.MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            return None
        await self._raise_for_status(response, f"manifest {ref}", ref.registry, ref.repository)
        header = response.headers.get("docker-content-digest")
        media_type = (response.headers.get("content-type") or "").split(";")[0].strip()
        size = int(response.headers.get("content-length") or 0)
        if not header or not media_type or media_type == "application/json":
            # Some registries omit the digest on HEAD; the bytes are authoritative.
            fetched = await self.get_manifest(ref)
            return fetched.descriptor
        return Descriptor(media_type, Digest.parse(header), size)

    async def put_manifest(self, ref: Reference, data: bytes, media_type: str) -> Digest:
        """Push manifest bytes unchanged under ``ref``'s tag or digest; return their digest."""
        digest = Digest.of(data)
        if ref.digest is not None and ref.digest != digest:
            raise DigestMismatchError(f"manifest for {ref} hashes to {digest}")
        self.want_push(ref.registry, ref.repository)
        for attempt in range(1, self.options.retries + 2):
            response = await self._request(
                "PUT",
                ref.registry,
                ref.repository,
                f"/v2/{ref.repository}/manifests/{ref.identifier}",
                headers={"Content-Type": media_type},
                content=data,
                push=True,
            )
            if response.status_code != 400 or attempt > self.options.retries:
                break
            code, _ = _error_detail(response)
            if code != "DIGEST_INVALID":
                break
            # These bytes hash to their digest (checked above), so the registry's complaint is
            # its own race: distribution's filesystem driver rewrites a manifest in place, and
            # two identical concurrent pushes can read each other's half-written file.
            self.stats.retries += 1
            await asyncio.sleep(self.backoff(attempt))
        await self._raise_for_status(response, f"push manifest {ref}", ref.registry, ref.repository)
        self.stats.bytes_uploaded += len(data)
        header = response.headers.get("docker-content-digest")
        if header and header.startswith("sha256:") and header != str(digest):
            raise DigestMismatchError(
                f"registry stored manifest {ref} as {header}, expected {digest}",
                hint="the registry rewrote the manifest; it cannot preserve digests",
            )
        if "oci-subject" not in response.headers:
            parsed = parse_manifest(data, media_type)
            if parsed.subject is not None:
                await self._update_referrers_fallback(
                    ref,
                    parsed.subject,
                    Descriptor(
                        media_type,
                        digest,
                        len(data),
                        artifact_type=parsed.artifact_type or _config_type(parsed),
                        annotations=dict(parsed.annotations),
                    ),
                )
        return digest

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        """Size of a blob in ``ref``'s repository, or None if it is not there."""
        response = await self._request(
            "HEAD", ref.registry, ref.repository, f"/v2/{ref.repository}/blobs/{digest}"
        )
        if response.status_code == 404:
            return None
        await self._raise_for_status(
            response, f"blob {digest} in {ref.name}", ref.registry, ref.repository
        )
        return int(response.headers.get("content-length") or 0)

    @asynccontextmanager
    async def open_blob(self, ref: Reference, digest: Digest) -> AsyncIterator[httpx.Response]:
        """Open a blob for streaming; iterate the response with ``aiter_raw()``."""
        response = await self._request(
            "GET",
            ref.registry,
            ref.repository,
            f"/v2/{ref.repository}/blobs/{digest}",
            stream=True,
        )
        try:
            await self._raise_for_status(
                response, f"blob {digest} in {ref.name}", ref.registry, ref.repository
            )
            yield response
        finally:
            await response.aclose()

    async def iter_blob(self, ref: Reference, digest: Digest) -> AsyncIterator[bytes]:
        """Stream a blob's bytes (raw, never content-decoded)."""
        async with self.open_blob(ref, digest) as response:
            async for chunk in response.aiter_raw():
                self.stats.bytes_downloaded += len(chunk)
                yield chunk

    async def start_upload(
        self, ref: Reference, *, mount: Digest | None = None, mount_from: str | None = None
    ) -> str | None:
        """Open an upload session (POST); None when a cross-repository mount succeeded."""
        self.want_push(ref.registry, ref.repository)
        path = f"/v2/{ref.repository}/blobs/uploads/"
        extra: tuple[str, ...] = ()
        if mount is not None and mount_from:
            path += "?" + urlencode({"mount": str(mount), "from": mount_from})
            if mount_from != ref.repository:
                extra = (self._scope(ref.registry, mount_from),)
        response = await self._request(
            "POST",
            ref.registry,
            ref.repository,
            path,
            content=b"",
            push=True,
            extra_scopes=extra,
        )
        await self._raise_for_status(
            response, f"start upload to {ref.name}", ref.registry, ref.repository
        )
        if response.status_code == 201 and mount is not None:
            return None
        location = response.headers.get("location")
        if not location:
            raise RegistryError(
                f"start upload to {ref.name}: registry sent no Location header",
                status=response.status_code,
            )
        host = await self._host(ref.registry)
        return urljoin(host.base_url + "/", str(location))

    async def cancel_upload(self, ref: Reference, location: str) -> None:
        """Abandon an upload session (DELETE); registries answer 204, or 404 if it is gone."""
        response = await self._request(
            "DELETE", ref.registry, ref.repository, "", url=location, push=True
        )
        if response.status_code not in (204, 404):
            await self._raise_for_status(
                response, f"cancel upload to {ref.name}", ref.registry, ref.repository
            )

    async def finish_upload(
        self,
        ref: Reference,
        location: str,
        digest: Digest,
        content: bytes | AsyncIterable[bytes] = b"",
        size: int | None = None,
    ) -> None:
        """Complete an upload with a PUT carrying the (remaining) bytes and the digest."""
        headers = {"Content-Type": "application/octet-stream"}
        if size is None and isinstance(content, bytes):
            size = len(content)
        if size is not None:
            headers["Content-Length"] = str(size)
        separator = "&" if "?" in location else "?"
        url = location + separator + urlencode({"digest": str(digest)})
        response = await self._request(
            "PUT",
            ref.registry,
            ref.repository,
            "",
            url=url,
            headers=headers,
            content=content,
            push=True,
        )
        await self._raise_for_status(
            response, f"upload blob {digest} to {ref.name}", ref.registry, ref.repository
        )
        if size:
            self.stats.bytes_uploaded += size

    async def upload_chunk(self, ref: Reference, location: str, start: int, chunk: bytes) -> str:
        """Send one PATCH of a chunked upload; return the next location."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
        }
        response = await self._request(
            "PATCH",
            ref.registry,
            ref.repository,
            "",
            url=location,
            headers=headers,
            content=chunk,
            push=True,
        )
        await self._raise_for_status(
            response, f"upload chunk to {ref.name}", ref.registry, ref.repository
        )
        self.stats.bytes_uploaded += len(chunk)
        next_location = response.headers.get("location") or location
        host = await self._host(ref.registry)
        return urljoin(host.base_url + "/", str(next_location))

    async def push_blob(
        self,
        ref: Reference,
        digest: Digest,
        content: bytes | AsyncIterable[bytes],
        size: int,
        *,
        chunk_size: int | None = None,
    ) -> None:
        """Upload a blob: open a session, then send it (see ``upload_blob``)."""
        location = await self.start_upload(ref)
        assert location is not None
        await self.upload_blob(ref, location, digest, content, size, chunk_size=chunk_size)

    async def upload_blob(
        self,
        ref: Reference,
        location: str,
        digest: Digest,
        content: bytes | AsyncIterable[bytes],
        size: int,
        *,
        chunk_size: int | None = None,
    ) -> None:
        """Send a blob into an open session: one PUT, or PATCHes of ``chunk_size`` then a PUT."""
        if chunk_size is None:
            await self.finish_upload(ref, location, digest, content, size)
            return
        offset = 0
        async for chunk in _rechunk(content, chunk_size):
            location = await self.upload_chunk(ref, location, offset, chunk)
            offset += len(chunk)
        await self.finish_upload(ref, location, digest, b"", 0)

    async def list_tags(self, ref: Reference, page_size: int = 1000) -> list[str]:
        """Every tag of a repository, following ``Link`` pagination."""
        return [tag async for tag in self.iter_tags(ref, page_size)]

    async def iter_tags(self, ref: Reference, page_size: int = 1000) -> AsyncIterator[str]:
        """Yield tags page by page; shrink the page size when a registry refuses it."""
        base = f"/v2/{ref.repository}/tags/list"
        host = await self._host(ref.registry)
        url = f"{host.base_url}{base}?{urlencode({'n': page_size})}"
        visited: set[str] = set()
        seen: set[str] = set()
        while url not in visited:
            visited.add(url)
            response = await self._request("GET", ref.registry, ref.repository, base, url=url)
            if response.status_code == 400 and page_size > 1 and not seen:
                # Registries with a hard maximum refuse larger pages outright.
                page_size = max(1, page_size // 10)
                url = f"{host.base_url}{base}?{urlencode({'n': page_size})}"
                continue
            await self._raise_for_status(
                response, f"list tags of {ref.name}", ref.registry, ref.repository
            )
            body = response.json()
            tags = (body.get("tags") or []) if isinstance(body, dict) else []
            fresh = [tag for tag in tags if tag not in seen]
            for tag in fresh:
                seen.add(tag)
                yield tag
            link = _next_link(response.headers.get("link"))
            if link:
                url = urljoin(host.base_url + "/", link)
            elif fresh and len(tags) >= page_size:
                # A full page and no Link: ask for what follows the last tag.
                url = f"{host.base_url}{base}?{urlencode({'n': page_size, 'last': tags[-1]})}"
            else:
                return

    async def iter_repositories(self, registry: str, page_size: int = 1000) -> AsyncIterator[str]:
        """Every repository of a registry (``/v2/_catalog``), following ``Link`` pagination."""
        base = "/v2/_catalog"
        host = await self._host(registry)
        url = f"{host.base_url}{base}?{urlencode({'n': page_size})}"
        visited: set[str] = set()
        seen: set[str] = set()
        while url not in visited:
            visited.add(url)
            response = await self._request(
                "GET", registry, "", base, url=url, extra_scopes=("registry:catalog:*",)
            )
            await self._raise_for_status(response, f"list repositories of {registry}", registry, "")
            body = response.json()
            names = (body.get("repositories") or []) if isinstance(body, dict) else []
            fresh = [name for name in names if isinstance(name, str) and name not in seen]
            for name in fresh:
                seen.add(name)
                yield name
            link = _next_link(response.headers.get("link"))
            if link:
                url = urljoin(host.base_url + "/", link)
            elif fresh and len(names) >= page_size:
                url = f"{host.base_url}{base}?{urlencode({'n': page_size, 'last': names[-1]})}"
            else:
                return

    async def referrers(self, ref: Reference, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``ref``'s digest (referrers API, else the tag schema)."""
        if ref.digest is None:
            raise ValueError("referrers needs a reference with a digest")
        path = f"/v2/{ref.repository}/referrers/{ref.digest}"
        if artifact_type:
            path += "?" + urlencode({"artifactType": artifact_type})
        response = await self._request(
            "GET", ref.registry, ref.repository, path, headers={"Accept": mt.OCI_INDEX}
        )
        filtered = False
        is_index = response.headers.get("content-type", "").startswith(mt.OCI_INDEX)
        if response.status_code == 200 and is_index:
            await response.aread()
            index = parse_manifest(response.content, mt.OCI_INDEX)
            filtered = "artifactType" in response.headers.get("oci-filters-applied", "")
        elif response.status_code in (200, 400, 404, 405):
            # No referrers API here: read the index kept under the sha256-<hex> tag.
            await response.aclose()
            fallback_tag = ref.with_tag(ref.digest.tag_form)
            fallback = await self._referrers_index(fallback_tag)
            if fallback is None:
                return []
            index = fallback
        else:
            await self._raise_for_status(
                response, f"referrers of {ref}", ref.registry, ref.repository
            )
            return []
        assert isinstance(index, Index)
        found = list(index.manifests)
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    async def _referrers_index(self, tag_ref: Reference) -> Index | None:
        try:
            fetched = await self.get_manifest(tag_ref)
        except NotFoundError:
            return None
        parsed = fetched.parsed
        if not isinstance(parsed, Index):
            raise InvalidManifestError(f"referrers tag {tag_ref} does not hold an index")
        return parsed

    async def _update_referrers_fallback(
        self, ref: Reference, subject: Descriptor, referrer: Descriptor
    ) -> None:
        """Add ``referrer`` to the ``sha256-<hex>`` index of a registry without referrers API."""
        tag_ref = ref.with_tag(subject.digest.tag_form)
        current = await self._referrers_index(tag_ref)
        entries: list[dict[str, Any]] = []
        if current is not None:
            if any(d.digest == referrer.digest for d in current.manifests):
                return
            entries = [_descriptor_json(d) for d in current.manifests]
        entries.append(_descriptor_json(referrer))
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries},
            separators=(",", ":"),
        ).encode()
        await self.put_manifest(tag_ref, body, mt.OCI_INDEX)


def _config_type(manifest: Manifest | Index) -> str | None:
    if isinstance(manifest, Manifest) and manifest.config is not None:
        return manifest.config.media_type
    return None


def _descriptor_json(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": desc.media_type,
        "digest": str(desc.digest),
        "size": desc.size,
    }
    if desc.artifact_type:
        out["artifactType"] = desc.artifact_type
    if desc.annotations:
        out["annotations"] = dict(desc.annotations)
    return out


def _parse(data: bytes, content_type: str | None, where: str) -> Manifest | Index:
    try:
        return parse_manifest(data, content_type)
    except InvalidManifestError as exc:
        raise InvalidManifestError(f"manifest {where}: {exc.message}", hint=exc.hint) from None


def _pick_challenge(headers: list[str]) -> Challenge | None:
    challenges = [c for header in headers for c in parse_challenges(header)]
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def _next_link(header: str | None) -> str | None:
    """The target of ``rel="next"`` in a Link header."""
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return target.strip().removeprefix("<").removesuffix(">")
    return None


def _transport_error(url: str, exc: httpx.TransportError) -> TransportError:
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}"
    reason = str(exc) or type(exc).__name__
    hint = None
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        hint = (
            f"the registry's certificate is not trusted: pass its CA with {CA_FLAG} "
            "(or mark the host --registry-insecure)"
        )
    elif any(alert in reason.upper() for alert in _CLIENT_CERT_ALERTS):
        # The server's TLS alert: it wants a client certificate, or refused the one we sent.
        hint = (
            f"the registry requires a client certificate it trusts: pass {CERT_FLAG} and {KEY_FLAG}"
        )
    elif isinstance(exc, httpx.ConnectError):
        hint = "check the registry address and that it is running"
    elif isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({type(exc).__name__})"
    return TransportError(f"cannot reach {where}: {reason}", hint=hint)


async def _rechunk(content: bytes | AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Regroup a byte stream into chunks of exactly ``size`` bytes (the last may be shorter)."""
    if isinstance(content, bytes):
        for start in range(0, len(content), size):
            yield content[start : start + size]
        return
    buffer = bytearray()
    async for piece in content:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
