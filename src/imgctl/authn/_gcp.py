"""Google credentials for GCR and Artifact Registry: application default credentials (google-auth).

Needs the optional google-auth dependency; without it, or without ADC, the keychain is anonymous.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

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

__all__ = ["GCPKeychain", "is_gcp_host"]

_GCP_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_GCP_HOST = re.compile(r"(?:[a-z0-9-]+\.)?gcr\.io|[a-z0-9]+(?:-[a-z0-9]+)*-docker\.pkg\.dev")


def is_gcp_host(registry: str) -> bool:
    """True for ``gcr.io``, ``*.gcr.io`` and ``*-docker.pkg.dev``."""
    host = normalise_host(registry)
    return host is not None and _GCP_HOST.fullmatch(host) is not None


def _load_google_credentials(environ: Mapping[str, str]) -> tuple[Any, str]:
    """Find application default credentials (blocking); (credentials, description)."""
    try:
        google_auth: Any = importlib.import_module("google.auth")
        google_errors: Any = importlib.import_module("google.auth.exceptions")
        importlib.import_module("google.auth.transport.requests")
    except ImportError as exc:
        raise Unavailable("google-auth is not installed (pip install 'imgctl[gcp]')") from exc
    explicit = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    try:
        if explicit:
            # The same trusted-configuration path google.auth.default() takes for this variable,
            # read from our environ; default() silences this warning (meant for untrusted files)
            # the same way.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                credentials, _project = google_auth.load_credentials_from_file(
                    explicit, scopes=list(_GCP_SCOPES)
                )
            origin = "GOOGLE_APPLICATION_CREDENTIALS"
        else:
            credentials, _project = google_auth.default(scopes=list(_GCP_SCOPES))
            origin = "application default credentials"
    except google_errors.DefaultCredentialsError as exc:
        if explicit:
            raise CredentialError(
                f"GOOGLE_APPLICATION_CREDENTIALS ({explicit}) cannot be used: {str(exc)[:300]}",
                hint=f"point it at a valid credentials file, {IAAS_SWITCH_HINT}",
            ) from exc
        raise Unavailable("no Google application default credentials found") from exc
    email = getattr(credentials, "service_account_email", None)
    who = f"service account {email}" if isinstance(email, str) and "@" in email else None
    return credentials, f"{origin} ({who or type(credentials).__name__})"


def _refresh_google_token(
    credentials: Any, description: str, registry: str
) -> tuple[str, float | None]:
    """Refresh ``credentials`` (blocking; run in a thread); (access token, expiry epoch)."""
    transport: Any = importlib.import_module("google.auth.transport.requests")
    google_errors: Any = importlib.import_module("google.auth.exceptions")
    try:
        credentials.refresh(transport.Request())
    except google_errors.GoogleAuthError as exc:
        raise CredentialError(
            f"getting a Google access token for {registry} from {description} failed: "
            f"{type(exc).__name__}: {_first_line(exc)}",
            hint=f"check the credentials and that the token endpoint is reachable, "
            f"{IAAS_SWITCH_HINT}",
        ) from exc
    token = credentials.token
    if not isinstance(token, str) or not token:
        raise CredentialError(f"{description} gave no access token for {registry}")
    expiry = credentials.expiry
    if isinstance(expiry, dt.datetime):
        # google-auth keeps expiry as a naive UTC datetime.
        aware = expiry if expiry.tzinfo else expiry.replace(tzinfo=dt.UTC)
        return token, aware.timestamp()
    return token, None


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.splitlines()[0][:300] if text else ""


class GCPKeychain(SourceKeychain):
    """Google access tokens from application default credentials, for GCR and Artifact Registry.

    Needs the optional google-auth dependency; without it, or without ADC, it is anonymous.
    One token serves every Google host and is cached until shortly before its expiry.
    """

    name = "gcp"

    def __init__(
        self, environ: Mapping[str, str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._environ = environ
        self._clock = clock
        self._cache: TokenCache[str, Resolution] = TokenCache(clock)
        self._credentials: tuple[Any, str] | None = None

    async def explain(self, registry: str, repository: str) -> Resolution:
        """An OAuth2 access token for Google registry hosts; anonymous elsewhere."""
        if not is_gcp_host(registry):
            return Resolution(
                ANONYMOUS, self.name, "not a Google registry host (gcr.io, *-docker.pkg.dev)"
            )
        return await self._cache.get("adc", lambda: self._fetch(registry))

    async def _fetch(self, registry: str) -> Entry[Resolution]:
        now = self._clock()
        if self._credentials is None:
            try:
                self._credentials = await asyncio.to_thread(_load_google_credentials, self._environ)
            except Unavailable as exc:
                # Whether google-auth is installed and ADC exist does not change while we run;
                # the GCE metadata probe alone can take seconds, so answer from cache from now on.
                return Entry(Resolution(ANONYMOUS, self.name, str(exc)), math.inf)
        credentials, description = self._credentials
        token, expires_at = await asyncio.to_thread(
            _refresh_google_token, credentials, description, registry
        )
        return Entry(
            Resolution(Credential("oauth2accesstoken", token), self.name, description),
            cache_until(now, expires_at, SKEW_FLOOR),
        )
