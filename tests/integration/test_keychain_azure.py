"""imgpkg's Azure config file (azure.json): client secret, certificate, managed identity.

imgpkg v0.18 to v0.31 read Azure credentials from the file named by
``IMGPKG_REGISTRY_AZURE_CR_CONFIG``, through k8s.io/legacy-cloud-providers' ``AzureAuthConfig``
(carvel-dev/imgpkg commit 96a99c0004b01f6403e49491044b52bf4397fbd9, vendor/k8s.io/
legacy-cloud-providers/azure/auth/azure_auth.go and vendor/github.com/vdemeester/
k8s-pkg-credentialprovider/azure/azure_credentials.go; the documented sample is in
carvel-dev/carvel site/content/imgpkg/docs/v0.29.0/auth.md). Azure AD, the instance metadata
service and the registry's ``/oauth2/exchange`` are one loopback stand-in that checks what a real
one checks: the client assertion's signature, thumbprint and audience, the ``Metadata`` header,
the identity asked for.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from imgctl.authn import (
    ANONYMOUS,
    AzureKeychain,
    Credential,
    EnvKeychain,
    cloud_keychains,
    default_keychain,
)
from imgctl.authn._azure import AzureConfig, load_azure_config, load_client_certificate, thumbprint
from imgctl.errors import CredentialError

from ..support.httpserver import ReceivedRequest, ScriptedServer, response, serve_each
from ..support.moto import free_port

TENANT = "72f988bf-0000-4000-8000-2d7cd011db47"
CLIENT_ID = "5e1f0c1e-0000-4000-8000-000000000001"
IDENTITY_ID = "7a0e2b14-0000-4000-8000-00000000beef"  # a user-assigned identity's client ID
REGISTRY = "myregistry.azurecr.io"
CLIENT_SECRET = "azure-client-secret-never-print-1c2d"
CERT_PASSWORD = "pfx-password-never-print-77aa"
WRONG_PASSWORD = "wrong-password-never-print-9c"
AAD_TOKEN = "aad-access-token-never-print-3e4f"
MSI_TOKEN = "msi-access-token-never-print-5a6b"
SECRETS = (CLIENT_SECRET, CERT_PASSWORD, WRONG_PASSWORD, AAD_TOKEN, MSI_TOKEN, "PRIVATE KEY")
ARM_PUBLIC = "https://management.core.windows.net/"


def assert_secret_free(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"secret leaked into {text!r}"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Azure, proxy or imgctl settings of this machine reach the keychains."""
    for name in list(os.environ):
        lowered = name.lower()
        if name.startswith(("AZURE_", "IMGCTL_", "IMGPKG_", "MSI_", "IDENTITY_")) or lowered in {
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
        }:
            monkeypatch.delenv(name)


# ------------------------------------------------------------------------------------------
# Certificates (test data, made here)


@dataclass
class Cert:
    key: Any
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def x5t(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha1(self.der).digest()).decode().rstrip("=")

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def pfx(self, password: str | None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(b"sp", self.key, self.cert, None, encryption)


def make_cert(key: Any = None, *, days: tuple[int, int] = (-1, 30)) -> Cert:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgctl-test-sp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .sign(key, hashes.SHA256())
    )
    return Cert(key, cert)


@pytest.fixture(scope="module")
def sp_cert() -> Cert:
    return make_cert()


@pytest.fixture(scope="module")
def other_cert() -> Cert:
    return make_cert()


# ------------------------------------------------------------------------------------------
# Azure AD + IMDS + ACR exchange, on one loopback server


class AzureStandIn:
    def __init__(self, certificates: list[Cert]) -> None:
        self.server = ScriptedServer(serve_each(self._respond))
        self.certificates = {c.x5t: c for c in certificates}
        self.identities = {"": MSI_TOKEN, IDENTITY_ID: MSI_TOKEN + "-user"}
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.imds_expires_in = "86399"
        self.exchanged: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self.server.requests

    @property
    def token_url(self) -> str:
        return f"{self.url}/{TENANT}/oauth2/v2.0/token"

    def _respond(self, request: ReceivedRequest) -> bytes:
        json_type = [("Content-Type", "application/json")]

        def answer(status: int, body: dict[str, Any]) -> bytes:
            return response(status, json.dumps(body).encode(), headers=json_type)

        path, _, query = request.target.partition("?")
        if path == f"/{TENANT}/oauth2/v2.0/token" and request.method == "POST":
            form = form_of(request)
            assertion = form.get("client_assertion")
            if assertion is None:
                return answer(400, {"error": "invalid_request"})
            header = jwt.get_unverified_header(assertion)
            known = self.certificates.get(header.get("x5t", ""))
            if known is None:
                return answer(
                    401,
                    {"error": "invalid_client", "error_description": "AADSTS700027: unknown"},
                )
            claims = jwt.decode(
                assertion,
                known.key.public_key(),
                algorithms=["RS256"],
                audience=self.token_url,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
            self.assertions.append((header, claims))
            return answer(200, {"access_token": AAD_TOKEN, "expires_in": 3599})
        if path == "/metadata/identity/oauth2/token" and request.method == "GET":
            params = {k: v[0] for k, v in parse_qs(query).items()}
            if request.header("Metadata") != "true":
                return answer(
                    400,
                    {
                        "error": "invalid_request",
                        "error_description": "Required metadata header not specified",
                    },
                )
            token = self.identities.get(params.get("client_id", ""))
            if token is None:
                return answer(
                    400, {"error": "invalid_request", "error_description": "Identity not found"}
                )
            return answer(
                200,
                {
                    "access_token": token,
                    "expires_in": self.imds_expires_in,
                    "expires_on": str(int(time.time()) + 86399),
                    "resource": params.get("resource", ""),
                    "token_type": "Bearer",
                },
            )
        if path == "/oauth2/exchange" and request.method == "POST":
            form = form_of(request)
            self.exchanged.append(form)
            refresh = jwt.encode(
                {"exp": int(time.time()) + 3 * 3600, "n": len(self.exchanged)},
                "k" * 32,
                algorithm="HS256",
            )
            return answer(200, {"refresh_token": refresh})
        return answer(404, {})


def form_of(request: ReceivedRequest) -> dict[str, str]:
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    return {name: values[0] for name, values in parse_qs(request.body.decode()).items()}


def imds_params(request: ReceivedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.target).query).items()}


@pytest.fixture
async def azure(sp_cert: Cert) -> AsyncIterator[AzureStandIn]:
    stand_in = AzureStandIn([sp_cert])
    await stand_in.server.start()
    yield stand_in
    await stand_in.server.aclose()


def write_config(directory: Path, document: dict[str, Any] | str) -> Path:
    path = directory / "azure.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path


def env_for(
    azure: AzureStandIn, config: Path, variable: str = "IMGPKG_REGISTRY_AZURE_CR_CONFIG"
) -> dict[str, str]:
    return {
        variable: str(config),
        "AZURE_AUTHORITY_HOST": azure.url,
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": azure.url,
    }


def keychain_for(
    azure: AzureStandIn, environ: dict[str, str], clock: Clock | None = None
) -> AzureKeychain:
    return AzureKeychain(environ, clock=clock or Clock(), exchange_base_url=azure.url)


# ------------------------------------------------------------------------------------------
# Client secret: handed to the registry as basic credentials, as imgpkg's provider does


async def test_client_secret_is_basic_credentials_without_calling_azure(
    azure: AzureStandIn, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        {"tenantId": TENANT, "aadClientId": CLIENT_ID, "aadClientSecret": CLIENT_SECRET},
    )
    keychain = keychain_for(azure, env_for(azure, config))
    for host in (REGISTRY, "other.azurecr.io", "china.azurecr.cn", "gov.azurecr.us"):
        resolution = await keychain.explain(host, "team/app")
        assert resolution.credential == Credential(CLIENT_ID, CLIENT_SECRET)
        assert resolution.source == "azure"
        assert str(config) in resolution.detail
        assert CLIENT_ID in resolution.detail
        assert_secret_free(resolution.detail, repr(resolution))
    assert azure.requests == []
    assert (await keychain.explain("docker.io", "library/alpine")).credential == ANONYMOUS


# ------------------------------------------------------------------------------------------
# Client certificate: a client assertion signed with the certificate's key


@pytest.mark.parametrize("form", ["pfx-password", "pfx-no-password", "pem", "pem-encrypted"])
async def test_certificate_flow(
    azure: AzureStandIn, sp_cert: Cert, tmp_path: Path, form: str
) -> None:
    cert_file = tmp_path / ("sp.pfx" if form.startswith("pfx") else "sp.pem")
    password: str | None = CERT_PASSWORD
    if form == "pfx-password":
        cert_file.write_bytes(sp_cert.pfx(CERT_PASSWORD))
    elif form == "pfx-no-password":
        cert_file.write_bytes(sp_cert.pfx(None))
        password = None
    elif form == "pem":
        cert_file.write_bytes(sp_cert.cert_pem() + sp_cert.key_pem())
        password = None
    else:
        cert_file.write_bytes(sp_cert.key_pem(CERT_PASSWORD) + sp_cert.cert_pem())
    document: dict[str, Any] = {
        "cloud": "AzurePublicCloud",
        "tenantId": TENANT,
        "aadClientId": CLIENT_ID,
        "aadClientCertPath": str(cert_file),
    }
    if password:
        document["aadClientCertPassword"] = password
    config = write_config(tmp_path, document)
    clock = Clock()
    keychain = keychain_for(azure, env_for(azure, config), clock)

    resolution = await keychain.explain(REGISTRY, "team/app")
    assert resolution.credential.username == "00000000-0000-0000-0000-000000000000"
    assert resolution.credential.identity_token is not None
    assert resolution.credential.password is None
    assert hashlib.sha1(sp_cert.der).hexdigest().upper() in resolution.detail  # the thumbprint
    assert_secret_free(resolution.detail, repr(resolution), repr(keychain))

    aad, exchange = azure.requests
    assert (aad.method, aad.target) == ("POST", f"/{TENANT}/oauth2/v2.0/token")
    form_sent = form_of(aad)
    assert form_sent.pop("client_assertion")
    assert form_sent == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "scope": "https://management.azure.com/.default",
    }
    [(header, claims)] = azure.assertions
    assert header["alg"] == "RS256"
    assert header["typ"] == "JWT"
    assert header["x5t"] == sp_cert.x5t
    assert header["x5t#S256"] == thumbprint(hashlib.sha256(sp_cert.der).digest())
    assert claims["aud"] == azure.token_url
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert uuid.UUID(claims["jti"])
    assert claims["nbf"] == claims["iat"] == int(clock.now)
    assert claims["exp"] - claims["nbf"] == 600
    assert form_of(exchange) == {
        "grant_type": "access_token",
        "service": REGISTRY,
        "tenant": TENANT,
        "access_token": AAD_TOKEN,
    }

    # Cached: the same registry asks nobody; another one only exchanges the cached AAD token.
    await keychain.resolve(REGISTRY, "other")
    await keychain.resolve("second.azurecr.io", "app")
    assert [r.target for r in azure.requests[2:]] == ["/oauth2/exchange"]
    # After everything expired, a new assertion (new jti) is signed.
    clock.advance(4 * 3600)
    await keychain.resolve(REGISTRY, "app")
    assert len(azure.assertions) == 2
    assert azure.assertions[0][1]["jti"] != azure.assertions[1][1]["jti"]


async def test_certificate_unknown_to_azure_ad_is_an_error(
    azure: AzureStandIn, other_cert: Cert, tmp_path: Path
) -> None:
    cert_file = tmp_path / "other.pfx"
    cert_file.write_bytes(other_cert.pfx(CERT_PASSWORD))
    config = write_config(
        tmp_path,
        {
            "tenantId": TENANT,
            "aadClientId": CLIENT_ID,
            "aadClientCertPath": str(cert_file),
            "aadClientCertPassword": CERT_PASSWORD,
        },
    )
    with pytest.raises(CredentialError) as caught:
        await keychain_for(azure, env_for(azure, config)).explain(REGISTRY, "app")
    message = str(caught.value)
    assert "HTTP 401 invalid_client (AADSTS700027)" in message
    assert "certificate" in message
    assert "aadClientId" in message  # the hint
    assert_secret_free(message, repr(caught.value))


async def test_certificate_flow_logs_no_secret(
    azure: AzureStandIn, sp_cert: Cert, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An application embedding imgctl may log everything at DEBUG (httpx, httpcore included).
    caplog.set_level(logging.DEBUG)
    cert_file = tmp_path / "sp.pfx"
    cert_file.write_bytes(sp_cert.pfx(CERT_PASSWORD))
    config = write_config(
        tmp_path,
        {
            "tenantId": TENANT,
            "aadClientId": CLIENT_ID,
            "aadClientCertPath": str(cert_file),
            "aadClientCertPassword": CERT_PASSWORD,
        },
    )
    resolution = await keychain_for(azure, env_for(azure, config)).explain(REGISTRY, "app")
    assert resolution.credential.identity_token is not None
    assertion = form_of(azure.requests[0])["client_assertion"]
    assert caplog.records  # httpx did log
    for secret in (*SECRETS, assertion, resolution.credential.identity_token):
        assert secret not in caplog.text


def test_thumbprint_is_microsofts_example() -> None:
    # learn.microsoft.com, "Microsoft identity platform certificate credentials": the x5t of a
    # certificate whose SHA-1 hash is 84E05C1D98BCE3A5421D225B140B36E86A3D5534.
    digest = bytes.fromhex("84E05C1D98BCE3A5421D225B140B36E86A3D5534")
    assert thumbprint(digest) == "hOBcHZi846VCHSJbFAs26Go9VTQ"


@dataclass
class BadCert:
    name: str
    content: bytes
    password: str | None
    says: str


def bad_certificates(sp_cert: Cert, other_cert: Cert) -> list[BadCert]:
    ec_cert = make_cert(ec.generate_private_key(ec.SECP256R1()))
    expired = make_cert(sp_cert.key, days=(-30, -1))
    future = make_cert(sp_cert.key, days=(2, 30))
    return [
        BadCert(
            "pfx-wrong-password",
            sp_cert.pfx(CERT_PASSWORD),
            WRONG_PASSWORD,
            "aadClientCertPassword",
        ),
        BadCert("pfx-no-password", sp_cert.pfx(CERT_PASSWORD), None, "aadClientCertPassword"),
        BadCert(
            "pem-encrypted-no-password",
            sp_cert.key_pem(CERT_PASSWORD) + sp_cert.cert_pem(),
            None,
            "encrypted",
        ),
        BadCert(
            "pem-wrong-password",
            sp_cert.key_pem(CERT_PASSWORD) + sp_cert.cert_pem(),
            WRONG_PASSWORD,
            "aadClientCertPassword",
        ),
        BadCert("pem-certificate-only", sp_cert.cert_pem(), None, "private key"),
        BadCert("pem-key-only", sp_cert.key_pem(), None, "no PEM certificate"),
        BadCert(
            "pem-mismatch",
            other_cert.cert_pem() + sp_cert.key_pem(),
            None,
            "no certificate for its private key",
        ),
        BadCert("ec-key", ec_cert.cert_pem() + ec_cert.key_pem(), None, "not an RSA key"),
        BadCert("expired", expired.cert_pem() + expired.key_pem(), None, "expired on"),
        BadCert("not-yet-valid", future.cert_pem() + future.key_pem(), None, "not valid before"),
        BadCert(
            "garbage", b"\x00\x01 not a certificate", CERT_PASSWORD, "not a PKCS#12 or PEM file"
        ),
        BadCert("empty", b"", None, "not a PKCS#12 or PEM file"),
        BadCert("huge", b"0" * (1024 * 1024 + 1), None, "larger than 1 MiB"),
    ]


def test_unusable_certificates_are_clear_errors(
    sp_cert: Cert, other_cert: Cert, tmp_path: Path
) -> None:
    cases = bad_certificates(sp_cert, other_cert)
    for case in cases:
        path = tmp_path / f"{case.name}.cert"
        path.write_bytes(case.content)
        config = write_config(
            tmp_path,
            {
                "tenantId": TENANT,
                "aadClientId": CLIENT_ID,
                "aadClientCertPath": str(path),
                **({"aadClientCertPassword": case.password} if case.password else {}),
            },
        )
        with pytest.raises(CredentialError) as caught:
            load_azure_config("IMGCTL_AZURE_CR_CONFIG", config, now=time.time())
        message = f"{caught.value} {caught.value.hint or ''}"
        assert case.says in message, (case.name, message)
        assert str(path) in str(caught.value), case.name
        assert_secret_free(message)


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_certificate_path_that_is_not_a_file(tmp_path: Path, where: str) -> None:
    path = tmp_path / "sp.pfx"
    if where == "directory":
        path.mkdir()
    with pytest.raises(CredentialError, match="aadClientCertPath") as caught:
        load_client_certificate(path, CERT_PASSWORD, now=time.time())
    assert str(path) in str(caught.value)
    assert_secret_free(str(caught.value))


# ------------------------------------------------------------------------------------------
# Managed identity: the instance metadata service


@pytest.mark.parametrize(
    ("document", "host", "expected_params", "expected_tenant"),
    [
        (
            {"useManagedIdentityExtension": True},
            REGISTRY,
            {"api-version": "2018-02-01", "resource": ARM_PUBLIC},
            None,
        ),
        (
            {"useManagedIdentityExtension": True, "tenantId": TENANT},
            REGISTRY,
            {"api-version": "2018-02-01", "resource": ARM_PUBLIC},
            TENANT,
        ),
        (
            {"useManagedIdentityExtension": True, "userAssignedIdentityID": IDENTITY_ID},
            REGISTRY,
            {"api-version": "2018-02-01", "resource": ARM_PUBLIC, "client_id": IDENTITY_ID},
            None,
        ),
        (
            # AKS writes aadClientId/aadClientSecret "msi" next to the managed identity; the
            # managed identity comes first, as in imgpkg.
            {
                "useManagedIdentityExtension": True,
                "aadClientId": "msi",
                "aadClientSecret": "msi",
                "tenantId": TENANT,
            },
            REGISTRY,
            {"api-version": "2018-02-01", "resource": ARM_PUBLIC},
            TENANT,
        ),
        (
            {"useManagedIdentityExtension": True, "cloud": "AzureChinaCloud"},
            REGISTRY,
            {"api-version": "2018-02-01", "resource": "https://management.core.chinacloudapi.cn/"},
            None,
        ),
        (
            {"useManagedIdentityExtension": True},
            "gov.azurecr.us",
            {
                "api-version": "2018-02-01",
                "resource": "https://management.core.usgovcloudapi.net/",
            },
            None,
        ),
    ],
)
async def test_managed_identity_flow(
    azure: AzureStandIn,
    tmp_path: Path,
    document: dict[str, Any],
    host: str,
    expected_params: dict[str, str],
    expected_tenant: str | None,
) -> None:
    config = write_config(tmp_path, document)
    keychain = keychain_for(azure, env_for(azure, config))
    resolution = await keychain.explain(host, "team/app")
    assert resolution.credential.identity_token is not None
    identity = document.get("userAssignedIdentityID")
    assert (identity or "system-assigned") in resolution.detail
    assert_secret_free(resolution.detail, repr(resolution))

    imds, exchange = azure.requests
    assert imds.method == "GET"
    assert urlsplit(imds.target).path == "/metadata/identity/oauth2/token"
    assert imds_params(imds) == expected_params
    assert imds.header("Metadata") == "true"
    expected_form = {"grant_type": "access_token", "service": host}
    if expected_tenant:
        expected_form["tenant"] = expected_tenant
    expected_form["access_token"] = MSI_TOKEN + ("-user" if identity else "")
    assert form_of(exchange) == expected_form


async def test_managed_identity_token_lifetime_is_read_from_a_string(
    azure: AzureStandIn, tmp_path: Path
) -> None:
    # IMDS writes expires_in as a string. Read as such, the token serves a second registry a
    # quarter of an hour later; unread, it would be fetched again after five minutes.
    azure.imds_expires_in = "3599"
    config = write_config(tmp_path, {"useManagedIdentityExtension": True})
    clock = Clock()
    keychain = keychain_for(azure, env_for(azure, config), clock)
    await keychain.resolve(REGISTRY, "app")
    clock.advance(900)
    await keychain.resolve("second.azurecr.io", "app")
    assert [urlsplit(r.target).path for r in azure.requests] == [
        "/metadata/identity/oauth2/token",
        "/oauth2/exchange",
        "/oauth2/exchange",
    ]
    clock.advance(3599 - 900)
    await keychain.resolve("third.azurecr.io", "app")
    assert urlsplit(azure.requests[-2].target).path == "/metadata/identity/oauth2/token"


async def test_managed_identity_not_found(azure: AzureStandIn, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"useManagedIdentityExtension": True, "userAssignedIdentityID": "nobody"}
    )
    with pytest.raises(CredentialError) as caught:
        await keychain_for(azure, env_for(azure, config)).explain(REGISTRY, "app")
    message = str(caught.value)
    assert "HTTP 400 invalid_request: Identity not found" in message
    assert "userAssignedIdentityID" in message  # the hint
    assert [urlsplit(r.target).path for r in azure.requests] == ["/metadata/identity/oauth2/token"]


async def test_managed_identity_without_metadata_service(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"useManagedIdentityExtension": True})
    environ = {
        "IMGPKG_REGISTRY_AZURE_CR_CONFIG": str(config),
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://127.0.0.1:{free_port()}",
    }
    with pytest.raises(CredentialError, match="ConnectError") as caught:
        await AzureKeychain(environ).explain(REGISTRY, "app")
    assert "managed identity" in str(caught.value)


async def test_metadata_service_is_never_reached_through_a_proxy(
    azure: AzureStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would answer with its own address (Azure refuses proxied metadata requests);
    # here the proxy is a closed port, so going through it fails.
    closed = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, closed)
    config = write_config(tmp_path, {"useManagedIdentityExtension": True})
    environ = env_for(azure, config) | {"HTTP_PROXY": closed}
    # The exchange (a registry, https in real life) may use the proxy; this stand-in may not.
    keychain = AzureKeychain(environ, exchange_base_url=azure.url)
    with pytest.raises(CredentialError, match="ACR token exchange"):
        await keychain.explain(REGISTRY, "app")
    assert [urlsplit(r.target).path for r in azure.requests] == ["/metadata/identity/oauth2/token"]


# ------------------------------------------------------------------------------------------
# The file: where it is named, what it may hold


async def test_imgctl_variable_wins_and_the_file_wins_over_the_environment(
    azure: AzureStandIn, tmp_path: Path
) -> None:
    ours = tmp_path / "ours"
    theirs = tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    ours_file = write_config(ours, {"aadClientId": "ours", "aadClientSecret": CLIENT_SECRET})
    theirs_file = write_config(theirs, {"aadClientId": "theirs", "aadClientSecret": "x"})
    environ = {
        "IMGCTL_AZURE_CR_CONFIG": str(ours_file),
        "IMGPKG_REGISTRY_AZURE_CR_CONFIG": str(theirs_file),
        "AZURE_CLIENT_ID": "env",
        "AZURE_CLIENT_SECRET": "env-secret",
        "AZURE_TENANT_ID": TENANT,
    }
    assert (await keychain_for(azure, environ).resolve(REGISTRY, "a")).username == "ours"
    environ["IMGCTL_AZURE_CR_CONFIG"] = " "  # empty counts as unset
    assert (await keychain_for(azure, environ).resolve(REGISTRY, "a")).username == "theirs"
    assert azure.requests == []


def test_the_config_variable_is_not_an_env_credential_entry(tmp_path: Path) -> None:
    # carvel-dev/imgpkg pkg/imgpkg/registry/keychain_test.go (commit 96a99c00): "Do not error if
    # AZURE_CR_CONFIG env var is set"; imgctl's own variable is outside IMGCTL_CREDS_ too.
    environ = {
        "IMGPKG_REGISTRY_AZURE_CR_CONFIG": "/some/path",
        "IMGCTL_AZURE_CR_CONFIG": "/some/path",
    }
    assert EnvKeychain(environ).entries == []


# A real AKS /etc/kubernetes/azure.json (values made up): the cloud-provider config, of which
# only the auth fields matter here.
AKS_AZURE_JSON = {
    "cloud": "AzurePublicCloud",
    "tenantId": TENANT,
    "subscriptionId": "11111111-2222-3333-4444-555555555555",
    "aadClientId": CLIENT_ID,
    "aadClientSecret": CLIENT_SECRET,
    "resourceGroup": "MC_rg_cluster_westeurope",
    "location": "westeurope",
    "vmType": "vmss",
    "subnetName": "aks-subnet",
    "securityGroupName": "aks-agentpool-nsg",
    "vnetName": "aks-vnet",
    "vnetResourceGroup": "",
    "routeTableName": "aks-agentpool-routetable",
    "primaryAvailabilitySetName": "",
    "primaryScaleSetName": "aks-nodepool1-vmss",
    "cloudProviderBackoffMode": "v2",
    "cloudProviderBackoff": True,
    "cloudProviderBackoffRetries": 6,
    "cloudProviderBackoffDuration": 5,
    "cloudProviderRateLimit": True,
    "cloudProviderRateLimitQPS": 10,
    "useManagedIdentityExtension": False,
    "userAssignedIdentityID": "",
    "useInstanceMetadata": True,
    "loadBalancerSku": "Standard",
    "disableOutboundSNAT": False,
    "excludeMasterFromStandardLB": True,
    "providerVaultName": "",
    "maximumLoadBalancerRuleCount": 250,
    "providerKeyName": "k8s",
    "providerKeyVersion": "",
}


def test_a_whole_aks_cloud_provider_config_is_read(tmp_path: Path) -> None:
    config = load_azure_config(
        "IMGCTL_AZURE_CR_CONFIG", write_config(tmp_path, AKS_AZURE_JSON), now=time.time()
    )
    assert config.method == "client-secret"
    assert config.client_id == CLIENT_ID
    assert config.client_secret == CLIENT_SECRET
    assert config.cloud is not None
    assert config.cloud.name == "AzurePublicCloud"
    assert_secret_free(repr(config))


def test_field_names_match_without_case_as_go_reads_them(tmp_path: Path) -> None:
    text = json.dumps(
        {"TENANTID": TENANT, "AADClientID": CLIENT_ID, "aadclientsecret": CLIENT_SECRET}
    )
    config = load_azure_config(
        "IMGCTL_AZURE_CR_CONFIG", write_config(tmp_path, text), now=time.time()
    )
    assert (config.client_id, config.tenant_id, config.method) == (
        CLIENT_ID,
        TENANT,
        "client-secret",
    )


def test_yaml_and_nulls(tmp_path: Path) -> None:
    # sigs.k8s.io/yaml read it: YAML is as good as JSON, and null is an empty field.
    text = (
        f"tenantId: {TENANT}\naadClientId: {CLIENT_ID}\naadClientSecret: {CLIENT_SECRET}\n"
        "cloud: null\n"
    )
    config = load_azure_config(
        "IMGCTL_AZURE_CR_CONFIG", write_config(tmp_path, text), now=time.time()
    )
    assert config.cloud is None
    assert config.method == "client-secret"


# The sample imgpkg documented (carvel-dev/carvel site/content/imgpkg/docs/v0.29.0/auth.md),
# placeholders as written there. imgctl refuses it, naming resourceManagerEndpoint: that field
# asks for an Azure Stack Hub environment, which imgctl does not support.
IMGPKG_DOCUMENTED_SAMPLE = {
    "cloud": "",
    "tenantId": "TenantID",
    "aadClientId": "AADClientID",
    "aadClientSecret": "AADClientSecret",
    "aadClientCertPath": "AADClientCertPath",
    "aadClientCertPassword": "AADClientCertPassword",
    "useManagedIdentityExtension": False,
    "userAssignedIdentityID": "UserAssignedIdentityID",
    "subscriptionId": "SubscriptionID",
    "identitySystem": "IdentitySystem",
    "resourceManagerEndpoint": "ResourceManagerEndpoint",
    "networkResourceTenantID": "NetworkResourceTenantID",
    "networkResourceSubscriptionID": "NetworkResourceSubscriptionID",
}


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (IMGPKG_DOCUMENTED_SAMPLE, "resourceManagerEndpoint"),
        (
            {**IMGPKG_DOCUMENTED_SAMPLE, "resourceManagerEndpoint": ""},
            "identitySystem 'IdentitySystem'",
        ),
        ({}, "has no credentials"),
        ("", "has no credentials"),
        ({"tenantId": TENANT, "aadClientId": CLIENT_ID}, "has no credentials"),
        (
            {"useManagedIdentityExtension": False, "userAssignedIdentityID": IDENTITY_ID},
            "has no credentials",
        ),
        ({"aadClientSecret": CLIENT_SECRET}, "aadClientSecret needs aadClientId"),
        (
            {"aadClientId": CLIENT_ID, "aadClientCertPath": "x.pfx"},
            "aadClientCertPath needs tenantId",
        ),
        (
            {"useManagedIdentityExtension": "true"},
            "useManagedIdentityExtension (line 2) is a string, not a boolean",
        ),
        ({"useManagedIdentityExtension": 1}, "is a number, not a boolean"),
        (
            {"tenantId": 123, "aadClientId": CLIENT_ID},
            "tenantId (line 2) is a number, not a string",
        ),
        ({"aadClientSecret": [CLIENT_SECRET]}, "aadClientSecret (line 2) is a list, not a string"),
        (
            f"tenantId: 2024-01-01\naadClientId: {CLIENT_ID}\n",
            "tenantId (line 1) is a date, not a string",
        ),
        (
            {"cloud": "AzureGermanCloud", "useManagedIdentityExtension": True},
            "closed in October 2021",
        ),
        ({"cloud": "AzureStackCloud", "useManagedIdentityExtension": True}, "Azure Stack Hub"),
        ({"cloud": "Mars", "useManagedIdentityExtension": True}, "unknown cloud 'Mars'"),
        ({"identitySystem": "adfs", "useManagedIdentityExtension": True}, "identitySystem 'adfs'"),
        ("[1, 2]", "is a list, not a mapping"),
        ("just text", "is a string, not a mapping"),
        (
            f'{{"aadClientId": "{CLIENT_ID}", "aadClientSecret": "{CLIENT_SECRET}", '
            f'"aadClientSecret": "{CLIENT_SECRET}-2"}}',
            "line 1",
        ),
        (
            f"aadClientId: {CLIENT_ID}\naadClientSecret: {CLIENT_SECRET}\nAADClientSecret: x\n",
            "line 3",
        ),
        (f'{{"aadClientSecret": "{CLIENT_SECRET}", ', "invalid YAML"),
    ],
)
def test_config_mistakes_are_errors_naming_the_file(
    tmp_path: Path, document: dict[str, Any] | str, says: str
) -> None:
    path = write_config(tmp_path, document)
    with pytest.raises(CredentialError) as caught:
        load_azure_config("IMGPKG_REGISTRY_AZURE_CR_CONFIG", path, now=time.time())
    message = str(caught.value)
    assert says in message
    assert str(path) in message
    assert_secret_free(message, caught.value.hint or "")


@pytest.mark.parametrize("where", ["missing", "directory", "binary"])
async def test_unreadable_config_file(tmp_path: Path, where: str) -> None:
    path = tmp_path / "azure.json"
    if where == "directory":
        path.mkdir()
    elif where == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    keychain = AzureKeychain({"IMGCTL_AZURE_CR_CONFIG": str(path)})
    with pytest.raises(CredentialError) as caught:
        await keychain.explain(REGISTRY, "app")
    assert str(path) in str(caught.value)
    assert "IMGCTL_AZURE_CR_CONFIG" in str(caught.value)
    # Only ACR hosts read the file: a broken Azure config never stops other registries.
    assert (await keychain.explain("docker.io", "library/alpine")).credential == ANONYMOUS


def test_repr_never_shows_secrets(sp_cert: Cert, tmp_path: Path) -> None:
    cert_file = tmp_path / "sp.pfx"
    cert_file.write_bytes(sp_cert.pfx(CERT_PASSWORD))
    config = load_azure_config(
        "IMGCTL_AZURE_CR_CONFIG",
        write_config(
            tmp_path,
            {
                "tenantId": TENANT,
                "aadClientId": CLIENT_ID,
                "aadClientCertPath": str(cert_file),
                "aadClientCertPassword": CERT_PASSWORD,
            },
        ),
        now=time.time(),
    )
    assert isinstance(config, AzureConfig)
    assert_secret_free(repr(config), repr(config.certificate))
    assert "RSAPrivateKey" not in repr(config)


# ------------------------------------------------------------------------------------------
# In the whole keychain


async def test_azure_config_in_the_default_keychain(azure: AzureStandIn, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"aadClientId": CLIENT_ID, "aadClientSecret": CLIENT_SECRET})
    chain = default_keychain({"IMGPKG_REGISTRY_AZURE_CR_CONFIG": str(config)}, tmp_path)
    answers = await chain.explain_all(REGISTRY, "app")
    assert [a.source for a in answers] == ["env", "ecr", "gcp", "azure"]
    assert answers[-1].credential == Credential(CLIENT_ID, CLIENT_SECRET)
    off = default_keychain(
        {"IMGPKG_REGISTRY_AZURE_CR_CONFIG": str(config), "IMGPKG_ENABLE_IAAS_AUTH": "false"},
        tmp_path,
    )
    assert "azure" not in [a.source for a in await off.explain_all(REGISTRY, "app")]
    assert [k.name for k in cloud_keychains({"IMGCTL_ENABLE_IAAS_AUTH": "false"})] == []
