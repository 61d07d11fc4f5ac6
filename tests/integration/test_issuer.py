"""The built-in issuer: config, signing keys, Dex-compatible token exchange and its checks."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from imgctl.errors import OAuthError, UsageError
from imgctl.identity._oauth import GRANT_TOKEN_EXCHANGE, TYPE_ACCESS_TOKEN, TYPE_ID_TOKEN
from imgctl.identity.issuer import (
    IssuerService,
    KeyStore,
    dex_subject,
    load_issuer_config,
)
from imgctl.identity.sshjwt import SSHKey, build_claims, load_key_file, sign_jwt

from ..support.sshkeys import Key, keygen

ISSUER = "https://dex.example.com"
AUDIENCE = "https://imgctl.example.com"
SECRET = "client-secret-for-tests"
VECTOR_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
VECTOR_JWT = (
    "eyJhbGciOiJTU0giLCJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsImV4cCI6NDEw"
    "MjQ0NDgwMCwiaWF0IjoxNzAwMDAwMDAwLCJpc3MiOiJrdWJlY3RsLXNzaC1vaWRjIiwianRpIjoiMDAxMTIyMzM0NDU1"
    "NjY3Nzg4OTlhYWJiY2NkZGVlZmYiLCJuYmYiOjE3MDAwMDAwMDAsInN1YiI6ImFsaWNlIiwidGFyZ2V0X2F1ZGllbmNl"
    "Ijoia3ViZWN0bCJ9.RlZlTkJHT09hOWhXS1hIeUozRlpKdXdyZzdtRHlNZlc1STl3aVY0a0NHNkllWXM4TGRLdUwwWXE"
    "wUnBGakVZVGg3eXJvSjdzSnFoQnZLNXBiMFg2Q0E9PQ"
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_config(path: Path, users: dict[str, dict[str, Any]], **extra: Any) -> Path:
    document: dict[str, Any] = {
        "staticClients": [{"id": "imgctl", "secret": SECRET, "name": "imgctl"}],
        "users": users,
        "allowed_issuers": ["kubectl-ssh-oidc"],
        "allowed_target_audiences": [AUDIENCE, "kubectl"],
        "default_groups": ["everyone"],
        **extra,
    }
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Key]:
    return {
        "alice": keygen(tmp_path / "alice", "ed25519"),
        "bob": keygen(tmp_path / "bob", "ecdsa256"),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, keys: dict[str, Key], clock: Clock) -> IssuerService:
    config = load_issuer_config(
        write_config(
            tmp_path / "idp.yaml",
            {
                "alice": {
                    "keys": [keys["alice"].line],
                    "email": "alice@example.com",
                    "name": "Alice",
                    "groups": ["engineering@example.com"],
                },
                "bob": {"keys": [keys["bob"].line], "groups": ["ops@example.com"]},
            },
        )
    )
    store = KeyStore(config.keys_dir, token_ttl=config.token_ttl, clock=clock)
    store.load()
    return IssuerService(config, store, ISSUER, clock=clock)


async def ssh_jwt(key: Key, clock: Clock, **overrides: Any) -> str:
    signer: SSHKey = load_key_file(key.private)
    claims = build_claims(
        username=overrides.pop("username", "alice"),
        issuer_url=ISSUER,
        target_audience=AUDIENCE,
        now=int(clock.now),
    )
    drop = overrides.pop("drop", ())
    claims.update(overrides)
    for name in drop:
        del claims[name]
    return await sign_jwt(signer, claims)


def form(subject_token: str, /, **extra: str) -> dict[str, str]:
    return {
        "grant_type": GRANT_TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": TYPE_ACCESS_TOKEN,
        "requested_token_type": TYPE_ID_TOKEN,
        "scope": "openid email groups profile",
        "connector_id": "ssh",
        "audience": AUDIENCE,
        "client_id": "imgctl",
        "client_secret": SECRET,
        **extra,
    }


# ----------------------------------------------------------------- the INTEROP test vector


async def test_the_interop_vector_verifies_but_its_76_year_lifetime_is_refused(
    tmp_path: Path,
) -> None:
    config = load_issuer_config(
        write_config(tmp_path / "idp.yaml", {"alice": {"keys": [VECTOR_PUBLIC]}})
    )
    clock = Clock(1_700_000_000)  # the vector's iat
    store = KeyStore(config.keys_dir, token_ttl=3600, clock=clock)
    store.load()
    service = IssuerService(config, store, ISSUER, clock=clock)
    # Dex's connector accepts it (exp in 2100); its signature verifies here too, and then the
    # lifetime check refuses it: a JWT valid for 76 years is a bearer credential, not a login.
    with pytest.raises(OAuthError) as caught:
        await service.token(form(VECTOR_JWT, audience="kubectl"), None)
    assert caught.value.error == "access_denied"
    assert "lifetime" in caught.value.description
    assert "2402444800 s" in caught.value.description  # exp - iat: the lifetime it asks for


async def test_the_interop_vector_shape_within_the_lifetime_is_accepted_once(
    tmp_path: Path,
) -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    path = tmp_path / "vector"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    config = load_issuer_config(
        write_config(tmp_path / "idp.yaml", {"alice": {"keys": [VECTOR_PUBLIC]}})
    )
    clock = Clock(1_700_000_000)
    store = KeyStore(config.keys_dir, token_ttl=3600, clock=clock)
    store.load()
    service = IssuerService(config, store, ISSUER, clock=clock)
    payload = json.loads(base64.urlsafe_b64decode(VECTOR_JWT.split(".")[1] + "=="))
    payload["exp"] = payload["iat"] + 300  # what kubectl-ssh-oidc signs
    token = await sign_jwt(load_key_file(path), payload)
    answer = await service.token(form(token, audience="kubectl"), None)
    claims = jwt.decode(
        answer["access_token"],
        store.signing_key().private_key.public_key(),
        algorithms=["RS256"],
        audience="kubectl",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == dex_subject("alice", "ssh")
    assert answer["issued_token_type"] == TYPE_ID_TOKEN
    with pytest.raises(OAuthError) as replay:  # its jti is now spent
        await service.token(form(token, audience="kubectl"), None)
    assert "replay" in replay.value.description


def test_our_vector_key_signs_the_vector(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    path = tmp_path / "vector"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    payload = json.loads(base64.urlsafe_b64decode(VECTOR_JWT.split(".")[1] + "=="))
    import asyncio

    assert asyncio.run(sign_jwt(load_key_file(path), payload)) == VECTOR_JWT


# ----------------------------------------------------------------- token exchange


async def test_exchange_issues_dex_shaped_token(
    service: IssuerService, keys: dict[str, Key], clock: Clock
) -> None:
    answer = await service.token(form(await ssh_jwt(keys["alice"], clock)), None)
    assert answer["token_type"] == "bearer"
    assert answer["expires_in"] == 3600
    token = answer["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] in {k["kid"] for k in service.jwks()["keys"]}
    claims = jwt.decode(
        token,
        service.keys.signing_key().private_key.public_key(),
        algorithms=["RS256"],
        audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "iss": ISSUER,
        "sub": dex_subject("alice", "ssh"),
        "aud": AUDIENCE,
        "exp": int(clock.now) + 3600,
        "iat": int(clock.now),
        "email": "alice@example.com",
        "email_verified": True,
        "groups": ["engineering@example.com", "everyone"],
        "name": "Alice",
    }


def test_dex_subject_matches_dex_encoding() -> None:
    # Dex: base64url(proto{1: "alice", 2: "ssh"}) without padding.
    assert dex_subject("alice", "ssh") == "CgVhbGljZRIDc3No"


async def test_scopes_decide_the_claims(
    service: IssuerService, keys: dict[str, Key], clock: Clock
) -> None:
    answer = await service.token(form(await ssh_jwt(keys["alice"], clock), scope="openid"), None)
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert "groups" not in claims
    assert "email" not in claims


async def test_client_may_authenticate_with_basic(
    service: IssuerService, keys: dict[str, Key], clock: Clock
) -> None:
    request = form(await ssh_jwt(keys["alice"], clock))
    del request["client_id"], request["client_secret"]
    basic = "Basic " + base64.b64encode(f"imgctl:{SECRET}".encode()).decode()
    assert (await service.token(request, basic))["access_token"]


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"connector_id": "github"}, 400, "invalid_request"),
        ({"subject_token_type": "urn:x:saml"}, 400, "request_not_supported"),
        ({"requested_token_type": "urn:x:saml"}, 400, "invalid_request"),
        ({"subject_token": ""}, 400, "invalid_request"),
        ({"audience": "https://other.example.com"}, 401, "access_denied"),
    ],
)
async def test_request_errors_have_dex_status_and_code(
    service: IssuerService,
    keys: dict[str, Key],
    clock: Clock,
    change: dict[str, str],
    status: int,
    error: str,
) -> None:
    with pytest.raises(OAuthError) as caught:
        await service.token(form(await ssh_jwt(keys["alice"], clock), **change), None)
    assert (caught.value.status, caught.value.error) == (status, error)
    assert SECRET not in caught.value.description


# ----------------------------------------------------------------- SSH JWT checks


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"exp": 1_800_000_000 - 31}, "expired"),
        ({"nbf": 1_800_000_000 + 31}, "not valid yet"),
        ({"aud": "https://evil.example.com"}, "aud must be"),
        ({"aud": [ISSUER]}, "aud must be a non-empty string"),
        ({"target_audience": "https://other.example.com"}, "target_audience is not allowed"),
        ({"target_audience": None}, "target_audience is required"),
        ({"iss": "someone-else"}, "iss is not an allowed issuer"),
        ({"sub": "bob"}, "sub is not the user whose key signed"),
        ({"jti": None}, "jti is required"),
        ({"jti": 12345}, "jti is required"),
        ({"jti": "j" * 257}, "jti is longer than 256 characters"),
        ({"exp": None}, "exp is required"),
    ],
)
async def test_bad_ssh_jwts_are_denied_with_their_reason(
    service: IssuerService,
    keys: dict[str, Key],
    clock: Clock,
    overrides: dict[str, Any],
    why: str,
) -> None:
    token = await ssh_jwt(keys["alice"], clock, **overrides)
    request = form(token)
    if "target_audience" in overrides:
        del request["audience"]  # the form audience check would answer first
    with pytest.raises(OAuthError) as caught:
        await service.token(request, None)
    assert caught.value.error == "access_denied"
    assert why in caught.value.description


async def test_clock_skew_is_tolerated(
    service: IssuerService, keys: dict[str, Key], clock: Clock
) -> None:
    now = int(clock.now)
    late = await ssh_jwt(keys["alice"], clock, iat=now - 250, nbf=now - 250, exp=now - 20)
    early = await ssh_jwt(keys["alice"], clock, iat=now + 20, nbf=now + 20, exp=now + 320)
    assert (await service.token(form(late), None))["access_token"]
    assert (await service.token(form(early), None))["access_token"]


NOW = 1_800_000_000  # the clock fixture's time
YEAR = 365 * 24 * 3600


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iat": NOW, "exp": NOW + 301}, "lifetime of 301 s is longer than 300 s"),
        ({"iat": NOW, "exp": NOW + 10 * YEAR}, f"lifetime of {10 * YEAR} s"),
        ({"iat": NOW - 1000, "nbf": NOW - 1000, "exp": NOW + 200}, "lifetime of 1200 s"),
        ({"iat": None}, "claim iat is required"),
        ({"iat": "yesterday"}, "claim iat must be a number"),
        ({"iat": True}, "claim iat must be a number"),
        ({"iat": NOW + 3600, "nbf": NOW, "exp": NOW + 3900}, "iat is in the future"),
        ({"iat": NOW + 10 * YEAR, "nbf": NOW, "exp": NOW + 10 * YEAR + 60}, "iat is in the future"),
        ({"iat": NOW, "exp": NOW - 10}, "exp is before iat"),
        ({"iat": NOW, "exp": 10**400}, "claim exp is out of range"),
        ({"iat": -(10**400), "exp": NOW + 60}, "claim iat is out of range"),
        ({"iat": NOW, "nbf": -(10**400), "exp": NOW + 60}, "claim nbf is out of range"),
    ],
)
async def test_ssh_jwts_living_longer_than_the_maximum_are_denied(
    service: IssuerService,
    keys: dict[str, Key],
    clock: Clock,
    claims: dict[str, Any],
    why: str,
) -> None:
    token = await ssh_jwt(keys["alice"], clock, **claims)
    with pytest.raises(OAuthError) as caught:
        await service.token(form(token), None)
    assert caught.value.error == "access_denied"
    assert why in caught.value.description


async def test_a_missing_iat_is_denied(
    service: IssuerService, keys: dict[str, Key], clock: Clock
) -> None:
    token = await ssh_jwt(keys["alice"], clock, drop=("iat",))
    with pytest.raises(OAuthError, match="claim iat is required"):
        await service.token(form(token), None)


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": NOW, "exp": NOW + 300},  # what kubectl-ssh-oidc and imgctl sign
        {"iat": NOW + 25, "nbf": NOW + 25, "exp": NOW + 325},  # a client clock 25 s ahead
        {"iat": NOW - 250, "nbf": NOW - 250, "exp": NOW + 50},  # signed a while ago
    ],
)
async def test_ssh_jwts_within_the_maximum_are_accepted(
    service: IssuerService, keys: dict[str, Key], clock: Clock, claims: dict[str, Any]
) -> None:
    token = await ssh_jwt(keys["alice"], clock, **claims)
    assert (await service.token(form(token), None))["access_token"]


async def test_key_of_another_user_or_unknown_key_is_denied(
    service: IssuerService, keys: dict[str, Key], clock: Clock, tmp_path: Path
) -> None:
    with pytest.raises(OAuthError, match="sub is not the user"):
        await service.token(form(await ssh_jwt(keys["bob"], clock, username="alice")), None)
    stranger = keygen(tmp_path / "stranger", "ed25519")
    with pytest.raises(OAuthError, match="no configured key verifies"):
        await service.token(form(await ssh_jwt(stranger, clock)), None)
    token = await ssh_jwt(keys["alice"], clock)
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "bob"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(OAuthError, match="no configured key verifies"):
        await service.token(form(f"{head}.{forged}.{signature}"), None)


async def test_replayed_ssh_jwt_is_denied(
    service: IssuerService, keys: dict[str, Key], clock: Clock
) -> None:
    token = await ssh_jwt(keys["alice"], clock)
    await service.token(form(token), None)
    with pytest.raises(OAuthError, match="already used"):
        await service.token(form(token), None)


# ----------------------------------------------------------------- signing keys


def test_keys_are_private_and_rotate(tmp_path: Path) -> None:
    clock = Clock()
    store = KeyStore(tmp_path / "keys", token_ttl=600, clock_skew=30, clock=clock)
    store.load()
    first = store.signing_key()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    for path in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Another process (imgctl idp rotate-key) rotates; the running store notices.
    other = KeyStore(tmp_path / "keys", token_ttl=600, clock_skew=30, clock=clock)
    clock.now += 1
    second = other.rotate()
    assert store.signing_key().kid == second.kid != first.kid
    assert {k.kid for k in store.published()} == {first.kid, second.kid}
    # Once every token the first key signed has expired, the next rotation deletes it.
    clock.now += 631
    third = other.rotate()
    assert {k.kid for k in store.published()} == {second.kid, third.kid}
    assert not (tmp_path / "keys" / f"{first.kid}.pem").exists()


def test_damaged_keys_are_a_clear_error(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", token_ttl=600)
    store.load()
    (tmp_path / "keys" / "keys.json").write_text("{")
    with pytest.raises(UsageError, match="damaged"):
        KeyStore(tmp_path / "keys", token_ttl=600).load()


# ----------------------------------------------------------------- config


def test_dex_shaped_config_ports_both_ways(tmp_path: Path, keys: dict[str, Key]) -> None:
    dex = {
        "issuer": ISSUER,
        "storage": {"type": "memory"},
        "web": {"http": "0.0.0.0:5556"},
        "staticClients": [{"id": "imgctl", "secret": SECRET, "name": "imgctl"}],
        "connectors": [
            {
                "type": "ssh",
                "id": "ssh",
                "name": "SSH",
                "config": {
                    "users": {"alice": {"keys": [keys["alice"].line], "groups": ["g"]}},
                    "dex_instance_id": ISSUER,
                },
            },
        ],
    }
    path = tmp_path / "dex.yaml"
    path.write_text(json.dumps(dex))
    config = load_issuer_config(path)
    assert config.issuer == ISSUER
    assert config.users["alice"].groups == ("g",)
    assert config.keys_dir == (tmp_path / "idp-keys").resolve()
    assert "secret" not in repr(config.clients["imgctl"])


# A well-formed key line: the tests below are about the other fields.
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINSJC8qeQCYs/yrxpcc57KyF03Iaclnu+J+rQax/u/Ke a"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"users": {"a": {"keys": [KEY]}}}, "no staticClients"),
        ({"staticClients": [{"id": "c"}]}, "lists no users"),
        ({"staticClients": [{"id": "c"}], "users": {"a": {}}}, "users.a has no keys"),
        ({"staticClients": [{"id": "c"}], "users": {"a": {"keys": "x"}}}, "list of strings"),
        (
            {"staticClients": [{"id": "c"}], "users": {"a": {"keys": [KEY], "group": []}}},
            "unknown key(s) group (line 1) (did you mean 'groups'?)",
        ),
        (
            {"staticClients": [{"id": "c"}], "users": {"a": {"keys": [KEY]}}, "token_ttl": -1},
            "token_ttl",
        ),
        ({"connectors": [{"type": "github"}]}, "exactly one connector of type ssh"),
        # Key lines are checked when the file loads, not at the first login.
        ({"staticClients": [{"id": "c"}], "users": {"a": {"keys": ["x"]}}}, "users.a.keys[0]"),
        (
            {"staticClients": [{"id": "c"}], "users": {"a": {"keys": [KEY, KEY[:-30]]}}},
            "users.a.keys[1]: the ssh-ed25519 key data",
        ),
        (
            {
                "staticClients": [{"id": "c"}],
                "users": {"a": {"keys": ["ssh-dss AAAAB3NzaC1kc3M="]}},
            },
            "users.a.keys[0]: ssh-dss keys cannot sign",
        ),
        # A secret of digits, unquoted, is a number: say to quote it, never what it was.
        (
            {"staticClients": [{"id": "c", "secret": 40961}], "users": {"a": {"keys": [KEY]}}},
            "secret must be a string, not a number; put it in quotes in the YAML",
        ),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, document: dict[str, Any], message: str) -> None:
    path = tmp_path / "idp.yaml"
    path.write_text(json.dumps(document))
    with pytest.raises(UsageError) as caught:
        load_issuer_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "40961" not in str(caught.value)
