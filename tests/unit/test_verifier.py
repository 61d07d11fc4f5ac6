"""OIDC token verification against a real loopback issuer (discovery + JWKS over HTTP)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from imgctl.errors import IdentityError, InvalidTokenError, UsageError
from imgctl.identity.verifier import (
    DEFAULT_ALLOWED_GROUPS,
    REASONS,
    Principal,
    TokenVerifier,
    VerifierSettings,
)

from ..support.httpd import CheckedHTTPServer

AUDIENCE = "https://imgctl.example.com"
GROUP = "engineering@example.com"
START = 1_700_000_000.0
PREFIX = "/dex"
# Deliberately not Dex's "/keys": the verifier must take the path from discovery.
JWKS_PATH = f"{PREFIX}/published/jwks.json"


# ------------------------------------------------------------------------------ the issuer


class IssuerStub:
    """A loopback OIDC issuer: discovery and JWKS, with request counters and fault switches."""

    def __init__(self) -> None:
        self.keys: list[Any] = []  # JWKs, and whatever junk a test wants published
        self.discovery_issuer: str | None = None  # None: the real issuer URL
        self.discovery_extra: dict[str, Any] = {}
        self.fail_status: int | None = None
        self.jwks_body: bytes | None = None  # raw JWKS answer, overriding ``keys``
        self.delay = 0.0
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self.paths: list[str] = []
        self.jwks_requested = threading.Event()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = CheckedHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.base}{PREFIX}"
        # A short poll keeps shutdown() (once per test) from costing half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def start(self) -> IssuerStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server.check()

    def publish(self, *signers: Signer) -> None:
        self.keys = [signer.jwk for signer in signers]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.paths.append(request.path)
        if request.path == f"{PREFIX}/.well-known/openid-configuration":
            with self._lock:
                self.discovery_fetches += 1
            body = json.dumps(
                {
                    "issuer": self.discovery_issuer or self.issuer,
                    "jwks_uri": f"{self.base}{JWKS_PATH}",
                    "id_token_signing_alg_values_supported": ["RS256"],
                    **self.discovery_extra,
                }
            ).encode()
        elif request.path == JWKS_PATH:
            with self._lock:
                self.jwks_fetches += 1
            self.jwks_requested.set()
            if self.delay:
                time.sleep(self.delay)  # lets concurrent verifications pile up meanwhile
            body = self.jwks_body or json.dumps({"keys": self.keys}).encode()
        else:
            request.send_error(404)
            return
        status = self.fail_status or 200
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


# ------------------------------------------------------------------------------ keys, tokens


@dataclass(frozen=True)
class Signer:
    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]

    def with_kid(self, kid: str, *, jwk_alg: str | None = None) -> Signer:
        jwk = {**self.jwk, "kid": kid}
        jwk.pop("alg", None)
        if jwk_alg:
            jwk["alg"] = jwk_alg
        return dataclasses.replace(self, kid=kid, jwk=jwk)


def _signer(kid: str, alg: str, private: Any, to_jwk: Any, jwk_alg: str | None) -> Signer:
    jwk = {**to_jwk(private.public_key(), as_dict=True), "kid": kid, "use": "sig"}
    if jwk_alg:
        jwk["alg"] = jwk_alg
    return Signer(kid, alg, private, jwk)


@dataclass(frozen=True)
class Keys:
    rsa1: Signer  # JWK alg RS256, as Dex publishes it
    rsa2: Signer  # the key the issuer rotates to
    rsa_ps: Signer  # rsa1's key under another kid, JWK without alg: PS256 allowed
    ec256: Signer
    ec384: Signer
    ed25519: Signer


@pytest.fixture(scope="module")
def keys() -> Keys:
    rsa_a = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_b = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk, ec_jwk, okp_jwk = RSAAlgorithm.to_jwk, ECAlgorithm.to_jwk, OKPAlgorithm.to_jwk
    return Keys(
        rsa1=_signer("rsa-1", "RS256", rsa_a, rsa_jwk, "RS256"),
        rsa2=_signer("rsa-2", "RS256", rsa_b, rsa_jwk, "RS256"),
        rsa_ps=_signer("rsa-ps", "PS256", rsa_a, rsa_jwk, None),
        ec256=_signer("ec-256", "ES256", ec.generate_private_key(ec.SECP256R1()), ec_jwk, None),
        ec384=_signer("ec-384", "ES384", ec.generate_private_key(ec.SECP384R1()), ec_jwk, None),
        ed25519=_signer("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate(), okp_jwk, "EdDSA"),
    )


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class Minter:
    issuer: str
    clock: FakeClock

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "CgVhbGljZRIDc3No",
            "email": "alice@example.com",
            "email_verified": True,
            "name": "Alice Liddell",
            "groups": [GROUP, "ops@example.com"],
            "iat": now,
            "exp": now + 600,
        }
        for name, value in overrides.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(self, signer: Signer, *, kid: str | None = None, **overrides: Any) -> str:
        headers = {"kid": signer.kid if kid is None else kid}
        return jwt.encode(
            self.claims(**overrides), signer.private, algorithm=signer.alg, headers=headers
        )

    def raw(self, header: dict[str, Any], signature: bytes = b"", **overrides: Any) -> str:
        encoded_header = b64(json.dumps(header).encode())
        payload = b64(json.dumps(self.claims(**overrides)).encode())
        return f"{encoded_header}.{payload}.{b64(signature)}"


DROP = object()


@dataclass
class Env:
    stub: IssuerStub
    clock: FakeClock
    mint: Minter
    keys: Keys
    make: Callable[..., TokenVerifier]

    @property
    def verifier(self) -> TokenVerifier:
        return self.make()


@pytest.fixture
def stub(keys: Keys) -> Iterator[IssuerStub]:
    server = IssuerStub().start()
    server.publish(keys.rsa1, keys.rsa_ps, keys.ec256, keys.ec384, keys.ed25519)
    yield server
    server.stop()


@pytest.fixture
async def env(stub: IssuerStub, keys: Keys) -> AsyncIterator[Env]:
    clock = FakeClock()
    made: list[TokenVerifier] = []
    default: list[TokenVerifier] = []

    def make(**settings: Any) -> TokenVerifier:
        if not settings and default:
            return default[0]
        options: dict[str, Any] = {"issuer_url": stub.issuer, "audience": AUDIENCE, **settings}
        verifier = TokenVerifier(VerifierSettings(**options), clock=clock)
        made.append(verifier)
        if not settings:
            default.append(verifier)
        return verifier

    yield Env(stub, clock, Minter(stub.issuer, clock), keys, make)
    for verifier in made:
        await verifier.aclose()


# ------------------------------------------------------------------------------ good tokens


@pytest.mark.parametrize("which", ["rsa1", "rsa_ps", "ec256", "ec384", "ed25519"])
async def test_good_token_for_each_algorithm(env: Env, which: str) -> None:
    signer: Signer = getattr(env.keys, which)
    principal = await env.verifier.verify(env.mint.token(signer))
    assert principal == Principal(
        subject="CgVhbGljZRIDc3No",
        email="alice@example.com",
        name="Alice Liddell",
        groups=(GROUP, "ops@example.com"),
        issuer=env.stub.issuer,
        expires_at=int(START) + 600,
    )


async def test_principal_keeps_no_token(env: Env) -> None:
    token = env.mint.token(env.keys.rsa1)
    principal = await env.verifier.verify(token)
    names = {field.name for field in dataclasses.fields(principal)}
    assert names == {"subject", "email", "name", "groups", "issuer", "expires_at"}
    assert token not in repr(principal)
    assert not hasattr(principal, "__dict__")  # slots: nothing can be attached later
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.subject = "mallory"  # type: ignore[misc]


async def test_audience_as_list(env: Env) -> None:
    token = env.mint.token(env.keys.rsa1, aud=["kubernetes", AUDIENCE])
    assert (await env.verifier.verify(token)).subject == "CgVhbGljZRIDc3No"
    other = env.mint.token(env.keys.rsa1, aud=["kubernetes", "https://other.example.com"])
    with pytest.raises(InvalidTokenError) as caught:
        await env.verifier.verify(other)
    assert caught.value.reason == "audience"


async def test_leeway_accepts_small_clock_skew(env: Env) -> None:
    now = int(START)
    claim_sets: list[dict[str, Any]] = [
        {"exp": now - 10},
        {"nbf": now + 10},
        {"iat": now + 10},
        {"exp": now - 29, "nbf": now + 29, "iat": now + 29},
    ]
    for claims in claim_sets:
        await env.verifier.verify(env.mint.token(env.keys.rsa1, **claims))
    strict = env.make(leeway=0.0)
    with pytest.raises(InvalidTokenError) as caught:
        await strict.verify(env.mint.token(env.keys.rsa1, exp=now))
    assert caught.value.reason == "expired"


# Only a JSON true verifies an address: strings in any casing ("False", "TRUE"), numbers,
# null, lists, objects and a missing claim all leave the email out of the principal.
NOT_TRUE: list[Any] = [
    False,
    *("false", "False", "FALSE", "fAlSe", " false", "false ", "0", "no", "off", ""),
    *("true", "True", "TRUE", "yes", "1"),
    0,
    1,
    0.0,
    1.0,
    None,
    [],
    [True],
    {},
    {"value": True},
    DROP,
]


@pytest.mark.parametrize(
    "flag", NOT_TRUE, ids=lambda flag: "missing" if flag is DROP else repr(flag)
)
async def test_only_a_json_true_email_verified_reports_the_email(env: Env, flag: Any) -> None:
    unverified = env.mint.token(env.keys.rsa1, email_verified=flag, name=DROP)
    principal = await env.verifier.verify(unverified)
    assert (principal.email, principal.subject) == (None, "CgVhbGljZRIDc3No")


async def test_a_verified_email_is_reported(env: Env) -> None:
    verified = env.mint.token(env.keys.rsa1, email_verified=True, name=DROP)
    principal = await env.verifier.verify(verified)
    assert (principal.email, principal.name) == ("alice@example.com", None)


async def test_empty_allowed_groups_admit_any_authenticated_caller(env: Env) -> None:
    anyone = env.make(allowed_groups=())
    assert (await anyone.verify(env.mint.token(env.keys.rsa1, groups=DROP))).groups == ()
    assert (await anyone.verify(env.mint.token(env.keys.rsa1, groups=["x"]))).groups == ("x",)
    with pytest.raises(InvalidTokenError) as caught:
        await anyone.verify(env.mint.token(env.keys.rsa1, groups="x"))
    assert caught.value.reason == "malformed"


async def test_custom_groups_claim(env: Env) -> None:
    verifier = env.make(groups_claim="roles", allowed_groups=("admins",))
    token = env.mint.token(env.keys.rsa1, roles=["admins"], groups=DROP)
    assert (await verifier.verify(token)).groups == ("admins",)
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify(env.mint.token(env.keys.rsa1))
    assert caught.value.reason == "groups_missing"


# ------------------------------------------------------------------------------ the battery


def _tamper_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    claims["groups"] = ["admins", GROUP]
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def _tamper_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(unb64(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64(bytes(raw))}"


def _hs256_with_public_pem(env: Env) -> str:
    pem = env.keys.rsa1.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps(env.mint.claims()).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


NOW = int(START)
BATTERY: dict[str, tuple[Callable[[Env], str], str]] = {
    "expired": (lambda e: e.mint.token(e.keys.rsa1, exp=NOW - 3600, iat=NOW - 4200), "expired"),
    "expired_past_leeway": (lambda e: e.mint.token(e.keys.rsa1, exp=NOW - 31), "expired"),
    "not_yet_valid": (lambda e: e.mint.token(e.keys.rsa1, nbf=NOW + 3600), "not_yet_valid"),
    "issued_in_future": (lambda e: e.mint.token(e.keys.rsa1, iat=NOW + 3600), "issued_in_future"),
    "wrong_issuer": (lambda e: e.mint.token(e.keys.rsa1, iss="https://evil.example"), "issuer"),
    "issuer_plus_slash": (lambda e: e.mint.token(e.keys.rsa1, iss=e.stub.issuer + "/"), "issuer"),
    "issuer_prefix": (lambda e: e.mint.token(e.keys.rsa1, iss=e.stub.issuer[:-1]), "issuer"),
    "missing_issuer": (lambda e: e.mint.token(e.keys.rsa1, iss=DROP), "issuer"),
    "wrong_audience": (lambda e: e.mint.token(e.keys.rsa1, aud="https://other"), "audience"),
    "missing_audience": (lambda e: e.mint.token(e.keys.rsa1, aud=DROP), "audience"),
    "alg_none": (lambda e: e.mint.raw({"alg": "none", "kid": "rsa-1"}), "algorithm"),
    "alg_None_case": (lambda e: e.mint.raw({"alg": "None", "kid": "rsa-1"}), "algorithm"),
    "hs256_public_key_as_secret": (_hs256_with_public_pem, "algorithm"),
    "alg_not_allowed_es512": (
        lambda e: e.mint.raw({"alg": "ES512", "kid": "ec-256"}, b"x" * 132),
        "algorithm",
    ),
    "alg_missing": (lambda e: e.mint.raw({"kid": "rsa-1"}, b"x" * 256), "algorithm"),
    "rsa_alg_on_ec_key": (lambda e: e.mint.token(e.keys.rsa1, kid="ec-256"), "algorithm"),
    "es256_on_p384_key": (lambda e: e.mint.token(e.keys.ec256, kid="ec-384"), "algorithm"),
    "eddsa_on_rsa_key": (lambda e: e.mint.token(e.keys.ed25519, kid="rsa-ps"), "algorithm"),
    "ps256_against_jwk_alg_rs256": (
        lambda e: e.mint.token(e.keys.rsa_ps, kid="rsa-1"),
        "algorithm",
    ),
    "unknown_kid": (lambda e: e.mint.token(e.keys.rsa2), "unknown_kid"),
    "no_kid": (lambda e: e.mint.raw({"alg": "RS256"}, b"x" * 256), "malformed"),
    "tampered_payload": (lambda e: _tamper_payload(e.mint.token(e.keys.rsa1)), "signature"),
    "tampered_signature": (lambda e: _tamper_signature(e.mint.token(e.keys.rsa1)), "signature"),
    "tampered_ec_signature": (lambda e: _tamper_signature(e.mint.token(e.keys.ec256)), "signature"),
    "tampered_eddsa_signature": (
        lambda e: _tamper_signature(e.mint.token(e.keys.ed25519)),
        "signature",
    ),
    "other_key_same_kid": (lambda e: e.mint.token(e.keys.rsa2, kid="rsa-1"), "signature"),
    "empty_signature": (lambda e: e.mint.token(e.keys.rsa1).rsplit(".", 1)[0] + ".", "signature"),
    "group_not_allowed": (
        lambda e: e.mint.token(e.keys.rsa1, groups=["ops@example.com"]),
        "group_not_allowed",
    ),
    "empty_groups": (lambda e: e.mint.token(e.keys.rsa1, groups=[]), "group_not_allowed"),
    "groups_missing": (lambda e: e.mint.token(e.keys.rsa1, groups=DROP), "groups_missing"),
    "groups_not_a_list": (lambda e: e.mint.token(e.keys.rsa1, groups=GROUP), "malformed"),
    "missing_exp": (lambda e: e.mint.token(e.keys.rsa1, exp=DROP), "malformed"),
    "exp_not_a_number": (lambda e: e.mint.token(e.keys.rsa1, exp="tomorrow"), "malformed"),
    "missing_sub": (lambda e: e.mint.token(e.keys.rsa1, sub=DROP), "malformed"),
    "empty_sub": (lambda e: e.mint.token(e.keys.rsa1, sub=""), "malformed"),
}
GARBAGE = {
    "empty": "",
    "one_segment": "abcdef",
    "two_segments": "abc.def",
    "four_segments": "a.b.c.d",
    "header_not_base64": "!!!!.e30.e30",
    "header_not_json": f"{b64(b'not json')}.e30.e30",
    "header_json_array": f"{b64(b'[1,2]')}.e30.e30",
    "huge": "a" * 20_000 + ".b.c",
}


def _assert_secret_kept(token: str, error: InvalidTokenError, log: str) -> None:
    message = f"{error} {error.message} {error.hint or ''}"
    for part in [segment for segment in [token, *token.split(".")] if len(segment) > 8]:
        assert part not in message
        assert part not in log


@pytest.mark.parametrize("case", sorted(BATTERY))
async def test_rejected_with_specific_reason(
    env: Env, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    build, reason = BATTERY[case]
    token = build(env)
    with pytest.raises(InvalidTokenError) as caught:
        await env.verifier.verify(token)
    assert caught.value.reason == reason, caught.value
    assert isinstance(caught.value, IdentityError)
    assert reason in REASONS
    _assert_secret_kept(token, caught.value, caplog.text)


@pytest.mark.parametrize("case", sorted(GARBAGE))
async def test_garbage_is_malformed(env: Env, case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = GARBAGE[case]
    with pytest.raises(InvalidTokenError) as caught:
        await env.verifier.verify(token)
    assert caught.value.reason == "malformed", caught.value
    _assert_secret_kept(token, caught.value, caplog.text)


async def test_rejections_before_key_use_need_no_issuer(env: Env) -> None:
    # Algorithm and shape checks come first: these never touch the network.
    for token in (
        env.mint.raw({"alg": "none", "kid": "rsa-1"}),
        _hs256_with_public_pem(env),
        GARBAGE["header_not_json"],
    ):
        with pytest.raises(InvalidTokenError):
            await env.verifier.verify(token)
    assert (env.stub.discovery_fetches, env.stub.jwks_fetches) == (0, 0)


# ------------------------------------------------------------------------------ caching


async def test_jwks_fetched_once_for_1000_verifications(env: Env) -> None:
    verifier = env.verifier
    tokens = [env.mint.token(env.keys.rsa1), env.mint.token(env.keys.ec256)]
    for n in range(1000):
        await verifier.verify(tokens[n % 2])
    assert (env.stub.discovery_fetches, env.stub.jwks_fetches) == (1, 1)
    assert (verifier.stats.discovery_fetches, verifier.stats.jwks_fetches) == (1, 1)
    assert env.stub.paths == [f"{PREFIX}/.well-known/openid-configuration", JWKS_PATH]


async def test_concurrent_first_verifications_share_one_fetch(env: Env) -> None:
    env.stub.delay = 0.2
    token = env.mint.token(env.keys.rsa1)
    results = await asyncio.gather(*(env.verifier.verify(token) for _ in range(50)))
    assert {p.subject for p in results} == {"CgVhbGljZRIDc3No"}
    assert (env.stub.discovery_fetches, env.stub.jwks_fetches) == (1, 1)


async def test_cancelled_fetch_leaves_waiters_to_fetch_themselves(env: Env) -> None:
    env.stub.delay = 0.3
    token = env.mint.token(env.keys.rsa1)
    first = asyncio.create_task(env.verifier.verify(token))
    # Once the stub sees the JWKS request, the first task holds the lock and awaits the answer.
    assert await asyncio.to_thread(env.stub.jwks_requested.wait, 5)
    second = asyncio.create_task(env.verifier.verify(token))
    await asyncio.sleep(0.05)
    first.cancel()
    assert (await second).subject == "CgVhbGljZRIDc3No"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (env.stub.discovery_fetches, env.stub.jwks_fetches) == (1, 2)


async def test_unknown_kid_flood_costs_at_most_one_refetch(env: Env) -> None:
    verifier = env.verifier
    await verifier.verify(env.mint.token(env.keys.rsa1))
    assert env.stub.jwks_fetches == 1
    for n in range(100):
        with pytest.raises(InvalidTokenError) as caught:
            await verifier.verify(env.mint.token(env.keys.rsa2, kid=f"made-up-{n}"))
        assert caught.value.reason == "unknown_kid"
    assert env.stub.jwks_fetches <= 2
    fetched = env.stub.jwks_fetches

    # Concurrently, too, and 20 s later (still inside min_refresh_interval).
    env.clock.now += 20
    bad = [env.mint.token(env.keys.rsa2, kid=f"other-{n}") for n in range(100)]
    outcomes = await asyncio.gather(*(verifier.verify(t) for t in bad), return_exceptions=True)
    assert {getattr(o, "reason", o) for o in outcomes} == {"unknown_kid"}
    assert env.stub.jwks_fetches == fetched
    assert env.stub.discovery_fetches == 1

    # Once the interval has passed, an unknown kid may look again, once.
    env.clock.now += 11
    outcomes = await asyncio.gather(*(verifier.verify(t) for t in bad), return_exceptions=True)
    assert {getattr(o, "reason", o) for o in outcomes} == {"unknown_kid"}
    assert env.stub.jwks_fetches == fetched + 1
    await verifier.verify(env.mint.token(env.keys.rsa1))  # good tokens were never affected


async def test_rotation_refetches_once_and_old_key_keeps_working(env: Env) -> None:
    verifier = env.verifier
    old = env.mint.token(env.keys.rsa1)
    await verifier.verify(old)
    env.stub.publish(env.keys.rsa1, env.keys.rsa2)  # Dex rotated: new signing key, old kept
    env.clock.now += 1  # right after the scheduled fetch: an early refresh is still allowed
    new = env.mint.token(env.keys.rsa2)
    assert (await verifier.verify(new)).subject == "CgVhbGljZRIDc3No"
    assert (env.stub.discovery_fetches, env.stub.jwks_fetches) == (1, 2)
    for _ in range(10):
        await verifier.verify(old)
        await verifier.verify(new)
    assert env.stub.jwks_fetches == 2

    env.stub.publish(env.keys.rsa2)  # the old key is retired
    env.clock.now += 300
    await verifier.verify(new)
    assert env.stub.jwks_fetches == 3
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify(old)
    assert caught.value.reason == "unknown_kid"


async def test_jwks_ttl_expiry_uses_the_clock(env: Env) -> None:
    verifier = env.verifier
    token = env.mint.token(env.keys.rsa1, exp=NOW + 3600)
    await verifier.verify(token)
    env.clock.now = START + 299.9
    await verifier.verify(token)
    assert env.stub.jwks_fetches == 1
    env.clock.now = START + 300
    await verifier.verify(token)
    assert (env.stub.discovery_fetches, env.stub.jwks_fetches) == (1, 2)
    env.clock.now = START + 599
    await verifier.verify(token)
    assert env.stub.jwks_fetches == 2
    env.clock.now = START - 20  # the clock stepped back before the fetch: do not trust it
    await verifier.verify(token)
    assert env.stub.jwks_fetches == 3


async def test_custom_ttl(env: Env) -> None:
    verifier = env.make(jwks_ttl=10.0)
    token = env.mint.token(env.keys.rsa1)
    await verifier.verify(token)
    env.clock.now += 10
    await verifier.verify(token)
    assert env.stub.jwks_fetches == 2


# ------------------------------------------------------------------------------ issuer trouble


async def _reason(verifier: TokenVerifier, token: str) -> InvalidTokenError:
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify(token)
    return caught.value


async def test_discovery_issuer_mismatch(env: Env) -> None:
    env.stub.discovery_issuer = "https://dex.example.com"
    error = await _reason(env.verifier, env.mint.token(env.keys.rsa1))
    assert error.reason == "issuer_unreachable"
    assert "names issuer 'https://dex.example.com'" in error.message
    assert env.stub.issuer in error.message
    assert "OIDC_ISSUER_URL" in (error.hint or "")
    assert env.stub.jwks_fetches == 0  # keys from an issuer we did not expect are never used


async def test_configured_trailing_slash_is_not_silently_accepted(env: Env) -> None:
    verifier = env.make(issuer_url=env.stub.issuer + "/")
    error = await _reason(verifier, env.mint.token(env.keys.rsa1))
    assert error.reason == "issuer_unreachable"
    # Discovery was asked at the right place (one slash), the mismatch is what failed.
    assert env.stub.paths == [f"{PREFIX}/.well-known/openid-configuration"]
    assert "names issuer" in error.message


async def test_issuer_down(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = env.make(issuer_url=f"http://127.0.0.1:{port}/dex")
    token = env.mint.token(env.keys.rsa1)
    error = await _reason(verifier, token)
    assert error.reason == "issuer_unreachable"
    assert f"127.0.0.1:{port}" in error.message
    _assert_secret_kept(token, error, caplog.text)
    assert verifier.stats.fetch_failures == 1


@pytest.mark.parametrize(
    "fault",
    [
        "http_500",
        "http_404_jwks",
        "jwks_not_json",
        "jwks_without_keys",
        "jwks_only_unusable",
        "no_jwks_uri",
    ],
)
async def test_issuer_faults_are_unreachable(env: Env, keys: Keys, fault: str) -> None:
    stub = env.stub
    if fault == "http_500":
        stub.fail_status = 500
    elif fault == "http_404_jwks":
        stub.discovery_extra = {"jwks_uri": f"{stub.base}/nowhere"}
    elif fault == "jwks_not_json":
        stub.jwks_body = b"<html>oops</html>"
    elif fault == "jwks_without_keys":
        stub.jwks_body = b'{"items": []}'
    elif fault == "jwks_only_unusable":
        stub.keys = [
            {"kty": "oct", "kid": "rsa-1", "k": b64(b"secret" * 8)},
            {**keys.rsa1.jwk, "use": "enc"},
        ]
    elif fault == "no_jwks_uri":
        stub.discovery_extra = {"jwks_uri": None}
    error = await _reason(env.verifier, env.mint.token(keys.rsa1))
    assert error.reason == "issuer_unreachable", error


async def test_plain_http_jwks_uri_refused_for_https_issuer(env: Env) -> None:
    issuer = "https://dex.example.com"
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, json={"issuer": issuer, "jwks_uri": f"{env.stub.base}{JWKS_PATH}"}
        )
    )
    async with (
        httpx.AsyncClient(transport=transport) as http,
        TokenVerifier(
            VerifierSettings(issuer_url=issuer, audience=AUDIENCE), http=http, clock=env.clock
        ) as verifier,
    ):
        error = await _reason(verifier, env.mint.token(env.keys.rsa1, iss=issuer))
    assert error.reason == "issuer_unreachable"
    assert "plain-http jwks_uri" in error.message
    assert env.stub.jwks_fetches == 0


async def test_down_issuer_is_not_hammered_and_recovery(env: Env) -> None:
    verifier = env.verifier
    token = env.mint.token(env.keys.rsa1)
    env.stub.fail_status = 503
    for _ in range(50):
        assert (await _reason(verifier, token)).reason == "issuer_unreachable"
    assert env.stub.discovery_fetches == 1
    env.stub.fail_status = None
    env.clock.now += 29
    assert (await _reason(verifier, token)).reason == "issuer_unreachable"
    env.clock.now += 1
    assert (await verifier.verify(token)).subject == "CgVhbGljZRIDc3No"
    assert (env.stub.discovery_fetches, env.stub.jwks_fetches) == (2, 1)


async def test_stale_keys_serve_while_issuer_is_down(env: Env) -> None:
    verifier = env.verifier
    token = env.mint.token(env.keys.rsa1, exp=NOW + 3600)
    await verifier.verify(token)
    env.stub.fail_status = 503
    env.clock.now += 301
    # The last keys the issuer vouched for stay in use rather than failing every request.
    await verifier.verify(token)
    assert verifier.stats.fetch_failures == 1
    for _ in range(20):
        await verifier.verify(token)
    assert env.stub.jwks_fetches == 2  # one failed attempt, then the back-off holds
    error = await _reason(verifier, env.mint.token(env.keys.rsa2))
    assert error.reason == "issuer_unreachable"  # an unknown kid cannot be looked up now
    env.stub.fail_status = None
    env.clock.now += 30
    assert (await _reason(verifier, env.mint.token(env.keys.rsa2))).reason == "unknown_kid"
    assert verifier.stats.jwks_fetches == 3


async def test_unusable_keys_in_the_set_are_skipped(env: Env, keys: Keys) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_signer = _signer("weak", "RS256", weak, RSAAlgorithm.to_jwk, None)
    private_jwk = json.loads(RSAAlgorithm.to_jwk(keys.rsa2.private))
    secret = b"0123456789abcdef0123456789abcdef"
    env.stub.keys = [
        keys.rsa1.jwk,
        {"kty": "oct", "kid": "hmac", "k": b64(secret), "alg": "HS256"},
        {**keys.rsa2.jwk, "kid": "enc", "use": "enc"},
        {**private_jwk, "kid": "leaked"},
        {**keys.rsa2.jwk, "kid": "rsa-as-hs", "alg": "HS256"},
        {**keys.rsa2.jwk, "kid": "rsa-as-es", "alg": "ES256"},
        weak_signer.jwk,
        {"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "!!"},
        "not an object",
    ]
    verifier = env.verifier
    await verifier.verify(env.mint.token(keys.rsa1))
    hs = jwt.encode(env.mint.claims(), secret, algorithm="HS256", headers={"kid": "hmac"})
    assert (await _reason(verifier, hs)).reason == "algorithm"
    for kid in ("hmac", "enc", "leaked", "rsa-as-hs", "rsa-as-es", "broken"):
        error = await _reason(verifier, env.mint.token(keys.rsa2, kid=kid))
        assert error.reason == "unknown_kid", (kid, error)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the point of this key
        weak_token = env.mint.token(weak_signer)
    assert (await _reason(verifier, weak_token)).reason == "unknown_kid"


# ------------------------------------------------------------------------------ lifecycle


async def test_own_client_closed_given_client_left_open(stub: IssuerStub, keys: Keys) -> None:
    settings = VerifierSettings(issuer_url=stub.issuer, audience=AUDIENCE)
    async with TokenVerifier(settings) as verifier:
        token = Minter(stub.issuer, FakeClock(time.time())).token(keys.rsa1)
        assert (await verifier.verify(token)).email == "alice@example.com"
    assert verifier._http.is_closed

    async with httpx.AsyncClient() as http:
        async with TokenVerifier(settings, http=http) as verifier:
            await verifier.verify(token)
        assert not http.is_closed
        assert stub.discovery_fetches == 2  # each verifier has its own cache


# ------------------------------------------------------------------------------ settings


def test_from_environment_defaults() -> None:
    settings = VerifierSettings.from_environment(
        {"OIDC_ISSUER_URL": "https://dex.example.com", "OIDC_AUDIENCE": AUDIENCE}
    )
    assert settings == VerifierSettings(
        issuer_url="https://dex.example.com",
        audience=AUDIENCE,
        allowed_groups=("engineering@example.com",),
        groups_claim="groups",
        leeway=30.0,
        jwks_ttl=300.0,
        min_refresh_interval=30.0,
    )
    assert DEFAULT_ALLOWED_GROUPS == ("engineering@example.com",)


def test_from_environment_everything() -> None:
    settings = VerifierSettings.from_environment(
        {
            "OIDC_ISSUER_URL": " https://idp.example.com/dex/ ",
            "OIDC_AUDIENCE": "imgctl",
            "OIDC_ALLOWED_GROUPS": " engineering@example.com, ops@example.com,,ops@example.com ",
            "OIDC_GROUPS_CLAIM": "roles",
            "OIDC_LEEWAY": "5.5",
        }
    )
    assert settings.issuer_url == "https://idp.example.com/dex/"  # kept exactly: iss must match
    assert settings.allowed_groups == ("engineering@example.com", "ops@example.com")
    assert (settings.groups_claim, settings.leeway) == ("roles", 5.5)


@pytest.mark.parametrize(
    ("raw", "groups"),
    [("", DEFAULT_ALLOWED_GROUPS), ("   ", DEFAULT_ALLOWED_GROUPS), ("*", ()), (" * ", ())],
)
def test_from_environment_allowed_groups(raw: str, groups: tuple[str, ...]) -> None:
    environ = {"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": "a", "OIDC_ALLOWED_GROUPS": raw}
    assert VerifierSettings.from_environment(environ).allowed_groups == groups


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OIDC_AUDIENCE": "a"}, "OIDC_ISSUER_URL"),
        ({"OIDC_ISSUER_URL": "  ", "OIDC_AUDIENCE": "a"}, "OIDC_ISSUER_URL"),
        ({"OIDC_ISSUER_URL": "dex.example.com", "OIDC_AUDIENCE": "a"}, "OIDC_ISSUER_URL"),
        ({"OIDC_ISSUER_URL": "ftp://dex.example.com", "OIDC_AUDIENCE": "a"}, "OIDC_ISSUER_URL"),
        ({"OIDC_ISSUER_URL": "https://dex?x=1", "OIDC_AUDIENCE": "a"}, "OIDC_ISSUER_URL"),
        ({"OIDC_ISSUER_URL": "https://dex"}, "OIDC_AUDIENCE"),
        ({"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": ""}, "OIDC_AUDIENCE"),
        (
            {"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": "a", "OIDC_ALLOWED_GROUPS": ",,"},
            "OIDC_ALLOWED_GROUPS",
        ),
        (
            {"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": "a", "OIDC_ALLOWED_GROUPS": "*,x"},
            "OIDC_ALLOWED_GROUPS",
        ),
        (
            {"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": "a", "OIDC_LEEWAY": "soon"},
            "OIDC_LEEWAY",
        ),
        (
            {"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": "a", "OIDC_LEEWAY": "-1"},
            "OIDC_LEEWAY",
        ),
        (
            {"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": "a", "OIDC_LEEWAY": "nan"},
            "OIDC_LEEWAY",
        ),
        (
            {"OIDC_ISSUER_URL": "https://dex", "OIDC_AUDIENCE": "a", "OIDC_LEEWAY": "3600"},
            "OIDC_LEEWAY",
        ),
    ],
)
def test_from_environment_errors_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(UsageError) as caught:
        VerifierSettings.from_environment(environ)
    assert variable in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"allowed_groups": "engineering@example.com"},
        {"allowed_groups": ["engineering@example.com"]},
        {"allowed_groups": ("",)},
        {"audience": ""},
        {"issuer_url": "not a url"},
        {"groups_claim": ""},
        {"leeway": -1.0},
        {"jwks_ttl": 0.0},
        {"min_refresh_interval": float("inf")},
    ],
)
def test_settings_are_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        VerifierSettings(**{"issuer_url": "https://dex", "audience": "a", **overrides})
