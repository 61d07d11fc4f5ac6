"""Cloud keychains against real servers: moto for ECR, loopback OAuth2 servers for GCP and Azure."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from imgctl.authn import (
    ANONYMOUS,
    AzureKeychain,
    Credential,
    ECRKeychain,
    ECRRegistry,
    GCPKeychain,
    GitHubKeychain,
    Resolution,
    cloud_keychains,
    iaas_auth_enabled,
    is_acr_host,
    is_gcp_host,
    parse_ecr_host,
)
from imgctl.authn._ecr import ecr_api_client
from imgctl.errors import CredentialError

from ..support.httpserver import ReceivedRequest, ScriptedServer, response, serve_each
from ..support.moto import AwsProxy, MotoServer, free_port

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
AWS_KEY_ID = "AKIAIMGCTLTESTKEY01"
AWS_SECRET = "aws-secret-never-print-0f3c9a"
AWS_SESSION = "aws-session-token-never-print-77d1"
GITHUB_SECRET = "ghp_never-print-4e1b"
AZURE_SECRET = "azure-client-secret-never-print-90ab"
AAD_TOKEN = "aad-access-token-never-print-c3d2"
GOOGLE_TOKEN = "ya29.google-token-never-print-5a6b"
SECRETS = [AWS_SECRET, AWS_SESSION, GITHUB_SECRET, AZURE_SECRET, AAD_TOKEN, GOOGLE_TOKEN]


def assert_secret_free(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"secret leaked into {text!r}"


def assert_resolution_secret_free(resolution: Resolution, *extra: str) -> None:
    assert_secret_free(resolution.detail, repr(resolution))
    for secret in extra:
        assert secret not in resolution.detail
        assert secret not in repr(resolution)


class Clock:
    """A settable clock, starting now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(autouse=True)
def process_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the SDKs' own reads of the process environment away from this machine's setup."""
    prefixes = ("AWS_", "GOOGLE_", "GCE_", "CLOUDSDK_", "AZURE_", "GITHUB_", "IMGCTL_", "IMGPKG_")
    for name in list(os.environ):
        if name.startswith(prefixes) or name.lower() in {"http_proxy", "https_proxy", "all_proxy"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))


# ------------------------------------------------------------------------------------------
# ECR, against moto's standalone server


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
async def aws(moto: MotoServer) -> AsyncIterator[AwsProxy]:
    proxy = await AwsProxy(moto.url).start()
    yield proxy
    await proxy.aclose()


def aws_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": AWS_SESSION,
        "AWS_ENDPOINT_URL": endpoint,
        **extra,
    }


async def test_ecr_token_is_what_moto_issues(aws: AwsProxy) -> None:
    keychain = ECRKeychain(aws_env(aws.url))
    resolution = await keychain.explain(ECR_HOST, "team/app")
    assert resolution.credential == Credential("AWS", f"{ACCOUNT}-auth-token")
    assert resolution.source == "ecr"
    assert ACCOUNT in resolution.detail
    assert "us-west-2" in resolution.detail
    assert_resolution_secret_free(resolution, f"{ACCOUNT}-auth-token")
    [call] = aws.calls
    assert (call.service, call.region) == ("ecr", "us-west-2")
    assert call.target == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
    assert json.loads(call.body) == {"registryIds": [ACCOUNT]}
    assert f"Credential={AWS_KEY_ID}/" in call.authorization


async def test_ecr_token_is_cached_and_refetched_after_the_floor(aws: AwsProxy) -> None:
    # moto's tokens expire in 2015: already expired on arrival, so they are kept for the floor.
    clock = Clock()
    keychain = ECRKeychain(aws_env(aws.url), clock=clock)
    first = await keychain.resolve(ECR_HOST, "a")
    assert await keychain.resolve(ECR_HOST, "b") == first
    assert await keychain.resolve(ECR_HOST.upper() + ":443", "c") == first
    clock.advance(299)
    assert await keychain.resolve(ECR_HOST, "d") == first
    assert len(aws.calls) == 1
    clock.advance(2)
    assert await keychain.resolve(ECR_HOST, "e") == first
    assert len(aws.calls) == 2


async def test_ecr_concurrent_resolves_make_one_call_per_account(aws: AwsProxy) -> None:
    keychain = ECRKeychain(aws_env(aws.url))
    other_host = f"{OTHER_ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
    results = await asyncio.gather(
        *(keychain.resolve(ECR_HOST, f"repo{i}") for i in range(10)),
        *(keychain.resolve(other_host, f"repo{i}") for i in range(10)),
    )
    assert set(results) == {
        Credential("AWS", f"{ACCOUNT}-auth-token"),
        Credential("AWS", f"{OTHER_ACCOUNT}-auth-token"),
    }
    assert sorted(json.loads(call.body)["registryIds"][0] for call in aws.calls) == sorted(
        [ACCOUNT, OTHER_ACCOUNT]
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (ECR_HOST, ECRRegistry(ACCOUNT, "us-west-2")),
        (
            f"{ACCOUNT}.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            ECRRegistry(ACCOUNT, "us-gov-west-1", fips=True, partition="aws-us-gov"),
        ),
        (
            f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn",
            ECRRegistry(ACCOUNT, "cn-north-1", partition="aws-cn"),
        ),
        (f"{ACCOUNT}.DKR.ECR.eu-central-1.AMAZONAWS.COM:443", ECRRegistry(ACCOUNT, "eu-central-1")),
        ("public.ecr.aws", ECRRegistry(None, "us-east-1", public=True)),
        ("evil.amazonaws.com.attacker.io", None),
        (f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com.attacker.io", None),
        (f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com:5000", None),
        ("12345678901.dkr.ecr.us-west-2.amazonaws.com", None),
        (f"x{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com", None),
        (f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com\n", None),
        ("public.ecr.aws.attacker.io", None),
        ("docker.io", None),
    ],
)
def test_ecr_host_parsing(host: str, expected: ECRRegistry | None) -> None:
    assert parse_ecr_host(host) == expected


# awslabs/amazon-ecr-credential-helper, ecr-login/api/client_test.go TestExtractRegistry at
# commit 72dfb228f066002bcaba4badac55037ebc53009d (the host regex is ecrPattern in
# ecr-login/api/client.go at the same commit): each server URL, and the registry it names or None
# where upstream answers an error. Upstream parses a URL ("https://" optional, a path allowed);
# imgctl is handed the registry host, so the rows go through _registry_of first. The partition is
# imgctl's addition (upstream leaves it to the AWS SDK; test_ecr_partition_is_botocores checks it).
UPSTREAM_ECR_HOSTS: list[tuple[str, ECRRegistry | None]] = [
    (
        "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/blah/blah",
        ECRRegistry("123456789012", "us-east-1"),
    ),
    ("123456789012.dkr.ecr.us-west-2.amazonaws.com", ECRRegistry("123456789012", "us-west-2")),
    (
        "123456789012.dkr-ecr.us-west-2.on.aws",
        ECRRegistry("123456789012", "us-west-2", dual_stack=True),
    ),
    (
        "123456789012.dkr-ecr-fips.us-west-2.on.aws",
        ECRRegistry("123456789012", "us-west-2", fips=True, dual_stack=True),
    ),
    (
        "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/foo",
        ECRRegistry("210987654321", "cn-north-1", partition="aws-cn"),
    ),
    (
        "210987654321.dkr.ecr.cn-north-1.on.amazonwebservices.com.cn",
        ECRRegistry("210987654321", "cn-north-1", partition="aws-cn", dual_stack=True),
    ),
    (
        "210987654321.dkr.ecr.us-iso-east-1.c2s.ic.gov",
        ECRRegistry("210987654321", "us-iso-east-1", partition="aws-iso"),
    ),
    (
        "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
        ECRRegistry("123456789012", "us-isob-east-1", partition="aws-iso-b"),
    ),
    (
        "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
        ECRRegistry("123456789012", "eu-isoe-west-1", partition="aws-iso-e"),
    ),
    (
        "123456789012.dkr.ecr.us-isof-east-1.csp.hci.ic.gov",
        ECRRegistry("123456789012", "us-isof-east-1", partition="aws-iso-f"),
    ),
    (
        "123456789012.dkr-ecr.us-gov-east-1.on.aws",
        ECRRegistry("123456789012", "us-gov-east-1", partition="aws-us-gov", dual_stack=True),
    ),
    (
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
        ECRRegistry("123456789012", "us-gov-west-1", fips=True, partition="aws-us-gov"),
    ),
    (
        "123456789012.dkr-ecr-fips.us-gov-east-1.on.aws",
        ECRRegistry(
            "123456789012", "us-gov-east-1", fips=True, partition="aws-us-gov", dual_stack=True
        ),
    ),
    (
        "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
        ECRRegistry("123456789012", "eusc-de-east-1", partition="aws-eusc"),
    ),
    ("https://public.ecr.aws", ECRRegistry(None, "us-east-1", public=True)),
    ("https://ecr-public.aws.com", ECRRegistry(None, "us-east-1", public=True, dual_stack=True)),
    ("public.ecr.aws", ECRRegistry(None, "us-east-1", public=True)),
    ("ecr-public.aws.com", ECRRegistry(None, "us-east-1", public=True, dual_stack=True)),
    ("https://public.ecr.aws/amazonlinux", ECRRegistry(None, "us-east-1", public=True)),
    (
        "https://ecr-public.aws.com/amazonlinux",
        ECRRegistry(None, "us-east-1", public=True, dual_stack=True),
    ),
    (".dkr.ecr.not-real.amazonaws.com", None),
    ("not.ecr.io", None),
    ("https://123456789012.dkr.ecr.us-west-2.amazonaws.com.fake.example.com/image:latest", None),
    ("123456789012.dkr.ecr.us-west-2.amazonaws.com.fake.example.com", None),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com.fake.example.com", None),
    ("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn.fake.example.com.cn", None),
    ("210987654321.dkr.ecr.cn-north-1.on.aws.com.cn", None),
    ("https://public.ecr.aws.fake.example.com", None),
    ("public.ecr.aws.fake.example.com", None),
]


def _registry_of(server_url: str) -> str:
    """The registry host of an upstream row: no scheme, no path (as ExtractRegistry reads it)."""
    return urlsplit("https://" + server_url.removeprefix("https://")).netloc


@pytest.mark.parametrize(("server_url", "expected"), UPSTREAM_ECR_HOSTS)
def test_ecr_hosts_as_the_ecr_credential_helper_reads_them(
    server_url: str, expected: ECRRegistry | None
) -> None:
    assert parse_ecr_host(_registry_of(server_url)) == expected


@pytest.mark.parametrize(
    "server_url", [url for url, expected in UPSTREAM_ECR_HOSTS if expected and not expected.public]
)
def test_ecr_partition_is_botocores(server_url: str) -> None:
    # botocore decides where GetAuthorizationToken goes from the region alone; the partition
    # read from the host must be the one botocore puts that region in, FIPS endpoint included.
    target = parse_ecr_host(_registry_of(server_url))
    assert target is not None
    client = ecr_api_client(target, target.region)
    try:
        assert client.meta.partition == target.partition
        host = urlsplit(client.meta.endpoint_url).hostname or ""
        assert ("fips" in host) is target.fips
    finally:
        client.close()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        # The same registry written in the ways upstream's pattern allows, and near misses.
        (f"{ACCOUNT}.dkr-ecr.us-west-2.amazonaws.com", ECRRegistry(ACCOUNT, "us-west-2")),
        (
            f"{ACCOUNT}.dkr-ecr.eu-west-1.on.aws:443",
            ECRRegistry(ACCOUNT, "eu-west-1", dual_stack=True),
        ),
        (
            f"{ACCOUNT}.DKR-ECR-FIPS.US-EAST-1.ON.AWS",
            ECRRegistry(ACCOUNT, "us-east-1", True, dual_stack=True),
        ),
        ("ECR-PUBLIC.AWS.COM:443", ECRRegistry(None, "us-east-1", public=True, dual_stack=True)),
        (f"{ACCOUNT}.dkr-ecr.us-west-2.on.aws:5000", None),
        (f"{ACCOUNT}.dkr_ecr.us-west-2.on.aws", None),
        (f"{ACCOUNT}.dkr-ecr.us-west-2.on.aws.attacker.io", None),
        (f"{ACCOUNT}.dkr-ecr.us-west-2.aws", None),
        (f"{ACCOUNT}.dkr.ecr.us-west-2.on.amazonwebservices.com", None),
        (f"{ACCOUNT}.dkr.ecr.-us-west-2.amazonaws.com", None),
        (f"{ACCOUNT}.dkr.ecr..amazonaws.com", None),
        ("ecr-public.aws.com.attacker.io", None),
        ("public.ecr-public.aws.com", None),
    ],
)
def test_ecr_dual_stack_and_fips_host_variants(host: str, expected: ECRRegistry | None) -> None:
    assert parse_ecr_host(host) == expected


@pytest.mark.parametrize(
    ("host", "region"),
    [
        (f"{ACCOUNT}.dkr-ecr.us-west-2.on.aws", "us-west-2"),
        (f"{ACCOUNT}.dkr-ecr-fips.us-gov-east-1.on.aws", "us-gov-east-1"),
        (f"{ACCOUNT}.dkr.ecr.cn-northwest-1.on.amazonwebservices.com.cn", "cn-northwest-1"),
    ],
)
async def test_ecr_dual_stack_hosts_get_a_token(aws: AwsProxy, host: str, region: str) -> None:
    resolution = await ECRKeychain(aws_env(aws.url)).explain(host, "app")
    assert resolution.credential == Credential("AWS", f"{ACCOUNT}-auth-token")
    assert region in resolution.detail
    assert [(call.service, call.region) for call in aws.calls] == [("ecr", region)]
    assert [json.loads(call.body) for call in aws.calls] == [{"registryIds": [ACCOUNT]}]


async def test_ecr_dual_stack_public_host_uses_ecr_public(aws: AwsProxy) -> None:
    aws.public_expires_at = time.time() + 3600
    resolution = await ECRKeychain(aws_env(aws.url)).explain("ecr-public.aws.com", "team/app")
    assert resolution.credential == Credential("AWS", "public-ecr-password")
    assert [(call.service, call.region) for call in aws.calls] == [("ecr-public", "us-east-1")]


async def test_ecr_explain_names_partition_and_fips(aws: AwsProxy) -> None:
    host = f"{ACCOUNT}.dkr-ecr-fips.us-gov-east-1.on.aws"
    resolution = await ECRKeychain(aws_env(aws.url)).explain(host, "app")
    assert resolution.detail == (
        f"ECR authorization token for account {ACCOUNT} "
        "(us-gov-east-1, partition aws-us-gov, FIPS API endpoint)"
    )


async def test_ecr_fips_and_plain_hosts_of_one_account_fetch_apart(aws: AwsProxy) -> None:
    # A FIPS host's token must come through the FIPS API endpoint, never from the cache entry
    # a plain host of the same account and region filled.
    keychain = ECRKeychain(aws_env(aws.url))
    await keychain.resolve(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com", "app")
    await keychain.resolve(f"{ACCOUNT}.dkr.ecr-fips.us-east-1.amazonaws.com", "app")
    await keychain.resolve(f"{ACCOUNT}.dkr-ecr-fips.us-east-1.on.aws", "app")
    assert len(aws.calls) == 2


async def test_ecr_ignores_other_hosts_without_calling_aws(aws: AwsProxy) -> None:
    keychain = ECRKeychain(aws_env(aws.url))
    for host in ("evil.amazonaws.com.attacker.io", "docker.io", "ghcr.io"):
        resolution = await keychain.explain(host, "x")
        assert resolution == Resolution(ANONYMOUS, "ecr", "not an ECR host")
    assert aws.calls == []


@pytest.mark.parametrize(
    ("host", "region"),
    [
        (f"{ACCOUNT}.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        (f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    ],
)
async def test_ecr_fips_and_china_hosts(aws: AwsProxy, host: str, region: str) -> None:
    resolution = await ECRKeychain(aws_env(aws.url)).explain(host, "app")
    assert resolution.credential == Credential("AWS", f"{ACCOUNT}-auth-token")
    assert [(call.service, call.region) for call in aws.calls] == [("ecr", region)]


async def test_ecr_region_override(aws: AwsProxy) -> None:
    keychain = ECRKeychain(aws_env(aws.url, IMGCTL_ECR_REGION="eu-central-1"))
    resolution = await keychain.explain(ECR_HOST, "app")
    assert resolution.credential == Credential("AWS", f"{ACCOUNT}-auth-token")
    assert "eu-central-1" in resolution.detail
    assert [call.region for call in aws.calls] == ["eu-central-1"]


async def test_ecr_service_specific_endpoint_wins(aws: AwsProxy) -> None:
    env = aws_env(closed_port_url(), AWS_ENDPOINT_URL_ECR=aws.url)
    assert (await ECRKeychain(env).resolve(ECR_HOST, "app")).password == f"{ACCOUNT}-auth-token"
    assert len(aws.calls) == 1


async def test_ecr_public_uses_ecr_public_in_us_east_1_until_expiry(aws: AwsProxy) -> None:
    clock = Clock()
    aws.public_expires_at = clock.now + 12 * 3600
    keychain = ECRKeychain(aws_env(aws.url, IMGCTL_ECR_REGION="eu-west-1"), clock=clock)
    resolution = await keychain.explain("public.ecr.aws", "team/app")
    assert resolution.credential == Credential("AWS", "public-ecr-password")
    assert "ECR Public" in resolution.detail
    [call] = aws.calls
    assert (call.service, call.region) == ("ecr-public", "us-east-1")
    assert call.target == "SpencerFrontendService.GetAuthorizationToken"
    # Cached until five minutes before the stated expiry, then fetched again.
    clock.advance(12 * 3600 - 301)
    await keychain.resolve("public.ecr.aws", "team/app")
    assert len(aws.calls) == 1
    clock.advance(2)
    aws.public_token = "public-ecr-password-2"
    assert (await keychain.resolve("public.ecr.aws", "x")).password == "public-ecr-password-2"
    assert len(aws.calls) == 2


async def test_ecr_unreachable_endpoint_is_a_credential_error() -> None:
    keychain = ECRKeychain(aws_env(closed_port_url(), AWS_MAX_ATTEMPTS="1"))
    with pytest.raises(CredentialError) as caught:
        await keychain.explain(ECR_HOST, "app")
    message = str(caught.value)
    assert ECR_HOST in message
    assert "EndpointConnectionError" in message
    assert "ECR API endpoint is reachable" in message
    assert "IMGCTL_ENABLE_IAAS_AUTH=false" in message
    assert_secret_free(message, repr(caught.value))


async def test_ecr_error_after_moto_goes_away(aws: AwsProxy) -> None:
    clock = Clock()
    keychain = ECRKeychain(aws_env(aws.url, AWS_MAX_ATTEMPTS="1"), clock=clock)
    await keychain.resolve(ECR_HOST, "app")
    await aws.aclose()
    clock.advance(301)
    with pytest.raises(CredentialError, match="EndpointConnectionError") as caught:
        await keychain.resolve(ECR_HOST, "app")
    assert_secret_free(str(caught.value))


async def test_ecr_aws_error_code_is_reported(aws: AwsProxy) -> None:
    aws.fail_next.append(
        (
            400,
            {
                "__type": "AccessDeniedException",
                "message": "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
                "ecr:GetAuthorizationToken",
            },
        )
    )
    with pytest.raises(CredentialError) as caught:
        await ECRKeychain(aws_env(aws.url)).explain(ECR_HOST, "app")
    message = str(caught.value)
    assert "AccessDeniedException" in message
    assert "user/ci is not authorized" in message
    assert ECR_HOST in message
    assert "configure AWS credentials" in message
    assert_secret_free(message)


async def test_ecr_honours_aws_settings_from_the_given_environ(aws: AwsProxy) -> None:
    # botocore would retry a 500 several times; AWS_MAX_ATTEMPTS comes from our environ only.
    error = {"__type": "InternalFailure", "message": "boom"}
    aws.fail_next.extend([(500, error)] * 3)
    with pytest.raises(CredentialError, match="InternalFailure"):
        await ECRKeychain(aws_env(aws.url, AWS_MAX_ATTEMPTS="1")).explain(ECR_HOST, "app")
    assert len(aws.calls) == 1


async def test_ecr_without_aws_credentials(aws: AwsProxy) -> None:
    keychain = ECRKeychain({"AWS_ENDPOINT_URL": aws.url})
    # No ambient AWS credentials: anonymous with the reason, so a `docker login` to ECR
    # (a later source) can still answer.
    private = await keychain.explain(ECR_HOST, "app")
    assert not private.found
    assert "no AWS credentials found" in private.detail
    assert "AWS_ACCESS_KEY_ID" in private.detail
    # public.ecr.aws serves anonymous pulls, so missing credentials are not an error there.
    resolution = await keychain.explain("public.ecr.aws", "team/app")
    assert not resolution.found
    assert "anonymous" in resolution.detail
    assert aws.calls == []


async def test_ecr_half_set_keys_are_a_credential_error(aws: AwsProxy) -> None:
    keychain = ECRKeychain({"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_ENDPOINT_URL": aws.url})
    with pytest.raises(CredentialError, match="AWS_ACCESS_KEY_ID is not") as caught:
        await keychain.explain(ECR_HOST, "app")
    assert_secret_free(str(caught.value))


async def test_ecr_without_boto3_is_anonymous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    resolution = await ECRKeychain(aws_env(closed_port_url())).explain(ECR_HOST, "app")
    assert resolution.credential == ANONYMOUS
    assert "boto3 is not installed" in resolution.detail


def test_sdks_are_imported_only_for_their_hosts(tmp_path: Path) -> None:
    script = """
import asyncio, json, sys
from imgctl.authn import GCPKeychain, cloud_keychains

async def main():
    env = {"GITHUB_TOKEN": "t", "AZURE_CLIENT_ID": "i", "AZURE_CLIENT_SECRET": "s",
           "AZURE_TENANT_ID": "t", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    for keychain in cloud_keychains(env):
        for host in ("docker.io", "ghcr.io", "localhost:5000", "evil.amazonaws.com.attacker.io"):
            await keychain.explain(host, "library/alpine")
    sdks = sorted({name.split(".")[0] for name in sys.modules} & {"boto3", "botocore", "google"})
    gcp = await GCPKeychain({}).explain("gcr.io", "project/image")
    print(json.dumps({"sdks": sdks, "gcp": [gcp.found, gcp.detail]}))

asyncio.run(main())
"""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "true",  # google-auth reads it at import: no metadata-server probe
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["sdks"] == []
    assert answer["gcp"] == [False, "no Google application default credentials found"]


# ------------------------------------------------------------------------------------------
# GCP, with a service account whose token_uri is a loopback server


class GoogleTokenServer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.email = "promoter@imgctl-test.iam.gserviceaccount.com"
        self.failing = False
        self.server = ScriptedServer(serve_each(self._respond))

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self.server.requests

    def _respond(self, request: ReceivedRequest) -> bytes:
        if self.failing:
            body: dict[str, object] = {
                "error": "invalid_grant",
                "error_description": "Invalid JWT Signature.",
            }
            return response(
                400, json.dumps(body).encode(), headers=[("Content-Type", "application/json")]
            )
        body = {"access_token": GOOGLE_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        return response(
            200, json.dumps(body).encode(), headers=[("Content-Type", "application/json")]
        )

    def write_key_file(self, path: Path) -> Path:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": "imgctl-test",
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": self.email,
            "client_id": "1234567890",
            "token_uri": f"{self.server.url}/token",
        }
        path.write_text(json.dumps(info))
        return path


@pytest.fixture
async def google() -> AsyncIterator[GoogleTokenServer]:
    server = GoogleTokenServer()
    await server.server.start()
    yield server
    await server.server.aclose()


async def test_gcp_service_account_token(google: GoogleTokenServer, tmp_path: Path) -> None:
    clock = Clock()
    key_file = google.write_key_file(tmp_path / "sa.json")
    keychain = GCPKeychain({"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}, clock=clock)
    resolution = await keychain.explain("us-central1-docker.pkg.dev", "project/repo/image")
    assert resolution.credential == Credential("oauth2accesstoken", GOOGLE_TOKEN)
    assert resolution.source == "gcp"
    assert google.email in resolution.detail
    assert_resolution_secret_free(resolution)

    [request] = google.requests
    assert (request.method, request.target) == ("POST", "/token")
    form = {name: values[0] for name, values in parse_qs(request.body.decode()).items()}
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(
        form["assertion"],
        google.key.public_key(),
        algorithms=["RS256"],
        audience="https://oauth2.googleapis.com/token",
    )
    assert claims["iss"] == google.email
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"

    # One token for every Google host, until five minutes before it expires.
    assert (await keychain.resolve("eu.gcr.io", "project/image")).password == GOOGLE_TOKEN
    assert (await keychain.resolve("gcr.io", "project/image")).password == GOOGLE_TOKEN
    clock.advance(3600 - 310)
    await keychain.resolve("gcr.io", "project/image")
    assert len(google.requests) == 1
    clock.advance(20)
    await keychain.resolve("gcr.io", "project/image")
    assert len(google.requests) == 2


async def test_gcp_concurrent_resolves_make_one_request(
    google: GoogleTokenServer, tmp_path: Path
) -> None:
    key_file = google.write_key_file(tmp_path / "sa.json")
    keychain = GCPKeychain({"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)})
    results = await asyncio.gather(*(keychain.resolve("gcr.io", f"p/i{i}") for i in range(8)))
    assert set(results) == {Credential("oauth2accesstoken", GOOGLE_TOKEN)}
    assert len(google.requests) == 1


async def test_gcp_token_endpoint_error(google: GoogleTokenServer, tmp_path: Path) -> None:
    google.failing = True
    key_file = google.write_key_file(tmp_path / "sa.json")
    keychain = GCPKeychain({"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)})
    with pytest.raises(CredentialError, match="invalid_grant") as caught:
        await keychain.explain("gcr.io", "project/image")
    message = str(caught.value)
    assert "gcr.io" in message
    assert "IMGCTL_ENABLE_IAAS_AUTH=false" in message
    assert "PRIVATE KEY" not in message
    assert_secret_free(message)


async def test_gcp_unusable_credentials_file(tmp_path: Path) -> None:
    keychain = GCPKeychain({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json")})
    with pytest.raises(CredentialError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        await keychain.explain("gcr.io", "project/image")


async def test_gcp_without_google_auth_is_anonymous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.auth", None)
    resolution = await GCPKeychain({}).explain("gcr.io", "project/image")
    assert resolution.credential == ANONYMOUS
    assert "google-auth is not installed" in resolution.detail


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("gcr.io", True),
        ("eu.gcr.io", True),
        ("europe-west1-docker.pkg.dev", True),
        ("US-DOCKER.PKG.DEV:443", True),
        ("gcr.io.attacker.io", False),
        ("evilgcr.io", False),
        ("docker.pkg.dev", False),
        ("-docker.pkg.dev", False),
        ("europe-west1-docker.pkg.dev.attacker.io", False),
        ("gcr.io:5000", False),
    ],
)
def test_gcp_hosts(host: str, expected: bool) -> None:
    assert is_gcp_host(host) is expected


async def test_gcp_ignores_other_hosts(google: GoogleTokenServer, tmp_path: Path) -> None:
    keychain = GCPKeychain(
        {"GOOGLE_APPLICATION_CREDENTIALS": str(google.write_key_file(tmp_path / "sa.json"))}
    )
    resolution = await keychain.explain("gcr.io.attacker.io", "x")
    assert not resolution.found
    assert "not a Google registry host" in resolution.detail
    assert google.requests == []


# ------------------------------------------------------------------------------------------
# Azure, with Azure AD and the registry's exchange endpoint on one loopback server

TENANT = "72f988bf-0000-4000-8000-2d7cd011db47"
CLIENT_ID = "5e1f0c1e-0000-4000-8000-000000000001"


class AzureServer:
    def __init__(self) -> None:
        self.server = ScriptedServer(serve_each(self._respond))
        self.refresh_expires_at = time.time() + 3 * 3600
        self.fail: dict[str, tuple[int, dict[str, object]]] = {}
        self.exchanges = 0

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self.server.requests

    def refresh_token(self) -> str:
        claims = {"exp": int(self.refresh_expires_at), "n": self.exchanges}
        return jwt.encode(claims, "k" * 32, algorithm="HS256")

    def _respond(self, request: ReceivedRequest) -> bytes:
        json_type = [("Content-Type", "application/json")]
        path = request.target
        if path in self.fail:
            status, failure = self.fail[path]
            return response(status, json.dumps(failure).encode(), headers=json_type)
        if path == f"/{TENANT}/oauth2/v2.0/token":
            body = {"access_token": AAD_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
            return response(200, json.dumps(body).encode(), headers=json_type)
        if path == "/oauth2/exchange":
            self.exchanges += 1
            return response(
                200, json.dumps({"refresh_token": self.refresh_token()}).encode(), headers=json_type
            )
        return response(404, b"{}", headers=json_type)


def form_of(request: ReceivedRequest) -> dict[str, str]:
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    return {name: values[0] for name, values in parse_qs(request.body.decode()).items()}


@pytest.fixture
async def azure() -> AsyncIterator[AzureServer]:
    server = AzureServer()
    await server.server.start()
    yield server
    await server.server.aclose()


def azure_env(server: AzureServer) -> dict[str, str]:
    return {
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_CLIENT_SECRET": AZURE_SECRET,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_AUTHORITY_HOST": server.server.url,
    }


async def test_azure_service_principal_flow(azure: AzureServer) -> None:
    clock = Clock()
    keychain = AzureKeychain(azure_env(azure), clock=clock, exchange_base_url=azure.server.url)
    resolution = await keychain.explain("myregistry.azurecr.io", "team/app")
    assert resolution.credential.username == "00000000-0000-0000-0000-000000000000"
    assert resolution.credential.identity_token is not None
    assert (
        jwt.decode(resolution.credential.identity_token, options={"verify_signature": False})["n"]
        == 1
    )
    assert resolution.credential.password is None
    assert resolution.source == "azure"
    assert CLIENT_ID in resolution.detail
    assert_resolution_secret_free(resolution, resolution.credential.identity_token)

    aad, exchange = azure.requests
    assert (aad.method, aad.target) == ("POST", f"/{TENANT}/oauth2/v2.0/token")
    assert form_of(aad) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": AZURE_SECRET,
        "scope": "https://management.azure.com/.default",
    }
    assert (exchange.method, exchange.target) == ("POST", "/oauth2/exchange")
    assert form_of(exchange) == {
        "grant_type": "access_token",
        "service": "myregistry.azurecr.io",
        "tenant": TENANT,
        "access_token": AAD_TOKEN,
    }

    # Cached per registry; another registry reuses the Azure AD token and only exchanges.
    assert await keychain.resolve("myregistry.azurecr.io", "other") == resolution.credential
    other = await keychain.resolve("second.azurecr.io", "app")
    assert other.identity_token != resolution.credential.identity_token
    assert [r.target for r in azure.requests[2:]] == ["/oauth2/exchange"]

    # The refresh token is kept until five minutes before its exp, then everything is fetched
    # again (the Azure AD token, valid for an hour, has expired by then too).
    clock.advance(3 * 3600 - 310)
    await keychain.resolve("myregistry.azurecr.io", "app")
    assert len(azure.requests) == 3
    azure.refresh_expires_at = clock.now + 3 * 3600
    clock.advance(20)
    renewed = await keychain.resolve("myregistry.azurecr.io", "app")
    assert renewed.identity_token != resolution.credential.identity_token
    assert [r.target for r in azure.requests[3:]] == [
        f"/{TENANT}/oauth2/v2.0/token",
        "/oauth2/exchange",
    ]


async def test_azure_exchange_url_template(azure: AzureServer) -> None:
    keychain = AzureKeychain(azure_env(azure), exchange_base_url=azure.server.url + "/{registry}/x")
    azure.fail["/myregistry.azurecr.io/x/oauth2/exchange"] = (
        401,
        {"errors": [{"code": "UNAUTHORIZED"}]},
    )
    with pytest.raises(CredentialError, match="HTTP 401 UNAUTHORIZED") as caught:
        await keychain.explain("myregistry.azurecr.io", "app")
    assert "ACR token exchange at myregistry.azurecr.io" in str(caught.value)
    assert_secret_free(str(caught.value))


async def test_azure_aad_error(azure: AzureServer) -> None:
    azure.fail[f"/{TENANT}/oauth2/v2.0/token"] = (
        401,
        {
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Trace ID: 1",
        },
    )
    keychain = AzureKeychain(azure_env(azure), exchange_base_url=azure.server.url)
    with pytest.raises(CredentialError) as caught:
        await keychain.explain("myregistry.azurecr.io", "app")
    message = str(caught.value)
    assert "HTTP 401 invalid_client (AADSTS7000215)" in message
    assert "AZURE_CLIENT_SECRET" in message
    assert [r.target for r in azure.requests] == [f"/{TENANT}/oauth2/v2.0/token"]
    assert_secret_free(message)


async def test_azure_unreachable_authority() -> None:
    env = {
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_CLIENT_SECRET": AZURE_SECRET,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_AUTHORITY_HOST": closed_port_url(),
    }
    with pytest.raises(CredentialError, match="ConnectError") as caught:
        await AzureKeychain(env).explain("myregistry.azurecr.io", "app")
    assert_secret_free(str(caught.value))


async def test_azure_without_service_principal() -> None:
    resolution = await AzureKeychain({}).explain("myregistry.azurecr.io", "app")
    no_config = "no Azure config (IMGCTL_AZURE_CR_CONFIG or IMGPKG_REGISTRY_AZURE_CR_CONFIG)"
    assert resolution == Resolution(
        ANONYMOUS,
        "azure",
        f"AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID not set, and {no_config}",
    )
    partial = await AzureKeychain({"AZURE_CLIENT_ID": CLIENT_ID}).explain("r.azurecr.io", "a")
    assert partial.detail == f"AZURE_CLIENT_SECRET/AZURE_TENANT_ID not set, and {no_config}"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("myregistry.azurecr.io", True),
        ("myregistry.azurecr.cn", True),
        ("myregistry.azurecr.us", True),
        ("MyRegistry.AzureCR.io:443", True),
        ("azurecr.io", False),
        ("myregistry.azurecr.io.attacker.io", False),
        ("myregistryazurecr.io", False),
        ("myregistry.azurecr.io:5000", False),
    ],
)
def test_acr_hosts(host: str, expected: bool) -> None:
    assert is_acr_host(host) is expected


async def test_azure_ignores_other_hosts(azure: AzureServer) -> None:
    keychain = AzureKeychain(azure_env(azure), exchange_base_url=azure.server.url)
    resolution = await keychain.explain("myregistry.azurecr.io.attacker.io", "app")
    assert not resolution.found
    assert azure.requests == []


# ------------------------------------------------------------------------------------------
# ghcr


async def test_ghcr() -> None:
    actor = GitHubKeychain({"GITHUB_TOKEN": GITHUB_SECRET, "GITHUB_ACTOR": "octocat"})
    resolution = await actor.explain("ghcr.io", "octocat/app")
    assert resolution.credential == Credential("octocat", GITHUB_SECRET)
    assert resolution.source == "ghcr"
    assert_resolution_secret_free(resolution)
    default = await GitHubKeychain({"GITHUB_TOKEN": GITHUB_SECRET}).resolve("GHCR.IO", "o/a")
    assert default == Credential("imgctl", GITHUB_SECRET)
    assert (await actor.explain("docker.io", "library/alpine")).credential == ANONYMOUS
    missing = await GitHubKeychain({"GITHUB_ACTOR": "octocat"}).explain("ghcr.io", "o/a")
    assert missing == Resolution(ANONYMOUS, "ghcr", "GITHUB_TOKEN not set")


# ------------------------------------------------------------------------------------------
# The IaaS switch


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "true"}, True),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "1"}, True),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "Yes"}, True),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "false"}, False),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "FALSE"}, False),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "0"}, False),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "no"}, False),
        ({"IMGCTL_ENABLE_IAAS_AUTH": " Off "}, False),
        ({"IMGPKG_ENABLE_IAAS_AUTH": "false"}, False),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "", "IMGPKG_ENABLE_IAAS_AUTH": "false"}, False),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "true", "IMGPKG_ENABLE_IAAS_AUTH": "false"}, True),
        ({"IMGCTL_ENABLE_IAAS_AUTH": "false", "IMGPKG_ENABLE_IAAS_AUTH": "true"}, False),
    ],
)
def test_iaas_switch(env: dict[str, str], enabled: bool) -> None:
    assert iaas_auth_enabled(env) is enabled
    names = [keychain.name for keychain in cloud_keychains(env)]
    assert names == (["ecr", "gcp", "azure", "ghcr"] if enabled else [])


@pytest.mark.parametrize("name", ["IMGCTL_ENABLE_IAAS_AUTH", "IMGPKG_ENABLE_IAAS_AUTH"])
def test_iaas_switch_rejects_other_values(name: str) -> None:
    with pytest.raises(CredentialError, match=name):
        cloud_keychains({name: "maybe"})


def test_cloud_keychains_default_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMGCTL_ENABLE_IAAS_AUTH", "off")
    assert cloud_keychains() == []
    monkeypatch.setenv("IMGCTL_ENABLE_IAAS_AUTH", "on")
    assert len(cloud_keychains()) == 4


async def test_cloud_keychains_use_the_given_environ() -> None:
    env = {"GITHUB_TOKEN": GITHUB_SECRET, "GITHUB_ACTOR": "octocat"}
    *_, ghcr = cloud_keychains(env)
    assert (await ghcr.resolve("ghcr.io", "o/a")) == Credential("octocat", GITHUB_SECRET)
    ecr = cloud_keychains(env)[0]
    assert (await ecr.explain("docker.io", "library/alpine")).detail == "not an ECR host"


async def test_ecr_token_never_reaches_debug_logs(
    aws: AwsProxy, caplog: pytest.LogCaptureFixture
) -> None:
    # An application embedding imgctl may turn on DEBUG for everything; botocore then logs
    # response bodies, which for GetAuthorizationToken hold the registry password.
    caplog.set_level(logging.DEBUG)
    resolution = await ECRKeychain(aws_env(aws.url)).explain(ECR_HOST, "team/app")
    assert resolution.credential.password
    secrets = [
        resolution.credential.password,
        base64.b64encode(f"AWS:{resolution.credential.password}".encode()).decode(),
        AWS_SECRET,
        AWS_SESSION,
    ]
    assert caplog.records  # botocore did log
    for secret in secrets:
        assert secret not in caplog.text
