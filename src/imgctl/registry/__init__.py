"""The OCI distribution client, rate limiting and the copy engine."""

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
from imgctl.registry.ratelimit import RateLimiter
from imgctl.registry.tls import RegistryTLS, TLSConfig

__all__ = [
    "ClientOptions",
    "CopyOptions",
    "CopyProgress",
    "CopyResult",
    "FetchedManifest",
    "RateLimiter",
    "RegistryClient",
    "RegistryTLS",
    "TLSConfig",
    "TransferStats",
    "copy_image",
    "copy_images",
    "is_loopback",
    "resolve_destination",
]
