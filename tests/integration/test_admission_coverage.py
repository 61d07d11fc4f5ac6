"""Admission coverage: every place a workload names an image is checked, for every workload kind,
and a review the webhook cannot fully parse is denied, never allowed (issue 15, item 2).

Everything goes through a real `imgctl catalog serve` (catalog API, webhook, SQLite catalog):
the records are written with PUT /images, the decisions read from POST /admission/prod.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ..conftest import IMGCTL
from ..support.catalog import catalog_server

OK_DIGEST = "sha256:" + "a" * 64
BAD_DIGEST = "sha256:" + "b" * 64
NAME = "registry.example.com/team/api"
GOOD = [f"{NAME}:v1", f"{NAME}@{OK_DIGEST}", f"{NAME}:v1@{OK_DIGEST}"]
BAD = [f"{NAME}:v9", f"{NAME}@{BAD_DIGEST}", "evil.example/miner:1", "Not A Ref"]
UID = "b6a1c2d3-0000-4000-8000-00000000f00d"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with catalog_server(IMGCTL, tmp_path_factory.mktemp("catalog")) as base:
        body = {"id": OK_DIGEST, "name": NAME, "tags": ["v1"], "environment": "prod"}
        answer = httpx.put(
            f"{base}/images", json=body, headers={"Authorization": "Bearer write-me"}
        )
        assert answer.status_code in (200, 201), answer.text
        yield base


# --- objects as the API server sends them ----------------------------------------------------

LOCATIONS = ("containers", "initContainers", "ephemeralContainers", "volumes")


def pod_spec(images: dict[str, str]) -> dict[str, Any]:
    """A pod spec with one image in each location of ``images`` (location -> image)."""
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": images.get("containers", GOOD[0])}],
        "restartPolicy": "Always",
        "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
    }
    if "initContainers" in images:
        spec["initContainers"] = [{"name": "migrate", "image": images["initContainers"]}]
    if "ephemeralContainers" in images:
        spec["ephemeralContainers"] = [
            {
                "name": "debugger",
                "image": images["ephemeralContainers"],
                "targetContainerName": "app",
            }
        ]
    if "volumes" in images:
        spec["volumes"].append(
            {"name": "models", "image": {"reference": images["volumes"], "pullPolicy": "Always"}}
        )
    return spec


# Where each location's image sits inside a pod spec.
IMAGE_PATHS = {
    "containers": "containers[0].image",
    "initContainers": "initContainers[0].image",
    "ephemeralContainers": "ephemeralContainers[0].image",
    "volumes": "volumes[1].image.reference",
}


def template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "api"}}, "spec": spec}


# (group, kind, resource, subresource, how the object wraps a pod spec, where the spec is)
Kind = tuple[str, str, str, str, Callable[[dict[str, Any]], dict[str, Any]], str]
KINDS: list[Kind] = [
    ("", "Pod", "pods", "", lambda spec: {"spec": spec}, "spec."),
    ("", "Pod", "pods", "ephemeralcontainers", lambda spec: {"spec": spec}, "spec."),
    (
        "",
        "PodTemplate",
        "podtemplates",
        "",
        lambda spec: {"template": template(spec)},
        "template.spec.",
    ),
    (
        "",
        "ReplicationController",
        "replicationcontrollers",
        "",
        lambda spec: {"spec": {"replicas": 2, "template": template(spec)}},
        "spec.template.spec.",
    ),
    *(
        (
            group,
            kind,
            kind.lower() + "s",
            "",
            lambda spec: {"spec": {"selector": {}, "template": template(spec)}},
            "spec.template.spec.",
        )
        for group, kind in [
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("extensions", "Deployment"),
            ("extensions", "ReplicaSet"),
            ("extensions", "DaemonSet"),
            ("batch", "Job"),
        ]
    ),
    (
        "batch",
        "CronJob",
        "cronjobs",
        "",
        lambda spec: {
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template(spec)}}}
        },
        "spec.jobTemplate.spec.template.spec.",
    ),
]
KIND_IDS = [f"{k[0] or 'core'}/{k[1]}{'/' + k[3] if k[3] else ''}" for k in KINDS]


def review(
    group: str,
    kind: str,
    resource: str,
    obj: Any,
    *,
    sub_resource: str = "",
    operation: str = "CREATE",
) -> dict[str, Any]:
    """An AdmissionReview v1 of ``obj``."""
    version = "v1beta1" if group == "extensions" else "v1"
    request: dict[str, Any] = {
        "uid": UID,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "namespace": "shop",
        "operation": operation,
        "userInfo": {"username": "deployer"},
        "object": obj,
        "oldObject": copy.deepcopy(obj) if operation == "UPDATE" else None,
        "dryRun": False,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def kind_review(entry: Kind, spec: dict[str, Any]) -> dict[str, Any]:
    group, kind, resource, sub_resource, wrap, _ = entry
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "api", "namespace": "shop"}}
    obj.update(wrap(spec))
    operation = "UPDATE" if sub_resource else "CREATE"
    return review(group, kind, resource, obj, sub_resource=sub_resource, operation=operation)


def decide(url: str, body: Any) -> dict[str, Any]:
    """The webhook's AdmissionResponse for ``body`` (an answer, never an HTTP error)."""
    answer = httpx.post(f"{url}/admission/prod", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"]["uid"] == UID
    response: dict[str, Any] = answer.json()["response"]
    return response


def denial(url: str, body: Any) -> str:
    response = decide(url, body)
    assert response["allowed"] is False, body
    assert response["status"]["code"] == 403
    message: str = response["status"]["message"]
    return message


# --- every kind, every location ---------------------------------------------------------------


@pytest.mark.parametrize("entry", KINDS, ids=KIND_IDS)
def test_every_location_of_every_kind_allowed_when_promoted(url: str, entry: Kind) -> None:
    spec = pod_spec({location: GOOD[n % len(GOOD)] for n, location in enumerate(LOCATIONS)})
    assert decide(url, kind_review(entry, spec)) == {"uid": UID, "allowed": True}


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("entry", KINDS, ids=KIND_IDS)
def test_every_location_of_every_kind_is_checked(url: str, entry: Kind, location: str) -> None:
    base = entry[5]
    for bad in BAD:
        images = {other: GOOD[0] for other in LOCATIONS}
        images[location] = bad
        message = denial(url, kind_review(entry, pod_spec(images)))
        assert message.startswith("imgctl denied 1 image(s) in prod: ")
        assert f"{base}{IMAGE_PATHS[location]} {bad!r}: " in message


def test_legacy_ephemeral_containers_kind_is_checked(url: str) -> None:
    # pods/ephemeralcontainers before Kubernetes 1.22: kind EphemeralContainers, list on top.
    def body(image: str) -> dict[str, Any]:
        obj = {
            "kind": "EphemeralContainers",
            "apiVersion": "v1",
            "metadata": {"name": "api", "namespace": "shop"},
            "ephemeralContainers": [{"name": "debugger", "image": image}],
        }
        return review(
            "",
            "EphemeralContainers",
            "pods",
            obj,
            sub_resource="ephemeralcontainers",
            operation="UPDATE",
        )

    assert decide(url, body(GOOD[1]))["allowed"] is True
    message = denial(url, body(BAD[0]))
    assert f"ephemeralContainers[0].image {BAD[0]!r}: tag not resolvable" in message


def test_every_image_volume_is_checked(url: str) -> None:
    spec = pod_spec({})
    spec["volumes"] = [
        {"name": f"v{n}", "image": {"reference": image}} for n, image in enumerate([*GOOD, *BAD])
    ]
    message = denial(url, kind_review(KINDS[0], spec))
    assert message.startswith(f"imgctl denied {len(BAD)} image(s) in prod: ")
    for n, image in enumerate([*GOOD, *BAD]):
        assert (f"spec.volumes[{n}].image.reference {image!r}" in message) is (image in BAD)


# --- what cannot be parsed is denied, naming the field ----------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def spec_of(request: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = request["object"]["spec"]["template"]["spec"]
    return spec


MALFORMED: list[tuple[str, Mutation, str]] = [
    # The pod spec's lists and their items.
    (
        "containers missing",
        lambda r: spec_of(r).pop("containers"),
        "spec.template.spec.containers is missing",
    ),
    (
        "containers null",
        lambda r: spec_of(r).update(containers=None),
        "spec.template.spec.containers is missing",
    ),
    (
        "containers a string",
        lambda r: spec_of(r).update(containers="nginx"),
        "spec.template.spec.containers must be a list, got a string",
    ),
    (
        "containers an object",
        lambda r: spec_of(r).update(containers={"image": "x"}),
        "spec.template.spec.containers must be a list, got an object",
    ),
    (
        "container a string",
        lambda r: spec_of(r)["containers"].__setitem__(0, "nginx"),
        "spec.template.spec.containers[0] must be an object, got a string",
    ),
    (
        "image missing",
        lambda r: spec_of(r)["containers"][0].pop("image"),
        "spec.template.spec.containers[0].image is missing",
    ),
    (
        "image null",
        lambda r: spec_of(r)["containers"][0].update(image=None),
        "spec.template.spec.containers[0].image must be a string, got null",
    ),
    (
        "image a number",
        lambda r: spec_of(r)["containers"][0].update(image=7),
        "spec.template.spec.containers[0].image must be a string, got a number",
    ),
    (
        "image a list",
        lambda r: spec_of(r)["containers"][0].update(image=["nginx"]),
        "spec.template.spec.containers[0].image must be a string, got an array",
    ),
    (
        "image an object",
        lambda r: spec_of(r)["containers"][0].update(image={"name": "x"}),
        "spec.template.spec.containers[0].image must be a string, got an object",
    ),
    (
        "initContainers an object",
        lambda r: spec_of(r).update(initContainers={}),
        "spec.template.spec.initContainers must be a list, got an object",
    ),
    (
        "init image a boolean",
        lambda r: spec_of(r).update(initContainers=[{"image": True}]),
        "spec.template.spec.initContainers[0].image must be a string, got a boolean",
    ),
    (
        "ephemeralContainers a string",
        lambda r: spec_of(r).update(ephemeralContainers="x"),
        "spec.template.spec.ephemeralContainers must be a list, got a string",
    ),
    (
        "ephemeral image missing",
        lambda r: spec_of(r).update(ephemeralContainers=[{"name": "d"}]),
        "spec.template.spec.ephemeralContainers[0].image is missing",
    ),
    # Image volumes.
    (
        "volumes an object",
        lambda r: spec_of(r).update(volumes={"image": {}}),
        "spec.template.spec.volumes must be a list, got an object",
    ),
    (
        "volume a string",
        lambda r: spec_of(r).update(volumes=["models"]),
        "spec.template.spec.volumes[0] must be an object, got a string",
    ),
    (
        "volume image a string",
        lambda r: spec_of(r).update(volumes=[{"name": "m", "image": "evil.example/x:1"}]),
        "spec.template.spec.volumes[0].image must be an object, got a string",
    ),
    (
        "volume reference missing",
        lambda r: spec_of(r).update(volumes=[{"name": "m", "image": {"pullPolicy": "Always"}}]),
        "spec.template.spec.volumes[0].image.reference is missing",
    ),
    (
        "volume reference a number",
        lambda r: spec_of(r).update(volumes=[{"name": "m", "image": {"reference": 1}}]),
        "spec.template.spec.volumes[0].image.reference must be a string, got a number",
    ),
    (
        "volume reference null",
        lambda r: spec_of(r).update(volumes=[{"name": "m", "image": {"reference": None}}]),
        "spec.template.spec.volumes[0].image.reference must be a string, got null",
    ),
    # The way down to the pod spec.
    (
        "spec missing",
        lambda r: r["object"].pop("spec"),
        "request.object.spec must be an object, got null",
    ),
    (
        "template a list",
        lambda r: r["object"]["spec"].update(template=[]),
        "request.object.spec.template must be an object, got an array",
    ),
    (
        "pod spec a string",
        lambda r: r["object"]["spec"]["template"].update(spec="x"),
        "request.object.spec.template.spec must be an object, got a string",
    ),
    (
        "object a list",
        lambda r: r.update(object=[]),
        "request.object must be an object, got an array",
    ),
    ("object missing", lambda r: r.pop("object"), "request.object is missing for a CREATE"),
    ("object null", lambda r: r.update(object=None), "request.object is missing for a CREATE"),
    # The request's own fields.
    (
        "kind a string",
        lambda r: r.update(kind="Deployment"),
        "request.kind must be an object, got a string",
    ),
    ("kind missing", lambda r: r.pop("kind"), "request.kind must be an object, got null"),
    (
        "kind.kind a number",
        lambda r: r["kind"].update(kind=1),
        "request.kind.kind must be a non-empty string",
    ),
    (
        "kind.group a list",
        lambda r: r["kind"].update(group=["apps"]),
        "request.kind.group must be a string, got an array",
    ),
    (
        "operation unknown",
        lambda r: r.update(operation="PATCH"),
        "request.operation must be one of CREATE, UPDATE, DELETE, CONNECT, got 'PATCH'",
    ),
    ("operation missing", lambda r: r.pop("operation"), "request.operation must be one of"),
    (
        "namespace a number",
        lambda r: r.update(namespace=3),
        "request.namespace must be a string, got a number",
    ),
    (
        "subResource an object",
        lambda r: r.update(subResource={}),
        "request.subResource must be a string, got an object",
    ),
]


def deployment_review() -> dict[str, Any]:
    return kind_review(KINDS[4], pod_spec({"initContainers": GOOD[1]}))


@pytest.mark.parametrize(
    ("mutate", "problem"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_what_cannot_be_parsed_is_denied_naming_the_field(
    url: str, mutate: Mutation, problem: str
) -> None:
    body = deployment_review()
    assert decide(url, body)["allowed"] is True  # the unbroken review is allowed
    mutate(body["request"])
    message = denial(url, body)
    assert message.startswith("imgctl cannot check this object, so it is denied in prod: ")
    assert problem in message


def test_a_kind_imgctl_does_not_know_is_denied_when_it_holds_containers(url: str) -> None:
    # An Argo Rollout carries a pod template where a Deployment does; imgctl does not know the
    # kind, so it cannot say that those are all the images it runs.
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "api"},
        "spec": {"replicas": 2, "template": template(pod_spec({}))},
    }
    body = review("argoproj.io", "Rollout", "rollouts", rollout)
    message = denial(url, body)
    assert "request.object.spec.template.spec.containers holds containers" in message
    assert "argoproj.io/Rollout" in message
    # So is a CRD that borrows a known kind's name, and a known kind in the wrong group.
    body = review("example.com", "Deployment", "deployments", copy.deepcopy(rollout))
    assert "example.com/Deployment" in denial(url, body)
    body = review("apps", "Pod", "pods", {"spec": pod_spec({})})
    assert "request.object.spec.containers holds containers" in denial(url, body)
    # Containers anywhere: lists of lists, deep down.
    deep = {"spec": {"stages": [[{"podSpec": {"initContainers": []}}]]}}
    message = denial(url, review("ci.example.com", "Pipeline", "pipelines", deep))
    assert "request.object.spec.stages[0][0].podSpec.initContainers holds containers" in message


def test_a_kind_imgctl_does_not_know_is_allowed_when_it_holds_no_containers(url: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        # A key called "containers" whose value is text is data, not a pod spec.
        "data": {"containers": "- image: evil.example/x:1\n", "image": "evil.example/x:1"},
    }
    assert decide(url, review("", "ConfigMap", "configmaps", config))["allowed"] is True


def test_imageless_subresources_delete_and_connect_stay_allowed(url: str) -> None:
    body = kind_review(KINDS[0], pod_spec({"containers": BAD[2]}))
    body["request"]["subResource"] = "status"
    body["request"]["operation"] = "UPDATE"
    assert decide(url, body)["allowed"] is True
    for operation in ("DELETE", "CONNECT"):
        body = kind_review(KINDS[0], pod_spec({"containers": BAD[2]}))
        body["request"].update(operation=operation, object=None)
        assert decide(url, body)["allowed"] is True


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request is missing"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
            "request.uid must be a non-empty string",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}',
            "apiVersion must be 'admission.k8s.io/v1'",
        ),
    ],
)
def test_a_review_without_a_uid_to_answer_is_an_http_error(
    url: str, content: bytes, error: str
) -> None:
    # No uid, no AdmissionReview answer the API server would accept: a 400, which the API
    # server treats as a failed call (a rejection with failurePolicy: Fail).
    answer = httpx.post(
        f"{url}/admission/prod", content=content, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert error in answer.json()["error"]["message"]
    assert "allowed" not in answer.text
