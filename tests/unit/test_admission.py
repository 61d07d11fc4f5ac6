"""Admission webhook: image extraction, decisions, exemptions, the HTTP router, fuzzing."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgctl.catalog import admission
from imgctl.catalog.admission import (
    AdmissionWebhook,
    Exemptions,
    images_of,
    review,
)
from imgctl.errors import ImgctlError, MalformedReview, UncheckableObject
from imgctl.oci.reference import Reference
from imgctl.store import CatalogStore

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64
UID = "705ab4f5-6393-11e8-b7cc-42010a800002"

Key = tuple[str, str, str | None, str | None]


# What is promoted where, as (environment, repository, digest or tag). Admission asks the real
# CatalogStore (SQLite), never a stand-in that re-implements its lookup rules; a stand-in is
# left only where a test needs a failure the store cannot produce (raising, hanging, sloppy).
PROMOTED_RECORDS = (
    ("prod", "docker.io/library/nginx", "1.25"),
    ("prod", "docker.io/library/nginx", D1),
    ("prod", "registry.example.com/team/api", D2),
    ("prod", "registry.example.com/team/api", "v2.3.1"),
    ("prod", "ghcr.io/acme/migrate", D3),
    ("prod", "docker.io/library/busybox", "latest"),
    ("staging", "registry.example.com/team/api", "v2.4.0"),
)
# The records the property tests draw subsets of; every subset is recorded in an environment of
# its own ("subset-<mask>"), so that one database answers for all of them.
PROMOTABLE = [
    ("prod", "docker.io/library/nginx", "1.25"),
    ("prod", "docker.io/library/nginx", D1),
    ("prod", "registry.example.com/team/api", D2),
    ("prod", "registry.example.com/team/api", "v2.4.0"),
    ("prod", "docker.io/library/busybox", "latest"),
]


def _environment_of(records: Iterable[tuple[str, str, str]]) -> str:
    return f"subset-{sum(1 << PROMOTABLE.index(record) for record in set(records))}"


async def _record(store: CatalogStore, environment: str, name: str, digest_or_tag: str) -> None:
    """Record a promotion the way the server does; a tag goes on a digest of its own."""
    if digest_or_tag.startswith("sha256:"):
        digest, tags = digest_or_tag, []
    else:
        digest = "sha256:" + hashlib.sha256(f"{name}:{digest_or_tag}".encode()).hexdigest()
        tags = [digest_or_tag]
    await store.record_promotion(
        digest=digest, name=name, tags=tags, environment=environment, promoted_by=None, source=None
    )


async def _fill(url: str) -> None:
    async with await CatalogStore.open(url) as store:
        for environment, name, digest_or_tag in PROMOTED_RECORDS:
            await _record(store, environment, name, digest_or_tag)
        for mask in range(1 << len(PROMOTABLE)):
            chosen = [r for i, r in enumerate(PROMOTABLE) if mask >> i & 1]
            for _, name, digest_or_tag in chosen:
                await _record(store, _environment_of(chosen), name, digest_or_tag)


@pytest.fixture(scope="module")
def catalog_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite catalog holding PROMOTED_RECORDS and every subset of PROMOTABLE."""
    url = f"sqlite:///{tmp_path_factory.mktemp('admission') / 'catalog.db'}"
    asyncio.run(_fill(url))
    return url


@pytest.fixture
async def store(catalog_url: str) -> AsyncIterator[CatalogStore]:
    """The catalog, opened on this test's event loop."""
    async with await CatalogStore.open(catalog_url) as opened:
        yield opened


class Catalog:
    """The real store's lookup, recording every question admission asked it.

    ``holds`` names the environment whose records answer, whatever environment admission asks
    for (a subset of PROMOTABLE); None: the one asked.
    """

    def __init__(self, store: CatalogStore, holds: str | None = None) -> None:
        self.store = store
        self.holds = holds
        self.calls: list[Key] = []

    async def __call__(
        self, environment: str, name: str, digest: str | None, tag: str | None
    ) -> bool:
        self.calls.append((environment, name, digest, tag))
        return await self.store.promoted(self.holds or environment, name, digest, tag)

    @classmethod
    def of(cls, store: CatalogStore, *records: tuple[str, str, str]) -> Catalog:
        """Admission's lookup where exactly ``records`` (of PROMOTABLE) are promoted."""
        return cls(store, _environment_of(records))


def container(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def pod_spec(*images: str, init: tuple[str, ...] = (), ephemeral: tuple[str, ...] = ()) -> Any:
    spec: dict[str, Any] = {
        "containers": [container(f"c{i}", image) for i, image in enumerate(images)],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
    }
    if init:
        spec["initContainers"] = [container(f"init{i}", image) for i, image in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"debugger-{i}", "image": image, "targetContainerName": "c0"}
            for i, image in enumerate(ephemeral)
        ]
    return spec


def template(spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "api"}}, "spec": spec}


def metadata(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": "shop", "labels": {"app": "api"}}


def workload(kind: str, spec: Any) -> tuple[str, str, str, dict[str, Any], str]:
    """Group, version, resource, object and pod-spec path of ``kind`` wrapping ``spec``."""
    if kind == "Pod":
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata("api-7d9f"),
            "spec": spec,
        }
        return "", "v1", "pods", obj, "spec."
    if kind == "PodTemplate":
        obj = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": metadata("api-template"),
            "template": template(spec),
        }
        return "", "v1", "podtemplates", obj, "template.spec."
    if kind == "CronJob":
        obj = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata("nightly"),
            "spec": {
                "schedule": "0 3 * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"backoffLimit": 2, "template": template(spec)}},
            },
        }
        return "batch", "v1", "cronjobs", obj, "spec.jobTemplate.spec.template.spec."
    group = "batch" if kind == "Job" else "apps"
    extras: dict[str, dict[str, Any]] = {
        "Deployment": {"replicas": 3, "strategy": {"type": "RollingUpdate"}},
        "ReplicaSet": {"replicas": 3},
        "StatefulSet": {"replicas": 1, "serviceName": "api"},
        "DaemonSet": {"updateStrategy": {"type": "RollingUpdate"}},
        "Job": {"backoffLimit": 4, "completions": 1},
    }
    extra = extras[kind]
    obj = {
        "apiVersion": f"{group}/v1",
        "kind": kind,
        "metadata": metadata("api"),
        "spec": {"selector": {"matchLabels": {"app": "api"}}, **extra, "template": template(spec)},
    }
    return group, "v1", kind.lower() + "s", obj, "spec.template.spec."


def admission_review(
    kind: str,
    spec: Any,
    *,
    operation: str = "CREATE",
    namespace: str = "shop",
    sub_resource: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview as the API server sends it."""
    group, version, resource, obj, _ = workload(kind, spec)
    request: dict[str, Any] = {
        "uid": UID,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": obj["metadata"]["name"],
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:argocd:argocd-application-controller",
            "uid": "014fbff9a07c",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd"],
        },
        "object": obj,
        "oldObject": copy.deepcopy(obj) if operation == "UPDATE" else None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    if sub_resource is not None:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


WORKLOADS = ["Pod", "PodTemplate", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"]
WORKLOADS += ["CronJob"]


def response_of(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == UID
    return answer["response"]  # type: ignore[no-any-return]


# --- images_of --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKLOADS)
def test_images_of_every_workload_kind(kind: str) -> None:
    spec = pod_spec("nginx:1.25", "api@" + D2, init=("migrate:v1",), ephemeral=("busybox",))
    body = admission_review(kind, spec)
    base = workload(kind, spec)[4]
    assert images_of(body["request"]) == [
        (f"{base}containers[0].image", "nginx:1.25"),
        (f"{base}containers[1].image", "api@" + D2),
        (f"{base}initContainers[0].image", "migrate:v1"),
        (f"{base}ephemeralContainers[0].image", "busybox"),
    ]


def test_images_of_cronjob_path_is_the_documented_one() -> None:
    body = admission_review("CronJob", pod_spec("a", init=("b",)))
    assert [path for path, _ in images_of(body["request"])] == [
        "spec.jobTemplate.spec.template.spec.containers[0].image",
        "spec.jobTemplate.spec.template.spec.initContainers[0].image",
    ]


def test_images_of_unknown_kind_and_imageless_subresources() -> None:
    body = admission_review("Pod", pod_spec("evil.example/x:1"))
    request = body["request"]
    # An unknown kind has no images, unless it holds containers: then it cannot be checked.
    request["kind"] = {"group": "", "version": "v1", "kind": "ConfigMap"}
    with pytest.raises(UncheckableObject, match=r"request\.object\.spec\.containers holds") as info:
        images_of(request)
    assert info.value.path == "request.object.spec.containers"
    # A CRD that happens to be called Deployment is not apps/Deployment.
    request["kind"] = {"group": "example.com", "version": "v1", "kind": "Deployment"}
    with pytest.raises(UncheckableObject, match=r"example\.com/Deployment is not a kind"):
        images_of(request)
    request["object"] = {"data": {"containers": "text", "image": "evil.example/x:1"}}
    assert images_of(request) == []
    request["object"] = admission_review("Pod", pod_spec("evil.example/x:1"))["request"]["object"]
    request["kind"] = {"group": "", "version": "v1", "kind": "Pod"}
    request["subResource"] = "status"
    assert images_of(request) == []


def test_images_of_ephemeralcontainers_subresource() -> None:
    # Kubernetes >= 1.22: the whole Pod is sent; the new debug container is checked with the rest.
    spec = pod_spec("nginx:1.25", ephemeral=("busybox:1.36",))
    body = admission_review("Pod", spec, operation="UPDATE", sub_resource="ephemeralcontainers")
    assert ("spec.ephemeralContainers[0].image", "busybox:1.36") in images_of(body["request"])
    # Kubernetes 1.16-1.21: kind EphemeralContainers, the list at the top of the object.
    old = body["request"]
    old["kind"] = {"group": "", "version": "v1", "kind": "EphemeralContainers"}
    old["object"] = {
        "kind": "EphemeralContainers",
        "apiVersion": "v1",
        "metadata": {"name": "api-7d9f", "namespace": "shop"},
        "ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36"}],
    }
    assert images_of(old) == [("ephemeralContainers[0].image", "busybox:1.36")]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda r: r.__setitem__("object", None), "request.object"),
        (lambda r: r.pop("object"), "request.object"),
        (lambda r: r.__setitem__("object", []), "request.object"),
        (lambda r: r["object"].pop("spec"), "request.object.spec"),
        (lambda r: r["object"]["spec"].__setitem__("containers", "nginx"), "containers"),
        (lambda r: r["object"]["spec"]["containers"].__setitem__(0, "nginx"), "containers[0]"),
        (lambda r: r["object"]["spec"]["containers"][0].__setitem__("image", 7), "image"),
        (lambda r: r["object"]["spec"]["containers"][0].pop("image"), "image"),
        (lambda r: r.__setitem__("kind", "Pod"), "request.kind"),
        (lambda r: r.__setitem__("operation", "PATCH"), "request.operation"),
    ],
)
def test_images_of_malformed(mutate: Any, path: str) -> None:
    request = admission_review("Pod", pod_spec("nginx:1.25"))["request"]
    mutate(request)
    with pytest.raises(MalformedReview, match="malformed AdmissionReview: request") as info:
        images_of(request)
    assert path in info.value.path
    assert isinstance(info.value, ImgctlError)


def test_images_of_not_a_mapping() -> None:
    with pytest.raises(MalformedReview, match="request must be an object, got an array"):
        images_of([])  # type: ignore[arg-type]


# --- review -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKLOADS)
async def test_every_workload_kind_allowed_when_promoted(kind: str, store: CatalogStore) -> None:
    spec = pod_spec(
        "nginx:1.25",
        "registry.example.com/team/api@" + D2,
        init=("ghcr.io/acme/migrate@" + D3,),
        ephemeral=("busybox",),
    )
    response = response_of(await review(admission_review(kind, spec), "prod", Catalog(store)))
    assert response == {"uid": UID, "allowed": True}


@pytest.mark.parametrize("kind", WORKLOADS)
async def test_every_workload_kind_denied_naming_each_offender(
    kind: str, store: CatalogStore
) -> None:
    spec = pod_spec(
        "nginx:1.25",
        "registry.example.com/team/api:v2.4.0",
        init=("ghcr.io/acme/migrate@" + D1,),
        ephemeral=("Not A Ref",),
    )
    base = workload(kind, spec)[4]
    response = response_of(await review(admission_review(kind, spec), "prod", Catalog(store)))
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert message.startswith("imgctl denied 3 image(s) in prod: ")
    assert (
        f"{base}containers[1].image 'registry.example.com/team/api:v2.4.0': tag not resolvable"
        in message
    )
    assert f"{base}initContainers[0].image 'ghcr.io/acme/migrate@{D1}': not promoted to prod" in (
        message
    )
    assert f"{base}ephemeralContainers[0].image 'Not A Ref': not a valid image reference" in (
        message
    )
    assert "containers[0]" not in message.replace("initContainers[0]", "").replace(
        "ephemeralContainers[0]", ""
    )


async def test_lookup_receives_canonical_names(store: CatalogStore) -> None:
    catalog = Catalog.of(store)
    spec = pod_spec(
        "nginx:1.25",
        "index.docker.io/library/nginx:1.25",
        "bitnami/redis",
        "registry.example.com:5000/team/api@" + D2,
        "nginx:1.25@" + D1,
    )
    await review(admission_review("Pod", spec), "prod", catalog)
    assert sorted(catalog.calls, key=repr) == sorted(
        [
            ("prod", "docker.io/library/nginx", None, "1.25"),  # asked once for both spellings
            ("prod", "docker.io/bitnami/redis", None, "latest"),
            ("prod", "registry.example.com:5000/team/api", D2, None),
            ("prod", "docker.io/library/nginx", D1, None),
        ],
        key=repr,
    )


async def test_docker_hub_short_names_match_canonical_records(store: CatalogStore) -> None:
    for image in ("nginx:1.25", "docker.io/nginx:1.25", "index.docker.io/library/nginx:1.25"):
        answer = await review(admission_review("Pod", pod_spec(image)), "prod", Catalog(store))
        assert response_of(answer)["allowed"] is True, image


async def test_digest_decides_even_when_the_tag_is_promoted(store: CatalogStore) -> None:
    # nginx:1.25 is promoted, D3 is not: the runtime pulls D3, so this must be denied.
    spec = pod_spec("nginx:1.25@" + D3)
    response = response_of(await review(admission_review("Pod", spec), "prod", Catalog(store)))
    assert response["allowed"] is False
    assert "not promoted to prod" in response["status"]["message"]
    spec = pod_spec("nginx:1.25@" + D1)
    assert response_of(await review(admission_review("Pod", spec), "prod", Catalog(store)))[
        "allowed"
    ]


async def test_environment_matters(store: CatalogStore) -> None:
    body = admission_review("Deployment", pod_spec("registry.example.com/team/api:v2.4.0"))
    assert response_of(await review(body, "staging", Catalog(store)))["allowed"] is True
    response = response_of(await review(body, "prod", Catalog(store)))
    assert response["allowed"] is False
    assert "no image promoted to prod is tagged 'v2.4.0'" in response["status"]["message"]


async def test_bare_name_means_latest(store: CatalogStore) -> None:
    assert response_of(
        await review(admission_review("Pod", pod_spec("busybox")), "prod", Catalog(store))
    )["allowed"]
    response = response_of(
        await review(admission_review("Pod", pod_spec("nginx")), "prod", Catalog(store))
    )
    assert response["allowed"] is False
    assert "'latest'" in response["status"]["message"]


async def test_update_is_checked_like_create(store: CatalogStore) -> None:
    body = admission_review("StatefulSet", pod_spec("evil.example/miner:1"), operation="UPDATE")
    assert response_of(await review(body, "prod", Catalog(store)))["allowed"] is False


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
async def test_delete_and_connect_allowed(operation: str, store: CatalogStore) -> None:
    body = admission_review("Pod", pod_spec("evil.example/miner:1"), operation=operation)
    body["request"]["object"] = None
    body["request"]["oldObject"] = {"spec": "anything"}
    catalog = Catalog.of(store)
    assert response_of(await review(body, "prod", catalog)) == {"uid": UID, "allowed": True}
    assert catalog.calls == []


async def test_exempt_namespace(store: CatalogStore) -> None:
    body = admission_review("Pod", pod_spec("evil.example/x:1"), namespace="kube-system")
    exemptions = Exemptions(namespaces=frozenset({"kube-system"}))
    catalog = Catalog.of(store)
    response = response_of(await review(body, "prod", catalog, exemptions))
    assert response["allowed"] is True
    assert response["warnings"] == ["imgctl: namespace 'kube-system' is exempt; images not checked"]
    assert catalog.calls == []
    # Another namespace is still checked.
    body["request"]["namespace"] = "shop"
    assert response_of(await review(body, "prod", catalog, exemptions))["allowed"] is False


async def test_exempt_prefix_skipped_with_warning(store: CatalogStore) -> None:
    spec = pod_spec("registry.k8s.io/pause:3.9", "nginx:1.25", init=("istio/proxyv2:1.22",))
    exemptions = Exemptions(image_prefixes=("registry.k8s.io/", "docker.io/istio/proxyv2"))
    catalog = Catalog.of(store, ("prod", "docker.io/library/nginx", "1.25"))
    response = response_of(await review(admission_review("Pod", spec), "prod", catalog, exemptions))
    assert response["allowed"] is True
    assert response["warnings"] == [
        "imgctl: spec.containers[0].image 'registry.k8s.io/pause:3.9' not checked"
        " (exempt prefix 'registry.k8s.io/')",
        "imgctl: spec.initContainers[0].image 'istio/proxyv2:1.22' not checked"
        " (exempt prefix 'docker.io/istio/proxyv2')",
    ]
    assert [call[1] for call in catalog.calls] == ["docker.io/library/nginx"]


async def test_exempt_prefix_stops_at_a_boundary(store: CatalogStore) -> None:
    exemptions = Exemptions(image_prefixes=("registry.internal",))
    spec = pod_spec("registry.internal.evil.example/x:1", "registry.internal/ok:1")
    response = response_of(
        await review(admission_review("Pod", spec), "prod", Catalog.of(store), exemptions)
    )
    assert response["allowed"] is False
    assert "registry.internal.evil.example/x:1" in response["status"]["message"]
    assert "registry.internal/ok:1" not in response["status"]["message"]
    assert len(response["warnings"]) == 1


async def test_denied_response_keeps_warnings(store: CatalogStore) -> None:
    spec = pod_spec("registry.k8s.io/pause:3.9", "evil.example/x:1")
    exemptions = Exemptions(image_prefixes=("registry.k8s.io/",))
    response = response_of(
        await review(admission_review("Pod", spec), "prod", Catalog.of(store), exemptions)
    )
    assert response["allowed"] is False
    assert len(response["warnings"]) == 1


def test_exemptions_from_environment() -> None:
    exemptions = Exemptions.from_environment(
        {
            "IMGCTL_ADMISSION_EXEMPT_NAMESPACES": "kube-system, istio-system,,",
            "IMGCTL_ADMISSION_EXEMPT_IMAGES": " registry.k8s.io/ ,, ,docker.io/istio/",
        }
    )
    assert exemptions == Exemptions(
        namespaces=frozenset({"kube-system", "istio-system"}),
        image_prefixes=("registry.k8s.io/", "docker.io/istio/"),
    )
    # An empty variable must not turn into an empty prefix that exempts everything.
    assert Exemptions.from_environment({"IMGCTL_ADMISSION_EXEMPT_IMAGES": " , "}) == Exemptions()
    assert Exemptions.from_environment({}) == Exemptions()


class Boom(RuntimeError):
    pass


async def test_lookup_raising_denies_and_does_not_crash() -> None:
    async def broken(environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        raise Boom("database is down: postgres://admin:secret@db")

    spec = pod_spec("nginx:1.25", init=("ghcr.io/acme/migrate@" + D3,))
    response = response_of(await review(admission_review("Deployment", spec), "prod", broken))
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert message.count("catalog lookup failed (Boom)") == 2
    assert "secret" not in message  # the exception text may hold credentials; it goes to logs


async def test_lookup_not_returning_true_denies() -> None:
    async def sloppy(environment: str, name: str, digest: str | None, tag: str | None) -> Any:
        return "yes"

    response = response_of(await review(admission_review("Pod", pod_spec("nginx")), "prod", sloppy))
    assert response["allowed"] is False


async def test_cached_answers_skip_the_lookup(store: CatalogStore) -> None:
    spec = pod_spec("nginx:1.25", "registry.example.com/team/api@" + D2, "evil.example/x:1")
    remembered = {("prod", "docker.io/library/nginx", None, "1.25")}
    asked_memory: list[Key] = []

    def cached(environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        asked_memory.append((environment, name, digest, tag))
        return (environment, name, digest, tag) in remembered

    catalog = Catalog.of(store, ("prod", "registry.example.com/team/api", D2))
    body = admission_review("Pod", spec)
    response = response_of(await review(body, "prod", catalog, Exemptions(), cached))
    assert len(asked_memory) == 3
    # Only what memory did not confirm reached the lookup, which still decides.
    assert sorted(catalog.calls) == [
        ("prod", "evil.example/x", None, "1"),
        ("prod", "registry.example.com/team/api", D2, None),
    ]
    assert response["allowed"] is False
    assert "evil.example/x:1" in response["status"]["message"]
    assert "nginx" not in response["status"]["message"]

    # Everything remembered: allowed without a single lookup.
    catalog.calls.clear()
    spec = pod_spec("nginx:1.25")
    response = response_of(
        await review(admission_review("Pod", spec), "prod", catalog, cached=cached)
    )
    assert response == {"uid": UID, "allowed": True}
    assert catalog.calls == []


async def test_overlong_images_are_denied_and_not_kept(store: CatalogStore) -> None:
    admission._parse_image_cached.cache_clear()
    huge = "registry.example.com/" + "a" * 100_000 + ":v1"
    response = response_of(
        await review(admission_review("Pod", pod_spec(huge, "nginx:1.25")), "prod", Catalog(store))
    )
    assert response["allowed"] is False
    assert "not a valid image reference" in response["status"]["message"]
    assert admission._parse_image_cached.cache_info().currsize == 1  # nginx:1.25 only


async def test_cached_answer_not_true_does_not_allow(store: CatalogStore) -> None:
    def sloppy(environment: str, name: str, digest: str | None, tag: str | None) -> Any:
        return "yes"

    body = admission_review("Pod", pod_spec("nginx:9"))
    response = response_of(await review(body, "prod", Catalog.of(store), cached=sloppy))
    assert response["allowed"] is False


async def test_lookup_timeout_denies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission, "LOOKUP_TIMEOUT_SECONDS", 0.05)

    async def hanging(environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        await asyncio.sleep(60)
        return True

    response = response_of(
        await review(admission_review("Pod", pod_spec("nginx")), "prod", hanging)
    )
    assert response["allowed"] is False
    assert "catalog lookup timed out after 0.05s" in response["status"]["message"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json at all", "the body must be an object, got a string"),
        ([], "the body must be an object, got an array"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {}}, "kind must be"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request is missing"),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": None},
            "request must be an object, got null",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}},
            "request.uid must be a non-empty string",
        ),
    ],
)
async def test_review_rejects_what_is_not_an_admission_review(
    body: Any, error: str, store: CatalogStore
) -> None:
    with pytest.raises(MalformedReview, match=error):
        await review(body, "prod", Catalog(store))


async def test_review_missing_object_on_create_is_denied(store: CatalogStore) -> None:
    # The uid is known, so the review gets an answer: a denial naming what is wrong.
    body = admission_review("Pod", pod_spec("nginx:1.25"))
    del body["request"]["object"]
    response = response_of(await review(body, "prod", Catalog(store)))
    assert response["allowed"] is False
    assert response["status"] == {
        "code": 403,
        "message": "imgctl cannot check this object, so it is denied in prod: malformed "
        "AdmissionReview: request.object is missing for a CREATE",
    }


# --- HTTP -------------------------------------------------------------------------------


@pytest.fixture
def app(store: CatalogStore) -> AdmissionWebhook:
    """The webhook as the server builds it: the store's lookup and its in-memory answers."""
    inner = FastAPI()

    @inner.get("/admission/{environment}/other")
    async def other(environment: str) -> dict[str, str]:
        return {"from": "the wrapped app", "environment": environment}

    exemptions = Exemptions(namespaces=frozenset({"kube-system"}))
    return AdmissionWebhook(inner, store.promoted, exemptions, store.known)


@pytest.fixture
async def client(app: AdmissionWebhook) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://imgctl.test") as client:
        yield client


async def test_http_allowed(client: httpx.AsyncClient) -> None:
    body = admission_review("Deployment", pod_spec("nginx:1.25"))
    answer = await client.post("/admission/prod", json=body)
    assert answer.status_code == 200
    assert answer.json() == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": UID, "allowed": True},
    }


async def test_http_denied_and_exempt(client: httpx.AsyncClient) -> None:
    body = admission_review("CronJob", pod_spec("evil.example/x:1"))
    answer = await client.post("/admission/prod", json=body)
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert (
        "spec.jobTemplate.spec.template.spec.containers[0].image" in response["status"]["message"]
    )
    body["request"]["namespace"] = "kube-system"
    answer = await client.post("/admission/prod", json=body)
    assert answer.json()["response"]["allowed"] is True


async def test_http_environment_from_path(client: httpx.AsyncClient) -> None:
    body = admission_review("Pod", pod_spec("registry.example.com/team/api:v2.4.0"))
    assert (await client.post("/admission/staging", json=body)).json()["response"]["allowed"]
    assert not (await client.post("/admission/prod", json=body)).json()["response"]["allowed"]


async def test_http_lookup_raising_is_a_denial_not_a_500() -> None:
    async def broken(environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        raise ConnectionError("db")

    app = AdmissionWebhook(FastAPI(), broken, Exemptions())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://imgctl.test"
    ) as client:
        answer = await client.post("/admission/prod", json=admission_review("Pod", pod_spec("a")))
    assert answer.status_code == 200
    assert answer.json()["response"]["allowed"] is False


def _mutated(change: Any) -> bytes:
    body = admission_review("Pod", pod_spec("nginx:1.25"))
    change(body)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "request body is not valid JSON"),
        (b"{not json", "request body is not valid JSON"),
        (b"\xff\xfe\x00garbage", "request body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "request body is not valid JSON"),
        (
            _mutated(lambda b: b.__setitem__("apiVersion", "admission.k8s.io/v1beta1")),
            "malformed AdmissionReview: apiVersion must be 'admission.k8s.io/v1',"
            " got 'admission.k8s.io/v1beta1'",
        ),
        (_mutated(lambda b: b.pop("request")), "malformed AdmissionReview: request is missing"),
        (
            _mutated(lambda b: b["request"].pop("uid")),
            "malformed AdmissionReview: request.uid must be a non-empty string",
        ),
    ],
)
async def test_http_malformed_is_400(client: httpx.AsyncClient, content: bytes, error: str) -> None:
    answer = await client.post(
        "/admission/prod", content=content, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["message"].startswith(error)
    code = "invalid_json" if error.startswith("request body") else "malformed_review"
    assert answer.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            _mutated(lambda b: b["request"]["object"]["spec"].__setitem__("containers", {})),
            "malformed AdmissionReview: request.object.spec.containers must be a list,"
            " got an object",
        ),
        (
            _mutated(lambda b: b["request"]["object"]["spec"]["containers"][0].update(image=None)),
            "malformed AdmissionReview: request.object.spec.containers[0].image must be a string,"
            " got null",
        ),
    ],
)
async def test_http_malformed_object_is_a_denial(
    client: httpx.AsyncClient, content: bytes, error: str
) -> None:
    # A review with a uid is answered, and what cannot be checked is denied: a 400 would be
    # ignored by a webhook registered with failurePolicy: Ignore.
    answer = await client.post(
        "/admission/prod", content=content, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["message"].endswith(error)


async def test_http_a_failing_decision_is_a_500_never_an_allow(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    def explode(request: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(admission, "_images", explode)  # what a decision walks
    answer = await client.post("/admission/prod", json=admission_review("Pod", pod_spec("a")))
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal"
    assert "allowed" not in answer.text


async def test_http_too_large_is_413(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    small = json.dumps(admission_review("Pod", pod_spec("nginx:1.25"))).encode()
    monkeypatch.setattr(admission, "MAX_REVIEW_BYTES", len(small))
    assert (await client.post("/admission/prod", content=small)).status_code == 200
    answer = await client.post("/admission/prod", content=small + b" ")
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"


async def test_http_only_post_and_other_paths_reach_the_app(client: httpx.AsyncClient) -> None:
    answer = await client.get("/admission/prod")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error"]["code"] == "method_not_allowed"
    # Paths that are not /admission/<one segment> are the wrapped app's.
    assert (await client.get("/admission/prod/other")).json() == {
        "from": "the wrapped app",
        "environment": "prod",
    }
    assert (await client.post("/admission/", json={})).status_code == 404
    assert (await client.get("/nothing")).status_code == 404


def test_http_webhook_is_in_the_openapi_schema(app: AdmissionWebhook) -> None:
    schema = app.app.openapi()
    operation = schema["paths"]["/admission/{environment}"]["post"]
    assert operation["responses"]["400"]["content"]["application/json"]["schema"]["required"] == [
        "error"
    ]
    assert "/admission/{environment}/other" in schema["paths"]


# --- properties -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
WORDS = ["Deployment", "CronJob", "apps", "batch", "", "nginx:1.25", "evil/x", "busybox"]
KEYS = ["apiVersion", "kind", "request", "uid", "operation", "object", "spec", "template"]
KEYS += ["jobTemplate", "containers", "initContainers", "ephemeralContainers", "image"]
KEYS += ["namespace", "subResource", "group", "volumes", "reference"]
interesting = st.recursive(
    st.none()
    | st.sampled_from(
        [UID, "admission.k8s.io/v1", "AdmissionReview", "CREATE", "UPDATE", "DELETE", "Pod", *WORDS]
    )
    | st.integers(),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=40,
)
IMAGES = [
    "nginx:1.25",
    "docker.io/library/nginx:1.25",
    "nginx@" + D1,
    "nginx:1.25@" + D3,
    "registry.example.com/team/api@" + D2,
    "registry.example.com/team/api:v2.4.0",
    "busybox",
    "evil.example/x:1",
    "",
    "UPPER/case",
]
images = st.sampled_from(IMAGES) | st.text(max_size=30)


def _promoted(image: str, records: set[tuple[str, str, str]]) -> bool:
    try:
        ref = Reference.parse(image)
    except ValueError:
        return False
    wanted = str(ref.digest) if ref.digest is not None else ref.tag or "latest"
    return ("prod", ref.name, wanted) in records


async def _decide_or_malformed(body: Any, catalog: Catalog) -> dict[str, Any] | None:
    try:
        return await review(body, "prod", catalog)
    except MalformedReview:
        return None


def _assert_nothing_unpromoted_allowed(body: Any, answer: dict[str, Any] | None) -> None:
    if answer is None or not answer["response"]["allowed"]:
        return
    request = body["request"]
    if request.get("operation") in ("DELETE", "CONNECT"):
        return
    assert images_of(request) == []


# The property tests share one opened store across their examples: they only read it, and every
# subset of PROMOTABLE they draw is an environment of its own there.
READ_ONLY_STORE = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


# AdmissionReview-shaped JSON: gets past the envelope often, then goes wrong anywhere.
def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten, else anything."""
    return st.integers(0, 9).flatmap(lambda n: interesting if n == 0 else good)


container_dicts = st.fixed_dictionaries(
    {"image": mostly(images)}, optional={"name": st.text(max_size=5)}
)
container_lists = mostly(st.lists(container_dicts, max_size=3))
# Image volumes among other volumes.
volume_dicts = st.fixed_dictionaries(
    {"name": st.text(max_size=5)},
    optional={
        "image": mostly(st.fixed_dictionaries({"reference": mostly(images)})),
        "emptyDir": st.just({}),
    },
)
pod_specs = st.fixed_dictionaries(
    {},
    optional={
        "containers": container_lists,
        "initContainers": container_lists,
        "ephemeralContainers": container_lists,
        "volumes": mostly(st.lists(volume_dicts, max_size=3)),
    },
)
KIND_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "EphemeralContainers"): (),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("", "ConfigMap"): ("spec",),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("extensions", "DaemonSet"): ("spec", "template", "spec"),
}

PATHS = sorted(set(KIND_PATHS.values()))


def _wrap(spec: Any, path: tuple[str, ...]) -> Any:
    for key in reversed(path):
        spec = {key: spec}
    return spec


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """An AdmissionRequest whose object mostly has the shape its kind calls for."""
    group, kind = draw(st.sampled_from(sorted(KIND_PATHS)))
    right = st.just(KIND_PATHS[group, kind])
    path = draw(st.integers(0, 9).flatmap(lambda n: right if n else st.sampled_from(PATHS)))
    objects = mostly(st.builds(_wrap, pod_specs, st.just(path)))
    request = draw(
        st.fixed_dictionaries(
            {
                "uid": mostly(st.just(UID)),
                "kind": mostly(st.just({"group": group, "version": "v1", "kind": kind})),
                "operation": mostly(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"])),
                "object": objects,
            },
            optional={
                "namespace": st.sampled_from(["shop", "kube-system"]) | interesting,
                "subResource": st.sampled_from(["", "status", "ephemeralcontainers"]) | interesting,
                "oldObject": objects,
            },
        )
    )
    return request


reviews = st.fixed_dictionaries(
    {
        "apiVersion": mostly(st.just("admission.k8s.io/v1")),
        "kind": mostly(st.just("AdmissionReview")),
        "request": mostly(requests()),
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=READ_ONLY_STORE)
@given(body=json_values | interesting | reviews)
async def test_random_json_never_allows_and_never_crashes(body: Any, store: CatalogStore) -> None:
    catalog = Catalog.of(store)  # nothing promoted: only an image-less object may be allowed
    _assert_nothing_unpromoted_allowed(body, await _decide_or_malformed(body, catalog))


@settings(max_examples=400, deadline=None, suppress_health_check=READ_ONLY_STORE)
@given(body=reviews, records=st.sets(st.sampled_from(PROMOTABLE)))
async def test_random_reviews_allow_only_promoted_images(
    body: Any,
    records: set[tuple[str, str, str]],
    store: CatalogStore,
) -> None:
    answer = await _decide_or_malformed(body, Catalog.of(store, *records))
    if answer is None or not answer["response"]["allowed"]:
        return
    request = body["request"]
    if request.get("operation") in ("DELETE", "CONNECT"):
        return
    assert all(_promoted(image, records) for _, image in images_of(request))


@settings(max_examples=300, deadline=None, suppress_health_check=READ_ONLY_STORE)
@given(
    kind=st.sampled_from(WORKLOADS),
    containers=st.lists(images, min_size=1, max_size=3),
    init=st.lists(images, max_size=2),
    ephemeral=st.lists(images, max_size=2),
    records=st.sets(st.sampled_from(PROMOTABLE)),
    noise=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3),
)
async def test_allowed_iff_every_image_promoted(
    kind: str,
    containers: list[str],
    init: list[str],
    ephemeral: list[str],
    records: set[tuple[str, str, str]],
    noise: dict[str, Any],
    store: CatalogStore,
) -> None:
    spec = pod_spec(*containers, init=tuple(init), ephemeral=tuple(ephemeral))
    body = admission_review(kind, spec)
    catalog = Catalog.of(store, *records)
    response = response_of(await review(body, "prod", catalog))
    everything = containers + init + ephemeral
    assert response["allowed"] is all(_promoted(image, records) for image in everything)
    if not response["allowed"]:
        denied = [image for image in everything if not _promoted(image, records)]
        for image in denied:
            assert repr(image) in response["status"]["message"]
    # Random extra fields in the pod spec change nothing, or make the review malformed.
    spec.update(noise)
    answer = await _decide_or_malformed(body, catalog)
    if answer is not None and answer["response"]["allowed"]:
        assert all(_promoted(image, records) for _, image in images_of(body["request"]))


@pytest.mark.parametrize(
    "uid",
    ["705ab4f5-6393-11e8-b7cc-42010a800002", 'a"b', "a\\b", "é-ü", "tab\there", "del\x7f", "<&>/"],
)
def test_an_allowed_answer_is_written_as_json_dumps_writes_it(uid: str) -> None:
    body = {
        "apiVersion": admission.ADMISSION_API_VERSION,
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True},
    }
    written = admission._encode(body)
    assert written == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(written)["response"]["uid"] == uid
