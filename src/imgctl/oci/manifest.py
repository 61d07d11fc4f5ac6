"""Manifests and indexes: parse the JSON to find what an image references.

Parsing never re-serialises: the bytes a registry sent are the bytes imgctl pushes, so the
digest stays the same. These classes only describe what the bytes point at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import imgctl.oci.mediatypes as mt
from imgctl.errors import InvalidDigestError, InvalidManifestError
from imgctl.oci.digest import Digest

__all__ = ["Descriptor", "Index", "Manifest", "Platform", "parse_manifest"]


@dataclass(frozen=True, slots=True)
class Platform:
    """The platform an index entry is built for."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __str__(self) -> str:
        out = f"{self.os}/{self.architecture}"
        if self.variant:
            out += f"/{self.variant}"
        return out


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A typed pointer to content: media type, digest and size (plus optional metadata)."""

    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def distributable(self) -> bool:
        """False for foreign layers that registries do not hold."""
        return mt.is_distributable(self.media_type)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A single-image manifest (OCI or Docker schema 2) or an artifact manifest."""

    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config and layers: everything this manifest needs stored as blobs."""
        if self.config is None:
            return self.layers
        return (self.config, *self.layers)


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


def parse_manifest(data: bytes, content_type: str | None = None) -> Manifest | Index:
    """Parse manifest bytes; the ``mediaType`` field wins over the HTTP Content-Type."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidManifestError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidManifestError("manifest is not a JSON object")

    media_type = doc.get("mediaType")
    if media_type is not None and not isinstance(media_type, str):
        raise InvalidManifestError("manifest mediaType is not a string")
    if not media_type:
        media_type = _base_type(content_type) if content_type else None
    if not media_type or media_type in ("application/json", "application/octet-stream"):
        media_type = _guess_media_type(doc)

    if media_type in (mt.DOCKER_SCHEMA1_MANIFEST, mt.DOCKER_SCHEMA1_SIGNED_MANIFEST) or (
        doc.get("schemaVersion") == 1
    ):
        raise InvalidManifestError(
            "Docker schema 1 manifests are not supported",
            hint="re-push the image with a current tool to get a schema 2 or OCI manifest",
        )
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = _optional_str(doc, "artifactType", "manifest")
    annotations = _annotations(doc.get("annotations"), "manifest")

    if mt.is_index(media_type):
        entries = _list(doc, "manifests", media_type)
        return Index(
            media_type,
            tuple(_descriptor(d, f"manifests[{i}]") for i, d in enumerate(entries)),
            subject,
            artifact_type,
            annotations,
        )
    if media_type == mt.OCI_ARTIFACT_MANIFEST:
        blobs = doc.get("blobs")
        blobs = [] if blobs is None else blobs  # null is an empty list, as in Go
        if not isinstance(blobs, list):
            raise InvalidManifestError("artifact manifest 'blobs' is not a list")
        return Manifest(
            media_type,
            None,
            tuple(_descriptor(d, f"blobs[{i}]") for i, d in enumerate(blobs)),
            subject,
            artifact_type,
            annotations,
        )
    if mt.is_manifest(media_type):
        if "config" not in doc:
            raise InvalidManifestError(f"{media_type} manifest has no 'config'")
        layers = _list(doc, "layers", media_type)
        return Manifest(
            media_type,
            _descriptor(doc["config"], "config"),
            tuple(_descriptor(d, f"layers[{i}]") for i, d in enumerate(layers)),
            subject,
            artifact_type,
            annotations,
        )
    raise InvalidManifestError(
        f"unsupported manifest media type {media_type!r}",
        hint="imgctl copies OCI manifests and indexes and Docker schema 2 manifests and lists",
    )


def _base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip()


def _guess_media_type(doc: dict[str, Any]) -> str:
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_SCHEMA1_MANIFEST
    raise InvalidManifestError("cannot tell what kind of manifest this is: no mediaType")


def _list(doc: dict[str, Any], key: str, media_type: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidManifestError(f"{media_type} manifest field {key!r} is not a list")
    return value


def _optional_str(doc: Mapping[str, Any], key: str, where: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidManifestError(f"{where}: {key!r} is not a string")
    return value


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidManifestError(f"{where}: annotations must map strings to strings")
    return value


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidManifestError(f"{where}: descriptor is not an object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidManifestError(f"{where}: descriptor has no mediaType")
    raw_digest = value.get("digest")
    if not isinstance(raw_digest, str):
        raise InvalidManifestError(f"{where}: descriptor has no digest")
    try:
        digest = Digest.parse(raw_digest)
    except InvalidDigestError as exc:
        raise InvalidManifestError(f"{where}: {exc.message}") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifestError(f"{where}: descriptor size must be a non-negative integer")
    urls = value.get("urls")
    urls = [] if urls is None else urls
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InvalidManifestError(f"{where}: urls must be a list of strings")
    platform = None
    raw_platform = value.get("platform")
    if raw_platform is not None:
        if not isinstance(raw_platform, dict):
            raise InvalidManifestError(f"{where}: platform is not an object")
        os_ = raw_platform.get("os")
        arch = raw_platform.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str):
            raise InvalidManifestError(f"{where}: platform needs 'os' and 'architecture'")
        platform = Platform(
            os_,
            arch,
            _optional_str(raw_platform, "variant", where),
            _optional_str(raw_platform, "os.version", where),
        )
    return Descriptor(
        media_type,
        digest,
        size,
        platform,
        _optional_str(value, "artifactType", where),
        tuple(urls),
        _annotations(value.get("annotations"), where),
    )
