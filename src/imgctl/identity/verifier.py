"""Check the OIDC tokens callers present, against the keys their issuer publishes.

The issuer (Dex, or imgctl's own) is found through OIDC discovery: ``jwks_uri`` is read from
``{issuer}/.well-known/openid-configuration``, whose ``issuer`` must equal the configured URL.
Its JSON Web Key Set is cached for ``jwks_ttl`` seconds. A token naming a key we do not hold
triggers an early refresh, at most once per ``min_refresh_interval``, so a flood of tokens with
made-up key ids costs the issuer one request, not one per token. Concurrent refreshes share
one fetch.

Only asymmetric algorithms are accepted, and the header's ``alg`` is checked against that
allowlist and against the key's type before the key is used: ``alg: none`` and HS256 signed
with the public key as an HMAC secret never reach a signature check.

Every rejection is an :class:`~imgctl.errors.InvalidTokenError` whose ``reason`` is one of
:data:`REASONS`; messages say which check failed and never contain the token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.types import Options

from imgctl import __version__
from imgctl.errors import InvalidTokenError, UsageError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEFAULT_ALLOWED_GROUPS",
    "REASONS",
    "Principal",
    "TokenVerifier",
    "VerifierSettings",
    "VerifierStats",
]

logger = logging.getLogger(__name__)

DEFAULT_ALLOWED_GROUPS: Final = ("engineering@example.com",)

_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
ALLOWED_ALGORITHMS: Final = _RSA_ALGORITHMS | {"ES256", "ES384", "EdDSA"}

REASONS: Final = frozenset(
    {
        "malformed",
        "algorithm",
        "unknown_kid",
        "signature",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "issuer",
        "audience",
        "groups_missing",
        "group_not_allowed",
        "issuer_unreachable",
    }
)

# Dex tokens are about 1 KiB; anything far larger is not worth base64-decoding.
MAX_TOKEN_LENGTH: Final = 16 * 1024
# Discovery documents and key sets are a few KiB; the cap bounds memory if an issuer misbehaves.
_MAX_DOCUMENT_BYTES: Final = 1 << 20
_MIN_RSA_BITS: Final = 2048
_DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
_MAX_LEEWAY: Final = 300.0

_PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token says the caller is (the token itself is deliberately not kept)."""

    subject: str
    email: str | None
    name: str | None
    groups: tuple[str, ...]
    issuer: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class VerifierSettings:
    """What a token must satisfy: its issuer, its audience and the groups allowed in."""

    issuer_url: str
    audience: str
    # An empty tuple lets in any caller with a valid token, whatever its groups.
    allowed_groups: tuple[str, ...] = DEFAULT_ALLOWED_GROUPS
    groups_claim: str = "groups"
    leeway: float = 30.0
    jwks_ttl: float = 300.0
    min_refresh_interval: float = 30.0

    def __post_init__(self) -> None:
        problem = _issuer_url_problem(self.issuer_url)
        if problem:
            raise UsageError(f"issuer URL {self.issuer_url!r} {problem}")
        if not isinstance(self.audience, str) or not self.audience:
            raise UsageError("the expected audience must be a non-empty string")
        # A plain string here would be split into one-letter groups by tuple().
        if not isinstance(self.allowed_groups, tuple) or not all(
            isinstance(group, str) and group for group in self.allowed_groups
        ):
            raise UsageError("allowed_groups must be a tuple of non-empty strings")
        if not isinstance(self.groups_claim, str) or not self.groups_claim:
            raise UsageError("the groups claim name must be a non-empty string")
        if not _finite_between(self.leeway, 0.0, _MAX_LEEWAY):
            raise UsageError(f"leeway must be between 0 and {_MAX_LEEWAY:g} seconds")
        if not _finite_between(self.jwks_ttl, 1.0, 86_400.0):
            raise UsageError("jwks_ttl must be between 1 and 86400 seconds")
        if not _finite_between(self.min_refresh_interval, 0.0, 3_600.0):
            raise UsageError("min_refresh_interval must be between 0 and 3600 seconds")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> VerifierSettings:
        """Read the ``OIDC_*`` variables the server is configured with; every problem at once."""
        from imgctl.config import Problems

        problems = Problems()
        issuer_url = environ.get("OIDC_ISSUER_URL", "").strip()
        if not issuer_url:
            problems.add(
                UsageError(
                    "OIDC_ISSUER_URL is not set",
                    hint="set it to the OIDC issuer's URL, e.g. https://dex.example.com",
                )
            )
        elif problem := _issuer_url_problem(issuer_url):
            problems.add(
                UsageError(
                    f"OIDC_ISSUER_URL {issuer_url!r} {problem}",
                    hint="set it to the issuer's URL, e.g. https://dex.example.com",
                )
            )
        audience = environ.get("OIDC_AUDIENCE", "").strip()
        if not audience:
            problems.add(
                UsageError(
                    "OIDC_AUDIENCE is not set",
                    hint="set it to the audience tokens are issued for (this server's URL)",
                )
            )
        groups_claim = environ.get("OIDC_GROUPS_CLAIM", "").strip() or "groups"
        allowed_groups = problems.check(
            lambda: _parse_allowed_groups(environ.get("OIDC_ALLOWED_GROUPS", ""))
        )
        leeway = problems.check(lambda: _parse_leeway(environ.get("OIDC_LEEWAY", "")))
        problems.raise_any()
        assert allowed_groups is not None
        assert leeway is not None
        return cls(
            issuer_url=issuer_url,
            audience=audience,
            allowed_groups=allowed_groups,
            groups_claim=groups_claim,
            leeway=leeway,
        )


def _parse_allowed_groups(raw: str) -> tuple[str, ...]:
    # Unset and empty both mean the default, as in the original server: an accidentally empty
    # variable must not open the server to every authenticated user. "*" does that explicitly.
    if not raw.strip():
        return DEFAULT_ALLOWED_GROUPS
    groups = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not groups:
        raise UsageError(
            f"OIDC_ALLOWED_GROUPS {raw!r} names no group",
            hint="give a comma-separated list of groups, or * to allow any authenticated user",
        )
    if "*" in groups:
        if len(groups) > 1:
            raise UsageError(
                "OIDC_ALLOWED_GROUPS mixes * with group names",
                hint="use * alone to allow any authenticated user",
            )
        return ()
    return groups


def _parse_leeway(raw: str) -> float:
    if not raw.strip():
        return 30.0
    try:
        leeway = float(raw)
    except ValueError:
        leeway = math.nan
    if not _finite_between(leeway, 0.0, _MAX_LEEWAY):
        raise UsageError(
            f"OIDC_LEEWAY {raw!r} is not a number of seconds between 0 and {_MAX_LEEWAY:g}",
            hint="unset it for the default (30 s)",
        )
    return leeway


def _finite_between(value: object, low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and low <= value <= high


def _issuer_url_problem(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return "is empty"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "is not an http(s) URL with a host"
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    return None


@dataclass(slots=True)
class VerifierStats:
    """How often the issuer was asked for its discovery document and its keys."""

    discovery_fetches: int = 0
    jwks_fetches: int = 0
    fetch_failures: int = 0


@dataclass(frozen=True, slots=True)
class _Key:
    """A verification key, ready to use, and the algorithms it may verify."""

    key: _PublicKey
    algorithms: frozenset[str]


class _FetchError(Exception):
    """Discovery or the key set could not be fetched or made no sense."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class TokenVerifier:
    """Verifies OIDC tokens against one issuer; share one instance for the whole server."""

    def __init__(
        self,
        settings: VerifierSettings,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.stats = VerifierStats()
        self._clock = clock
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0),
            headers={"User-Agent": f"imgctl/{__version__}"},
        )
        self._discovery_url = settings.issuer_url.rstrip("/") + _DISCOVERY_PATH
        self._issuer = settings.issuer_url
        self._audience = settings.audience
        self._allowed_groups = frozenset(settings.allowed_groups)
        self._groups_claim = settings.groups_claim
        self._leeway = float(settings.leeway)
        # Time checks are ours (with the injectable clock, and one reason each); PyJWT checks
        # the signature, the presence of the claims, iss and aud.
        self._decode_options: Options = {
            "verify_signature": True,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": True,
            "verify_aud": True,
            "require": ["exp", "iss", "aud", "sub"],
        }
        self._lock = asyncio.Lock()
        self._keys: dict[str, _Key] = {}
        self._jwks_uri: str | None = None
        # The key set is fresh while _fresh_from <= now < _fresh_until (never, until fetched);
        # a clock that jumps back before the fetch makes it stale too.
        self._fresh_from = math.inf
        self._fresh_until = -math.inf
        self._failed_at: float | None = None  # set while the latest attempt is a failure
        self._last_error: _FetchError | None = None
        self._early_refresh_at: float | None = None
        self._generation = 0  # completed fetch attempts; lets waiters reuse another's fetch

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this verifier created it."""
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str) -> Principal:
        """Check ``token`` completely and return who it names, or raise InvalidTokenError."""
        alg, kid = _read_header(token)
        now = self._clock()
        key = self._keys.get(kid)
        if key is None or not self._fresh_from <= now < self._fresh_until:
            key = await self._key_slow(kid, now)
        if alg not in key.algorithms:
            raise InvalidTokenError(
                "algorithm",
                f"token algorithm {alg} does not fit its signing key {_brief(kid)} "
                f"(the key allows {', '.join(sorted(key.algorithms))})",
            )
        return self._check(token, alg, key.key, now)

    # ------------------------------------------------------------------------------ claims

    def _check(self, token: str, alg: str, key: _PublicKey, now: float) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options=self._decode_options,
                audience=self._audience,
                issuer=self._issuer,
            )
        except jwt.InvalidSignatureError:
            raise InvalidTokenError(
                "signature",
                "token signature does not verify with the issuer's key",
                hint=f"get a new token from {self._issuer} (`imgctl auth logout`, then log in)",
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            reason = {"iss": "issuer", "aud": "audience"}.get(exc.claim, "malformed")
            raise InvalidTokenError(reason, f"token has no {exc.claim!r} claim") from None
        except jwt.InvalidIssuerError:
            # The signature verified (PyJWT checks it first), so the claims are the issuer's.
            raise InvalidTokenError(
                "issuer",
                f"token was issued by {_brief(_claim(token, 'iss'))}, not {self._issuer} "
                "(iss claim)",
                hint=f"log in at {self._issuer} (imgctl asks this server when --dex-url is "
                "not given)",
            ) from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError(
                "audience",
                f"token is for audience {_brief(_claim(token, 'aud'))}, not "
                f"{self._audience!r} (aud claim)",
                hint=f"get a token for audience {self._audience!r} (imgctl asks this server "
                "when --audience is not given)",
            ) from None
        except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError) as exc:
            raise InvalidTokenError(
                "algorithm", f"token algorithm rejected: {_brief(exc)}"
            ) from None
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("malformed", f"token is malformed: {_brief(exc)}") from None

        leeway = self._leeway
        exp = _numeric_claim(claims, "exp")
        if exp is None or exp <= now - leeway:
            raise InvalidTokenError(
                "expired",
                "token has expired (exp is in the past)",
                hint="log in again; if a new token is refused too, check the clocks",
            )
        nbf = _numeric_claim(claims, "nbf")
        if nbf is not None and nbf > now + leeway:
            raise InvalidTokenError(
                "not_yet_valid", "token is not valid yet (nbf is in the future)"
            )
        iat = _numeric_claim(claims, "iat")
        if iat is not None and iat > now + leeway:
            raise InvalidTokenError(
                "issued_in_future", "token was issued in the future (iat); check the clocks"
            )

        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("malformed", "token subject (sub) is empty")

        groups = self._groups(claims)
        email = claims.get("email")
        # An address is reported only when the issuer says, with a JSON true, that it verified
        # it. A string ("False", "TRUE"), a number or a missing claim is not a yes: some
        # providers send strings, and reading them leniently is how "False" came to count.
        if not isinstance(email, str) or not email or claims.get("email_verified") is not True:
            email = None
        name = claims.get("name")
        return Principal(
            subject=subject,
            email=email,
            name=name if isinstance(name, str) and name else None,
            groups=groups,
            issuer=self._issuer,
            expires_at=int(exp),
        )

    def _groups(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        raw = claims.get(self._groups_claim)
        if raw is None:
            if self._allowed_groups:
                raise InvalidTokenError(
                    "groups_missing",
                    f"token has no {self._groups_claim!r} claim, so no group can allow it",
                    hint="request the 'groups' scope from the issuer",
                )
            return ()
        if not isinstance(raw, list) or not all(isinstance(group, str) for group in raw):
            raise InvalidTokenError(
                "malformed", f"token claim {self._groups_claim!r} is not a list of strings"
            )
        groups = tuple(raw)
        if self._allowed_groups and self._allowed_groups.isdisjoint(groups):
            raise InvalidTokenError(
                "group_not_allowed",
                "caller is in none of the groups allowed to use this server",
                hint="allowed groups: " + ", ".join(self.settings.allowed_groups),
            )
        return groups

    # ------------------------------------------------------------------------------ keys

    async def _key_slow(self, kid: str, now: float) -> _Key:
        """The key for ``kid`` when the cache is stale, empty, or does not know it."""
        if self._fresh_from <= now < self._fresh_until:
            # A fresh key set without this kid: the issuer may have rotated since we fetched.
            early = self._early_refresh_at
            if self._may_fetch(now) and (
                early is None or not 0 <= now - early < self.settings.min_refresh_interval
            ):
                await self._refresh(now, early=True)
        elif self._may_fetch(now):
            await self._refresh(now, early=False)

        key = self._keys.get(kid)
        if key is not None:
            # Possibly from a stale set when the issuer is down: the last keys it vouched for
            # stay usable rather than failing every request until it is back.
            return key
        error = self._last_error
        if error is not None:
            raise InvalidTokenError(
                "issuer_unreachable",
                f"cannot check the token: the issuer's keys are unavailable: {error.message}",
                hint=error.hint
                or "check OIDC_ISSUER_URL and that the issuer is reachable from the server",
            )
        raise InvalidTokenError(
            "unknown_kid",
            f"token is signed with key {_brief(kid)}, which the issuer does not publish",
            hint=f"get a new token from {self._issuer}; a token from another issuer is "
            "refused here",
        )

    def _may_fetch(self, now: float) -> bool:
        # After a failure, wait before asking again: a down issuer is not hammered either.
        failed = self._failed_at
        return failed is None or not 0 <= now - failed < self.settings.min_refresh_interval

    async def _refresh(self, now: float, *, early: bool) -> None:
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # another task fetched while this one waited: use its result
            if early:
                self._early_refresh_at = now
            try:
                keys = await self._fetch_keys()
            except _FetchError as exc:
                self.stats.fetch_failures += 1
                self._failed_at = now
                self._last_error = exc
                logger.warning("OIDC keys of %s not refreshed: %s", self._issuer, exc.message)
            else:
                self._keys = keys
                self._fresh_from = now
                self._fresh_until = now + self.settings.jwks_ttl
                self._failed_at = None
                self._last_error = None
                logger.debug("OIDC keys of %s refreshed: %s", self._issuer, sorted(keys))
            # Not in a finally: if this task is cancelled mid-fetch, a waiter must fetch itself
            # rather than take "no result" for an answer.
            self._generation += 1

    async def _fetch_keys(self) -> dict[str, _Key]:
        if self._jwks_uri is None:
            self.stats.discovery_fetches += 1
            self._jwks_uri = self._read_discovery(await self._get_json(self._discovery_url))
        self.stats.jwks_fetches += 1
        try:
            return _parse_jwks(await self._get_json(self._jwks_uri), self._jwks_uri)
        except _FetchError:
            self._jwks_uri = None  # discover again next time: the issuer may have moved it
            raise

    def _read_discovery(self, document: Mapping[str, Any]) -> str:
        url = self._discovery_url
        issuer = document.get("issuer")
        if issuer != self._issuer:
            raise _FetchError(
                f"the discovery document at {url} names issuer {_brief(issuer)}, "
                f"not {self._issuer!r}",
                hint="set OIDC_ISSUER_URL to exactly the issuer URL the provider reports "
                "(trailing slash included)",
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchError(f"the discovery document at {url} has no jwks_uri")
        parts = urlsplit(jwks_uri)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise _FetchError(f"the discovery document at {url} has an invalid jwks_uri")
        if parts.scheme == "http" and urlsplit(self._issuer).scheme == "https":
            raise _FetchError(f"the discovery document at {url} has a plain-http jwks_uri")
        return jwks_uri

    async def _get_json(self, url: str) -> Mapping[str, Any]:
        try:
            async with self._http.stream(
                "GET", url, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    raise _FetchError(f"{url} answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_DOCUMENT_BYTES:
                        raise _FetchError(f"{url} sent more than {_MAX_DOCUMENT_BYTES} bytes")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _FetchError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise _FetchError(f"{url} did not send JSON") from None
        if not isinstance(document, dict):
            raise _FetchError(f"{url} did not send a JSON object")
        return document


# ---------------------------------------------------------------------------------- helpers


def _read_header(token: str) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of a compact JWS, with ``alg`` already on the allowlist."""
    if not isinstance(token, str) or not token:
        raise InvalidTokenError("malformed", "token is empty or not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidTokenError("malformed", f"token is longer than {MAX_TOKEN_LENGTH} characters")
    segment, _, rest = token.partition(".")
    if rest.count(".") != 1:
        raise InvalidTokenError("malformed", "token is not three dot-separated segments")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise InvalidTokenError("malformed", "token header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise InvalidTokenError("malformed", "token header is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise InvalidTokenError(
            "algorithm",
            f"token algorithm {_brief(alg)} is not allowed "
            f"(allowed: {', '.join(sorted(ALLOWED_ALGORITHMS))})",
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidTokenError("malformed", "token header names no signing key (kid)")
    return alg, kid


def _claim(token: str, name: str) -> object:
    """One claim of a token whose signature has been checked, for a message."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims.get(name)


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidTokenError("malformed", f"token claim {name!r} is not a number")
    return value


def _brief(value: object) -> str:
    """A short, escaped rendering of something a caller controls, for a message."""
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_jwks(document: Mapping[str, Any], url: str) -> dict[str, _Key]:
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise _FetchError(f"the key set at {url} has no 'keys' list")
    keys: dict[str, _Key] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            logger.warning("OIDC key set %s: skipped an entry that is not an object", url)
            continue
        kid = entry.get("kid")
        try:
            key = _load_jwk(entry)
        except ValueError as exc:
            logger.warning("OIDC key set %s: skipped key %s: %s", url, _brief(kid), exc)
            continue
        if key is None:
            continue  # an encryption key or a key type we never verify with
        if not isinstance(kid, str) or not kid:
            logger.warning("OIDC key set %s: skipped a signing key without a kid", url)
        elif kid in keys:
            logger.warning("OIDC key set %s: kid %s is published twice; using the first", url, kid)
        else:
            keys[kid] = key
    if not keys:
        raise _FetchError(f"the key set at {url} has no usable signing key")
    return keys


def _load_jwk(jwk: dict[str, Any]) -> _Key | None:
    """Build one verification key; None for keys not meant for signatures."""
    use = jwk.get("use")
    if use is not None and use != "sig":
        return None
    if "d" in jwk:
        # A published private key means anyone can sign: trust nothing signed with it.
        raise ValueError("it contains private key material")
    kty = jwk.get("kty")
    key: _PublicKey
    try:
        if kty == "RSA":
            loaded_rsa = RSAAlgorithm.from_jwk(jwk)
            if not isinstance(loaded_rsa, rsa.RSAPublicKey):
                raise ValueError("not an RSA public key")
            if loaded_rsa.key_size < _MIN_RSA_BITS:
                raise ValueError(f"RSA key of {loaded_rsa.key_size} bits is too short")
            key, algorithms = loaded_rsa, _RSA_ALGORITHMS
        elif kty == "EC":
            loaded_ec = ECAlgorithm.from_jwk(jwk)
            if not isinstance(loaded_ec, ec.EllipticCurvePublicKey):
                raise ValueError("not an EC public key")
            if isinstance(loaded_ec.curve, ec.SECP256R1):
                algorithms = frozenset({"ES256"})
            elif isinstance(loaded_ec.curve, ec.SECP384R1):
                algorithms = frozenset({"ES384"})
            else:
                raise ValueError(f"curve {loaded_ec.curve.name} is not allowed")
            key = loaded_ec
        elif kty == "OKP":
            loaded_okp = OKPAlgorithm.from_jwk(jwk)
            if not isinstance(loaded_okp, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
                raise ValueError("not an Ed25519 or Ed448 public key")
            key, algorithms = loaded_okp, frozenset({"EdDSA"})
        else:
            return None  # symmetric ("oct") and unknown types are never verification keys
    except jwt.PyJWTError as exc:
        raise ValueError(_brief(exc)) from None
    declared = jwk.get("alg")
    if declared is not None:
        if declared not in algorithms:
            raise ValueError(f"its alg {_brief(declared)} does not fit a {kty} key")
        algorithms = frozenset({declared})
    return _Key(key, algorithms)
