"""The OCI distribution client: sessions, token auth, the registry API, TLS, rate limit, copies.

``RegistryClient`` talks to any number of registries (``_client``: manifests, blobs, uploads,
tags, catalog, referrers) over a ``Session`` (``_session``: hosts and ping, connections, the one
retry policy, credentials from an ``imgctl.authn`` keychain and bearer tokens per scope).
``copy_images`` is the copy engine (``_copy``); it copies each image's referrers too
(``_referrers``: the referrers API, its fallback tag and cosign's ``.sig``/``.att``/``.sbom``
tags), and ``plan_referrers`` says what it would copy. ``imgctl.remote.config`` reads the user
config file's ``[registry]`` table.
"""

from imgctl._internal import lean_httpx  # noqa: F401  (before any import of httpx)
from imgctl.remote._append import AppendResult, append_layers
from imgctl.remote._client import FetchedManifest, RegistryClient
from imgctl.remote._copy import (
    CopyOptions,
    CopyProgress,
    CopyResult,
    copies_onto_itself,
    copy_image,
    copy_images,
    plan_referrers,
    resolve_destination,
)
from imgctl.remote._http import api_host
from imgctl.remote._ratelimit import Limiter, RateLimiter, RequestBudget
from imgctl.remote._referrers import SELECTIONS as REFERRER_SELECTIONS
from imgctl.remote._referrers import ReferrerCopy
from imgctl.remote._referrers import Selection as ReferrerSelection
from imgctl.remote._session import ClientOptions, TransferStats
from imgctl.remote._tls import RegistryTLS, TLSConfig

__all__ = [
    "REFERRER_SELECTIONS",
    "AppendResult",
    "ClientOptions",
    "CopyOptions",
    "CopyProgress",
    "CopyResult",
    "FetchedManifest",
    "Limiter",
    "RateLimiter",
    "ReferrerCopy",
    "ReferrerSelection",
    "RegistryClient",
    "RegistryTLS",
    "RequestBudget",
    "TLSConfig",
    "TransferStats",
    "api_host",
    "append_layers",
    "copies_onto_itself",
    "copy_image",
    "copy_images",
    "plan_referrers",
    "resolve_destination",
]
