"""Kubernetes admission: allow a workload only if every image it runs was promoted.

A ValidatingAdmissionWebhook posts an AdmissionReview v1 to ``POST /admission/{environment}``;
:func:`review` finds every image of the object (:func:`images_of`), asks the catalog through a
:data:`Lookup` whether it was promoted to that environment, and answers with an AdmissionReview
response. Errors never allow: an unparseable image, an object that cannot be fully parsed, a
failing or slow lookup, all deny. An optional :class:`Signatures` rule (see
``imgctl.catalog.signatures``) then also requires, in the environments it names, that every
promoted image carries a valid signature, a valid promoter's attestation, or both; a registry
that cannot be read denies too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Final, NoReturn, Protocol, TypeAlias

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from imgctl._internal.messages import json_kind
from imgctl.errors import (
    InvalidReferenceError,
    MalformedReview,
    UncheckableObject,
    UsageError,
)
from imgctl.oci.reference import DEFAULT_REGISTRY, DEFAULT_TAG, Reference

from .api import error_body

__all__ = [
    "ADMISSION_API_VERSION",
    "LOOKUP_TIMEOUT_SECONDS",
    "MAX_REVIEW_BYTES",
    "AdmissionWebhook",
    "Cached",
    "Exemptions",
    "Lookup",
    "Signatures",
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

Cached: TypeAlias = Callable[[str, str, str | None, str | None], bool]
"""Same arguments as :data:`Lookup`, answered from memory without I/O: True only for a recent
"yes"; False means "ask the :data:`Lookup`", never "denied"."""

Generation: TypeAlias = Callable[[], int | None]
"""A number that stays the same only while :data:`Cached` gives the same answers to every
question (None: it may not), such as ``CatalogStore.generation``: a decision that found every
image in memory is remembered under it."""


class _Decisions:
    """Allowed decisions of repeated Pods, remembered under the catalog's :data:`Generation`.

    A cluster admits the same few hundred Pods over and over; one whose images were all
    found promoted in memory, none exempt, with no signature rule, is allowed again without
    parsing or asking while the generation stands. Any change to the catalog in memory
    changes the generation and forgets them all. Bounded: at most :attr:`MAX_ENTRIES`
    decisions of at most :attr:`MAX_IMAGES` images each (the oldest goes first).
    """

    MAX_ENTRIES: Final = 2048
    MAX_IMAGES: Final = 8

    __slots__ = ("_allowed", "_generation", "generation")

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self._allowed: dict[tuple[str, tuple[str, ...]], None] = {}
        self._generation: int | None = None

    def __len__(self) -> int:
        return len(self._allowed)

    def allowed(self, key: tuple[str, tuple[str, ...]], generation: int) -> bool:
        """Whether ``key`` was allowed under ``generation`` (forgetting older ones)."""
        if generation != self._generation:
            self._allowed = {}
            self._generation = generation
            return False
        return key in self._allowed

    def remember(self, key: tuple[str, tuple[str, ...]], generation: int) -> None:
        """Note that ``key`` was allowed under ``generation``."""
        if generation != self._generation:
            self._allowed = {}
            self._generation = generation
        allowed = self._allowed
        if len(allowed) >= self.MAX_ENTRIES:
            del allowed[next(iter(allowed))]
        allowed[key] = None


class Signatures(Protocol):
    """The signature and attestation rule (``imgctl.catalog.signatures.SignatureRule``).

    Asked after the catalog, about promoted images only.
    """

    def applies(self, environment: str) -> bool:
        """Whether images admitted to ``environment`` must be signed or attested."""
        ...

    def label(self, environment: str) -> str:
        """What ``environment`` checks, for messages: "signature", "attestation" or both."""
        ...

    def known(self, environment: str, name: str, digest: str | None, tag: str | None) -> bool:
        """True only for recent "signed"/"attested" verdicts, without I/O; False: "ask check".

        The arguments are the catalog's (canonical name, digest or tag): plain strings, so that
        the remembered case costs a few dictionary reads.
        """
        ...

    async def check(self, environment: str, image: Reference) -> str | None:
        """None if ``image`` is signed / attested as ``environment`` requires, else why not."""
        ...


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
# Every pod spec has containers (the API server refuses one without); the old
# EphemeralContainers object has only its list.
_REQUIRED_FIELD: dict[tuple[str, str], str] = {("", "EphemeralContainers"): "ephemeralContainers"}
# Subresources whose writes cannot change an image; anything else (the main resource,
# pods/ephemeralcontainers, a future one) is checked.
_IMAGELESS_SUBRESOURCES = frozenset({"status", "resize", "binding", "eviction", "scale"})
_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


@dataclass(frozen=True, slots=True)
class Exemptions:
    """Namespaces that are not checked, and image prefixes that are skipped with a warning.

    A prefix is a registry (``registry.k8s.io``, ``localhost:5000``) or a repository path on one
    (``registry.example.com/team``, ``docker.io/library``), normalised like an image name: the
    host's case and Docker Hub's aliases do not matter, a name without a registry is Docker
    Hub's (``nginx`` is ``docker.io/library/nginx``), trailing slashes are ignored. An image is
    exempt when its canonical name is on that registry (same port) and its repository starts
    with those whole path segments. A prefix that is not such a name raises UsageError.
    """

    namespaces: frozenset[str] = frozenset()
    image_prefixes: tuple[str, ...] = ()
    _parsed: tuple[tuple[str, tuple[str, ...]], ...] = dataclass_field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_parsed", tuple(_parse_prefix(prefix) for prefix in self.image_prefixes)
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Exemptions:
        """Read the comma-separated IMGCTL_ADMISSION_EXEMPT_NAMESPACES / _IMAGES variables."""
        env = os.environ if environ is None else environ
        try:
            return cls(
                namespaces=frozenset(_split_list(env.get(_ENV_NAMESPACES, ""))),
                image_prefixes=tuple(_split_list(env.get(_ENV_IMAGES, ""))),
            )
        except UsageError as exc:
            raise UsageError(f"{_ENV_IMAGES}: {exc.message}", hint=exc.hint) from None

    def prefix_for(self, image: str, reference: Reference | None) -> str | None:
        """The exempt prefix ``image`` falls under, if any (never one for an invalid image)."""
        if reference is None or not self.image_prefixes:
            return None
        # Compared with the canonical name only: the string as written can say anything
        # ("registry.k8s.io:evil/x" is not on registry.k8s.io, nor a valid reference).
        registry = reference.registry.lower()
        segments = tuple(reference.repository.split("/"))
        for prefix, (prefix_registry, prefix_segments) in zip(
            self.image_prefixes, self._parsed, strict=True
        ):
            if registry == prefix_registry and segments[: len(prefix_segments)] == prefix_segments:
                return prefix
        return None


_PREFIX_HINT: Final = (
    "an exempt prefix is a registry (registry.k8s.io, localhost:5000) or a repository path on "
    "one (registry.example.com/team, docker.io/library), and matches whole path segments"
)


def _parse_prefix(prefix: str) -> tuple[str, tuple[str, ...]]:
    """(lower-case canonical registry, path segments) of an exempt image prefix."""

    def refuse(problem: str) -> UsageError:
        return UsageError(f"exempt image prefix {prefix!r} {problem}", hint=_PREFIX_HINT)

    text = prefix.strip().rstrip("/")
    if not text:
        raise refuse("is empty")
    if any(character.isspace() for character in text):
        raise refuse("contains whitespace")
    if "://" in text:
        raise refuse("has a URL scheme")
    if "@" in text:
        raise refuse("names a digest ('@'): give the repository without it")
    first, _, path = text.partition("/")
    if "." in first or ":" in first or first.lower() == "localhost":
        # Unlike an image name, a prefix may be a registry alone ("registry.k8s.io").
        host, colon, port = first.rpartition(":")
        if not path and colon and "." not in host and not port.isdigit() and host != "localhost":
            raise refuse("names a tag: give the repository without it")  # "nginx:1.25"
        registry = first
    else:
        registry, path = DEFAULT_REGISTRY, text if "/" in text else f"library/{text}"
    try:
        registry = Reference.parse(f"{registry}/probe").registry
    except InvalidReferenceError as exc:
        raise refuse(f"is not a valid registry host[:port] ({exc.message})") from None
    if ":" in path:
        raise refuse("names a tag: give the repository without it")
    if path:
        try:
            Reference.parse(f"{registry}/{path}")
        except InvalidReferenceError as exc:
            raise refuse(f"is not a valid repository path ({exc.message})") from None
    return registry.lower(), tuple(path.split("/")) if path else ()


def _split_list(value: str) -> list[str]:
    # Empty items are dropped: an empty prefix would exempt every image.
    return [item.strip() for item in value.split(",") if item.strip()]


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    # json.loads makes dicts: checked first, as isinstance against the Mapping ABC costs
    # 0.25 us, six times a review.
    if type(value) is dict:
        return value
    if not isinstance(value, Mapping):
        raise MalformedReview(path, f"must be an object, got {json_kind(value)}")
    return value


def _optional_str(request: Mapping[str, Any], key: str) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedReview(f"request.{key}", f"must be a string, got {json_kind(value)}")
    return value


def _operation(request: Mapping[str, Any]) -> str:
    operation = request.get("operation")
    if operation not in _OPERATIONS:
        raise MalformedReview(
            "request.operation", f"must be one of {', '.join(_OPERATIONS)}, got {operation!r}"
        )
    return str(operation)


def images_of(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every ``(path in the object, image)`` of an AdmissionRequest.

    Images are read from the containers, init containers, ephemeral containers and image
    volumes of the object's pod spec. Raises :class:`MalformedReview` naming the field that is
    missing or of the wrong type, and :class:`UncheckableObject` for an object of an unknown
    kind that holds containers anyway; other unknown kinds have no images.
    """
    return [(_path_text(where), image) for where, image in _images(request)]


# Where an image is in the object: (pod spec path, field, index, what follows), written out by
# _path_text only for a message: most reviews are allowed without one.
_Where: TypeAlias = tuple[tuple[str, ...], str, int, str]


def _path_text(where: _Where) -> str:
    spec_path, field, index, rest = where
    return "".join(f"{key}." for key in spec_path) + f"{field}[{index}]{rest}"


def _images(request: Mapping[str, Any]) -> list[tuple[_Where, str]]:
    """:func:`images_of` with the paths left unwritten."""
    request = _mapping(request, "request")
    gvk = _mapping(request.get("kind"), "request.kind")
    group, kind = gvk.get("group", ""), gvk.get("kind")
    if not isinstance(group, str):
        raise MalformedReview("request.kind.group", f"must be a string, got {json_kind(group)}")
    if not isinstance(kind, str) or not kind:
        raise MalformedReview("request.kind.kind", "must be a non-empty string")
    operation = _operation(request)
    if _optional_str(request, "subResource") in _IMAGELESS_SUBRESOURCES:
        return []
    obj = request.get("object")
    if obj is None:
        if operation in ("CREATE", "UPDATE"):
            raise MalformedReview("request.object", f"is missing for a {operation}")
        return []
    node = _mapping(obj, "request.object")
    spec_path = _POD_SPEC_PATHS.get((group, kind))
    if spec_path is None:
        found = _containers_in(node)
        if found is not None:
            raise UncheckableObject(found, f"{group}/{kind}" if group else kind)
        return []

    # The hot path of every review: plain loops, and paths and messages written only for an
    # error.
    for depth, key in enumerate(spec_path):
        child: Any = node.get(key)
        if type(child) is not dict:
            _mapping(child, "request.object." + ".".join(spec_path[: depth + 1]))
        node = child

    required = _REQUIRED_FIELD.get((group, kind), "containers")
    images: list[tuple[_Where, str]] = []
    for field in _CONTAINER_FIELDS:
        containers = node.get(field)
        if containers is None:
            if field == required:
                where = _path_text((spec_path, field, 0, ""))[: -len("[0]")]
                raise MalformedReview(f"request.object.{where}", "is missing")
            continue
        if type(containers) is not list:
            _list(containers, _path_text((spec_path, field, 0, ""))[: -len("[0]")])
        for index, container in enumerate(containers):
            if type(container) is not dict:
                _mapping(container, f"request.object.{_path_text((spec_path, field, index, ''))}")
            image = container.get("image")
            if not isinstance(image, str):
                _not_a_string(container, "image", _path_text((spec_path, field, index, ".image")))
            images.append(((spec_path, field, index, ".image"), image))
    volumes = node.get("volumes")
    if volumes is not None:
        if type(volumes) is not list:
            _list(volumes, _path_text((spec_path, "volumes", 0, ""))[: -len("[0]")])
        for index, volume in enumerate(volumes):
            if type(volume) is not dict:
                _mapping(volume, f"request.object.{_path_text((spec_path, 'volumes', index, ''))}")
            # An image volume (Kubernetes 1.31+) mounts an image's content: it is run too.
            source = volume.get("image")
            if source is None:
                continue
            where = _path_text((spec_path, "volumes", index, ".image"))
            reference = _mapping(source, f"request.object.{where}").get("reference")
            if not isinstance(reference, str):
                _not_a_string(source, "reference", f"{where}.reference")
            images.append(((spec_path, "volumes", index, ".image.reference"), reference))
    return images


def _list(value: Any, path: str) -> list[Any]:
    """``value``, which must be a list, at ``request.object.<path>``."""
    if not isinstance(value, list):
        raise MalformedReview(f"request.object.{path}", f"must be a list, got {json_kind(value)}")
    return value


def _not_a_string(node: Mapping[str, Any], key: str, path: str) -> NoReturn:
    """Raise the error for ``node[key]``, missing or not a string, at ``request.object.<path>``."""
    if key not in node:
        raise MalformedReview(f"request.object.{path}", "is missing")
    raise MalformedReview(f"request.object.{path}", f"must be a string, got {json_kind(node[key])}")


def _containers_in(obj: Mapping[str, Any]) -> str | None:
    """The path of the first list of containers anywhere in ``obj``, if it holds one.

    Iterative, so that a deeply nested object cannot exhaust the stack.
    """
    stack: list[tuple[str, Any]] = [("request.object", obj)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Mapping):
            for key, child in node.items():
                if key in _CONTAINER_FIELDS and isinstance(child, list):
                    return f"{path}.{key}"
                if isinstance(child, Mapping | list):
                    stack.append((f"{path}.{key}", child))
        else:
            for index, child in enumerate(node):
                if isinstance(child, Mapping | list):
                    stack.append((f"{path}[{index}]", child))
    return None


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


_Key: TypeAlias = tuple[str, str | None, str | None]  # (canonical name, digest, tag)


# One image to check: (path in the object, image as written, catalog question, reference). A
# plain tuple: a frozen dataclass's __init__ cost 0.6 us an image on the hot path.
_Check: TypeAlias = tuple["_Where", str, _Key, Reference]


# The longest valid reference: a 255-character name, a 128-character tag and a digest.
_MAX_CACHED_IMAGE: Final = 512


def _parse_image(image: str) -> tuple[Reference | None, _Key | None, str]:
    """The reference, the catalog question it asks, or why it is invalid.

    A cluster runs the same few hundred image strings over and over (every replica, every
    restart), and parsing them was a third of a decision's time: they are cached. Strings too
    long to be valid are not, so that a caller cannot fill the cache with megabytes.
    """
    if len(image) > _MAX_CACHED_IMAGE:
        return _parse_image_uncached(image)
    return _parse_image_cached(image)


def _parse_image_uncached(image: str) -> tuple[Reference | None, _Key | None, str]:
    try:
        reference = Reference.parse(image)
    except InvalidReferenceError as exc:
        return None, None, exc.message.split(": ", 1)[-1]
    if reference.digest is not None:
        # The runtime pulls the digest and ignores the tag, so only the digest may answer:
        # a lookup that also accepts a promoted tag would let "app:v1@<any digest>" through.
        return reference, (reference.name, str(reference.digest), None), ""
    # Kubernetes pulls "latest" for a bare name, so that tag is what must be promoted.
    return reference, (reference.name, None, reference.tag or DEFAULT_TAG), ""


_parse_image_cached: Final = functools.lru_cache(maxsize=4096)(_parse_image_uncached)


async def _ask(lookup: Lookup, environment: str, key: _Key) -> str | None:
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


def _remembered(environment: str, keys: set[_Key], cached: Cached | None) -> dict[_Key, str | None]:
    """The answers ``cached`` gives from memory (None: promoted), without a coroutine."""
    answers: dict[_Key, str | None] = {}
    if cached is not None:
        for key in keys:
            # Only a real True allows, as in _ask.
            if cached(environment, *key) is True:
                answers[key] = None
    return answers


async def _ask_all(
    lookup: Lookup, environment: str, keys: set[_Key], answers: dict[_Key, str | None]
) -> dict[_Key, str | None]:
    """``answers`` (remembered) completed by ``lookup`` for the other ``keys``."""
    tasks = {
        key: asyncio.ensure_future(_ask(lookup, environment, key))
        for key in keys
        if key not in answers
    }
    if not tasks:
        return answers
    _, pending = await asyncio.wait(tasks.values(), timeout=LOOKUP_TIMEOUT_SECONDS)
    for task in pending:
        task.cancel()
    for key, task in tasks.items():
        if task in pending:
            answers[key] = f"catalog lookup timed out after {LOOKUP_TIMEOUT_SECONDS:g}s"
        elif task.cancelled():
            answers[key] = "catalog lookup was cancelled"
        else:
            answers[key] = task.result()
    return answers


async def _verify(signatures: Signatures, environment: str, image: Reference) -> str | None:
    """None if signed / attested as required, else why not; never raises for a failing check."""
    try:
        reason = await signatures.check(environment, image)
    except Exception as exc:
        logger.warning("admission check of %s failed", image, exc_info=True)
        what = signatures.label(environment)
        return f"{what} check failed ({type(exc).__name__}), denied to be safe"
    # Only a real None allows, as only a real True does in _ask.
    if reason is None:
        return None
    return str(reason) or f"{signatures.label(environment)} check failed, denied to be safe"


async def _verify_all(
    signatures: Signatures, environment: str, images: dict[_Key, Reference], seconds: float
) -> dict[_Key, str | None]:
    """Why each of ``images`` (none of them remembered as passing) is refused, or None."""
    answers: dict[_Key, str | None] = {}
    tasks = {
        key: asyncio.ensure_future(_verify(signatures, environment, image))
        for key, image in images.items()
    }
    _, pending = await asyncio.wait(tasks.values(), timeout=max(0.0, seconds))
    for task in pending:
        task.cancel()
    what = signatures.label(environment) if tasks else ""
    for key, task in tasks.items():
        if task in pending:
            answers[key] = f"{what} check timed out after {LOOKUP_TIMEOUT_SECONDS:g}s"
        elif task.cancelled():
            answers[key] = f"{what} check was cancelled"
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
    cached: Cached | None = None,
    signatures: Signatures | None = None,
    decisions: _Decisions | None = None,
) -> dict[str, Any]:
    """Decide an AdmissionReview v1 and return the AdmissionReview response object.

    ``cached`` (optional) answers from memory first; only what it does not confirm goes to
    ``lookup``. With ``signatures`` applying to ``environment``, a promoted image must also be
    signed and/or attested; catalog and registry checks share the one
    :data:`LOOKUP_TIMEOUT_SECONDS`.
    """
    request = _request_of(body)
    uid: str = request["uid"]
    try:
        return await _decide(
            uid, request, environment, lookup, exemptions, cached, signatures, decisions
        )
    except MalformedReview as exc:
        # The review can be answered (its uid is known) but not checked: denied, so that a
        # webhook registered with failurePolicy: Ignore does not let it through either.
        return _answer(
            uid, [f"imgctl cannot check this object, so it is denied in {environment}: {exc}"], []
        )


async def _decide(
    uid: str,
    request: Mapping[str, Any],
    environment: str,
    lookup: Lookup,
    exemptions: Exemptions,
    cached: Cached | None,
    signatures: Signatures | None,
    decisions: _Decisions | None,
) -> dict[str, Any]:
    if _operation(request) in ("DELETE", "CONNECT"):
        return _answer(uid, [], [])
    namespace = _optional_str(request, "namespace")
    if namespace and namespace in exemptions.namespaces:
        return _answer(uid, [], [f"imgctl: namespace {namespace!r} is exempt; images not checked"])

    if signatures is not None and not signatures.applies(environment):
        signatures = None
    found = _images(request)
    generation: int | None = None
    memo: tuple[str, tuple[str, ...]] | None = None
    if decisions is not None and signatures is None and len(found) <= decisions.MAX_IMAGES:
        generation = decisions.generation()
        if generation is not None:
            images = tuple([image for _, image in found])
            if all(len(image) <= _MAX_CACHED_IMAGE for image in images):
                memo = (environment, images)
                if decisions.allowed(memo, generation):
                    return _answer(uid, [], [])

    warnings: list[str] = []
    reasons: list[str] = []
    checks: list[_Check] = []
    for where, image in found:
        reference, key, invalid = _parse_image(image)
        prefix = exemptions.prefix_for(image, reference) if exemptions.image_prefixes else None
        if prefix is not None:
            warnings.append(
                f"imgctl: {_path_text(where)} {image!r} not checked (exempt prefix {prefix!r})"
            )
            continue
        if key is None:
            reasons.append(
                f"{_path_text(where)} {image!r}: not a valid image reference ({invalid})"
            )
            continue
        assert reference is not None  # a key is only made for a parsed reference
        checks.append((where, image, key, reference))

    started = asyncio.get_running_loop().time() if signatures is not None else 0.0
    keys = {check[2] for check in checks}
    answers = _remembered(environment, keys, cached)
    if len(answers) < len(keys):  # else no task, no timer: the common case of a busy cluster
        answers = await _ask_all(lookup, environment, keys, answers)
    elif (
        memo is not None
        and generation is not None
        and decisions is not None
        and not reasons
        and not warnings
        # Still the same catalog in memory, answering: what it said still holds.
        and decisions.generation() == generation
    ):
        decisions.remember(memo, generation)
        return _answer(uid, [], [])
    if signatures is not None:
        # Only promoted images are verified: an unpromoted one is denied whatever it carries.
        # Remembered "signed" verdicts are read here, without a task (the common case).
        unknown = {
            key: reference
            for _, _, key, reference in checks
            if answers[key] is None and signatures.known(environment, *key) is not True
        }
        if unknown:
            left = LOOKUP_TIMEOUT_SECONDS - (asyncio.get_running_loop().time() - started)
            answers.update(await _verify_all(signatures, environment, unknown, left))
    for where, image, key, _ in checks:
        reason = answers[key]
        if reason is not None:
            reasons.append(f"{_path_text(where)} {image!r}: {reason}")
    if reasons:
        reasons[0] = f"imgctl denied {len(reasons)} image(s) in {environment}: {reasons[0]}"
    return _answer(uid, reasons, warnings)


MAX_REVIEW_BYTES: Final = 8 << 20
"""Largest body accepted: an object and its oldObject at etcd's 1.5 MiB limit, with room."""

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


class AdmissionWebhook:
    """ASGI app: ``POST /admission/{environment}`` answered here, every other path by ``app``.

    The webhook sits on the path of every Pod the cluster creates, so it is answered below the
    framework: FastAPI's routing, dependency and middleware layers cost more than a decision
    (on loopback, a bare FastAPI endpoint answered 3,000 requests/s, a bare ASGI one 7,500/s).
    The path is added to ``app``'s OpenAPI schema. Errors are JSON ``{"error": {"code",
    "message"}}``, like the catalog API's: 400 for a body that is not an AdmissionReview v1, 413
    above :data:`MAX_REVIEW_BYTES`, 405 for another method, and 500 (logged) if the decision
    itself fails. None of them allows.
    """

    PREFIX: Final = "/admission/"

    def __init__(
        self,
        app: FastAPI,
        lookup: Lookup,
        exemptions: Exemptions = Exemptions(),
        cached: Cached | None = None,
        signatures: Signatures | None = None,
        generation: Generation | None = None,
    ) -> None:
        self.app = app
        self.lookup = lookup
        self.exemptions = exemptions
        self.cached = cached
        self.signatures = signatures
        # Remembered allowed decisions, only where ``cached`` has a generation to check them by.
        self.decisions = (
            _Decisions(generation) if generation is not None and cached is not None else None
        )
        _document(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a webhook call, or pass the request on to the wrapped app."""
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.PREFIX):
            await self.app(scope, receive, send)
            return
        environment = path[len(self.PREFIX) :]
        if not environment or "/" in environment:
            await self.app(scope, receive, send)  # not a webhook path: the app's 404
            return
        if scope["method"] != "POST":
            await _send_json(
                send,
                405,
                error_body("method_not_allowed", f"{scope['method']} is not allowed; use POST"),
                [(b"allow", b"POST")],
            )
            return
        raw = await _read_body(receive, MAX_REVIEW_BYTES)
        if raw is None:
            message = f"the request body is larger than {MAX_REVIEW_BYTES} bytes"
            await _send_json(send, 413, error_body("too_large", message))
            return
        status, answer = await self.decide(raw, environment)
        await _send_json(send, status, answer)

    async def decide(self, raw: bytes, environment: str) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body answering one webhook call's ``raw`` body."""
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return 400, error_body("invalid_json", f"request body is not valid JSON: {exc}")
        try:
            return 200, await review(
                body,
                environment,
                self.lookup,
                self.exemptions,
                self.cached,
                self.signatures,
                self.decisions,
            )
        except MalformedReview as exc:
            return 400, error_body("malformed_review", str(exc))
        except Exception:
            logger.exception("admission review for %s failed", environment)
            return 500, error_body(
                "internal", "the review could not be decided; see the server log"
            )


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


# The answer to nearly every review, around its uid: written without walking the dictionary.
_ALLOWED_HEAD: Final = (
    b'{"apiVersion":"' + ADMISSION_API_VERSION.encode() + b'","kind":"AdmissionReview",'
    b'"response":{"uid":'
)
_ALLOWED_TAIL: Final = b',"allowed":true}}'


def _encode(body: dict[str, Any]) -> bytes:
    """``body`` as compact JSON; a plain "allowed" answer from its constant parts."""
    response = body.get("response")
    if (
        type(response) is dict
        and len(response) == 2
        and response.get("allowed") is True
        and type(response.get("uid")) is str
        and len(body) == 3
        and body.get("kind") == "AdmissionReview"
        and body.get("apiVersion") == ADMISSION_API_VERSION
    ):
        uid: str = response["uid"]
        # A uid is a UUID: printable ASCII without a quote or backslash needs no escaping, and
        # json.dumps of one string costs more than these checks.
        if uid.isascii() and uid.isprintable() and '"' not in uid and "\\" not in uid:
            return _ALLOWED_HEAD + b'"' + uid.encode() + b'"' + _ALLOWED_TAIL
        return _ALLOWED_HEAD + json.dumps(uid, ensure_ascii=False).encode() + _ALLOWED_TAIL
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    data = _encode(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(data)), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _document(app: FastAPI) -> None:
    """Add the webhook's path to ``app``'s OpenAPI schema (FastAPI never routes to it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schema.setdefault("paths", {}).setdefault(
            "/admission/{environment}", {"post": _OPENAPI_OPERATION}
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_ERROR_SCHEMA: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_OPENAPI_OPERATION: Final = {
    "summary": "Decide a Kubernetes AdmissionReview",
    "description": "A ValidatingAdmissionWebhook endpoint (admission.k8s.io/v1): allowed only "
    "if every image of the object was promoted to the environment (and, where the server "
    "requires it, carries a valid signature and/or promotion attestation by one of the "
    "environment's keys).",
    "operationId": "admission_review",
    "parameters": [
        {"name": "environment", "in": "path", "required": True, "schema": {"type": "string"}}
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "200": {
            "description": "The AdmissionReview with its response",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "400": {
            "description": "Not JSON, or not an AdmissionReview v1",
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        },
        "413": {
            "description": "Body too large",
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        },
    },
}
