"""Admission can demand a promoter's attestation (issue 19 item 6), against real registries.

Images are pushed to docker-registry with skopeo, signed with ``imgctl.trust.sign_image`` and
attested with ``imgctl.trust.attest_image`` (a promotion statement, as a signing server writes
it); the webhook reads them through a FaultProxy, which counts every registry request and can
take the registry down. Decisions are made by the real ASGI app over a real CatalogStore and by
``imgctl catalog serve --require-attestation``; the server's own promotions are in
test_server_attestations.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from imgctl.catalog import admission
from imgctl.catalog.admission import AdmissionWebhook, Exemptions
from imgctl.catalog.signatures import SignatureRule, load_signature_rule
from imgctl.oci.reference import Reference
from imgctl.remote import RegistryClient
from imgctl.store import CatalogStore
from imgctl.trust import (
    PROMOTION_PREDICATE_TYPE,
    PromotionFacts,
    attest_image,
    load_public_key,
    load_signer,
    promotion_statement,
)

from ..conftest import IMGCTL
from ..support.catalog import catalog_server
from ..support.proxy import FaultProxy
from ..support.registry import free_port
from . import test_admission_signatures as signatures
from .test_admission_signatures import (
    ENV,
    FAST,
    Clock,
    Image,
    KeyPair,
    Webhook,
    base_env,
    message,
    post,
    promote,
    put,
    sign,
)

# The signature tests' fixtures, shared: the same registry, proxy, images, keys, store, clock.
keys = signatures.keys
proxy = signatures.proxy
image = signatures.image
store = signatures.store
clock = signatures.clock

SLSA = "https://slsa.dev/provenance/v1"


async def attest(
    image: Image, key: KeyPair, predicate_type: str = PROMOTION_PREDICATE_TYPE
) -> None:
    """A promotion statement about ``image``, signed with ``key``, appended under its .att tag."""
    pinned = Reference.parse(image.by_digest)
    now = datetime.now(UTC)
    facts = PromotionFacts(
        source=pinned,
        destination=Reference.parse(f"{image.by_tag}@{image.digest}"),
        builder="urn:imgctl:server:test",
        started=now,
        finished=now,
        requested_by="alice@example.com",
        request_id="0123456789abcdef",
    )
    async with RegistryClient(options=FAST) as client:
        outcome = await attest_image(
            client,
            pinned,
            load_signer(str(key.private)),
            promotion_statement(facts),
            predicate_type=predicate_type,
        )
    assert outcome.status == "attested"


@pytest.fixture
async def rule_for(store: CatalogStore, clock: Clock) -> AsyncIterator[Callable[..., Webhook]]:
    """The webhook over the store, with signature and attestation rules of the given keys."""
    made: list[Webhook] = []

    def make(
        attestations: dict[str, list[KeyPair]],
        signatures: dict[str, list[KeyPair]] | None = None,
        **options: Any,
    ) -> Webhook:
        def loaded(pairs: dict[str, list[KeyPair]]) -> dict[str, tuple[Any, ...]]:
            return {
                environment: tuple(load_public_key(str(pair.public)) for pair in each)
                for environment, each in pairs.items()
            }

        rule = SignatureRule(
            loaded(signatures or {}),
            RegistryClient(options=FAST),
            attestations=loaded(attestations),
            clock=clock,
            **options,
        )
        app = AdmissionWebhook(FastAPI(), store.promoted, Exemptions(), store.known, rule)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append(Webhook(http, rule))
        return made[-1]

    yield make
    for webhook in made:
        await webhook.http.aclose()
        if webhook.rule is not None:
            await webhook.rule.aclose()


def att_path(image: Image) -> str:
    return f"/v2/{image.name.split('/', 1)[1]}/manifests/{image.digest.replace(':', '-')}.att"


# --- decisions ------------------------------------------------------------------------------


async def test_attested_and_promoted_is_allowed_by_digest_and_by_tag(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    attested = image()
    await promote(store, attested)
    await attest(attested, keys["trusted"])
    webhook = rule_for({ENV: [keys["trusted"]]})
    proxy.log.clear()
    response = await webhook.decide(attested.by_digest, attested.by_tag)
    assert response["allowed"] is True, response
    assert ("GET", att_path(attested), 200) in proxy.log  # verified, not just looked up


async def test_promoted_but_unattested_is_denied_naming_image_key_and_reason(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
) -> None:
    bare = image()
    await promote(store, bare)
    await sign(bare, keys["trusted"])  # a signature is not an attestation
    webhook = rule_for({ENV: [keys["trusted"]]})
    response = await webhook.decide(bare.by_digest)
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert message(response) == (
        f"imgctl denied 1 image(s) in {ENV}: spec.containers[0].image '{bare.by_digest}': "
        f"no valid promotion attestation by key {keys['trusted'].public}: no attestations"
    )
    response = await webhook.decide(bare.by_tag)
    assert (
        f"'{bare.by_tag}': no valid promotion attestation by key {keys['trusted'].public} on "
        f"{bare.digest}: no attestations"
    ) in message(response)


async def test_attested_by_another_key_or_of_another_type_is_denied(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
) -> None:
    elsewhere, provenance = image(), image()
    for each in (elsewhere, provenance):
        await promote(store, each)
    await attest(elsewhere, keys["other"])
    await attest(provenance, keys["trusted"], predicate_type=SLSA)
    webhook = rule_for({ENV: [keys["trusted"]]})
    response = await webhook.decide(elsewhere.by_digest)
    assert response["allowed"] is False
    expected = (
        f"'{elsewhere.by_digest}': no valid promotion attestation by key {keys['trusted'].public}: "
    )
    assert expected + "the envelope's signature does not verify with " in message(response)
    response = await webhook.decide(provenance.by_digest)
    assert response["allowed"] is False
    assert message(response).endswith(
        f"'{provenance.by_digest}': no valid promotion attestation by key "
        f"{keys['trusted'].public}: no attestation of type {PROMOTION_PREDICATE_TYPE} "
        f"(it has {SLSA})"
    ), message(response)
    # Either of two keys is enough.
    both = rule_for({ENV: [keys["trusted"], keys["other"]]})
    assert (await both.decide(elsewhere.by_digest))["allowed"] is True


async def test_an_environment_can_require_both_and_each_is_named(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    complete, signed_only, attested_only, neither = image(), image(), image(), image()
    for each in (complete, signed_only, attested_only, neither):
        await promote(store, each)
    for each in (complete, signed_only):
        await sign(each, keys["trusted"])
    for each in (complete, attested_only):
        await attest(each, keys["trusted"])
    trusted = keys["trusted"].public
    webhook = rule_for({ENV: [keys["trusted"]]}, signatures={ENV: [keys["trusted"]]})
    assert (await webhook.decide(complete.by_digest))["allowed"] is True
    assert message(await webhook.decide(signed_only.by_digest)).endswith(
        f"no valid promotion attestation by key {trusted}: no attestations"
    )
    assert message(await webhook.decide(attested_only.by_digest)).endswith(
        f"'{attested_only.by_digest}': no valid signature by key {trusted}: no signatures"
    )
    assert message(await webhook.decide(neither.by_digest)).endswith(
        f"'{neither.by_digest}': no valid signature by key {trusted}: no signatures; "
        f"no valid promotion attestation by key {trusted}: no attestations"
    )
    # Every verdict is remembered by (digest, kind): asking again costs no request.
    proxy.log.clear()
    for each in (complete, signed_only, attested_only, neither):
        await webhook.decide(each.by_digest)
    assert proxy.log == []


async def test_a_signature_verdict_does_not_answer_for_an_attestation(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    # One rule object, two environments: prod wants signatures, staging attestations. The
    # digest's "signed" in prod must not let it into staging.
    signed = image()
    await sign(signed, keys["trusted"])
    await promote(store, signed)
    await promote(store, signed, "staging")
    webhook = rule_for({"staging": [keys["trusted"]]}, signatures={ENV: [keys["trusted"]]})
    assert (await webhook.decide(signed.by_digest))["allowed"] is True
    proxy.log.clear()
    response = await webhook.decide(signed.by_digest, environment="staging")
    assert response["allowed"] is False
    assert ("GET", att_path(signed), 404) in proxy.log
    assert message(response).endswith("no attestations")


async def test_a_registry_that_cannot_be_read_denies_and_is_not_remembered(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
) -> None:
    attested = image()
    await promote(store, attested)
    await attest(attested, keys["trusted"])
    webhook = rule_for({ENV: [keys["trusted"]]})
    proxy.fail(503, 1_000_000, path=r"\.att$")
    response = await webhook.decide(attested.by_digest)
    assert response["allowed"] is False
    assert message(response).endswith(
        f"'{attested.by_digest}': attestations could not be read from {proxy.host} "
        "(RegistryError), denied to be safe"
    ), message(response)
    proxy.faults.clear()
    assert (await webhook.decide(attested.by_digest))["allowed"] is True


async def test_a_slow_registry_is_denied_within_the_webhook_timeout(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attested = image()
    await promote(store, attested)
    await attest(attested, keys["trusted"])
    monkeypatch.setattr(admission, "LOOKUP_TIMEOUT_SECONDS", 0.3)
    webhook = rule_for({ENV: [keys["trusted"]]})
    proxy.latency = 1.0
    response = await webhook.decide(attested.by_digest)
    assert response["allowed"] is False
    assert message(response).endswith("attestation check timed out after 0.3s"), message(response)


async def test_an_attestation_after_a_denial_is_admitted_after_the_negative_ttl(
    store: CatalogStore,
    rule_for: Callable[..., Webhook],
    image: Callable[[], Image],
    keys: dict[str, KeyPair],
    proxy: FaultProxy,
    clock: Clock,
) -> None:
    later = image()
    await promote(store, later)
    webhook = rule_for({ENV: [keys["trusted"]]}, negative_ttl=10)
    assert (await webhook.decide(later.by_digest))["allowed"] is False
    await attest(later, keys["trusted"])
    proxy.log.clear()
    clock.now += 9
    assert (await webhook.decide(later.by_digest))["allowed"] is False  # still remembered
    assert proxy.log == []
    clock.now += 2
    assert (await webhook.decide(later.by_digest))["allowed"] is True


# --- configuration --------------------------------------------------------------------------


def test_load_reads_each_kinds_flags_then_its_variable(keys: dict[str, KeyPair]) -> None:
    trusted, other = str(keys["trusted"].public), str(keys["other"].public)

    def client() -> RegistryClient:
        return RegistryClient(options=FAST)

    assert load_signature_rule([], {}, client, attestation_flags=[]) is None
    rule = load_signature_rule(
        [f"prod={trusted}"],
        {"IMGCTL_ADMISSION_REQUIRE_ATTESTATION": f"dev={trusted}"},
        client,
        attestation_flags=[f"prod={other}", f"staging={other}"],
    )
    assert rule is not None
    assert rule.environments == ["prod", "staging"]
    assert rule.kinds_of("prod") == ("signature", "attestation")
    assert rule.kinds_of("staging") == ("attestation",)
    assert rule.keys_of("prod", "attestation") == f"key {other}"
    assert rule.keys_of("prod") == f"key {trusted}"
    rule = load_signature_rule(
        [], {"IMGCTL_ADMISSION_REQUIRE_ATTESTATION": f"dev={trusted}, qa={other}"}, client
    )
    assert rule is not None
    assert rule.environments == ["dev", "qa"]
    assert rule.kinds_of("dev") == ("attestation",)


def test_a_bad_attestation_rule_is_refused_naming_its_flag(
    keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    from imgctl.errors import UsageError

    trusted = str(keys["trusted"].public)

    def client() -> RegistryClient:
        return RegistryClient(options=FAST)

    with pytest.raises(UsageError, match=r"^--require-attestation names environment\(s\) prdo"):
        load_signature_rule(
            [], {}, client, environments=["dev", "prod"], attestation_flags=[f"prdo={trusted}"]
        )
    with pytest.raises(UsageError, match=r"^--require-attestation prod=\S+missing.pub: "):
        load_signature_rule([], {}, client, attestation_flags=[f"prod={tmp_path / 'missing.pub'}"])
    with pytest.raises(UsageError, match=r"^IMGCTL_ADMISSION_REQUIRE_ATTESTATION 'Prod=k': "):
        load_signature_rule([], {"IMGCTL_ADMISSION_REQUIRE_ATTESTATION": "Prod=k"}, client)


# --- real processes -------------------------------------------------------------------------


async def test_catalog_serve_requires_attestations_where_told(
    tmp_path: Path, image: Callable[[], Image], keys: dict[str, KeyPair]
) -> None:
    attested, bare = image(), image()
    await attest(attested, keys["trusted"])
    flag = ("--require-attestation", f"{ENV}={keys['trusted'].public}")
    with catalog_server(IMGCTL, tmp_path, flags=flag, env=base_env(tmp_path)) as url:
        for each in (attested, bare):
            put(url, each, token="write-me")
            put(url, each, "staging", token="write-me")
        assert post(url, attested.by_digest, attested.by_tag)["allowed"] is True
        denied = post(url, bare.by_tag)
        assert denied["allowed"] is False
        assert (
            f"'{bare.by_tag}': no valid promotion attestation by key {keys['trusted'].public} on "
            f"{bare.digest}: no attestations"
        ) in message(denied)
        assert post(url, bare.by_tag, environment="staging")["allowed"] is True


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("prod", "--require-attestation 'prod' has no '='"),
        ("Prod=KEY", "--require-attestation 'Prod=KEY': environment 'Prod' is not lower case"),
        ("prod=/no/such.pub", "--require-attestation prod=/no/such.pub: "),
    ],
)
def test_catalog_serve_refuses_a_bad_attestation_rule_in_one_line(
    tmp_path: Path, value: str, error: str
) -> None:
    result = subprocess.run(
        [
            *(IMGCTL, "catalog", "serve", "--http-address", f"127.0.0.1:{free_port()}"),
            *("--database-url", f"sqlite:///{tmp_path / 'c.db'}", "--require-attestation", value),
        ],
        capture_output=True,
        text=True,
        env=base_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"imgctl: error: {error}"), result.stderr
    assert "Traceback" not in result.stderr
