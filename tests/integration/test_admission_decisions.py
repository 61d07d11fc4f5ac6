"""Remembered allowed decisions of repeated Pods (admission._Decisions) over a real catalog.

Two CatalogStores on one database act as two replicas: ``here`` follows the change feed and
answers the webhook, ``other`` changes the catalog. Each test asserts answers and how many
questions reached the catalog, never how long anything took.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from imgctl.catalog.admission import AdmissionWebhook, _Decisions
from imgctl.oci.reference import Reference
from imgctl.store import CatalogStore

from .test_catalog_mirror import DIGEST_A, DIGEST_B, promote, until

IMAGES = [f"reg.io/app@{DIGEST_A}", "reg.io/app:v2"]


@pytest.fixture
async def replicas(db_url: str) -> AsyncIterator[tuple[CatalogStore, CatalogStore]]:
    """(here, other): ``here`` follows the feed, ``other`` writes as another replica."""
    here, other = await CatalogStore.open(db_url), await CatalogStore.open(db_url)
    try:
        yield here, other
    finally:
        await here.aclose()
        await other.aclose()


def review_body(uid: str, images: list[str]) -> bytes:
    """An AdmissionReview v1 creating a Pod that runs ``images``."""
    pod = {"spec": {"containers": [{"name": f"c{i}", "image": x} for i, x in enumerate(images)]}}
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "apps",
                "object": pod,
            },
        }
    ).encode()


class Counted:
    """The store's known(), counting the questions it is asked."""

    def __init__(self, store: CatalogStore) -> None:
        self.store = store
        self.asked = 0

    def __call__(self, environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        self.asked += 1
        return self.store.known(environment, name, digest, tag)


class Refusing:
    """A signature rule for 'prod' that refuses every image (and counts the checks)."""

    def __init__(self) -> None:
        self.checked = 0

    def applies(self, environment: str) -> bool:
        return environment == "prod"

    def label(self, environment: str) -> str:
        return "signature"

    def known(self, environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        return False

    async def check(self, environment: str, image: Reference) -> str | None:
        self.checked += 1
        return "no signatures by key test"


async def decide(webhook: AdmissionWebhook, uid: str, images: list[str]) -> dict[str, Any]:
    status, answer = await webhook.decide(review_body(uid, images), "prod")
    assert status == 200, answer
    response: dict[str, Any] = answer["response"]
    assert response["uid"] == uid
    return response


async def test_a_repeated_pod_is_allowed_again_without_asking_the_catalog(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, other = replicas
    await promote(other, DIGEST_A, "reg.io/app", ["v1"])
    await promote(other, DIGEST_B, "reg.io/app", ["v2"])
    await here.follow()
    known = Counted(here)
    webhook = AdmissionWebhook(FastAPI(), here.promoted, cached=known, generation=here.generation)
    assert (await decide(webhook, "u1", IMAGES))["allowed"] is True
    assert known.asked == 2
    assert webhook.decisions is not None
    assert len(webhook.decisions) == 1
    assert (await decide(webhook, "u2", IMAGES))["allowed"] is True
    assert known.asked == 2  # remembered: no question asked
    # Another Pod, or another environment, is decided afresh.
    assert (await decide(webhook, "u3", IMAGES[:1]))["allowed"] is True
    assert known.asked == 3


async def test_a_withdrawal_between_two_identical_reviews_is_denied(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, other = replicas
    await promote(other, DIGEST_A, "reg.io/app", ["v1"])
    await promote(other, DIGEST_B, "reg.io/app", ["v2"])
    await here.follow()
    mirror = here.mirror
    assert mirror is not None
    webhook = AdmissionWebhook(
        FastAPI(), here.promoted, cached=here.known, generation=here.generation
    )
    assert (await decide(webhook, "u1", IMAGES))["allowed"] is True
    assert (await decide(webhook, "u2", IMAGES))["allowed"] is True
    revision = mirror.revision
    assert revision is not None
    # imgctl catalog rm of the tagged image on another replica.
    assert await other.delete(DIGEST_B, "prod", name="reg.io/app") == 1
    await until(lambda: mirror.revision == revision + 1, "reading the withdrawal")
    assert mirror.answers()
    response = await decide(webhook, "u3", IMAGES)
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "spec.containers[1].image 'reg.io/app:v2'" in message
    assert "no image promoted to prod is tagged 'v2'" in message


async def test_a_write_here_between_two_identical_reviews_is_seen_at_once(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, other = replicas
    await promote(other, DIGEST_A, "reg.io/app", ["v1"])
    await promote(other, DIGEST_B, "reg.io/app", ["v2"])
    await here.follow()
    webhook = AdmissionWebhook(
        FastAPI(), here.promoted, cached=here.known, generation=here.generation
    )
    assert (await decide(webhook, "u1", IMAGES))["allowed"] is True
    assert await here.delete(DIGEST_A) == 1  # no waiting for the feed
    response = await decide(webhook, "u2", IMAGES)
    assert response["allowed"] is False
    assert f"'reg.io/app@{DIGEST_A}': not promoted to prod" in response["status"]["message"]


async def test_a_signature_requirement_is_checked_on_every_review(
    replicas: tuple[CatalogStore, CatalogStore],
) -> None:
    here, other = replicas
    await promote(other, DIGEST_A, "reg.io/app", ["v1"])
    await promote(other, DIGEST_B, "reg.io/app", ["v2"])
    await here.follow()
    rule = Refusing()
    webhook = AdmissionWebhook(
        FastAPI(), here.promoted, cached=here.known, signatures=rule, generation=here.generation
    )
    for uid in ("u1", "u2"):
        response = await decide(webhook, uid, IMAGES)
        assert response["allowed"] is False
        assert "no signatures by key test" in response["status"]["message"]
    assert rule.checked == 4
    assert webhook.decisions is not None
    assert len(webhook.decisions) == 0


def test_remembered_decisions_are_bounded_and_forgotten_with_the_generation() -> None:
    generation = [1]
    decisions = _Decisions(lambda: generation[0])
    for n in range(decisions.MAX_ENTRIES + 10):
        decisions.remember(("prod", (f"reg.io/app:{n}",)), 1)
    assert len(decisions) == decisions.MAX_ENTRIES
    assert not decisions.allowed(("prod", ("reg.io/app:0",)), 1)  # the oldest went first
    assert decisions.allowed(("prod", (f"reg.io/app:{decisions.MAX_ENTRIES + 9}",)), 1)
    assert not decisions.allowed(("prod", (f"reg.io/app:{decisions.MAX_ENTRIES + 9}",)), 2)
    assert len(decisions) == 0
