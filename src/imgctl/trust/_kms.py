"""KMS key references (``awskms://...``) as signers: a registry from URI scheme to provider.

A provider is a class built from ``(ref, environ)`` that checks the key on construction (one
request: the public key, which also says the key's type) and then signs payloads. Adding
gcpkms, azurekms or hashivault is one class and one ``register`` line; until then their schemes
are refused by name with a hint, never mistaken for file paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from cryptography.hazmat.primitives import serialization

from imgctl._internal.aws import (
    aws_endpoint,
    aws_keys,
    boto_error_text,
    botocore_session,
    quiet_botocore_wire_logs,
)
from imgctl.errors import CredentialError, KeyRefError

if TYPE_CHECKING:
    from imgctl.trust._keys import PublicKey

__all__ = [
    "AwsKmsReference",
    "AwsKmsSigner",
    "KmsProvider",
    "create_kms_key",
    "kms_scheme",
    "load_kms_signer",
    "parse_awskms",
    "register",
]


class KmsProvider(Protocol):
    """A KMS-held key: checked when built, then signing and showing its public key."""

    scheme: ClassVar[str]

    @property
    def ref(self) -> str:
        """The key reference as given."""
        ...

    def public_key(self) -> PublicKey:
        """The key's public half."""
        ...

    def sign(self, payload: bytes) -> bytes:
        """The signature over ``payload`` as ``PublicKey.verify`` checks it (blocking)."""
        ...


ProviderFactory = Callable[[str, Mapping[str, str]], KmsProvider]
_PROVIDERS: dict[str, ProviderFactory] = {}

# Schemes cosign knows that imgctl does not handle yet, with what to use meanwhile.
_NOT_YET: dict[str, str] = {
    "gcpkms": "Google Cloud KMS",
    "azurekms": "Azure Key Vault",
    "hashivault": "HashiCorp Vault transit",
    "k8s": "a Kubernetes secret",
    "gitlab": "a GitLab CI variable",
    "github": "a GitHub Actions secret",
}
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def register(scheme: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: make the provider class the one for ``scheme://`` references."""

    def add(cls: type[Any]) -> type[Any]:
        _PROVIDERS[scheme] = cls
        cls.scheme = scheme
        return cls

    return add


def kms_scheme(ref: str) -> str | None:
    """The URI scheme of ``ref`` (``awskms``), or None for a file path."""
    if ref.startswith("pkcs11:"):
        return "pkcs11"
    match = _SCHEME.match(ref)
    return match["scheme"].lower() if match else None


def load_kms_signer(ref: str, environ: Mapping[str, str]) -> KmsProvider:
    """The provider for a KMS URI; KeyRefError for schemes imgctl does not handle."""
    scheme = kms_scheme(ref)
    if scheme is None:
        raise KeyRefError(f"{ref}: not a KMS URI")
    factory = _PROVIDERS.get(scheme)
    if factory is not None:
        return factory(ref, environ)
    supported = ", ".join(f"{name}://" for name in sorted(_PROVIDERS))
    if scheme in _NOT_YET or scheme == "pkcs11":
        what = "a PKCS#11 token" if scheme == "pkcs11" else _NOT_YET[scheme]
        raise KeyRefError(
            f"{scheme} key references ({what}) are not supported yet",
            hint=f"use a key file (cosign.key, PEM) or {supported}",
        )
    raise KeyRefError(
        f"{ref}: unknown key reference scheme {scheme}://",
        hint=f"give a key file path or a KMS URI ({supported})",
    )


def create_kms_key(ref: str, environ: Mapping[str, str]) -> KmsProvider:
    """A new signing key at the KMS URI ``ref`` (or the one already there), as cosign does."""
    scheme = kms_scheme(ref) or ""
    if scheme not in _PROVIDERS:
        load_kms_signer(ref, environ)  # raises the error that says what is not supported
    create = getattr(_PROVIDERS[scheme], "create", None)
    if create is None:
        raise KeyRefError(f"{ref}: imgctl cannot create keys in {scheme} yet")
    provider: KmsProvider = create(ref, environ)
    return provider


# --- AWS KMS ----------------------------------------------------------------------------------

# cosign's reference forms (sigstore/pkg/signature/kms/aws): awskms://[ENDPOINT]/KEY where KEY
# is a key id, an alias/NAME, or a key or alias ARN. The endpoint may be empty (awskms:///...).
_UUID = r"m?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12}"
_ARN = r"arn:(?:aws|aws-us-gov|aws-cn):kms:(?P<region>[a-z0-9-]+):\d{12}:"
_HOST = r"(?P<endpoint>[^/]*)/"
_AWS_FORMS = [
    re.compile(r"^awskms://" + _HOST + r"(?P<key>" + _UUID + r")$"),
    re.compile(r"^awskms://" + _HOST + r"(?P<key>" + _ARN + r"key/" + _UUID + r")$"),
    re.compile(r"^awskms://" + _HOST + r"(?P<key>(?P<alias>alias/.+))$"),
    re.compile(r"^awskms://" + _HOST + r"(?P<key>" + _ARN + r"(?P<alias>alias/.+))$"),
]
_AWS_FORMAT_HINT = (
    "use awskms://[ENDPOINT]/KEY with KEY a key id, alias/NAME or a key or alias ARN, "
    "e.g. awskms:///alias/release-signing"
)

# KMS key spec -> (signing algorithm, hashlib name of its digest). The digest follows the curve
# for ECDSA (what PublicKey.verify expects); RSA signs PKCS#1 v1.5 with SHA-256, cosign's default.
_AWS_ALGORITHMS: dict[str, tuple[str, str]] = {
    "ECC_NIST_P256": ("ECDSA_SHA_256", "sha256"),
    "ECC_NIST_P384": ("ECDSA_SHA_384", "sha384"),
    "ECC_NIST_P521": ("ECDSA_SHA_512", "sha512"),
    "RSA_2048": ("RSASSA_PKCS1_V1_5_SHA_256", "sha256"),
    "RSA_3072": ("RSASSA_PKCS1_V1_5_SHA_256", "sha256"),
    "RSA_4096": ("RSASSA_PKCS1_V1_5_SHA_256", "sha256"),
}
# Sign takes a RAW message of up to 4096 bytes; longer payloads go as their digest.
_AWS_RAW_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class AwsKmsReference:
    """An ``awskms://`` reference taken apart."""

    endpoint: str  # host[:port] from the URI, "" when absent
    key: str  # what KMS calls KeyId: id, alias/NAME or ARN
    region: str | None  # from an ARN
    alias: str | None


def parse_awskms(ref: str) -> AwsKmsReference:
    """The parts of an ``awskms://`` reference, or KeyRefError in cosign's format words."""
    for form in _AWS_FORMS:
        match = form.match(ref)
        if match is not None:
            groups = match.groupdict()
            return AwsKmsReference(
                endpoint=groups["endpoint"],
                key=groups["key"],
                region=groups.get("region"),
                alias=groups.get("alias"),
            )
    raise KeyRefError(f"{ref}: not an AWS KMS key reference", hint=_AWS_FORMAT_HINT)


def _aws_client(parsed: AwsKmsReference, environ: Mapping[str, str]) -> tuple[Any, str]:
    """(boto3 KMS client, the endpoint it talks to, for messages)."""
    try:
        boto3: Any = importlib.import_module("boto3")
        botocore_config: Any = importlib.import_module("botocore.config")
    except ImportError as exc:
        raise KeyRefError("boto3 is not installed", hint="pip install boto3") from exc
    quiet_botocore_wire_logs()
    try:
        keys = aws_keys(environ)
    except CredentialError as exc:
        raise KeyRefError(exc.message, hint=exc.hint) from None
    # The endpoint written in the key reference wins (it names where this key lives, and
    # cosign reads it the same way: https://ENDPOINT); then AWS_ENDPOINT_URL_KMS, then
    # AWS_ENDPOINT_URL; else AWS's own endpoint for the region.
    endpoint = f"https://{parsed.endpoint}" if parsed.endpoint else aws_endpoint(environ, "kms")
    region = parsed.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    config = botocore_config.Config(
        connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3}
    )
    with _translated(f"awskms key {parsed.key}", endpoint):
        session = boto3.session.Session(botocore_session=botocore_session(environ), **keys)
        client = session.client("kms", region_name=region, endpoint_url=endpoint, config=config)
    return client, endpoint or "AWS KMS"


@contextlib.contextmanager
def _translated(what: str, endpoint: str | None) -> Iterator[None]:
    """Raise botocore errors inside as KeyRefErrors saying what to check (no traceback)."""
    errors: Any = importlib.import_module("botocore.exceptions")
    try:
        yield
    except (errors.ClientError, errors.BotoCoreError) as exc:
        raise _key_error(exc, what, endpoint) from None


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or "")
    return ""


def _key_error(exc: BaseException, what: str, endpoint: str | None) -> KeyRefError:
    """The KeyRefError for a botocore error: what went wrong and what to check."""
    errors: Any = importlib.import_module("botocore.exceptions")
    code = _error_code(exc)
    text = boto_error_text(exc)
    if code in ("NotFoundException", "NotFound"):
        return KeyRefError(
            f"{what}: no such KMS key ({text})",
            hint="check the key id or alias and the region (AWS_REGION, or use the key ARN)",
        )
    if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
        return KeyRefError(
            f"{what}: access denied ({text})",
            hint="the credentials need kms:GetPublicKey and kms:Sign on the key",
        )
    if code in ("DisabledException", "KMSInvalidStateException"):
        return KeyRefError(
            f"{what}: the key cannot be used now ({text})",
            hint="enable the key, or cancel its deletion",
        )
    if isinstance(exc, errors.NoRegionError):
        return KeyRefError(f"{what}: no AWS region", hint="set AWS_REGION, or give the key's ARN")
    if isinstance(exc, errors.NoCredentialsError):
        return KeyRefError(
            f"{what}: no AWS credentials",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    if isinstance(exc, errors.SSLError):
        return KeyRefError(
            f"{what}: TLS verification failed for KMS at {endpoint or 'the AWS endpoint'}",
            hint="set AWS_CA_BUNDLE to the CA that signed the endpoint's certificate",
        )
    if isinstance(exc, (errors.EndpointConnectionError, errors.ConnectTimeoutError)):
        return KeyRefError(
            f"{what}: cannot reach KMS at {endpoint or 'the AWS endpoint'} ({type(exc).__name__})",
            hint="check the endpoint (in the URI, AWS_ENDPOINT_URL_KMS or AWS_ENDPOINT_URL) "
            "and the network",
        )
    return KeyRefError(f"{what}: {text}")


@register("awskms")
class AwsKmsSigner:
    """An AWS KMS asymmetric SIGN_VERIFY key (ECC_NIST_P256/P384/P521, RSA 2048-4096)."""

    scheme: ClassVar[str]

    def __init__(self, ref: str, environ: Mapping[str, str]) -> None:
        self._ref = ref
        self._parsed = parse_awskms(ref)
        self._client, self._endpoint = _aws_client(self._parsed, environ)
        self._public, self._spec = self._fetch_public_key()
        self._algorithm, self._digest = _AWS_ALGORITHMS[self._spec]

    @property
    def ref(self) -> str:
        """The key reference as given."""
        return self._ref

    @classmethod
    def create(cls, ref: str, environ: Mapping[str, str]) -> AwsKmsSigner:
        """The key ``awskms://.../alias/NAME``, created (ECC_NIST_P256) if the alias is free.

        As cosign's ``generate-key-pair --kms``: an existing key under the alias is used as is.
        """
        parsed = parse_awskms(ref)
        if parsed.alias is None:
            raise KeyRefError(
                f"{ref}: a new KMS key needs an alias reference",
                hint="use awskms://[ENDPOINT]/alias/NAME",
            )
        client, endpoint = _aws_client(parsed, environ)
        errors: Any = importlib.import_module("botocore.exceptions")
        what = f"awskms key {parsed.key}"
        try:
            client.describe_key(KeyId=parsed.key)
        except (errors.ClientError, errors.BotoCoreError) as exc:
            if _error_code(exc) != "NotFoundException":
                raise _key_error(exc, what, endpoint) from None
            with _translated(what, endpoint):
                created = client.create_key(
                    KeySpec="ECC_NIST_P256",
                    KeyUsage="SIGN_VERIFY",
                    Description="Created by imgctl generate-key-pair",
                )
                client.create_alias(
                    AliasName=parsed.alias, TargetKeyId=created["KeyMetadata"]["KeyId"]
                )
        return cls(ref, environ)

    def _fetch_public_key(self) -> tuple[PublicKey, str]:
        from imgctl.trust._keys import PublicKey, checked_public_key

        with _translated(f"awskms key {self._parsed.key}", self._endpoint):
            answer = self._client.get_public_key(KeyId=self._parsed.key)
        usage = answer.get("KeyUsage")
        if usage != "SIGN_VERIFY":
            raise KeyRefError(
                f"{self._ref}: KMS key usage is {usage}, not SIGN_VERIFY",
                hint="create the key with --key-usage SIGN_VERIFY",
            )
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec") or ""
        if spec not in _AWS_ALGORITHMS:
            raise KeyRefError(
                f"{self._ref}: KMS key spec {spec} is not supported",
                hint="use an ECC_NIST_P256 (cosign's default), ECC_NIST_P384/P521 or "
                "RSA_2048/3072/4096 key",
            )
        try:
            key = serialization.load_der_public_key(answer["PublicKey"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyRefError(f"{self._ref}: KMS returned an unreadable public key") from exc
        return PublicKey(key=checked_public_key(key, self._ref), ref=self._ref), spec

    def public_key(self) -> PublicKey:
        """The key's public half (fetched once, when the signer was built)."""
        return self._public

    def sign(self, payload: bytes) -> bytes:
        """One KMS Sign request; the signature verifies with ``public_key()``."""
        # RAW and DIGEST give the same signature for these algorithms; RAW is used while KMS
        # accepts it because moto (the test server) signs every message as RAW.
        if len(payload) <= _AWS_RAW_LIMIT:
            message, message_type = payload, "RAW"
        else:
            message, message_type = hashlib.new(self._digest, payload).digest(), "DIGEST"
        with _translated(f"awskms key {self._parsed.key}", self._endpoint):
            answer = self._client.sign(
                KeyId=self._parsed.key,
                Message=message,
                MessageType=message_type,
                SigningAlgorithm=self._algorithm,
            )
        signature = answer.get("Signature")
        if not isinstance(signature, bytes) or not signature:
            raise KeyRefError(f"{self._ref}: KMS Sign returned no signature")
        return signature

    def __repr__(self) -> str:
        return f"AwsKmsSigner({self._ref!r}, {self._spec})"
