"""Trade an SSH-signed JWT for an OIDC token at Dex (or imgctl's issuer), and cache it.

The request is RFC 8693 token exchange exactly as Dex's SSH connector expects it (INTEROP
section 2). Keys are tried in SSH's order (agent first, then files); a key the issuer does not
know (``access_denied``) moves on to the next one. Tokens are cached per (issuer, audience,
user) in ``~/.cache/imgctl/tokens.json`` (0600) until a minute before they expire.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from imgctl.errors import IdentityError, UsageError
from imgctl.identity._hints import denial_cause, issuer_denial
from imgctl.identity._oauth import (
    CONNECTOR_ID,
    GRANT_TOKEN_EXCHANGE,
    SCOPE,
    TYPE_ACCESS_TOKEN,
    TYPE_ID_TOKEN,
)

__all__ = [
    "CachedEntry",
    "IssuedToken",
    "LoginSettings",
    "TokenCache",
    "default_cache_dir",
    "default_username",
    "exchange_token",
    "obtain_token",
    "unverified_claims",
]

# A cached token is used only while it has at least this long left: a call that starts with it
# must not fail halfway because it expired.
CACHE_MARGIN = 60.0


@dataclass(frozen=True, slots=True)
class LoginSettings:
    """Where and as whom to log in (flags: --dex-url, --client-id, --client-secret...)."""

    dex_url: str
    username: str
    client_id: str = "imgctl"
    client_secret: str | None = None
    audience: str | None = None  # the token's audience; defaults to the client id, as in Dex
    pubkey_file: Path | None = None

    @property
    def issuer(self) -> str:
        """The issuer URL without a trailing slash."""
        return self.dex_url.rstrip("/")

    @property
    def target_audience(self) -> str:
        """The audience asked for (the server's OIDC_AUDIENCE)."""
        return self.audience or self.client_id

    def __repr__(self) -> str:
        return (
            f"LoginSettings(dex_url={self.dex_url!r}, username={self.username!r}, "
            f"client_id={self.client_id!r}, audience={self.target_audience!r})"
        )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An OIDC token, when it expires, and how it was obtained (never printed by repr)."""

    token: str
    expires_at: float
    source: str  # "cache" or the key that signed the SSH JWT

    def __repr__(self) -> str:
        return f"IssuedToken(expires_at={self.expires_at!r}, source={self.source!r})"


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, NOT verified: for display and expiry bookkeeping only."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def default_username(environ: Mapping[str, str]) -> str:
    """``KUBECTL_SSH_USER``, else ``USER``, else the login name."""
    name = environ.get("KUBECTL_SSH_USER") or environ.get("USER")
    if name:
        return name
    import getpass

    return getpass.getuser()


def default_cache_dir(environ: Mapping[str, str], home: Path) -> Path:
    """``$XDG_CACHE_HOME/imgctl``, else ``~/.cache/imgctl``."""
    base = environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else home / ".cache") / "imgctl"


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """What a cached token is for, and until when (never the token)."""

    issuer: str
    audience: str
    user: str
    expires_at: float


class TokenCache:
    """Tokens by (issuer, audience, user) in one JSON file, 0600, written atomically."""

    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = directory / "tokens.json"
        self._clock = clock

    @staticmethod
    def _key(issuer: str, audience: str, user: str) -> str:
        return json.dumps([issuer, audience, user])

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            document = json.loads(self.path.read_text())
        except (OSError, ValueError):
            # A missing or damaged cache is only a cache: start again.
            return {}
        return document if isinstance(document, dict) else {}

    def get(self, issuer: str, audience: str, user: str) -> IssuedToken | None:
        """A cached token with more than a minute left, else None."""
        entry = self._read().get(self._key(issuer, audience, user))
        if not isinstance(entry, dict):
            return None
        token, expires = entry.get("token"), entry.get("expires_at")
        if not isinstance(token, str) or not isinstance(expires, int | float):
            return None
        if expires - CACHE_MARGIN <= self._clock():
            return None
        return IssuedToken(token, float(expires), "cache")

    def put(self, issuer: str, audience: str, user: str, token: IssuedToken) -> None:
        """Store a token, dropping expired ones."""
        now = self._clock()
        entries = {
            key: entry
            for key, entry in self._read().items()
            if isinstance(entry, dict)
            and isinstance(entry.get("expires_at"), int | float)
            and entry["expires_at"] > now
        }
        entries[self._key(issuer, audience, user)] = {
            "token": token.token,
            "expires_at": token.expires_at,
        }
        self._write(entries)

    def entries(self) -> list[CachedEntry]:
        """Every cached token's (issuer, audience, user) and expiry, expired ones too."""
        found = []
        for key, entry in self._read().items():
            try:
                issuer, audience, user = json.loads(key)
            except (ValueError, TypeError):
                continue
            expires = entry.get("expires_at") if isinstance(entry, dict) else None
            if isinstance(expires, int | float) and all(
                isinstance(part, str) for part in (issuer, audience, user)
            ):
                found.append(CachedEntry(issuer, audience, user, float(expires)))
        return found

    def remove(
        self, issuer: str | None = None, audience: str | None = None, user: str | None = None
    ) -> list[CachedEntry]:
        """Forget the tokens matching every given part (None matches any); the ones removed."""
        gone = [
            entry
            for entry in self.entries()
            if issuer in (None, entry.issuer)
            and audience in (None, entry.audience)
            and user in (None, entry.user)
        ]
        if gone:
            keys = {self._key(e.issuer, e.audience, e.user) for e in gone}
            self._write({k: v for k, v in self._read().items() if k not in keys})
        return gone

    def _write(self, entries: dict[str, Any]) -> None:
        """Replace the file atomically; it is created 0600 in a 0700 directory."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(entries, handle)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Forget every cached token."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Denied(IdentityError):
    """The issuer refused this SSH JWT (``access_denied``), with its description (maybe "")."""

    def __init__(self, message: str, description: str) -> None:
        super().__init__(message)
        self.description = description


async def exchange_token(
    http: httpx.AsyncClient,
    settings: LoginSettings,
    ssh_jwt: str,
    *,
    clock: Callable[[], float] = time.time,
) -> IssuedToken:
    """POST the token exchange to ``{dex}/token``; raise IdentityError saying what went wrong."""
    form = {
        "grant_type": GRANT_TOKEN_EXCHANGE,
        "subject_token": ssh_jwt,
        "subject_token_type": TYPE_ACCESS_TOKEN,
        "requested_token_type": TYPE_ID_TOKEN,
        "scope": SCOPE,
        "connector_id": CONNECTOR_ID,
        "audience": settings.target_audience,
        "client_id": settings.client_id,
    }
    if settings.client_secret:
        form["client_secret"] = settings.client_secret
    url = f"{settings.issuer}/token"
    try:
        response = await http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise IdentityError(
            f"cannot reach the issuer at {url}: {exc or type(exc).__name__}",
            hint="check --dex-url (DEX_URL) and that the issuer is running",
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise IdentityError(
            f"the issuer at {url} answered {response.status_code} without a JSON body",
            hint="check that --dex-url points at Dex or `imgctl idp serve`",
        )
    if response.status_code != 200:
        error = str(body.get("error") or "error")
        description = str(body.get("error_description") or "")[:300]
        detail = f"{error}" + (f": {description}" if description else "")
        if error == "access_denied":
            raise _Denied(detail, description)
        if error == "invalid_client":
            raise IdentityError(
                f"the issuer refused client {settings.client_id!r} ({detail})",
                hint="check --client-id/--client-secret (IMGCTL_CLIENT_ID/IMGCTL_CLIENT_SECRET)",
            )
        raise IdentityError(f"the issuer at {url} answered {response.status_code} {detail}")
    # Dex answers with access_token only; other providers may send id_token.
    token = body.get("access_token") or body.get("id_token")
    if not isinstance(token, str) or not token:
        raise IdentityError(f"the issuer at {url} answered without a token")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        expires_at = clock() + float(expires_in)
    else:
        exp = unverified_claims(token).get("exp")
        expires_at = float(exp) if isinstance(exp, int | float) else clock() + 300.0
    return IssuedToken(token, expires_at, "")


async def obtain_token(
    settings: LoginSettings,
    *,
    environ: Mapping[str, str],
    home: Path,
    passphrase: Callable[[str], str | None] | None = None,
    cache: TokenCache | None = None,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    report: Callable[[str], None] | None = None,
) -> IssuedToken:
    """A token for ``settings``: from the cache, else by signing with each SSH key in turn."""
    from imgctl.identity.sshjwt import (
        Skipped,
        build_claims,
        candidate_keys,
        fingerprint,
        sign_jwt,
    )

    if not settings.dex_url:
        raise UsageError("no issuer URL: pass --dex-url or set DEX_URL")
    if cache is not None:
        cached = cache.get(settings.issuer, settings.target_audience, settings.username)
        if cached is not None:
            return cached
    owned = http is None
    client = http or httpx.AsyncClient(timeout=30.0)
    tried: list[str] = []
    skipped: list[str] = []
    causes: set[str] = set()
    try:
        async for key in candidate_keys(environ, home, settings.pubkey_file, passphrase):
            if isinstance(key, Skipped):
                skipped.append(f"{key.source}: {key.reason}")
                if report:
                    report(f"skipped {key.source}: {key.reason}")
                continue
            label = f"{key.key_type} {fingerprint(key.public_blob)} ({key.source})"
            claims = build_claims(
                username=settings.username,
                issuer_url=settings.issuer,
                target_audience=settings.target_audience,
                now=int(clock()),
            )
            ssh_jwt = await sign_jwt(key, claims)
            try:
                issued = await exchange_token(client, settings, ssh_jwt, clock=clock)
            except _Denied as denied:
                cause = denial_cause(denied.description)
                if cause not in ("key", "user", "unknown"):
                    # About the request (audience, issuer URL, clock...), not the key: every
                    # other key would be refused the same way, so say why now.
                    message, hint = issuer_denial(
                        cause,
                        denied.description,
                        issuer=settings.issuer,
                        audience=settings.target_audience,
                        user=settings.username,
                    )
                    raise IdentityError(message, hint=hint) from None
                causes.add(cause)
                tried.append(f"{label}: {denied.message}")
                if report:
                    report(f"{label} refused: {denied.message}")
                continue
            issued = IssuedToken(issued.token, issued.expires_at, label)
            if cache is not None:
                cache.put(settings.issuer, settings.target_audience, settings.username, issued)
            return issued
    finally:
        if owned:
            await client.aclose()
    if not tried:
        raise IdentityError(
            "no usable SSH key"
            + (f" ({'; '.join(skipped)})" if skipped else " (no ssh-agent keys, no ~/.ssh/id_*)"),
            hint="start ssh-agent and `ssh-add` your key, or pass --pubkey-file",
        )
    refused = f"the issuer refused every SSH key for user {settings.username!r}"
    if causes == {"user"}:
        raise IdentityError(
            f"{refused}: they are another user's there ({'; '.join(tried)})",
            hint="check --username (KUBECTL_SSH_USER, else $USER)",
        )
    if causes == {"unknown"}:
        # Dex answers access_denied without a reason, whatever the check that failed.
        raise IdentityError(
            f"{refused} without saying why ({'; '.join(tried)})",
            hint=f"check that your public key (`ssh-add -L`) is listed for {settings.username!r} "
            f"in the issuer's config, that it issues tokens for audience "
            f"{settings.target_audience!r} (allowed_target_audiences; set with --audience), "
            "and this machine's clock; the issuer's log says which",
        )
    raise IdentityError(
        f"{refused}: {'; '.join(tried)}",
        hint="check --username (KUBECTL_SSH_USER), and ask an admin to add your public key "
        "(`ssh-add -L`) for that user to the issuer's config",
    )
