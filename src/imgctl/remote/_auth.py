"""Registry auth: challenges (``WWW-Authenticate``), Basic credentials and bearer tokens.

The session decides when to authenticate and whether a secret may go to a URL; this module
says how: which challenge to answer, and how to get a token from a token server.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from imgctl.authn import Credential
from imgctl.errors import AuthenticationError
from imgctl.remote._http import error_detail

__all__ = [
    "Challenge",
    "Send",
    "Token",
    "basic_authorization",
    "fetch_token",
    "parse_challenges",
    "pick_challenge",
]

# One request to the token server under the session's retry policy:
# (method, url, headers, body) -> response.
Send = Callable[[str, str, Mapping[str, str], bytes | None], Awaitable[httpx.Response]]

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
_SCHEME_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\b")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One auth scheme offered by a registry, with its parameters (realm, service, scope...)."""

    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        """Where to fetch tokens (bearer) or the protection space name (basic)."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The ``service`` a token must be issued for."""
        return self.params.get("service")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into challenges (quoted values may contain commas)."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        scheme_match = _SCHEME_RE.match(header, pos)
        if scheme_match is None:
            break
        scheme = scheme_match.group(1).lower()
        pos = scheme_match.end()
        params: dict[str, str] = {}
        while pos < len(header):
            param = _PARAM_RE.match(header, pos)
            if param is None:
                break
            quoted = param.group(2)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else param.group(3)
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme, params))
        # Skip separators between challenges that carried no parameters.
        while pos < len(header) and header[pos] in " ,":
            pos += 1
    return challenges


@dataclass(slots=True)
class Token:
    """A bearer token and when it stops being usable."""

    value: str
    expires_at: float

    def fresh(self, margin: float = 10.0) -> bool:
        """True while the token has more than ``margin`` seconds left."""
        return time.monotonic() + margin < self.expires_at


def pick_challenge(headers: list[str]) -> Challenge | None:
    """The challenge to answer among ``WWW-Authenticate`` headers: Bearer first, then Basic."""
    challenges = [c for header in headers for c in parse_challenges(header)]
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value for Basic credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def fetch_token(
    send: Send,
    realm_url: str,
    service: str | None,
    credential: Credential,
    scopes: tuple[str, ...],
) -> Token:
    """A bearer token for ``scopes`` from the token server at ``realm_url``.

    An identity token is traded with the OAuth2 refresh-token grant (POST); otherwise a GET
    carries the scopes, with Basic credentials when there are some.
    """
    headers: dict[str, str] = {"Accept": "application/json"}
    if credential.identity_token:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": credential.identity_token,
            "client_id": "imgctl",
            "scope": " ".join(scopes),
        }
        if service:
            form["service"] = service
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = await send("POST", realm_url, headers, urlencode(form).encode())
    else:
        query: list[tuple[str, str]] = [("service", service)] if service else []
        query += [("scope", scope) for scope in scopes]
        separator = "&" if "?" in realm_url else "?"
        url = realm_url + (separator + urlencode(query) if query else "")
        if credential.username is not None and credential.password is not None:
            headers["Authorization"] = basic_authorization(credential.username, credential.password)
        response = await send("GET", url, headers, None)
    if response.status_code in (401, 403):
        who = "anonymous access" if credential.anonymous else "the credentials"
        raise AuthenticationError(
            f"token server {realm_url} refused {who} for {' '.join(scopes)}"
            f" ({response.status_code})",
            status=response.status_code,
            hint="check the registry credentials"
            if not credential.anonymous
            else "this registry needs credentials (--registry-username/--registry-password)",
        )
    if response.status_code != 200:
        code, message = error_detail(response)
        raise AuthenticationError(
            f"token server {realm_url} answered {response.status_code}: {message}",
            status=response.status_code,
            code=code,
        )
    try:
        body = response.json()
    except ValueError:
        raise AuthenticationError(f"token server {realm_url} sent a non-JSON answer") from None
    if not isinstance(body, dict):
        raise AuthenticationError(f"token server {realm_url} sent no token")
    value = body.get("token") or body.get("access_token")
    if not isinstance(value, str) or not value:
        raise AuthenticationError(f"token server {realm_url} sent no token")
    expires_in = body.get("expires_in")
    lifetime = 60.0
    if isinstance(expires_in, int | float) and expires_in > 0:
        lifetime = float(expires_in)
    return Token(value, time.monotonic() + lifetime)
