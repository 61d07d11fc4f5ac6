"""Credentials from the clouds: Amazon ECR, Google Artifact/Container Registry, Azure ACR, ghcr.

Each keychain answers only for its own hosts and is anonymous (with a ``detail`` saying why)
everywhere else. ECR acts on ECR hosts by default, through the standard AWS credential chain; the
others act only when their credentials are present. ``cloud_keychains`` builds them all unless
``IMGCTL_ENABLE_IAAS_AUTH`` (or imgpkg's ``IMGPKG_ENABLE_IAAS_AUTH``) says not to.

The cloud SDKs (boto3, google-auth) are optional, synchronous and slow to import, so they are
imported only when a host of theirs is asked about, and called in a worker thread. Every keychain
reads its environment from the mapping it was built with, never from ``os.environ`` directly.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import importlib
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from imgctl.errors import CredentialError
from imgctl.registry._azure import (
    AZURE_CONFIG_VARIABLES,
    AzureCloud,
    AzureConfig,
    azure_config_path,
    client_assertion,
    cloud_for_host_suffix,
    load_azure_config,
)
from imgctl.registry.keychain import ANONYMOUS, Credential, Resolution, SourceKeychain

__all__ = [
    "AzureKeychain",
    "ECRKeychain",
    "ECRRegistry",
    "GCPKeychain",
    "GitHubKeychain",
    "active_keychains",
    "cloud_keychains",
    "ecr_api_client",
    "iaas_auth_enabled",
    "is_acr_host",
    "is_gcp_host",
    "parse_ecr_host",
]

# Refresh this long before a token's stated expiry, so a token never dies mid-copy.
_REFRESH_MARGIN = 300.0
# How long to keep a token whose expiry is already past when it arrives (see _cache_until).
_SKEW_FLOOR = 300.0

_IAAS_SWITCH_HINT = "or set IMGCTL_ENABLE_IAAS_AUTH=false to skip cloud credentials"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _cache_until(now: float, expires_at: float | None, default_ttl: float) -> float:
    """When to stop serving a token from cache, given the expiry its issuer claims."""
    if expires_at is None:
        return now + default_ttl
    if expires_at <= now:
        # The token says it has already expired as it arrives: our clock is ahead of the
        # issuer's, or the issuer does not tell the truth (moto's ECR says 2015). Fetching again
        # on every request would hammer the API and get the same answer, so keep it for a short
        # floor and let the registry judge whether it still works.
        return now + _SKEW_FLOOR
    return expires_at - min(_REFRESH_MARGIN, (expires_at - now) / 2)


def _normalise_host(registry: str) -> str | None:
    """Lower-case host without ``:443``; None when another port is given (not a cloud host)."""
    host = registry.lower()
    if host.endswith(":443"):
        host = host[:-4]
    return None if ":" in host or not host else host


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[_V]):
    value: _V
    until: float


class _TokenCache(Generic[_K, _V]):
    """Values by key until their deadline; concurrent misses on one key share one fetch."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[_K, _Entry[_V]] = {}
        self._locks: dict[_K, asyncio.Lock] = {}

    def _fresh(self, key: _K) -> _Entry[_V] | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.until:
            return entry
        return None

    async def get(self, key: _K, fetch: Callable[[], Awaitable[_Entry[_V]]]) -> _V:
        """The cached value for ``key``, fetching it (once, however many callers wait) if stale."""
        entry = self._fresh(key)
        if entry is not None:
            return entry.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._fresh(key)
            if entry is None:
                entry = await fetch()
                self._entries[key] = entry
            return entry.value


class _Unavailable(Exception):
    """The source cannot act here (SDK not installed, no ambient credentials): anonymous."""


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CredentialError(
        f"{name}={value!r} is not a boolean",
        hint="set it to true or false (or 1/0, yes/no, on/off)",
    )


def iaas_auth_enabled(environ: Mapping[str, str]) -> bool:
    """Whether cloud (IaaS) credential sources are on: ``IMGCTL_ENABLE_IAAS_AUTH``, default true.

    ``IMGPKG_ENABLE_IAAS_AUTH`` is honoured when ours is unset, for users coming from imgpkg.
    An empty value counts as unset.
    """
    return _iaas_switch(environ) is not False


def _iaas_switch(environ: Mapping[str, str]) -> bool | None:
    """The IaaS switch as set (None when neither variable is)."""
    for name in ("IMGCTL_ENABLE_IAAS_AUTH", "IMGPKG_ENABLE_IAAS_AUTH"):
        value = environ.get(name, "")
        if value.strip():
            return _parse_bool(name, value)
    return None


# Keychain names in IMGCTL_/IMGPKG_ACTIVE_KEYCHAINS: imgpkg's (gke, aks, ecr, github) and
# imgctl's source names.
_ACTIVE_NAMES = {
    "gke": "gcp",
    "gcp": "gcp",
    "aks": "azure",
    "azure": "azure",
    "ecr": "ecr",
    "github": "ghcr",
    "ghcr": "ghcr",
}


def active_keychains(environ: Mapping[str, str]) -> frozenset[str] | None:
    """The cloud sources ``IMGCTL_ACTIVE_KEYCHAINS`` (else imgpkg's) names; None: not set."""
    for variable in ("IMGCTL_ACTIVE_KEYCHAINS", "IMGPKG_ACTIVE_KEYCHAINS"):
        value = environ.get(variable, "")
        if not value.strip():
            continue
        chosen: set[str] = set()
        for item in value.split(","):
            name = _ACTIVE_NAMES.get(item.strip().lower())
            if name is None:
                raise CredentialError(
                    f"{variable}={value!r} names an unknown keychain {item.strip()!r}",
                    hint="give a comma-separated list of aks, ecr, gke, github (or azure, gcp, "
                    "ghcr)",
                )
            chosen.add(name)
        return frozenset(chosen)
    return None


# --------------------------------------------------------------------------------------------
# Amazon ECR

# The host names amazon-ecr-credential-helper accepts (ecrPattern in ecr-login/api/client.go,
# commit 72dfb228): `dkr.ecr` (IPv4) or `dkr-ecr` (dual-stack), optionally `-fips`, a region,
# then one partition's domain. Hosts arrive lower-cased, so the pattern's A-Z are not needed.
_ECR_PRIVATE = re.compile(
    r"(?P<account>\d{12})\.dkr(?P<sep>[.-])ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9][a-z0-9_-]*)\."
    r"(?P<domain>amazonaws\.(?:com(?:\.cn)?|eu)|on\.(?:aws|amazonwebservices\.com\.cn)"
    r"|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)"
)
# The AWS partition each registry domain belongs to (GovCloud shares the commercial domains).
_ECR_PARTITIONS = {
    "amazonaws.com": "aws",
    "on.aws": "aws",
    "amazonaws.com.cn": "aws-cn",
    "on.amazonwebservices.com.cn": "aws-cn",
    "amazonaws.eu": "aws-eusc",
    "c2s.ic.gov": "aws-iso",
    "sc2s.sgov.gov": "aws-iso-b",
    "cloud.adc-e.uk": "aws-iso-e",
    "csp.hci.ic.gov": "aws-iso-f",
}
# Dual-stack domains: names that resolve to IPv6 as well as IPv4.
_ECR_DUAL_STACK_DOMAINS = frozenset({"on.aws", "on.amazonwebservices.com.cn"})
_ECR_PUBLIC_HOST = "public.ecr.aws"
_ECR_PUBLIC_DUAL_STACK_HOST = "ecr-public.aws.com"
_ECR_PUBLIC_REGION = "us-east-1"  # ECR Public's API lives only there


@dataclass(frozen=True, slots=True)
class ECRRegistry:
    """What an ECR host names: account, region and partition (``public`` for ECR Public).

    ``fips`` is a FIPS registry host (its token is fetched from the FIPS API endpoint);
    ``dual_stack`` a host that also resolves to IPv6 (``dkr-ecr.<region>.on.aws``...), which
    changes nothing about how its token is fetched, as with amazon-ecr-credential-helper.
    """

    account: str | None
    region: str
    fips: bool = False
    public: bool = False
    partition: str = "aws"
    dual_stack: bool = False

    @property
    def service(self) -> str:
        """The boto3 service whose GetAuthorizationToken serves this registry."""
        return "ecr-public" if self.public else "ecr"


def parse_ecr_host(registry: str) -> ECRRegistry | None:
    """Parse an ECR registry host; None when ``registry`` is not one."""
    host = _normalise_host(registry)
    if host is None:
        return None
    if host in (_ECR_PUBLIC_HOST, _ECR_PUBLIC_DUAL_STACK_HOST):
        return ECRRegistry(
            account=None,
            region=_ECR_PUBLIC_REGION,
            public=True,
            dual_stack=host == _ECR_PUBLIC_DUAL_STACK_HOST,
        )
    match = _ECR_PRIVATE.fullmatch(host)
    if match is None:
        return None
    region, domain = match["region"], match["domain"]
    partition = _ECR_PARTITIONS[domain]
    if partition == "aws" and region.startswith("us-gov-"):
        partition = "aws-us-gov"
    return ECRRegistry(
        account=match["account"],
        region=region,
        fips=match["fips"] is not None,
        partition=partition,
        dual_stack=domain in _ECR_DUAL_STACK_DOMAINS,
    )


def _aws_keys(environ: Mapping[str, str]) -> dict[str, str]:
    """Static keys from the environment as boto3 Session arguments (empty when none are set)."""
    key_id = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not key_id and not secret:
        return {}
    if not key_id or not secret:
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        present = "AWS_ACCESS_KEY_ID" if key_id else "AWS_SECRET_ACCESS_KEY"
        raise CredentialError(
            f"{present} is set but {missing} is not",
            hint=f"set both or neither, {_IAAS_SWITCH_HINT}",
        )
    keys = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN")
    if token:
        keys["aws_session_token"] = token
    return keys


def _aws_endpoint(environ: Mapping[str, str], service: str) -> str | None:
    """The endpoint override botocore would take from the environment, read from ``environ``."""
    ignore = environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")
    if ignore.strip().lower() == "true":
        return None
    specific = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return environ.get(specific) or environ.get("AWS_ENDPOINT_URL") or None


def _botocore_session(environ: Mapping[str, str]) -> Any:
    """A botocore session whose environment-backed settings come from ``environ``.

    botocore reads ``os.environ`` itself; setting each session variable it knows (profile,
    config and credentials files, retries, FIPS, CA bundle...) from ``environ`` makes a keychain
    built for an environment see that environment. The rest of the chain (web identity,
    container and instance roles, SSO) is botocore's own and reads the process environment.
    """
    core: Any = importlib.import_module("botocore.session").Session()
    for logical_name, spec in core.session_var_map.items():
        env_names = spec[1]
        if isinstance(env_names, str):
            env_names = [env_names]
        for env_name in env_names or ():
            if env_name in environ:
                core.set_config_variable(logical_name, environ[env_name])
                break
    return core


def _boto_error_text(exc: BaseException) -> str:
    """What a botocore error says; ClientError by its AWS error code and message."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = error.get("Code") or "error"
        message = str(error.get("Message") or "")[:300]
        return f"{code}: {message}" if message else str(code)
    return f"{type(exc).__name__}: {str(exc)[:300]}"


# botocore's wire-level DEBUG records carry secrets: response bodies (the ECR token) and signed
# request headers (the session token). Dropped at the source, so an application that turns on
# DEBUG for everything still never logs them.
_BOTOCORE_WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.auth")


def _drop_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def _quiet_botocore_wire_logs() -> None:
    for name in _BOTOCORE_WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if _drop_debug not in logger.filters:
            logger.addFilter(_drop_debug)


def ecr_api_client(
    target: ECRRegistry,
    region: str,
    *,
    environ: Mapping[str, str] | None = None,
    endpoint: str | None = None,
) -> Any:
    """The boto3 client whose GetAuthorizationToken serves ``target`` (FIPS hosts: FIPS API)."""
    boto3: Any = importlib.import_module("boto3")
    botocore_config: Any = importlib.import_module("botocore.config")
    env: Mapping[str, str] = {} if environ is None else environ
    session = boto3.session.Session(botocore_session=_botocore_session(env), **_aws_keys(env))
    options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 30}
    if target.fips:
        options["use_fips_endpoint"] = True
    return session.client(
        target.service,
        region_name=region,
        endpoint_url=endpoint,
        config=botocore_config.Config(**options),
    )


def _fetch_ecr_token(
    environ: Mapping[str, str],
    target: ECRRegistry,
    region: str,
    endpoint: str | None,
    registry: str,
) -> tuple[Credential, float | None]:
    """Call GetAuthorizationToken (blocking; run in a thread); (credential, expiry epoch)."""
    try:
        importlib.import_module("boto3")
        boto_errors: Any = importlib.import_module("botocore.exceptions")
    except ImportError as exc:
        raise _Unavailable("boto3 is not installed (pip install boto3)") from exc

    _quiet_botocore_wire_logs()
    if target.public:
        what = f"ECR Public GetAuthorizationToken for {registry}"
    else:
        what = f"ECR GetAuthorizationToken for {registry} (account {target.account}, {region})"
    hint = (
        "configure AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
        f"instance, task or pod role) allowed ecr:GetAuthorizationToken, {_IAAS_SWITCH_HINT}"
    )
    try:
        client = ecr_api_client(target, region, environ=environ, endpoint=endpoint)
        try:
            if target.public:
                data = client.get_authorization_token()["authorizationData"]
            else:
                found = client.get_authorization_token(registryIds=[target.account])
                data = (found.get("authorizationData") or [None])[0]
        finally:
            client.close()
    except boto_errors.NoCredentialsError as exc:
        # Not an error: a `docker login` to ECR (or the flags) may still answer, and
        # public.ecr.aws serves anonymous pulls; `imgctl auth explain` shows this reason.
        if target.public:
            raise _Unavailable(
                "no AWS credentials found; public.ecr.aws allows anonymous pulls"
            ) from exc
        raise _Unavailable(
            "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
            "AWS_PROFILE, or use a role); later sources may still answer"
        ) from exc
    except (boto_errors.ConnectionError, boto_errors.HTTPClientError) as exc:
        raise CredentialError(
            f"{what} failed: {_boto_error_text(exc)}",
            hint="check that the ECR API endpoint is reachable (network, proxy, "
            f"AWS_ENDPOINT_URL), {_IAAS_SWITCH_HINT}",
        ) from exc
    except (boto_errors.ClientError, boto_errors.BotoCoreError) as exc:
        raise CredentialError(f"{what} failed: {_boto_error_text(exc)}", hint=hint) from exc

    if not isinstance(data, dict) or not isinstance(data.get("authorizationToken"), str):
        raise CredentialError(f"{what} returned no authorization data", hint=hint)
    try:
        decoded = base64.b64decode(data["authorizationToken"], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, colon, password = decoded.partition(":")
    if not (username and colon and password):
        raise CredentialError(f"{what} returned a malformed token (not base64 user:password)")
    expires = data.get("expiresAt")
    expires_at = expires.timestamp() if isinstance(expires, dt.datetime) else None
    return Credential(username=username, password=password), expires_at


class ECRKeychain(SourceKeychain):
    """Amazon ECR (private and public) tokens from GetAuthorizationToken, cached until expiry.

    ``IMGCTL_ECR_REGION`` overrides the region taken from a private ECR host; the usual
    ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_ECR``/``AWS_ENDPOINT_URL_ECR_PUBLIC`` override the API
    endpoint. Tokens are cached per (account, region, endpoint) for this keychain's lifetime.
    """

    name = "ecr"

    def __init__(
        self, environ: Mapping[str, str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._environ = environ
        self._clock = clock
        self._cache: _TokenCache[tuple[str, str, bool, str | None], Resolution] = _TokenCache(clock)

    async def explain(self, registry: str, repository: str) -> Resolution:
        """An ECR token for ECR hosts; anonymous elsewhere."""
        target = parse_ecr_host(registry)
        if target is None:
            return Resolution(ANONYMOUS, self.name, "not an ECR host")
        region = target.region
        if not target.public:
            region = self._environ.get("IMGCTL_ECR_REGION") or region
        endpoint = _aws_endpoint(self._environ, target.service)
        key = (target.account or _ECR_PUBLIC_HOST, region, target.fips, endpoint)

        async def fetch() -> _Entry[Resolution]:
            now = self._clock()
            try:
                credential, expires_at = await asyncio.to_thread(
                    _fetch_ecr_token, self._environ, target, region, endpoint, registry
                )
            except _Unavailable as exc:
                # Not an error, but looking again on every request would redo the whole
                # credential chain (instance metadata included); look again after a while.
                return _Entry(Resolution(ANONYMOUS, self.name, str(exc)), now + _SKEW_FLOOR)
            if target.public:
                detail = f"ECR Public authorization token ({region})"
            else:
                where = ", ".join(
                    [region, f"partition {target.partition}"]
                    + (["FIPS API endpoint"] if target.fips else [])
                )
                detail = f"ECR authorization token for account {target.account} ({where})"
            return _Entry(
                Resolution(credential, self.name, detail),
                _cache_until(now, expires_at, _SKEW_FLOOR),
            )

        return await self._cache.get(key, fetch)


# --------------------------------------------------------------------------------------------
# Google Artifact Registry / Container Registry

_GCP_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_GCP_HOST = re.compile(r"(?:[a-z0-9-]+\.)?gcr\.io|[a-z0-9]+(?:-[a-z0-9]+)*-docker\.pkg\.dev")


def is_gcp_host(registry: str) -> bool:
    """True for ``gcr.io``, ``*.gcr.io`` and ``*-docker.pkg.dev``."""
    host = _normalise_host(registry)
    return host is not None and _GCP_HOST.fullmatch(host) is not None


def _load_google_credentials(environ: Mapping[str, str]) -> tuple[Any, str]:
    """Find application default credentials (blocking); (credentials, description)."""
    try:
        google_auth: Any = importlib.import_module("google.auth")
        google_errors: Any = importlib.import_module("google.auth.exceptions")
        importlib.import_module("google.auth.transport.requests")
    except ImportError as exc:
        raise _Unavailable("google-auth is not installed (pip install 'imgctl[gcp]')") from exc
    explicit = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    try:
        if explicit:
            # The same trusted-configuration path google.auth.default() takes for this variable,
            # read from our environ; default() silences this warning (meant for untrusted files)
            # the same way.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                credentials, _project = google_auth.load_credentials_from_file(
                    explicit, scopes=list(_GCP_SCOPES)
                )
            origin = "GOOGLE_APPLICATION_CREDENTIALS"
        else:
            credentials, _project = google_auth.default(scopes=list(_GCP_SCOPES))
            origin = "application default credentials"
    except google_errors.DefaultCredentialsError as exc:
        if explicit:
            raise CredentialError(
                f"GOOGLE_APPLICATION_CREDENTIALS ({explicit}) cannot be used: {str(exc)[:300]}",
                hint=f"point it at a valid credentials file, {_IAAS_SWITCH_HINT}",
            ) from exc
        raise _Unavailable("no Google application default credentials found") from exc
    email = getattr(credentials, "service_account_email", None)
    who = f"service account {email}" if isinstance(email, str) and "@" in email else None
    return credentials, f"{origin} ({who or type(credentials).__name__})"


def _refresh_google_token(
    credentials: Any, description: str, registry: str
) -> tuple[str, float | None]:
    """Refresh ``credentials`` (blocking; run in a thread); (access token, expiry epoch)."""
    transport: Any = importlib.import_module("google.auth.transport.requests")
    google_errors: Any = importlib.import_module("google.auth.exceptions")
    try:
        credentials.refresh(transport.Request())
    except google_errors.GoogleAuthError as exc:
        raise CredentialError(
            f"getting a Google access token for {registry} from {description} failed: "
            f"{type(exc).__name__}: {_first_line(exc)}",
            hint=f"check the credentials and that the token endpoint is reachable, "
            f"{_IAAS_SWITCH_HINT}",
        ) from exc
    token = credentials.token
    if not isinstance(token, str) or not token:
        raise CredentialError(f"{description} gave no access token for {registry}")
    expiry = credentials.expiry
    if isinstance(expiry, dt.datetime):
        # google-auth keeps expiry as a naive UTC datetime.
        aware = expiry if expiry.tzinfo else expiry.replace(tzinfo=dt.UTC)
        return token, aware.timestamp()
    return token, None


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.splitlines()[0][:300] if text else ""


class GCPKeychain(SourceKeychain):
    """Google access tokens from application default credentials, for GCR and Artifact Registry.

    Needs the optional google-auth dependency; without it, or without ADC, it is anonymous.
    One token serves every Google host and is cached until shortly before its expiry.
    """

    name = "gcp"

    def __init__(
        self, environ: Mapping[str, str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._environ = environ
        self._clock = clock
        self._cache: _TokenCache[str, Resolution] = _TokenCache(clock)
        self._credentials: tuple[Any, str] | None = None

    async def explain(self, registry: str, repository: str) -> Resolution:
        """An OAuth2 access token for Google registry hosts; anonymous elsewhere."""
        if not is_gcp_host(registry):
            return Resolution(
                ANONYMOUS, self.name, "not a Google registry host (gcr.io, *-docker.pkg.dev)"
            )
        return await self._cache.get("adc", lambda: self._fetch(registry))

    async def _fetch(self, registry: str) -> _Entry[Resolution]:
        now = self._clock()
        if self._credentials is None:
            try:
                self._credentials = await asyncio.to_thread(_load_google_credentials, self._environ)
            except _Unavailable as exc:
                # Whether google-auth is installed and ADC exist does not change while we run;
                # the GCE metadata probe alone can take seconds, so answer from cache from now on.
                return _Entry(Resolution(ANONYMOUS, self.name, str(exc)), math.inf)
        credentials, description = self._credentials
        token, expires_at = await asyncio.to_thread(
            _refresh_google_token, credentials, description, registry
        )
        return _Entry(
            Resolution(Credential("oauth2accesstoken", token), self.name, description),
            _cache_until(now, expires_at, _SKEW_FLOOR),
        )


# --------------------------------------------------------------------------------------------
# Azure Container Registry

_ACR_HOST = re.compile(r"(?:[a-z0-9-]+\.)+azurecr\.(?P<cloud>io|cn|us)")
_ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
_AZURE_ENV = ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID")
# The instance metadata service (IMDS) that gives managed identities their tokens. The Azure
# SDKs let AZURE_POD_IDENTITY_AUTHORITY_HOST move it (pod identity; the tests' stand-in).
_IMDS_VARIABLE = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
_IMDS_DEFAULT = "http://169.254.169.254"
_IMDS_PATH = "/metadata/identity/oauth2/token"
_IMDS_API_VERSION = "2018-02-01"  # what imgpkg's go-autorest asked for
_CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ENV_HINT = (
    "check AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID and that the service principal may "
    f"pull from the registry (AcrPull), {_IAAS_SWITCH_HINT}"
)
_CERTIFICATE_HINT = (
    "check aadClientId and tenantId in the Azure config, that the certificate is one of the app "
    f"registration's certificates and that it may pull from the registry (AcrPull), "
    f"{_IAAS_SWITCH_HINT}"
)
_MANAGED_IDENTITY_HINT = (
    "useManagedIdentityExtension needs a managed identity on this VM, scale set or pod "
    "(userAssignedIdentityID: the client ID of a user-assigned one) allowed to pull from the "
    f"registry (AcrPull), {_IAAS_SWITCH_HINT}"
)


def is_acr_host(registry: str) -> bool:
    """True for Azure Container Registry hosts (``*.azurecr.io``, ``.cn``, ``.us``)."""
    host = _normalise_host(registry)
    return host is not None and _ACR_HOST.fullmatch(host) is not None


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying (only to know when to refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def _token_expiry(body: Mapping[str, Any], now: float, token: str) -> float | None:
    """When an Azure AD or metadata-service token expires (epoch seconds), if it says.

    ``expires_in`` (a number, or from IMDS a string of one), else ``expires_on`` (epoch
    seconds), else the token's own ``exp``.
    """
    for name, base in (("expires_in", now), ("expires_on", 0.0)):
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue
        if math.isfinite(seconds):
            return base + seconds
    return _jwt_expiry(token)


def _oauth_error(response: httpx.Response) -> str:
    """HTTP status and the OAuth2/registry error code of a failed response, never the body."""
    text = f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return text
    if isinstance(body, dict):
        code = body.get("error")
        description = body.get("error_description")
        if isinstance(code, str):
            text += f" {code}"
        if isinstance(description, str) and description.startswith("AADSTS"):
            text += f" ({description.split(':', 1)[0]})"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text += f" {errors[0].get('code', '')}".rstrip()
    return text


def _imds_error(response: httpx.Response) -> str:
    """A failed IMDS answer: status, error and IMDS's own description (it holds no secret)."""
    text = _oauth_error(response)
    try:
        body = response.json()
    except ValueError:
        return text
    description = body.get("error_description") if isinstance(body, dict) else None
    if isinstance(description, str) and description and not description.startswith("AADSTS"):
        printable = "".join(c if c.isprintable() else " " for c in description[:200])
        text += f": {printable}"
    return text


class AzureKeychain(SourceKeychain):
    """ACR refresh tokens, from imgpkg's Azure config file or a service principal in the env.

    With ``IMGCTL_AZURE_CR_CONFIG`` (or imgpkg's ``IMGPKG_REGISTRY_AZURE_CR_CONFIG``) naming an
    ``azure.json`` (see ``_azure``): a managed identity's token from the instance metadata
    service, or a certificate's client assertion traded at Azure AD, is exchanged at the
    registry's ``/oauth2/exchange`` for a refresh token; a client secret is handed to the
    registry as basic credentials, as imgpkg does. Without the file, ``AZURE_CLIENT_ID``/
    ``_SECRET``/``_TENANT_ID`` (the client credentials grant) is exchanged the same way.

    ``exchange_base_url`` (``{registry}`` is substituted) points the exchange elsewhere, for
    tests; ``AZURE_AUTHORITY_HOST`` does so for Azure AD, ``AZURE_POD_IDENTITY_AUTHORITY_HOST``
    for the metadata service.
    """

    name = "azure"

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        exchange_base_url: str = "https://{registry}",
        timeout: float = 30.0,
    ) -> None:
        self._environ = environ
        self._clock = clock
        self._exchange_base_url = exchange_base_url
        self._timeout = timeout
        self._aad: _TokenCache[tuple[str, ...], str] = _TokenCache(clock)
        self._refresh: _TokenCache[str, Resolution] = _TokenCache(clock)
        self._config: AzureConfig | None = None
        self._config_lock = asyncio.Lock()

    async def explain(self, registry: str, repository: str) -> Resolution:
        """An ACR credential for ACR hosts when Azure credentials are configured."""
        host = _normalise_host(registry)
        match = _ACR_HOST.fullmatch(host) if host is not None else None
        if host is None or match is None:
            return Resolution(ANONYMOUS, self.name, "not an Azure Container Registry host")
        named = azure_config_path(self._environ)
        if named is not None:
            config = await self._load_config(*named)
            return await self._from_config(host, cloud_for_host_suffix(match["cloud"]), config)
        missing = [name for name in _AZURE_ENV if not self._environ.get(name)]
        if missing:
            return Resolution(
                ANONYMOUS,
                self.name,
                f"{'/'.join(missing)} not set, and no Azure config "
                f"({' or '.join(AZURE_CONFIG_VARIABLES)})",
            )
        cloud = cloud_for_host_suffix(match["cloud"])
        authority = self._authority(cloud)
        tenant = self._environ["AZURE_TENANT_ID"]
        client_id = self._environ["AZURE_CLIENT_ID"]
        secret = self._environ["AZURE_CLIENT_SECRET"]
        url = f"{authority}/{tenant}/oauth2/v2.0/token"

        def form(now: float) -> dict[str, str]:
            return {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": cloud.arm_scope,
            }

        def aad() -> Awaitable[str]:
            return self._aad_token(
                ("client-secret", url, client_id, cloud.arm_scope),
                url,
                form,
                f"Azure AD token request for {host} (tenant {tenant})",
                _ENV_HINT,
            )

        detail = f"ACR refresh token for service principal {client_id} (tenant {tenant})"
        return await self._refresh.get(
            host, lambda: self._exchange(host, tenant, aad, detail, _ENV_HINT)
        )

    async def _load_config(self, variable: str, path: Path) -> AzureConfig:
        async with self._config_lock:
            if self._config is None:
                # Reading and decrypting a certificate is blocking work (and imports
                # cryptography): off the event loop, once per keychain.
                self._config = await asyncio.to_thread(
                    load_azure_config, variable, path, now=self._clock()
                )
            return self._config

    def _authority(self, cloud: AzureCloud) -> str:
        return (self._environ.get("AZURE_AUTHORITY_HOST") or cloud.authority).rstrip("/")

    async def _from_config(
        self, host: str, host_cloud: AzureCloud, config: AzureConfig
    ) -> Resolution:
        cloud = config.cloud or host_cloud
        if config.method == "client-secret":
            assert config.client_id is not None
            assert config.client_secret is not None
            return Resolution(
                Credential(username=config.client_id, password=config.client_secret),
                self.name,
                f"service principal {config.client_id} from {config.origin}: aadClientSecret "
                "as basic credentials, as imgpkg sends it",
            )
        if config.method == "client-certificate":
            certificate = config.certificate
            tenant, client_id = config.tenant_id, config.client_id
            assert certificate is not None
            assert tenant is not None
            assert client_id is not None
            url = f"{self._authority(cloud)}/{tenant}/oauth2/v2.0/token"

            def form(now: float) -> dict[str, str]:
                return {
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_assertion_type": _CLIENT_ASSERTION_TYPE,
                    "client_assertion": client_assertion(certificate, client_id, url, now=now),
                    "scope": cloud.arm_scope,
                }

            def aad() -> Awaitable[str]:
                return self._aad_token(
                    ("client-certificate", url, client_id, certificate.sha1_hex, cloud.arm_scope),
                    url,
                    form,
                    f"Azure AD token request for {host} (tenant {tenant}, certificate "
                    f"{certificate.sha1_hex})",
                    _CERTIFICATE_HINT,
                )

            detail = (
                f"ACR refresh token for service principal {client_id} (tenant {tenant}) by "
                f"certificate {certificate.sha1_hex} from {config.origin}"
            )
            return await self._refresh.get(
                host, lambda: self._exchange(host, tenant, aad, detail, _CERTIFICATE_HINT)
            )
        identity = config.user_assigned_identity_id
        who = (
            f"user-assigned managed identity {identity}"
            if identity
            else "system-assigned managed identity"
        )
        detail = f"ACR refresh token for the {who} from {config.origin}"
        return await self._refresh.get(
            host,
            lambda: self._exchange(
                host,
                config.tenant_id,
                lambda: self._imds_token(host, cloud, identity),
                detail,
                _MANAGED_IDENTITY_HINT,
            ),
        )

    def _client(self, *, trust_env: bool = True) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout, connect=10.0), trust_env=trust_env
        )

    async def _post(self, url: str, form: dict[str, str], what: str, hint: str) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.post(url, data=form)
        except httpx.HTTPError as exc:
            # Only the URL (tenant or registry, no secret) and httpx's reason; never the form.
            raise CredentialError(
                f"{what} failed: {type(exc).__name__} for {url}: {exc}", hint=hint
            ) from exc
        if response.status_code != 200:
            raise CredentialError(f"{what} failed: {_oauth_error(response)}", hint=hint)
        return _json_object(response, what, hint)

    async def _aad_token(
        self,
        key: tuple[str, ...],
        url: str,
        form: Callable[[float], dict[str, str]],
        what: str,
        hint: str,
    ) -> str:
        async def fetch() -> _Entry[str]:
            now = self._clock()
            body = await self._post(url, form(now), what, hint)
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise CredentialError(f"{what}: Azure AD answered without an access token")
            return _Entry(token, _cache_until(now, _token_expiry(body, now, token), _SKEW_FLOOR))

        return await self._aad.get(key, fetch)

    async def _imds_token(self, registry: str, cloud: AzureCloud, identity: str | None) -> str:
        base = (self._environ.get(_IMDS_VARIABLE) or _IMDS_DEFAULT).rstrip("/")
        url = base + _IMDS_PATH
        params = {"api-version": _IMDS_API_VERSION, "resource": cloud.management_resource}
        if identity:
            params["client_id"] = identity
        what = f"managed identity token request for {registry}"

        async def fetch() -> _Entry[str]:
            now = self._clock()
            try:
                # The metadata service is link-local: never through a proxy (Azure refuses
                # proxied metadata requests), and only with the Metadata header.
                async with self._client(trust_env=False) as client:
                    response = await client.get(url, params=params, headers={"Metadata": "true"})
            except httpx.HTTPError as exc:
                raise CredentialError(
                    f"{what} failed: {type(exc).__name__} for {url}: {exc} (not an Azure VM, "
                    "scale set or pod with a managed identity?)",
                    hint=_MANAGED_IDENTITY_HINT,
                ) from exc
            if response.status_code != 200:
                raise CredentialError(
                    f"{what} failed: {_imds_error(response)}", hint=_MANAGED_IDENTITY_HINT
                )
            body = _json_object(response, what, _MANAGED_IDENTITY_HINT)
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise CredentialError(f"{what}: the metadata service answered without a token")
            return _Entry(token, _cache_until(now, _token_expiry(body, now, token), _SKEW_FLOOR))

        return await self._aad.get(("managed-identity", url, cloud.name, identity or ""), fetch)

    async def _exchange(
        self,
        registry: str,
        tenant: str | None,
        aad_token: Callable[[], Awaitable[str]],
        detail: str,
        hint: str,
    ) -> _Entry[Resolution]:
        aad = await aad_token()
        now = self._clock()
        base = self._exchange_base_url.format(registry=registry).rstrip("/")
        form = {"grant_type": "access_token", "service": registry}
        if tenant:
            form["tenant"] = tenant
        form["access_token"] = aad
        body = await self._post(
            f"{base}/oauth2/exchange", form, f"ACR token exchange at {registry}", hint
        )
        refresh = body.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise CredentialError(f"ACR token exchange at {registry} returned no refresh token")
        return _Entry(
            Resolution(
                Credential(username=_ACR_USERNAME, identity_token=refresh), self.name, detail
            ),
            # ACR refresh tokens are JWTs with an exp; without one, assume ACR's documented 3 h.
            _cache_until(now, _jwt_expiry(refresh), 3 * 3600 - _REFRESH_MARGIN),
        )


def _json_object(response: httpx.Response, what: str, hint: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CredentialError(f"{what} failed: the answer is not a JSON object", hint=hint)
    return body


# --------------------------------------------------------------------------------------------
# GitHub Container Registry


class GitHubKeychain(SourceKeychain):
    """``GITHUB_TOKEN`` (as ``GITHUB_ACTOR``) for ``ghcr.io``, as GitHub Actions provides."""

    name = "ghcr"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    async def explain(self, registry: str, repository: str) -> Resolution:
        """The token for ghcr.io when ``GITHUB_TOKEN`` is set."""
        if _normalise_host(registry) != "ghcr.io":
            return Resolution(ANONYMOUS, self.name, "not ghcr.io")
        token = self._environ.get("GITHUB_TOKEN")
        if not token:
            return Resolution(ANONYMOUS, self.name, "GITHUB_TOKEN not set")
        actor = self._environ.get("GITHUB_ACTOR")
        username = actor or "imgctl"
        origin = "GITHUB_ACTOR" if actor else "default user"
        return Resolution(
            Credential(username=username, password=token),
            self.name,
            f"GITHUB_TOKEN as {username!r} ({origin})",
        )


def cloud_keychains(environ: Mapping[str, str] | None = None) -> list[SourceKeychain]:
    """ECR, GCP, Azure and ghcr keychains in that order, as the IaaS switches say.

    ``IMGCTL_ENABLE_IAAS_AUTH`` (or imgpkg's) false: none; true: all. Unset: those
    ``IMGCTL_ACTIVE_KEYCHAINS`` (or imgpkg's ``IMGPKG_ACTIVE_KEYCHAINS``) names, else all.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    switch = _iaas_switch(env)
    active = active_keychains(env)  # checked even when unused: a typo is an error
    if switch is False:
        return []
    keychains: list[SourceKeychain] = [
        ECRKeychain(env),
        GCPKeychain(env),
        AzureKeychain(env),
        GitHubKeychain(env),
    ]
    if switch is None and active is not None:
        keychains = [k for k in keychains if k.name in active]
    return keychains
