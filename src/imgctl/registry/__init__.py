"""The OCI distribution client, credentials (keychains), rate limiting and the copy engine."""

from imgctl.registry.client import (
    ClientOptions,
    FetchedManifest,
    RegistryClient,
    TransferStats,
    is_loopback,
)
from imgctl.registry.copy import (
    CopyOptions,
    CopyProgress,
    CopyResult,
    copy_image,
    copy_images,
    resolve_destination,
)
from imgctl.registry.keychain import (
    ANONYMOUS,
    AnonymousKeychain,
    Credential,
    Keychain,
    MultiKeychain,
    Resolution,
    SourceKeychain,
    StaticKeychain,
    default_keychain,
    flag_credential,
)
from imgctl.registry.ratelimit import RateLimiter
from imgctl.registry.tls import RegistryTLS, TLSConfig

__all__ = [
    "ANONYMOUS",
    "AnonymousKeychain",
    "ClientOptions",
    "CopyOptions",
    "CopyProgress",
    "CopyResult",
    "Credential",
    "FetchedManifest",
    "Keychain",
    "MultiKeychain",
    "RateLimiter",
    "RegistryClient",
    "RegistryTLS",
    "Resolution",
    "SourceKeychain",
    "StaticKeychain",
    "TLSConfig",
    "TransferStats",
    "copy_image",
    "copy_images",
    "default_keychain",
    "flag_credential",
    "is_loopback",
    "resolve_destination",
]
