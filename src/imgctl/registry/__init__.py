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
    StaticKeychain,
)
from imgctl.registry.ratelimit import RateLimiter

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
    "StaticKeychain",
    "TransferStats",
    "copy_image",
    "copy_images",
    "is_loopback",
    "resolve_destination",
]
