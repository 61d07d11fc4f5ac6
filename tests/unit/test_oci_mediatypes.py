"""Unit tests for imgctl.oci.mediatypes."""

from __future__ import annotations

import pytest

from imgctl.oci import mediatypes as mt

INDEXES = [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST]
MANIFESTS = [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.OCI_ARTIFACT_MANIFEST]
NEITHER = [
    mt.DOCKER_SCHEMA1_MANIFEST,
    mt.DOCKER_SCHEMA1_SIGNED_MANIFEST,
    mt.OCI_CONFIG,
    mt.DOCKER_CONFIG,
    mt.OCI_EMPTY,
    mt.OCI_LAYER_GZIP,
    "application/json",
    "",
    mt.OCI_INDEX + "; charset=utf-8",
]


def test_constants_spelled_as_the_specs_do() -> None:
    assert mt.OCI_INDEX == "application/vnd.oci.image.index.v1+json"
    assert mt.OCI_MANIFEST == "application/vnd.oci.image.manifest.v1+json"
    assert mt.DOCKER_MANIFEST == "application/vnd.docker.distribution.manifest.v2+json"
    assert mt.DOCKER_MANIFEST_LIST == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert mt.OCI_EMPTY == "application/vnd.oci.empty.v1+json"
    assert mt.DOCKER_FOREIGN_LAYER == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def test_all_exports_exist() -> None:
    for name in mt.__all__:
        assert hasattr(mt, name), name


@pytest.mark.parametrize("media_type", INDEXES)
def test_is_index(media_type: str) -> None:
    assert mt.is_index(media_type)
    assert not mt.is_manifest(media_type)


@pytest.mark.parametrize("media_type", MANIFESTS)
def test_is_manifest(media_type: str) -> None:
    assert mt.is_manifest(media_type)
    assert not mt.is_index(media_type)


@pytest.mark.parametrize("media_type", NEITHER)
def test_neither_index_nor_manifest(media_type: str) -> None:
    assert not mt.is_index(media_type)
    assert not mt.is_manifest(media_type)


def test_media_type_sets() -> None:
    assert frozenset(INDEXES) == mt.INDEX_MEDIA_TYPES
    assert frozenset(MANIFESTS) == mt.MANIFEST_MEDIA_TYPES
    assert not mt.INDEX_MEDIA_TYPES & mt.MANIFEST_MEDIA_TYPES


@pytest.mark.parametrize(
    "media_type",
    [
        mt.DOCKER_FOREIGN_LAYER,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    ],
)
def test_foreign_layers_are_not_distributable(media_type: str) -> None:
    assert not mt.is_distributable(media_type)


@pytest.mark.parametrize(
    "media_type",
    [
        mt.DOCKER_LAYER,
        mt.OCI_LAYER,
        mt.OCI_LAYER_GZIP,
        mt.OCI_LAYER_ZSTD,
        mt.OCI_CONFIG,
        mt.DOCKER_CONFIG,
        mt.OCI_EMPTY,
        mt.OCI_MANIFEST,
        "application/vnd.example.sbom+json",
    ],
)
def test_other_media_types_are_distributable(media_type: str) -> None:
    assert mt.is_distributable(media_type)


def test_manifest_accept_lists_every_supported_type() -> None:
    accepted = [part.strip() for part in mt.MANIFEST_ACCEPT.split(",")]
    for media_type in (mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST):
        assert media_type in accepted
    assert set(accepted) == mt.INDEX_MEDIA_TYPES | mt.MANIFEST_MEDIA_TYPES
    assert len(accepted) == len(set(accepted))
    # Never ask for schema 1: registries would down-convert to it.
    assert mt.DOCKER_SCHEMA1_MANIFEST not in accepted
    assert mt.DOCKER_SCHEMA1_SIGNED_MANIFEST not in accepted
