"""imgpkg's Azure container registry config (azure.json) and the client certificate it names.

imgpkg v0.18 to v0.31 read Azure credentials from the file named by
``IMGPKG_REGISTRY_AZURE_CR_CONFIG``: the Kubernetes cloud-provider config (``azure.json``), through
k8s.io/legacy-cloud-providers' ``AzureAuthConfig``. imgctl reads the same file
(``IMGCTL_AZURE_CR_CONFIG`` first) with the same field names, matched without regard to case as
Go's ``encoding/json`` matches them. Other keys of the cloud-provider config (location,
resourceGroup, vnetName...) are ignored, as there; the fields used here must have the right
type. The methods, in imgpkg's order: ``useManagedIdentityExtension`` (the instance metadata
service, ``userAssignedIdentityID`` picking a user-assigned identity), ``aadClientSecret``, then
``aadClientCertPath``/``aadClientCertPassword``.

This module only reads files and signs; the network calls live in ``_acr.AzureKeychain``.
Nothing here puts a secret (client secret, certificate password, key, assertion) in a message
or a ``repr``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from imgctl._internal.files import read_text
from imgctl._internal.messages import yaml_kind
from imgctl.errors import CredentialError, UsageError

__all__ = [
    "AZURE_CONFIG_VARIABLES",
    "AzureCloud",
    "AzureConfig",
    "ClientCertificate",
    "azure_config_path",
    "client_assertion",
    "cloud_for_host_suffix",
    "load_azure_config",
    "load_client_certificate",
    "thumbprint",
]

# Ours first; imgpkg's name for users who come from it.
AZURE_CONFIG_VARIABLES = ("IMGCTL_AZURE_CR_CONFIG", "IMGPKG_REGISTRY_AZURE_CR_CONFIG")
# imgpkg's limit for this file (maxReadLength in its Azure credential provider).
_CONFIG_LIMIT = 10 * 1024 * 1024
# A certificate file holds a certificate chain and a key: a few KiB. Anything near this is the
# wrong file.
_CERTIFICATE_LIMIT = 1024 * 1024
# How long a client assertion is good for; Microsoft asks for at most 5 to 10 minutes.
ASSERTION_LIFETIME = 600
_HINT = (
    "fix the Azure config file named by IMGCTL_AZURE_CR_CONFIG or IMGPKG_REGISTRY_AZURE_CR_CONFIG"
)


@dataclass(frozen=True, slots=True)
class AzureCloud:
    """One Azure cloud's endpoints (go-autorest's Environment, the parts used here)."""

    name: str
    authority: str  # Azure AD login host
    arm_scope: str  # the v2.0 scope of Azure Resource Manager, which ACR's exchange accepts
    management_resource: str  # the v1 resource imgpkg asks the metadata service for
    registry_suffix: str


CLOUDS = {
    "AZUREPUBLICCLOUD": AzureCloud(
        "AzurePublicCloud",
        "https://login.microsoftonline.com",
        "https://management.azure.com/.default",
        "https://management.core.windows.net/",
        "azurecr.io",
    ),
    "AZURECHINACLOUD": AzureCloud(
        "AzureChinaCloud",
        "https://login.chinacloudapi.cn",
        "https://management.chinacloudapi.cn/.default",
        "https://management.core.chinacloudapi.cn/",
        "azurecr.cn",
    ),
    "AZUREUSGOVERNMENTCLOUD": AzureCloud(
        "AzureUSGovernmentCloud",
        "https://login.microsoftonline.us",
        "https://management.usgovcloudapi.net/.default",
        "https://management.core.usgovcloudapi.net/",
        "azurecr.us",
    ),
}


def cloud_for_host_suffix(suffix: str) -> AzureCloud:
    """The cloud whose registries end in ``azurecr.<suffix>`` (``io``, ``cn`` or ``us``)."""
    for cloud in CLOUDS.values():
        if cloud.registry_suffix == f"azurecr.{suffix}":
            return cloud
    raise KeyError(suffix)


Method = Literal["managed-identity", "client-secret", "client-certificate"]


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A service principal's certificate and private key, loaded; never shown by ``repr``."""

    path: Path
    der: bytes = field(repr=False)
    private_key: Any = field(repr=False)
    not_after: dt.datetime

    @property
    def sha1_hex(self) -> str:
        """The SHA-1 thumbprint in hex, as the Azure portal shows it (not secret)."""
        return hashlib.sha1(self.der, usedforsecurity=False).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class AzureConfig:
    """The Azure config file, read and checked; secrets are kept out of ``repr``."""

    path: Path
    variable: str
    method: Method
    cloud: AzureCloud | None
    tenant_id: str | None
    client_id: str | None
    client_secret: str | None = field(default=None, repr=False)
    certificate: ClientCertificate | None = None
    user_assigned_identity_id: str | None = None

    @property
    def origin(self) -> str:
        """Where these credentials come from, for explanations and errors."""
        return f"Azure config {self.path} ({self.variable})"


def azure_config_path(environ: Mapping[str, str]) -> tuple[str, Path] | None:
    """(variable, path) of the Azure config file named in ``environ``; None when none is."""
    for variable in AZURE_CONFIG_VARIABLES:
        value = environ.get(variable, "")
        if value.strip():
            return variable, Path(value)
    return None


# The AzureAuthConfig fields, by the lower-cased name encoding/json matches them with.
_STRING_FIELDS = (
    "cloud",
    "tenantId",
    "aadClientId",
    "aadClientSecret",
    "aadClientCertPath",
    "aadClientCertPassword",
    "userAssignedIdentityID",
    "subscriptionId",
    "identitySystem",
    "resourceManagerEndpoint",
    "networkResourceTenantID",
    "networkResourceSubscriptionID",
)
_BOOL_FIELDS = ("useManagedIdentityExtension",)
_CANONICAL = {name.lower(): name for name in (*_STRING_FIELDS, *_BOOL_FIELDS)}


def _read_fields(path: Path, variable: str) -> dict[str, Any]:
    """The AzureAuthConfig fields of the file, typed; other keys dropped."""
    what = f"Azure config ({variable})"
    try:
        text = read_text(path, what, limit=_CONFIG_LIMIT)
    except UsageError as exc:
        raise CredentialError(str(exc), hint=_HINT) from None
    # PyYAML only when an Azure config file is read: every registry command builds this
    # keychain, and importing yaml is about a twentieth of their start-up.
    from imgctl._internal.strict_yaml import StrictYAMLError, load_document

    try:
        document = load_document(text)
    except StrictYAMLError as exc:
        # The file holds secrets: say where and what is wrong without quoting it.
        raise CredentialError(f"{what} {path}: {exc.redacted()}", hint=_HINT) from None
    data = document.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CredentialError(
            f"{what} {path} is {yaml_kind(data)}, not a mapping of settings",
            hint="it is a JSON object (or YAML mapping) with tenantId, aadClientId... as in "
            "Kubernetes' azure.json",
        )
    fields: dict[str, Any] = {}
    for key, value in data.items():
        name = _CANONICAL.get(str(key).lower())
        if name is None or value is None:
            continue  # the rest of the cloud-provider config, or a field left empty
        expected = bool if name in _BOOL_FIELDS else str
        if not isinstance(value, expected):
            raise CredentialError(
                f"{what} {path}: {key}{document.key_at(data, key)} is {yaml_kind(value)}, "
                f"not {'a boolean (true or false)' if expected is bool else 'a string'}",
                hint=_HINT,
            )
        fields[name] = value
    return fields


def _cloud_named(path: Path, name: str) -> AzureCloud:
    upper = name.strip().upper()
    if upper in CLOUDS:
        return CLOUDS[upper]
    if upper == "AZUREGERMANCLOUD":
        raise CredentialError(
            f"Azure config {path}: cloud AzureGermanCloud closed in October 2021 and never had "
            "a container registry",
            hint="use AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud",
        )
    if upper == "AZURESTACKCLOUD":
        raise CredentialError(
            f"Azure config {path}: cloud AzureStackCloud (Azure Stack Hub) is not supported",
            hint="imgctl reaches Azure Container Registry in AzurePublicCloud, AzureChinaCloud "
            "and AzureUSGovernmentCloud",
        )
    raise CredentialError(
        f"Azure config {path}: unknown cloud {name!r}",
        hint="cloud is AzurePublicCloud (the default), AzureChinaCloud or AzureUSGovernmentCloud",
    )


def load_azure_config(variable: str, path: Path, *, now: float) -> AzureConfig:
    """Read and check the Azure config at ``path`` (and its certificate, if it names one)."""
    fields = _read_fields(path, variable)

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) and value else None

    cloud_name = text("cloud")
    cloud = _cloud_named(path, cloud_name) if cloud_name else None
    if text("resourceManagerEndpoint"):
        raise CredentialError(
            f"Azure config {path}: resourceManagerEndpoint (an Azure Stack Hub cloud) is not "
            "supported",
            hint="remove it, and set cloud to AzurePublicCloud, AzureChinaCloud or "
            "AzureUSGovernmentCloud",
        )
    identity_system = text("identitySystem")
    if identity_system and identity_system.lower() != "azure_ad":
        raise CredentialError(
            f"Azure config {path}: identitySystem {identity_system!r} is not supported "
            "(ADFS is Azure Stack Hub's)",
            hint="remove identitySystem or set it to azure_ad",
        )
    tenant_id, client_id = text("tenantId"), text("aadClientId")

    def require(method: str, *names: str) -> None:
        missing = [name for name in names if not text(name)]
        if missing:
            raise CredentialError(
                f"Azure config {path}: {method} needs {' and '.join(missing)}",
                hint=f"set {', '.join(missing)} in the file",
            )

    if fields.get("useManagedIdentityExtension") is True:
        return AzureConfig(
            path,
            variable,
            "managed-identity",
            cloud,
            tenant_id,
            client_id,
            user_assigned_identity_id=text("userAssignedIdentityID"),
        )
    if text("aadClientSecret"):
        require("aadClientSecret", "aadClientId")
        return AzureConfig(
            path,
            variable,
            "client-secret",
            cloud,
            tenant_id,
            client_id,
            client_secret=text("aadClientSecret"),
        )
    cert_path = text("aadClientCertPath")
    if cert_path:
        require("aadClientCertPath", "aadClientId", "tenantId")
        certificate = load_client_certificate(
            Path(cert_path), fields.get("aadClientCertPassword") or None, now=now
        )
        return AzureConfig(
            path, variable, "client-certificate", cloud, tenant_id, client_id, None, certificate
        )
    raise CredentialError(
        f"Azure config {path} has no credentials",
        hint="set aadClientId with aadClientSecret, or aadClientCertPath (and "
        "aadClientCertPassword), or useManagedIdentityExtension: true",
    )


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_CERTIFICATE_LIMIT + 1)
    except FileNotFoundError:
        raise CredentialError(
            f"aadClientCertPath {path} does not exist", hint="point it at a PKCS#12 or PEM file"
        ) from None
    except IsADirectoryError:
        raise CredentialError(f"aadClientCertPath {path} is a directory, not a file") from None
    except OSError as exc:
        raise CredentialError(
            f"cannot read aadClientCertPath {path}: {exc.strerror or exc}"
        ) from None
    if len(data) > _CERTIFICATE_LIMIT:
        raise CredentialError(
            f"aadClientCertPath {path} is larger than 1 MiB; a certificate file is a few KiB",
            hint="is it the right file?",
        )
    return data


def _load_pem(path: Path, data: bytes, password: bytes | None) -> tuple[Any, list[Any]]:
    x509: Any = importlib.import_module("cryptography.x509")
    serialization: Any = importlib.import_module("cryptography.hazmat.primitives.serialization")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CredentialError(
            f"aadClientCertPath {path} holds no PEM certificate",
            hint="give a PEM file with the certificate and its private key, or a PKCS#12 file",
        ) from None
    try:
        try:
            key = serialization.load_pem_private_key(data, password)
        except TypeError:
            # A password was given for a key that is not encrypted (it may protect nothing in a
            # PEM file), or none for one that is.
            if password is None:
                raise CredentialError(
                    f"the private key in aadClientCertPath {path} is encrypted",
                    hint="set aadClientCertPassword in the Azure config",
                ) from None
            key = serialization.load_pem_private_key(data, None)
    except ValueError:
        raise CredentialError(
            f"cannot read the private key in aadClientCertPath {path}: no private key, or "
            "aadClientCertPassword does not decrypt it",
            hint="the PEM file needs the certificate and its private key; check "
            "aadClientCertPassword",
        ) from None
    return key, certificates


def _load_pkcs12(path: Path, data: bytes, password: bytes | None) -> tuple[Any, list[Any]]:
    pkcs12: Any = importlib.import_module("cryptography.hazmat.primitives.serialization.pkcs12")
    try:
        key, certificate, more = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise CredentialError(
            f"cannot open aadClientCertPath {path}: not a PKCS#12 or PEM file, or "
            "aadClientCertPassword is not its password",
            hint="check aadClientCertPassword in the Azure config",
        ) from None
    return key, [c for c in (certificate, *more) if c is not None]


def load_client_certificate(path: Path, password: str | None, *, now: float) -> ClientCertificate:
    """Load a PKCS#12 (``.pfx``) or PEM certificate with its RSA private key."""
    data = _read_bytes(path)
    secret = password.encode() if password else None
    if b"-----BEGIN" in data:
        key, certificates = _load_pem(path, data, secret)
    else:
        key, certificates = _load_pkcs12(path, data, secret)
    rsa: Any = importlib.import_module("cryptography.hazmat.primitives.asymmetric.rsa")
    serialization: Any = importlib.import_module("cryptography.hazmat.primitives.serialization")
    if key is None:
        raise CredentialError(f"aadClientCertPath {path} holds no private key")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialError(
            f"the private key in aadClientCertPath {path} is not an RSA key",
            hint="Azure AD takes client assertions signed with RS256: use an RSA certificate",
        )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for certificate in certificates:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if spki == public:
            break
    else:
        raise CredentialError(
            f"aadClientCertPath {path} has no certificate for its private key",
            hint="put the service principal's certificate in the same file as its key",
        )
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    not_after = certificate.not_valid_after_utc
    if not_after <= moment:
        raise CredentialError(
            f"the certificate in aadClientCertPath {path} expired on {not_after:%Y-%m-%d %H:%M} "
            "UTC",
            hint="renew it and upload the new certificate to the app registration",
        )
    if certificate.not_valid_before_utc > moment:
        raise CredentialError(
            f"the certificate in aadClientCertPath {path} is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            hint="check this machine's clock",
        )
    der = certificate.public_bytes(serialization.Encoding.DER)
    return ClientCertificate(path, der, key, not_after)


def thumbprint(digest: bytes) -> str:
    """A certificate digest as JOSE's ``x5t`` writes it: base64url without padding."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def client_assertion(
    certificate: ClientCertificate, client_id: str, token_url: str, *, now: float
) -> str:
    """A JWT that proves the service principal holds the certificate's key, for ``token_url``.

    The Microsoft identity platform's certificate credential: RS256, ``x5t`` (the SHA-1
    thumbprint; ``x5t#S256`` the SHA-256 one), ``aud`` the token endpoint, ``iss`` and ``sub``
    the client id, a fresh ``jti``, valid from now for ``ASSERTION_LIFETIME`` seconds.
    """
    jwt: Any = importlib.import_module("jwt")
    issued = int(now)
    claims = {
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": issued,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    headers = {
        "x5t": thumbprint(hashlib.sha1(certificate.der, usedforsecurity=False).digest()),
        "x5t#S256": thumbprint(hashlib.sha256(certificate.der).digest()),
    }
    token = jwt.encode(claims, certificate.private_key, algorithm="RS256", headers=headers)
    return str(token)
