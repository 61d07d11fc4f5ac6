"""The OCI distribution client: sessions, token auth, the registry API, TLS, rate limit, copies.

``RegistryClient`` talks to any number of registries (``_client``: manifests, blobs, uploads,
tags, catalog, referrers) over a ``Session`` (``_session``: hosts and ping, connections, the one
retry policy, credentials from an ``imgctl.authn`` keychain and bearer tokens per scope).
``copy_images`` is the copy engine (``_copy``). ``imgctl.remote.config`` reads the user config
file's ``[registry]`` table.
"""

from imgctl.remote._client import FetchedManifest, RegistryClient
from imgctl.remote._copy import (
    CopyOptions,
    CopyProgress,
    CopyResult,
    copy_image,
    copy_images,
    resolve_destination,
)
from imgctl.remote._ratelimit import RateLimiter
from imgctl.remote._session import ClientOptions, TransferStats
from imgctl.remote._tls import RegistryTLS, TLSConfig

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
    "resolve_destination",
]
