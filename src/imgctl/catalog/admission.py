"""Kubernetes admission: allow a workload only if every image it runs was promoted.

A ValidatingAdmissionWebhook posts an AdmissionReview v1 to ``POST /admission/{environment}``;
:func:`review` finds every image of the object (:func:`images_of`), asks the catalog through a
:data:`Lookup` whether it was promoted to that environment, and answers with an AdmissionReview
response. Errors never allow: an unparseable image, a failing or slow lookup, all deny.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from imgctl.errors import ImgctlError, InvalidReferenceError
from imgctl.oci.reference import DEFAULT_TAG, Reference

__all__ = [
    "ADMISSION_API_VERSION",
    "LOOKUP_TIMEOUT_SECONDS",
    "Exemptions",
    "Lookup",
    "MalformedReview",
    "create_admission_router",
    "images_of",
    "review",
]

logger = logging.getLogger(__name__)

ADMISSION_API_VERSION = "admission.k8s.io/v1"
# The webhook configuration gives the API server 5 s; answering (denied) before that keeps the
# message ours instead of a bare "context deadline exceeded".
LOOKUP_TIMEOUT_SECONDS = 4.0

Lookup: TypeAlias = Callable[[str, str, str | None, str | None], Awaitable[bool]]
"""``(environment, canonical name, digest or None, tag or None) -> promoted?``"""

_ENV_NAMESPACES = "IMGCTL_ADMISSION_EXEMPT_NAMESPACES"
_ENV_IMAGES = "IMGCTL_ADMISSION_EXEMPT_IMAGES"

# Where the pod spec sits in each object kind, by (API group, kind). ``extensions`` is the
# pre-1.16 home of Deployment/ReplicaSet/DaemonSet, still seen through old conversions.
_POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("extensions", "Deployment"): ("spec", "template", "spec"),
    ("extensions", "ReplicaSet"): ("spec", "template", "spec"),
    ("extensions", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    # pods/ephemeralcontainers before Kubernetes 1.22 sent this kind, the list at the top level.
    ("", "EphemeralContainers"): (),
}
_CONTAINER_FIELDS = ("containers", "initContainers", "ephemeralContainers")
# Subresources whose writes cannot change an image; anything else (the main resource,
# pods/ephemeralcontainers, a future one) is checked.
_IMAGELESS_SUBRESOURCES = frozenset({"status", "resize", "binding", "eviction", "scale"})
_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class MalformedReview(ImgctlError, ValueError):
    """The body is not a well-formed AdmissionReview v1; ``path`` locates the problem."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"malformed AdmissionReview: {path} {problem}")
        self.path = path


@dataclass(frozen=True, slots=True)
class Exemptions:
    """Namespaces that are not checked, and image prefixes that are skipped with a warning."""

    namespaces: frozenset[str] = frozenset()
    image_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Exemptions:
        """Read the comma-separated IMGCTL_ADMISSION_EXEMPT_NAMESPACES / _IMAGES variables."""
        env = os.environ if environ is None else environ
        return cls(
            namespaces=frozenset(_split_list(env.get(_ENV_NAMESPACES, ""))),
            image_prefixes=tuple(_split_list(env.get(_ENV_IMAGES, ""))),
        )

    def prefix_for(self, image: str, reference: Reference | None) -> str | None:
        """The exempt prefix ``image`` (as written, or canonical) falls under, if any."""
        candidates = [image] if reference is None else [image, str(reference)]
        for prefix in self.image_prefixes:
            if any(_has_prefix(candidate, prefix) for candidate in candidates):
                return prefix
        return None


def _split_list(value: str) -> list[str]:
    # Empty items are dropped: an empty prefix would exempt every image.
    return [item.strip() for item in value.split(",") if item.strip()]


def _has_prefix(image: str, prefix: str) -> bool:
    # A prefix ends at a boundary, so "registry.internal" does not exempt
    # "registry.internal.evil.example/x"; end a prefix with "/" to mean "anything below".
    if not image.startswith(prefix):
        return False
    if len(image) == len(prefix) or prefix[-1] in "/:@":
        return True
    return image[len(prefix)] in "/:@"


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedReview(path, f"must be an object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _optional_str(request: Mapping[str, Any], key: str) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedReview(f"request.{key}", f"must be a string, got {_json_type(value)}")
    return value


def _operation(request: Mapping[str, Any]) -> str:
    operation = request.get("operation")
    if operation not in _OPERATIONS:
        raise MalformedReview(
            "request.operation", f"must be one of {', '.join(_OPERATIONS)}, got {operation!r}"
        )
    return str(operation)


def images_of(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every ``(path in the object, image)`` of an AdmissionRequest; unknown kinds have none."""
    request = _mapping(request, "request")
    gvk = _mapping(request.get("kind"), "request.kind")
    group, kind = gvk.get("group", ""), gvk.get("kind")
    if not isinstance(group, str):
        raise MalformedReview("request.kind.group", f"must be a string, got {_json_type(group)}")
    if not isinstance(kind, str) or not kind:
        raise MalformedReview("request.kind.kind", "must be a non-empty string")
    operation = _operation(request)
    if _optional_str(request, "subResource") in _IMAGELESS_SUBRESOURCES:
        return []
    spec_path = _POD_SPEC_PATHS.get((group, kind))
    if spec_path is None:
        return []
    obj = request.get("object")
    if obj is None:
        if operation in ("CREATE", "UPDATE"):
            raise MalformedReview("request.object", f"is missing for a {operation}")
        return []

    node = _mapping(obj, "request.object")
    walked: list[str] = []
    for key in spec_path:
        walked.append(key)
        node = _mapping(node.get(key), "request.object." + ".".join(walked))

    base = "".join(f"{key}." for key in spec_path)
    images: list[tuple[str, str]] = []
    for field in _CONTAINER_FIELDS:
        containers = node.get(field)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise MalformedReview(
                f"request.object.{base}{field}", f"must be a list, got {_json_type(containers)}"
            )
        for index, container in enumerate(containers):
            where = f"{base}{field}[{index}]"
            image = _mapping(container, f"request.object.{where}").get("image")
            if not isinstance(image, str):
                raise MalformedReview(
                    f"request.object.{where}.image", f"must be a string, got {_json_type(image)}"
                )
            images.append((f"{where}.image", image))
    return images


def _request_of(body: Any) -> Mapping[str, Any]:
    body = _mapping(body, "the body")
    if body.get("apiVersion") != ADMISSION_API_VERSION:
        raise MalformedReview(
            "apiVersion", f"must be {ADMISSION_API_VERSION!r}, got {body.get('apiVersion')!r}"
        )
    if body.get("kind") != "AdmissionReview":
        raise MalformedReview("kind", f"must be 'AdmissionReview', got {body.get('kind')!r}")
    if "request" not in body:
        raise MalformedReview("request", "is missing")
    request = _mapping(body["request"], "request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("request.uid", "must be a non-empty string")
    return request


@dataclass(frozen=True, slots=True)
class _Check:
    path: str
    image: str
    key: tuple[str, str | None, str | None]


async def _ask(
    lookup: Lookup, environment: str, key: tuple[str, str | None, str | None]
) -> str | None:
    """None if promoted, else why not; never raises for a failing lookup."""
    name, digest, tag = key
    try:
        promoted = await lookup(environment, name, digest, tag)
    except Exception as exc:
        logger.warning("admission lookup of %s failed", key, exc_info=True)
        return f"catalog lookup failed ({type(exc).__name__}), denied to be safe"
    # Only a real True allows: a lookup returning None or an object is a bug, not a yes.
    if promoted is True:
        return None
    if digest is not None:
        return f"not promoted to {environment}"
    return f"tag not resolvable: no image promoted to {environment} is tagged {tag!r}"


async def _ask_all(
    lookup: Lookup, environment: str, keys: set[tuple[str, str | None, str | None]]
) -> dict[tuple[str, str | None, str | None], str | None]:
    tasks = {key: asyncio.ensure_future(_ask(lookup, environment, key)) for key in keys}
    if not tasks:
        return {}
    _, pending = await asyncio.wait(tasks.values(), timeout=LOOKUP_TIMEOUT_SECONDS)
    for task in pending:
        task.cancel()
    answers: dict[tuple[str, str | None, str | None], str | None] = {}
    for key, task in tasks.items():
        if task in pending:
            answers[key] = f"catalog lookup timed out after {LOOKUP_TIMEOUT_SECONDS:g}s"
        elif task.cancelled():
            answers[key] = "catalog lookup was cancelled"
        else:
            answers[key] = task.result()
    return answers


def _answer(uid: str, reasons: list[str], warnings: list[str]) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": not reasons}
    if reasons:
        response["status"] = {"code": 403, "message": "; ".join(reasons)}
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response}


async def review(
    body: Any,
    environment: str,
    lookup: Lookup,
    exemptions: Exemptions = Exemptions(),
) -> dict[str, Any]:
    """Decide an AdmissionReview v1 and return the AdmissionReview response object."""
    request = _request_of(body)
    uid: str = request["uid"]
    if _operation(request) in ("DELETE", "CONNECT"):
        return _answer(uid, [], [])
    namespace = _optional_str(request, "namespace")
    if namespace and namespace in exemptions.namespaces:
        return _answer(uid, [], [f"imgctl: namespace {namespace!r} is exempt; images not checked"])

    warnings: list[str] = []
    reasons: list[str] = []
    checks: list[_Check] = []
    for path, image in images_of(request):
        reference: Reference | None = None
        invalid = ""
        try:
            reference = Reference.parse(image)
        except InvalidReferenceError as exc:
            invalid = exc.message.split(": ", 1)[-1]
        prefix = exemptions.prefix_for(image, reference)
        if prefix is not None:
            warnings.append(f"imgctl: {path} {image!r} not checked (exempt prefix {prefix!r})")
            continue
        if reference is None:
            reasons.append(f"{path} {image!r}: not a valid image reference ({invalid})")
            continue
        if reference.digest is not None:
            # The runtime pulls the digest and ignores the tag, so only the digest may answer:
            # a lookup that also accepts a promoted tag would let "app:v1@<any digest>" through.
            digest, tag = str(reference.digest), None
        else:
            # Kubernetes pulls "latest" for a bare name, so that tag is what must be promoted.
            digest, tag = None, reference.tag or DEFAULT_TAG
        checks.append(_Check(path, image, (reference.name, digest, tag)))

    answers = await _ask_all(lookup, environment, {check.key for check in checks})
    for check in checks:
        reason = answers[check.key]
        if reason is not None:
            reasons.append(f"{check.path} {check.image!r}: {reason}")
    if reasons:
        reasons[0] = f"imgctl denied {len(reasons)} image(s) in {environment}: {reasons[0]}"
    return _answer(uid, reasons, warnings)


def create_admission_router(lookup: Lookup, exemptions: Exemptions) -> APIRouter:
    """``POST /admission/{environment}``: the webhook endpoint, 400 for a malformed review."""
    router = APIRouter()

    @router.post("/admission/{environment}")
    async def admit(environment: str, request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return JSONResponse({"error": f"request body is not valid JSON: {exc}"}, 400)
        try:
            answer = await review(body, environment, lookup, exemptions)
        except MalformedReview as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(answer)

    return router
