"""Amazon ECR credentials: GetAuthorizationToken through the standard AWS credential chain.

ECR acts on ECR hosts (private, FIPS, dual-stack, every partition, and ECR Public) by default:
missing AWS credentials are not an error, the keychain answers anonymous and says why.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import importlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imgctl._internal.aws import (
    aws_endpoint,
    aws_keys,
    boto_error_text,
    botocore_session,
    quiet_botocore_wire_logs,
)
from imgctl.authn._cloud import (
    IAAS_SWITCH_HINT,
    SKEW_FLOOR,
    Entry,
    TokenCache,
    Unavailable,
    cache_until,
    normalise_host,
)
from imgctl.authn._keychain import ANONYMOUS, Credential, Resolution, SourceKeychain
from imgctl.errors import CredentialError

__all__ = ["ECRKeychain", "ECRRegistry", "ecr_api_client", "parse_ecr_host"]

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
    host = normalise_host(registry)
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
    keys = aws_keys(env, hint=f"set both or neither, {IAAS_SWITCH_HINT}")
    session = boto3.session.Session(botocore_session=botocore_session(env), **keys)
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
        raise Unavailable("boto3 is not installed (pip install boto3)") from exc

    quiet_botocore_wire_logs()
    if target.public:
        what = f"ECR Public GetAuthorizationToken for {registry}"
    else:
        what = f"ECR GetAuthorizationToken for {registry} (account {target.account}, {region})"
    hint = (
        "configure AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
        f"instance, task or pod role) allowed ecr:GetAuthorizationToken, {IAAS_SWITCH_HINT}"
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
            raise Unavailable(
                "no AWS credentials found; public.ecr.aws allows anonymous pulls"
            ) from exc
        raise Unavailable(
            "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
            "AWS_PROFILE, or use a role); later sources may still answer"
        ) from exc
    except (boto_errors.ConnectionError, boto_errors.HTTPClientError) as exc:
        raise CredentialError(
            f"{what} failed: {boto_error_text(exc)}",
            hint="check that the ECR API endpoint is reachable (network, proxy, "
            f"AWS_ENDPOINT_URL), {IAAS_SWITCH_HINT}",
        ) from exc
    except (boto_errors.ClientError, boto_errors.BotoCoreError) as exc:
        raise CredentialError(f"{what} failed: {boto_error_text(exc)}", hint=hint) from exc

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
        self._cache: TokenCache[tuple[str, str, bool, str | None], Resolution] = TokenCache(clock)

    async def explain(self, registry: str, repository: str) -> Resolution:
        """An ECR token for ECR hosts; anonymous elsewhere."""
        target = parse_ecr_host(registry)
        if target is None:
            return Resolution(ANONYMOUS, self.name, "not an ECR host")
        region = target.region
        if not target.public:
            region = self._environ.get("IMGCTL_ECR_REGION") or region
        endpoint = aws_endpoint(self._environ, target.service)
        key = (target.account or _ECR_PUBLIC_HOST, region, target.fips, endpoint)

        async def fetch() -> Entry[Resolution]:
            now = self._clock()
            try:
                credential, expires_at = await asyncio.to_thread(
                    _fetch_ecr_token, self._environ, target, region, endpoint, registry
                )
            except Unavailable as exc:
                # Not an error, but looking again on every request would redo the whole
                # credential chain (instance metadata included); look again after a while.
                return Entry(Resolution(ANONYMOUS, self.name, str(exc)), now + SKEW_FLOOR)
            if target.public:
                detail = f"ECR Public authorization token ({region})"
            else:
                where = ", ".join(
                    [region, f"partition {target.partition}"]
                    + (["FIPS API endpoint"] if target.fips else [])
                )
                detail = f"ECR authorization token for account {target.account} ({where})"
            return Entry(
                Resolution(credential, self.name, detail),
                cache_until(now, expires_at, SKEW_FLOOR),
            )

        return await self._cache.get(key, fetch)
