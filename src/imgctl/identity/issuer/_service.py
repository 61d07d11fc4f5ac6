"""What the built-in issuer does, without HTTP: discovery, JWKS, the token exchange.

The token endpoint follows Dex's token exchange with its SSH connector: the same form fields,
the same answers and errors (INTEROP sections 2 and 3), and these deliberate improvements:

* the SSH JWT's ``sub`` must be the user whose key signed it (the connector does not check);
* a ``jti`` is accepted once while its token is valid (a replayed SSH JWT is refused), also
  across restarts and replicas when the replay memory is a database (``_replay``);
* an SSH JWT must say when it was signed (``iat``, not in the future) and live at most
  :data:`MAX_SSH_JWT_LIFETIME` (``exp - iat``): a signed JWT is a bearer credential until it
  expires, so one valid for years is refused rather than trusted for years;
* a small clock skew (default 30 s) is allowed on ``exp``/``nbf``/``iat``;
* a form ``audience`` must equal the SSH JWT's ``target_audience``: a JWT signed for one
  audience cannot be traded for a token for another.
"""

from __future__ import annotations

import base64
import hmac
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

import jwt

from imgctl.errors import ImgctlError, OAuthError
from imgctl.identity._oauth import GRANT_TOKEN_EXCHANGE, TYPE_ACCESS_TOKEN, TYPE_ID_TOKEN
from imgctl.identity.issuer._config import IssuerConfig, SSHUser, StaticClient
from imgctl.identity.issuer._keys import KeyStore
from imgctl.identity.issuer._replay import ProcessReplayMemory, ReplayMemory

__all__ = ["MAX_JTI_CHARS", "MAX_SSH_JWT_LIFETIME", "IssuerService"]

logger = logging.getLogger("imgctl.issuer")

_SUBJECT_TYPES = frozenset({TYPE_ACCESS_TOKEN, TYPE_ID_TOKEN})

MAX_SSH_JWT_LIFETIME: Final = 300
"""Longest ``exp - iat`` accepted, in seconds: what kubectl-ssh-oidc and ``imgctl token`` sign
(``exp = iat + 300``), and Dex's SSH challenge lifetime. The clock skew comes on top of it for
``iat`` only, so no accepted JWT is valid later than ``now + skew + 300``."""
MAX_JTI_CHARS: Final = 256
"""Longest ``jti`` accepted (clients send 32 hex characters); it becomes a database key."""


def _quoted(value: str) -> str:
    """A caller's string in a description: quoted, escaped, at most 100 characters."""
    return repr(value[:100]).encode("ascii", "backslashreplace").decode("ascii")


def dex_subject(user_id: str, connector_id: str) -> str:
    """The ``sub`` Dex issues: base64url (no padding) of the protobuf {1: user_id, 2: conn_id}."""

    def field(number: int, value: str) -> bytes:
        data = value.encode()
        length = len(data)
        varint = bytearray()
        while True:
            byte = length & 0x7F
            length >>= 7
            varint.append(byte | (0x80 if length else 0))
            if not length:
                break
        return bytes([number << 3 | 2]) + bytes(varint) + data

    raw = field(1, user_id) + field(2, connector_id)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class _Identity:
    user: SSHUser
    target_audience: str
    jti: str
    exp: int


class IssuerService:
    """The issuer's behaviour; ``imgctl.identity.issuer.create_app`` puts HTTP around it."""

    def __init__(
        self,
        config: IssuerConfig,
        keys: KeyStore,
        issuer_url: str,
        *,
        clock: Callable[[], float] = time.time,
        replay: ReplayMemory | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.issuer_url = issuer_url.rstrip("/")
        self._clock = clock
        self._instance_id = config.dex_instance_id or self.issuer_url
        self.replay: ReplayMemory = replay or ProcessReplayMemory(clock)

    # ------------------------------------------------------------------ discovery

    def discovery(self) -> dict[str, Any]:
        """``/.well-known/openid-configuration``."""
        base = self.issuer_url
        return {
            "issuer": base,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/keys",
            "grant_types_supported": [GRANT_TOKEN_EXCHANGE],
            "response_types_supported": [],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "groups", "profile"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "email",
                "email_verified",
                "groups",
                "name",
            ],
        }

    def jwks(self) -> dict[str, Any]:
        """``/keys``."""
        return self.keys.jwks()

    # ------------------------------------------------------------------ token

    async def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """Answer a token request, or raise OAuthError with Dex's status and error code."""
        client = self._client(form, authorization)
        if form.get("grant_type") != GRANT_TOKEN_EXCHANGE:
            raise OAuthError(
                400,
                "unsupported_grant_type",
                f"grant_type must be {GRANT_TOKEN_EXCHANGE}",
            )
        if form.get("connector_id") != self.config.connector_id:
            raise OAuthError(400, "invalid_request", "Requested connector does not exist.")
        if form.get("subject_token_type") not in _SUBJECT_TYPES:
            raise OAuthError(
                400, "request_not_supported", "Invalid subject_token_type for the connector."
            )
        requested = form.get("requested_token_type") or TYPE_ACCESS_TOKEN
        if requested not in _SUBJECT_TYPES:
            raise OAuthError(400, "invalid_request", f"Invalid requested_token_type {requested}.")
        subject_token = form.get("subject_token")
        if not subject_token:
            raise OAuthError(400, "invalid_request", "No subject_token.")
        identity = self._verify_ssh_jwt(subject_token)
        audience = form.get("audience") or client.id
        if form.get("audience") and audience != identity.target_audience:
            raise OAuthError(
                401,
                "access_denied",
                f"audience does not match the SSH JWT's target_audience: {_quoted(audience)} "
                f"!= {_quoted(identity.target_audience)}",
            )
        await self._remember(identity)
        scopes = set((form.get("scope") or "openid").split())
        token, lifetime = self._issue(identity.user, audience, scopes)
        return {
            "access_token": token,
            "issued_token_type": requested,
            "token_type": "bearer",
            "expires_in": lifetime,
        }

    def _client(self, form: Mapping[str, str], authorization: str | None) -> StaticClient:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                basic_id, _, basic_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError(401, "invalid_client", "Malformed Basic credentials.") from None
            basic_id, basic_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
            if client_id and client_id != basic_id:
                raise OAuthError(400, "invalid_request", "client_id differs from Basic auth.")
            client_id, secret = basic_id, basic_secret
        client = self.config.clients.get(client_id or "")
        if client is None:
            raise OAuthError(401, "invalid_client", "Invalid client credentials.")
        expected = client.secret or ""
        if not hmac.compare_digest((secret or "").encode(), expected.encode()):
            raise OAuthError(401, "invalid_client", "Invalid client credentials.")
        return client

    def _verify_ssh_jwt(self, token: str) -> _Identity:
        """Dex's SSH connector checks, plus imgctl's improvements; access_denied on failure."""
        from imgctl.identity.sshjwt import parse_ssh_jwt, verify_ssh_signature

        def deny(why: str) -> OAuthError:
            return OAuthError(401, "access_denied", why)

        try:
            parsed = parse_ssh_jwt(token)
        except ImgctlError as exc:
            raise deny(f"malformed SSH JWT: {exc.message}") from None
        # The user the JWT names is tried first, so a key listed for two users proves the one
        # it claims; any other user whose key verifies only shows that sub is wrong.
        claimed = self.config.users.get(str(parsed.claims.get("sub")))
        others = [u for u in self.config.users.values() if u is not claimed]
        user = next(
            (
                u
                for u in ([claimed] if claimed else []) + others
                for line in u.keys
                if verify_ssh_signature(line, parsed.signing_input, parsed.signature)
            ),
            None,
        )
        if user is None:
            raise deny("no configured key verifies the SSH JWT")
        claims = parsed.claims
        for name in ("sub", "aud", "iss"):
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise deny(f"claim {name} must be a non-empty string")
        if claims["sub"] != user.username:
            raise deny("sub is not the user whose key signed the SSH JWT")
        target = claims.get("target_audience")
        if not isinstance(target, str) or not target:
            raise deny("claim target_audience is required")
        if claims["aud"] != self._instance_id:
            raise deny(f"aud must be {self._instance_id}")
        allowed = self.config.allowed_target_audiences
        # The key verified, so the caller is a configured user: naming the audiences this
        # issuer issues for tells them what to ask for instead (clients show it as the cause).
        if allowed and target not in allowed:
            raise deny(
                f"target_audience is not allowed: {_quoted(target)} (allowed: {', '.join(allowed)})"
            )
        if self.config.allowed_issuers and claims["iss"] not in self.config.allowed_issuers:
            raise deny(
                f"iss is not an allowed issuer: {_quoted(claims['iss'])} "
                f"(allowed: {', '.join(self.config.allowed_issuers)})"
            )
        exp = self._check_lifetime(claims, deny)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise deny("claim jti is required (replay protection)")
        if len(jti) > MAX_JTI_CHARS:
            raise deny(f"claim jti is longer than {MAX_JTI_CHARS} characters")
        return _Identity(user, target, jti, exp)

    def _check_lifetime(self, claims: Mapping[str, Any], deny: Callable[[str], OAuthError]) -> int:
        """exp, nbf and iat: valid now, signed no later than now, and short-lived; returns exp."""
        now, skew = self._clock(), self.config.clock_skew

        def number(name: str) -> float | None:
            value = claims.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise deny(f"claim {name} must be a number of seconds")
            try:
                seconds = float(value)
            except OverflowError:  # an integer of hundreds of digits
                seconds = math.inf
            if not math.isfinite(seconds):  # 1e999 parses as infinity
                raise deny(f"claim {name} is out of range")
            return seconds

        exp = number("exp")
        if exp is None:
            raise deny("claim exp is required")
        if exp + skew <= now:
            raise deny("the SSH JWT has expired")
        nbf = number("nbf")
        if nbf is not None and nbf - skew > now:
            raise deny("the SSH JWT is not valid yet")
        iat = number("iat")
        if iat is None:
            raise deny(
                "claim iat is required: the issuer refuses SSH JWTs that do not say when "
                "they were signed"
            )
        if iat - skew > now:
            raise deny(f"claim iat is in the future (more than the {skew} s clock skew)")
        if exp < iat:
            raise deny("claim exp is before iat")
        if exp - iat > MAX_SSH_JWT_LIFETIME:
            raise deny(
                f"the SSH JWT's lifetime of {exp - iat:.0f} s is longer than "
                f"{MAX_SSH_JWT_LIFETIME} s (exp - iat); sign a new one for each login"
            )
        return int(exp)

    async def _remember(self, identity: _Identity) -> None:
        """Spend the jti; a second use, here or on another replica, is refused."""
        until = identity.exp + self.config.clock_skew
        try:
            fresh = await self.replay.claim(identity.user.username, identity.jti, until)
        except ImgctlError as exc:  # StoreError: the database is down or refuses
            # Fail closed: without the memory a replayed JWT could not be told apart.
            logger.error("cannot check the SSH JWT's jti: %s", exc)
            raise OAuthError(
                503,
                "temporarily_unavailable",
                "the issuer cannot reach its database to check the SSH JWT; try again",
            ) from None
        if not fresh:
            raise OAuthError(401, "access_denied", "this SSH JWT was already used (jti replay)")

    def _issue(self, user: SSHUser, audience: str, scopes: set[str]) -> tuple[str, int]:
        now = int(self._clock())
        lifetime = self.config.token_ttl
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "sub": dex_subject(user.username, self.config.connector_id),
            "aud": audience,
            "exp": now + lifetime,
            "iat": now,
        }
        if "email" in scopes and user.email:
            claims["email"] = user.email
            claims["email_verified"] = True
        if "groups" in scopes:
            claims["groups"] = list(dict.fromkeys([*user.groups, *self.config.default_groups]))
        if "profile" in scopes:
            claims["name"] = user.name or user.username
        key = self.keys.signing_key()
        token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
        return token, lifetime
