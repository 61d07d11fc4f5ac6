"""Azure Container Registry credentials: ACR refresh tokens from Azure AD or a managed identity.

The Azure config file (imgpkg's ``azure.json``) and its client certificate are read by
``_azure``; this module makes the network calls: Azure AD, the instance metadata service and the
registry's ``/oauth2/exchange``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from imgctl.authn._azure import (
    AZURE_CONFIG_VARIABLES,
    AzureCloud,
    AzureConfig,
    azure_config_path,
    client_assertion,
    cloud_for_host_suffix,
    load_azure_config,
)
from imgctl.authn._cloud import (
    IAAS_SWITCH_HINT,
    REFRESH_MARGIN,
    SKEW_FLOOR,
    Entry,
    TokenCache,
    cache_until,
    normalise_host,
)
from imgctl.authn._keychain import ANONYMOUS, Credential, Resolution, SourceKeychain
from imgctl.errors import CredentialError

__all__ = ["AzureKeychain", "is_acr_host"]

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
    f"pull from the registry (AcrPull), {IAAS_SWITCH_HINT}"
)
_CERTIFICATE_HINT = (
    "check aadClientId and tenantId in the Azure config, that the certificate is one of the app "
    f"registration's certificates and that it may pull from the registry (AcrPull), "
    f"{IAAS_SWITCH_HINT}"
)
_MANAGED_IDENTITY_HINT = (
    "useManagedIdentityExtension needs a managed identity on this VM, scale set or pod "
    "(userAssignedIdentityID: the client ID of a user-assigned one) allowed to pull from the "
    f"registry (AcrPull), {IAAS_SWITCH_HINT}"
)


def is_acr_host(registry: str) -> bool:
    """True for Azure Container Registry hosts (``*.azurecr.io``, ``.cn``, ``.us``)."""
    host = normalise_host(registry)
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
        self._aad: TokenCache[tuple[str, ...], str] = TokenCache(clock)
        self._refresh: TokenCache[str, Resolution] = TokenCache(clock)
        self._config: AzureConfig | None = None
        self._config_lock = asyncio.Lock()

    async def explain(self, registry: str, repository: str) -> Resolution:
        """An ACR credential for ACR hosts when Azure credentials are configured."""
        host = normalise_host(registry)
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
        async def fetch() -> Entry[str]:
            now = self._clock()
            body = await self._post(url, form(now), what, hint)
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise CredentialError(f"{what}: Azure AD answered without an access token")
            return Entry(token, cache_until(now, _token_expiry(body, now, token), SKEW_FLOOR))

        return await self._aad.get(key, fetch)

    async def _imds_token(self, registry: str, cloud: AzureCloud, identity: str | None) -> str:
        base = (self._environ.get(_IMDS_VARIABLE) or _IMDS_DEFAULT).rstrip("/")
        url = base + _IMDS_PATH
        params = {"api-version": _IMDS_API_VERSION, "resource": cloud.management_resource}
        if identity:
            params["client_id"] = identity
        what = f"managed identity token request for {registry}"

        async def fetch() -> Entry[str]:
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
            return Entry(token, cache_until(now, _token_expiry(body, now, token), SKEW_FLOOR))

        return await self._aad.get(("managed-identity", url, cloud.name, identity or ""), fetch)

    async def _exchange(
        self,
        registry: str,
        tenant: str | None,
        aad_token: Callable[[], Awaitable[str]],
        detail: str,
        hint: str,
    ) -> Entry[Resolution]:
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
        return Entry(
            Resolution(
                Credential(username=_ACR_USERNAME, identity_token=refresh), self.name, detail
            ),
            # ACR refresh tokens are JWTs with an exp; without one, assume ACR's documented 3 h.
            cache_until(now, _jwt_expiry(refresh), 3 * 3600 - REFRESH_MARGIN),
        )


def _json_object(response: httpx.Response, what: str, hint: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CredentialError(f"{what} failed: the answer is not a JSON object", hint=hint)
    return body
