"""Admission can demand signatures (issue 18 item 8), against real registries.

Images are pushed to docker-registry with skopeo and signed with ``imgctl.trust.sign_image``;
the webhook reads them through a FaultProxy, which counts every registry request and can take
the registry down. Decisions are made by the real ASGI app over a real CatalogStore, by
``imgctl catalog serve --require-signature`` and by ``imgctl server --require-signature``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from imgctl.catalog import admission
from imgctl.catalog.admission import AdmissionWebhook, Exemptions
from imgctl.catalog.signatures import SignatureRule, load_signature_rule
from imgctl.oci.reference import Reference
from imgctl.remote import ClientOptions, RegistryClient
from imgctl.store import CatalogStore
from imgctl.trust import load_public_key, load_signer, sign_image

from ..conftest import IMGCTL, PushedImage
from ..support.catalog import catalog_server
from ..support.deployment import stop_process, wait_http
from ..support.proxy import FaultProxy
from ..support.registry import Registry, free_port

ENV = "prod"
FAST = ClientOptions(retries=1, backoff=0.01, max_backoff=0.05, proxies={})


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def write_key_pair(directory: Path, name: str) -> KeyPair:
    """A plain PEM ECDSA P-256 pair, as `openssl ecparam -genkey` would write it."""
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    directory = tmp_path / "keys"
    directory.mkdir()
    return {name: write_key_pair(directory, name) for name in ("trusted", "other")}


@pytest.fixture
def proxy(registry: Registry, proxy_for: Callable[[Registry], FaultProxy]) -> FaultProxy:
    return proxy_for(registry)


@dataclass
class Image:
    """A pushed image as the cluster names it (through the proxy)."""

    name: str  # canonical HOST/REPO, the catalog's name
    tag: str
    digest: str

    @property
    def by_tag(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def by_digest(self) -> str:
        return f"{self.name}@{self.digest}"


@pytest.fixture
def image(
    registry: Registry, proxy: FaultProxy, push_image: Callable[..., PushedImage]
) -> Callable[[], Image]:
    def make() -> Image:
        pushed = push_image(registry, platforms=None, layers=1, layer_size=512, tag="v1")
        repository = pushed.ref.split("/", 1)[1].rsplit(":", 1)[0]
        return Image(f"{proxy.host}/{repository}", "v1", pushed.digest)

    return make


async def sign(image: Image, key: KeyPair) -> None:
    async with RegistryClient(options=FAST) as client:
        outcome = await sign_image(
            client, Reference.parse(image.by_digest), load_signer(str(key.private))
        )
    assert outcome.status == "signed"


def review(*images: str, name: str = "pod") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"uid-{name}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "apps",
            "object": {
                "spec": {
                    "containers": [
                        {"name": f"c{i}", "image": image} for i, image in enumerate(images)
                    ]
                }
            },
        },
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CatalogStore]:
    catalog = await CatalogStore.open(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        yield catalog
    finally:
        await catalog.aclose()


async def promote(store: CatalogStore, image: Image, environment: str = ENV) -> None:
    await store.put(image.digest, image.name, [image.tag], environment=environment)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Webhook:
    http: httpx.AsyncClient
    rule: SignatureRule | None

    async def decide(self, *images: str, environment: str = ENV) -> dict[str, Any]:
        answer = await self.http.post(f"/admission/{environment}", json=review(*images))
        assert answer.status_code == 200, answer.text
        response: dict[str, Any] = answer.json()["response"]
        return response


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def webhook_for(store: CatalogStore, clock: Clock) -> AsyncIterator[Callable[..., Webhook]]:
    """The webhook over the store, with a signature rule of the given keys per environment."""
    made: list[Webhook] = []

    def make(rule_keys: dict[str, list[KeyPair]] | None, **options: Any) -> Webhook:
        rule = None
        if rule_keys is not None:
            keys = {
                environment: tuple(load_public_key(str(pair.public)) for pair in pairs)
                for environment, pairs in rule_keys.items()
            }
            rule = SignatureRule(keys, RegistryClient(options=FAST), clock=clock, **options)
        app = AdmissionWebhook(FastAPI(), store.promoted, Exemptions(), store.known, rule)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append(Webhook(http, rule))
        return made[-1]

    yield make
    for webhook in made:
        await webhook.http.aclose()
        if webhook.rule is not None:
            await webhook.rule.aclose()


def message(response: dict[str, Any]) -> str:
    text: str = response.get("status", {}).get("message", "")
    return text


# --- decisions ------------------------------------------------------------------------------


async def test_signed_and_promoted_is_allowed_by_digest_and_by_tag(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    signed = image()
    await promote(store, signed)
    await sign(signed, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]})
    proxy.log.clear()
    response = await webhook.decide(signed.by_digest, signed.by_tag)
    assert response["allowed"] is True, response
    sig_path = f"/v2/{signed.name.split('/', 1)[1]}/manifests/{signed.digest.replace(':', '-')}.sig"
    assert ("GET", sig_path, 200) in proxy.log  # it was verified, not just looked up


async def test_promoted_but_unsigned_is_denied_naming_image_key_and_reason(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
) -> None:
    unsigned = image()
    await promote(store, unsigned)
    webhook = webhook_for({ENV: [keys["trusted"]]})
    response = await webhook.decide(unsigned.by_digest)
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert message(response) == (
        f"imgctl denied 1 image(s) in {ENV}: spec.containers[0].image '{unsigned.by_digest}': "
        f"no valid signature by key {keys['trusted'].public}: no signatures"
    )
    # By tag, the digest the tag resolved to is named.
    response = await webhook.decide(unsigned.by_tag)
    assert response["allowed"] is False
    assert (
        f"'{unsigned.by_tag}': no valid signature by key {keys['trusted'].public} on "
        f"{unsigned.digest}: no signatures"
    ) in message(response)


async def test_signed_by_another_key_is_denied(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
) -> None:
    elsewhere = image()
    await promote(store, elsewhere)
    await sign(elsewhere, keys["other"])
    webhook = webhook_for({ENV: [keys["trusted"]]})
    response = await webhook.decide(elsewhere.by_digest)
    assert response["allowed"] is False
    assert message(response).endswith(
        f"'{elsewhere.by_digest}': no valid signature by key {keys['trusted'].public}: "
        "signed by another key"
    ), message(response)
    # Either of two keys is enough.
    both = webhook_for({ENV: [keys["trusted"], keys["other"]]})
    assert (await both.decide(elsewhere.by_digest))["allowed"] is True


async def test_only_promoted_images_are_verified(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    signed_but_not_promoted, promoted_unsigned = image(), image()
    await sign(signed_but_not_promoted, keys["trusted"])
    await promote(store, promoted_unsigned)
    webhook = webhook_for({ENV: [keys["trusted"]]})
    proxy.log.clear()
    response = await webhook.decide(signed_but_not_promoted.by_digest, promoted_unsigned.by_digest)
    assert response["allowed"] is False
    assert message(response) == (
        f"imgctl denied 2 image(s) in {ENV}: spec.containers[0].image "
        f"'{signed_but_not_promoted.by_digest}': not promoted to {ENV}; "
        f"spec.containers[1].image '{promoted_unsigned.by_digest}': no valid signature by key "
        f"{keys['trusted'].public}: no signatures"
    )
    # Only the promoted image's signatures were asked for.
    unpromoted_path = f"/v2/{signed_but_not_promoted.name.split('/', 1)[1]}/"
    assert proxy.log
    assert not [path for _, path, _ in proxy.log if path.startswith(unpromoted_path)]


async def test_a_registry_that_cannot_be_read_denies_and_is_not_remembered(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    signed = image()
    await promote(store, signed)
    await sign(signed, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]})
    proxy.fail(0, 1_000_000)  # every connection dropped without an answer
    response = await webhook.decide(signed.by_digest)
    assert response["allowed"] is False
    assert message(response).endswith(
        f"'{signed.by_digest}': signatures could not be read from {proxy.host} "
        "(TransportError), denied to be safe"
    ), message(response)
    response = await webhook.decide(signed.by_tag)
    assert response["allowed"] is False
    assert f"tag 'v1' could not be resolved in {proxy.host} (TransportError)" in message(response)
    # The registry answers again: the failure was not kept as a verdict.
    proxy.faults.clear()
    assert (await webhook.decide(signed.by_digest))["allowed"] is True


async def test_a_registry_error_status_denies(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    signed = image()
    await promote(store, signed)
    await sign(signed, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]})
    proxy.fail(503, 1_000_000, path=r"\.sig$")
    response = await webhook.decide(signed.by_digest)
    assert response["allowed"] is False
    assert "signatures could not be read from" in message(response), message(response)
    assert "denied to be safe" in message(response)


async def test_a_slow_registry_is_denied_within_the_webhook_timeout(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed = image()
    await promote(store, signed)
    await sign(signed, keys["trusted"])
    monkeypatch.setattr(admission, "LOOKUP_TIMEOUT_SECONDS", 0.3)
    webhook = webhook_for({ENV: [keys["trusted"]]})
    proxy.latency = 1.0
    response = await webhook.decide(signed.by_digest)
    assert response["allowed"] is False
    assert message(response).endswith("signature check timed out after 0.3s"), message(response)


async def test_a_remembered_verdict_asks_the_registry_nothing(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    signed, unsigned = image(), image()
    for each in (signed, unsigned):
        await promote(store, each)
    await sign(signed, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]})
    proxy.log.clear()
    first = await webhook.decide(signed.by_digest, signed.by_tag, unsigned.by_digest)
    assert first["allowed"] is False
    asked = len(proxy.log)
    assert asked >= 3  # the tag, and the signatures of two digests
    second = await webhook.decide(signed.by_digest, signed.by_tag, unsigned.by_digest)
    assert second == first
    assert len(proxy.log) == asked  # no request: every verdict (and the tag) remembered


async def test_verdicts_expire_positive_late_negative_soon(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
    clock: Clock,
) -> None:
    signed, later = image(), image()
    for each in (signed, later):
        await promote(store, each)
    await sign(signed, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]}, positive_ttl=300, negative_ttl=10)
    assert (await webhook.decide(signed.by_digest))["allowed"] is True
    assert (await webhook.decide(later.by_digest))["allowed"] is False
    await sign(later, keys["trusted"])  # signed after the denial
    proxy.log.clear()
    clock.now += 9
    assert (await webhook.decide(later.by_digest))["allowed"] is False  # still remembered
    assert proxy.log == []
    clock.now += 2  # the "not signed" is 11 s old: asked again
    assert (await webhook.decide(later.by_digest))["allowed"] is True
    assert proxy.log != []
    # The "signed" of the first image is 11 s old: still fresh, nothing asked.
    proxy.log.clear()
    assert (await webhook.decide(signed.by_digest))["allowed"] is True
    assert proxy.log == []
    # Past its TTL it is verified again, and a registry that fails then denies.
    clock.now += 300
    proxy.fail(0, 1_000_000)
    response = await webhook.decide(signed.by_digest)
    assert response["allowed"] is False
    assert "denied to be safe" in message(response)


async def test_a_verdict_past_half_its_life_is_rechecked_in_the_background(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
    clock: Clock,
) -> None:
    signed = image()
    await promote(store, signed)
    await sign(signed, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]}, positive_ttl=100)
    assert (await webhook.decide(signed.by_digest))["allowed"] is True
    # Someone replaces the signature manifest with one that holds no signature.
    async with RegistryClient(options=FAST) as client:
        own = await client.get_manifest(Reference.parse(signed.by_digest))
        sig = Reference.parse(f"{signed.name}:{signed.digest.replace(':', '-')}.sig")
        await client.put_manifest(sig, own.data, own.media_type)
    clock.now += 51
    assert webhook.rule is not None
    # Past half its life the remembered "signed" still answers, and a re-check starts.
    proxy.log.clear()
    assert (await webhook.decide(signed.by_digest))["allowed"] is True
    assert webhook.rule._background  # the re-check is running
    for task in list(webhook.rule._background):
        await task
    assert proxy.log != []
    response = await webhook.decide(signed.by_digest)
    assert response["allowed"] is False
    assert f"no valid signature by key {keys['trusted'].public}: " in message(response)


async def test_tags_are_resolved_again_after_the_tag_ttl(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
    clock: Clock,
) -> None:
    signed = image()
    await promote(store, signed)
    await sign(signed, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]}, tag_ttl=10)
    assert (await webhook.decide(signed.by_tag))["allowed"] is True
    proxy.log.clear()
    clock.now += 11
    assert (await webhook.decide(signed.by_tag))["allowed"] is True
    tag_path = f"/v2/{signed.name.split('/', 1)[1]}/manifests/{signed.tag}"
    assert [(method, path) for method, path, _ in proxy.log] == [("HEAD", tag_path)]


async def test_the_memory_is_bounded(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    images = [image() for _ in range(3)]
    for each in images:
        await promote(store, each)
        await sign(each, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]}, max_entries=2)
    for each in images:
        assert (await webhook.decide(each.by_digest))["allowed"] is True
    proxy.log.clear()
    for each in images[1:]:  # the two most recent are remembered
        assert (await webhook.decide(each.by_digest))["allowed"] is True
    assert proxy.log == []
    assert (await webhook.decide(images[0].by_digest))["allowed"] is True  # evicted: asked
    assert proxy.log != []


async def test_without_the_rule_for_an_environment_nothing_changes(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    unsigned = image()
    await promote(store, unsigned, "dev")
    await promote(store, unsigned, ENV)
    webhook = webhook_for({ENV: [keys["trusted"]]})
    proxy.log.clear()
    response = await webhook.decide(unsigned.by_digest, environment="dev")
    assert response == {"uid": "uid-pod", "allowed": True}
    assert proxy.log == []
    assert (await webhook.decide(unsigned.by_digest))["allowed"] is False


async def test_concurrent_reviews_share_one_verification(
    store: CatalogStore,
    webhook_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    import asyncio

    warm, together, alone = image(), image(), image()
    for each in (warm, together, alone):
        await promote(store, each)
        await sign(each, keys["trusted"])
    webhook = webhook_for({ENV: [keys["trusted"]]})
    # The first contact with the registry also pings it; measure after it.
    assert (await webhook.decide(warm.by_digest))["allowed"] is True
    proxy.log.clear()
    answers = await asyncio.gather(*(webhook.decide(together.by_digest) for _ in range(10)))
    assert all(answer["allowed"] for answer in answers)
    ten = len(proxy.log)
    assert ten > 0
    proxy.log.clear()
    assert (await webhook.decide(alone.by_digest))["allowed"] is True
    assert ten == len(proxy.log)  # ten reviews at once cost what one costs


# --- configuration --------------------------------------------------------------------------


def test_load_signature_rule_reads_flags_then_the_variable(keys: dict[str, KeyPair]) -> None:
    trusted, other = str(keys["trusted"].public), str(keys["other"].public)

    def client() -> RegistryClient:
        return RegistryClient(options=FAST)

    assert load_signature_rule([], {}, client) is None
    rule = load_signature_rule(
        [f"prod={trusted}", f"prod={other}", f"staging={other}"],
        {"IMGCTL_ADMISSION_REQUIRE_SIGNATURE": f"dev={trusted}"},
        client,
    )
    assert rule is not None
    assert rule.environments == ["prod", "staging"]
    assert rule.keys_of("prod") == f"any of keys {trusted}, {other}"
    rule = load_signature_rule(
        [], {"IMGCTL_ADMISSION_REQUIRE_SIGNATURE": f"dev={trusted}, qa={other}"}, client
    )
    assert rule is not None
    assert rule.environments == ["dev", "qa"]


def test_a_rule_for_an_unknown_environment_or_key_is_refused(
    keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    from imgctl.errors import UsageError

    trusted = str(keys["trusted"].public)

    def client() -> RegistryClient:
        return RegistryClient(options=FAST)

    with pytest.raises(UsageError, match=r"names environment\(s\) prdo, which are not configured"):
        load_signature_rule([f"prdo={trusted}"], {}, client, environments=["dev", "prod"])
    with pytest.raises(UsageError, match=r"^--require-signature prod=\S+missing.pub: "):
        load_signature_rule([f"prod={tmp_path / 'missing.pub'}"], {}, client)


# --- real processes -------------------------------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if k in keep} | {
        "HOME": str(home),
        "IMGCTL_ENABLE_IAAS_AUTH": "false",
    }


def post(url: str, *images: str, environment: str = ENV) -> dict[str, Any]:
    answer = httpx.post(f"{url}/admission/{environment}", json=review(*images), timeout=30)
    assert answer.status_code == 200, answer.text
    response: dict[str, Any] = answer.json()["response"]
    return response


def put(url: str, image: Image, environment: str = ENV, token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"id": image.digest, "name": image.name, "tags": [image.tag], "environment": environment}
    answer = httpx.put(f"{url}/images", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text


async def test_catalog_serve_requires_signatures_where_told(
    tmp_path: Path, image: Callable[[], Image], keys: dict[str, KeyPair]
) -> None:
    signed, unsigned = image(), image()
    await sign(signed, keys["trusted"])
    flag = ("--require-signature", f"{ENV}={keys['trusted'].public}")
    with catalog_server(IMGCTL, tmp_path, flags=flag, env=base_env(tmp_path)) as url:
        for each in (signed, unsigned):
            put(url, each, token="write-me")
            put(url, each, "staging", token="write-me")
        assert post(url, signed.by_digest, signed.by_tag)["allowed"] is True
        denied = post(url, unsigned.by_tag)
        assert denied["allowed"] is False
        assert (
            f"'{unsigned.by_tag}': no valid signature by key {keys['trusted'].public} on "
            f"{unsigned.digest}: no signatures"
        ) in message(denied)
        # Staging has no rule: as before.
        assert post(url, unsigned.by_tag, environment="staging")["allowed"] is True
    # The same rule from the environment.
    directory = tmp_path / "from-env"
    directory.mkdir()
    env = base_env(tmp_path) | {
        "IMGCTL_ADMISSION_REQUIRE_SIGNATURE": f"staging={keys['trusted'].public}"
    }
    with catalog_server(IMGCTL, directory, env=env) as url:
        put(url, unsigned, "staging", token="write-me")
        assert post(url, unsigned.by_digest, environment="staging")["allowed"] is False


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("prod", "--require-signature 'prod' has no '='"),
        ("=KEY", "--require-signature '=KEY' names no environment"),
        ("prod=", "--require-signature 'prod=' names no key"),
        ("Prod=KEY", "--require-signature 'Prod=KEY': environment 'Prod' is not lower case"),
        ("pr/od=KEY", "--require-signature 'pr/od=KEY': environment 'pr/od' is not an environment"),
        ("prod=/no/such.pub", "--require-signature prod=/no/such.pub: "),
    ],
)
def test_catalog_serve_refuses_a_bad_rule_in_one_line(
    tmp_path: Path, value: str, error: str
) -> None:
    result = subprocess.run(
        [
            *(IMGCTL, "catalog", "serve", "--http-address", f"127.0.0.1:{free_port()}"),
            *("--database-url", f"sqlite:///{tmp_path / 'c.db'}", "--require-signature", value),
        ],
        capture_output=True,
        text=True,
        env=base_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    # One error line (after the log line saying catalog writes are refused).
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"imgctl: error: {error}"), result.stderr
    assert "Traceback" not in result.stderr


def server_env(tmp_path: Path) -> dict[str, str]:
    """Enough for `imgctl server` to start; its own registries are never contacted here."""
    return base_env(tmp_path) | {
        "OIDC_ISSUER_URL": "http://127.0.0.1:9/",
        "OIDC_AUDIENCE": "https://imgctl.example.com",
        "OIDC_ALLOWED_GROUPS": "engineering",
        "IMGCTL_REGISTRY_DEV": "127.0.0.1:9",
        "IMGCTL_REGISTRY_PROD": "127.0.0.1:9/prod",
        "IMGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'imgctl.db'}",
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> str:
        http = f"127.0.0.1:{free_port()}"
        log = tmp_path / "server.log"
        process = subprocess.Popen(
            [
                *(IMGCTL, "server", "--bind-address", f"127.0.0.1:{free_port()}"),
                *("--http-address", http, "--allow-anonymous-catalog-writes", *flags),
            ],
            env=server_env(tmp_path),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        wait_http(f"http://{http}/healthz", process, log)
        return f"http://{http}"

    yield start
    for process in started:
        stop_process(process)


async def test_the_server_requires_signatures_where_told(
    tmp_path: Path,
    server: Callable[..., str],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
) -> None:
    signed, unsigned = image(), image()
    await sign(signed, keys["trusted"])
    url = server("--require-signature", f"prod={keys['trusted'].public}")
    for each in (signed, unsigned):
        put(url, each)
        put(url, each, "dev")
    assert post(url, signed.by_tag)["allowed"] is True
    denied = post(url, unsigned.by_digest)
    assert denied["allowed"] is False
    assert message(denied).endswith(
        f"no valid signature by key {keys['trusted'].public}: no signatures"
    )
    assert post(url, unsigned.by_digest, environment="dev")["allowed"] is True


def test_the_server_refuses_a_rule_for_an_environment_it_does_not_have(
    tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    result = subprocess.run(
        [
            *(IMGCTL, "server", "--bind-address", f"127.0.0.1:{free_port()}"),
            *("--http-address", f"127.0.0.1:{free_port()}"),
            *("--require-signature", f"staging={keys['trusted'].public}"),
        ],
        capture_output=True,
        text=True,
        env=server_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert (
        "imgctl: error: --require-signature names environment(s) staging, which are not "
        "configured; configured: dev, prod"
    ) in result.stderr
    assert "Traceback" not in result.stderr
