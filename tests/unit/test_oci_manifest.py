"""Unit and property tests for imgctl.oci.manifest.parse_manifest."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgctl.errors import InvalidManifestError
from imgctl.oci import Descriptor, Digest, Index, Manifest, Platform, parse_manifest
from imgctl.oci import mediatypes as mt

OCI_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"
EMPTY_JSON = b"{}"


def desc(media_type: str, content: bytes, /, **extra: Any) -> dict[str, Any]:
    """A descriptor (as JSON) for ``content``; ``extra`` adds or overrides fields."""
    return {
        "mediaType": media_type,
        "digest": str(Digest.of(content)),
        "size": len(content),
        **extra,
    }


def dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def oci_manifest(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": desc(mt.OCI_CONFIG, b"config"),
        "layers": [desc(mt.OCI_LAYER_GZIP, b"layer0"), desc(mt.OCI_LAYER_GZIP, b"layer1")],
        **extra,
    }


def oci_index(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            desc(mt.OCI_MANIFEST, b"amd64", platform={"os": "linux", "architecture": "amd64"}),
            desc(
                mt.OCI_MANIFEST,
                b"arm64",
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
        ],
        **extra,
    }


def expect_descriptor(actual: Descriptor, media_type: str, data: bytes) -> None:
    assert actual.media_type == media_type
    assert actual.digest == Digest.of(data)
    assert actual.size == len(data)


# ---------------------------------------------------------------------------------------------
# The kinds of manifest
# ---------------------------------------------------------------------------------------------


def test_docker_schema2_manifest() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mt.DOCKER_CONFIG, b"cfg"),
        "layers": [desc(mt.DOCKER_LAYER, b"l0"), desc(mt.DOCKER_LAYER, b"l1")],
    }
    manifest = parse_manifest(dump(doc), mt.DOCKER_MANIFEST)
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert manifest.config is not None
    expect_descriptor(manifest.config, mt.DOCKER_CONFIG, b"cfg")
    assert len(manifest.layers) == 2
    expect_descriptor(manifest.layers[0], mt.DOCKER_LAYER, b"l0")
    expect_descriptor(manifest.layers[1], mt.DOCKER_LAYER, b"l1")
    assert manifest.blobs == (manifest.config, *manifest.layers)
    assert manifest.subject is None
    assert manifest.artifact_type is None
    assert manifest.annotations == {}
    assert all(d.distributable for d in manifest.blobs)
    assert all(d.platform is None and d.urls == () and d.annotations == {} for d in manifest.blobs)


def test_docker_manifest_list() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [
            desc(mt.DOCKER_MANIFEST, b"a", platform={"os": "linux", "architecture": "amd64"}),
            desc(
                mt.DOCKER_MANIFEST,
                b"b",
                platform={"architecture": "arm", "os": "linux", "variant": "v7"},
            ),
        ],
    }
    index = parse_manifest(dump(doc))
    assert isinstance(index, Index)
    assert index.media_type == mt.DOCKER_MANIFEST_LIST
    assert [str(d.platform) for d in index.manifests] == ["linux/amd64", "linux/arm/v7"]
    expect_descriptor(index.manifests[1], mt.DOCKER_MANIFEST, b"b")
    assert index.subject is None
    assert index.annotations == {}


def test_oci_manifest_with_annotations() -> None:
    layer = desc(mt.OCI_LAYER_ZSTD, b"z", annotations={"org.opencontainers.image.title": "z"})
    doc = oci_manifest(
        layers=[layer],
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    manifest = parse_manifest(dump(doc))
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == mt.OCI_MANIFEST
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert manifest.layers[0].annotations == {"org.opencontainers.image.title": "z"}
    assert manifest.config is not None
    expect_descriptor(manifest.config, mt.OCI_CONFIG, b"config")


def test_oci_manifest_without_layers() -> None:
    doc = oci_manifest()
    del doc["layers"]
    manifest = parse_manifest(dump(doc))
    assert isinstance(manifest, Manifest)
    assert manifest.layers == ()
    assert manifest.blobs == (manifest.config,)


def test_oci_index() -> None:
    doc = oci_index(annotations={"a": "b"})
    doc["manifests"].append(
        desc(
            mt.OCI_MANIFEST,
            b"win",
            platform={"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2113"},
        )
    )
    index = parse_manifest(dump(doc))
    assert isinstance(index, Index)
    assert index.media_type == mt.OCI_INDEX
    assert index.annotations == {"a": "b"}
    assert [d.platform for d in index.manifests] == [
        Platform("linux", "amd64"),
        Platform("linux", "arm64", "v8"),
        Platform("windows", "amd64", None, "10.0.20348.2113"),
    ]
    expect_descriptor(index.manifests[2], mt.OCI_MANIFEST, b"win")


def test_empty_index() -> None:
    index = parse_manifest(dump({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}))
    assert isinstance(index, Index)
    assert index.manifests == ()


def test_index_with_nested_index() -> None:
    doc = oci_index()
    doc["manifests"].append(desc(mt.OCI_INDEX, b"nested"))
    index = parse_manifest(dump(doc))
    assert isinstance(index, Index)
    nested = index.manifests[2]
    expect_descriptor(nested, mt.OCI_INDEX, b"nested")
    assert nested.platform is None
    assert mt.is_index(nested.media_type)


def test_oci_11_artifact_manifest() -> None:
    subject = desc(mt.OCI_MANIFEST, b"the image")
    doc = oci_manifest(
        artifactType=SBOM_TYPE,
        config=desc(mt.OCI_EMPTY, EMPTY_JSON, data="e30="),
        layers=[desc("application/spdx+json", b"sbom")],
        subject=subject,
    )
    manifest = parse_manifest(dump(doc))
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == mt.OCI_MANIFEST
    assert manifest.artifact_type == SBOM_TYPE
    assert manifest.config is not None
    expect_descriptor(manifest.config, mt.OCI_EMPTY, EMPTY_JSON)
    assert manifest.config.size == 2
    assert manifest.subject is not None
    expect_descriptor(manifest.subject, mt.OCI_MANIFEST, b"the image")
    expect_descriptor(manifest.layers[0], "application/spdx+json", b"sbom")


def test_index_with_subject_and_artifact_type() -> None:
    doc = oci_index(artifactType=SBOM_TYPE, subject=desc(mt.OCI_INDEX, b"subject"))
    doc["manifests"][0]["artifactType"] = SBOM_TYPE
    index = parse_manifest(dump(doc))
    assert isinstance(index, Index)
    assert index.artifact_type == SBOM_TYPE
    assert index.subject is not None
    expect_descriptor(index.subject, mt.OCI_INDEX, b"subject")
    assert index.manifests[0].artifact_type == SBOM_TYPE
    assert index.manifests[1].artifact_type is None


def test_legacy_oci_artifact_manifest() -> None:
    doc = {
        "mediaType": mt.OCI_ARTIFACT_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "blobs": [desc("application/octet-stream", b"sig0"), desc("text/plain", b"sig1")],
        "subject": desc(mt.OCI_MANIFEST, b"image"),
        "annotations": {"org.example.signed-by": "ci"},
    }
    manifest = parse_manifest(dump(doc))
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == mt.OCI_ARTIFACT_MANIFEST
    assert manifest.config is None
    assert len(manifest.layers) == 2
    expect_descriptor(manifest.layers[0], "application/octet-stream", b"sig0")
    expect_descriptor(manifest.layers[1], "text/plain", b"sig1")
    assert manifest.blobs == manifest.layers
    assert manifest.artifact_type == "application/vnd.example.signature"
    assert manifest.subject is not None
    expect_descriptor(manifest.subject, mt.OCI_MANIFEST, b"image")
    assert manifest.annotations == {"org.example.signed-by": "ci"}


def test_legacy_oci_artifact_manifest_without_blobs() -> None:
    manifest = parse_manifest(dump({"mediaType": mt.OCI_ARTIFACT_MANIFEST}))
    assert isinstance(manifest, Manifest)
    assert manifest.layers == ()
    assert manifest.blobs == ()


# ---------------------------------------------------------------------------------------------
# Which media type: the field, then Content-Type, then the document's shape
# ---------------------------------------------------------------------------------------------


def test_media_type_field_wins_over_content_type() -> None:
    index = parse_manifest(dump(oci_index()), mt.DOCKER_MANIFEST)
    assert isinstance(index, Index)
    assert index.media_type == mt.OCI_INDEX

    manifest = parse_manifest(dump(oci_manifest()), "application/vnd.docker.whatever+json")
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize(
    "content_type",
    [
        mt.DOCKER_MANIFEST,
        f"{mt.DOCKER_MANIFEST}; charset=utf-8",
        f"  {mt.DOCKER_MANIFEST} ;charset=utf-8",
    ],
)
def test_content_type_used_when_field_absent(content_type: str) -> None:
    doc = oci_manifest()
    del doc["mediaType"]
    manifest = parse_manifest(dump(doc), content_type)
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == mt.DOCKER_MANIFEST


def test_content_type_used_when_field_empty() -> None:
    doc = oci_index(mediaType="")
    index = parse_manifest(dump(doc), mt.DOCKER_MANIFEST_LIST)
    assert isinstance(index, Index)
    assert index.media_type == mt.DOCKER_MANIFEST_LIST


def test_content_type_index_when_field_absent() -> None:
    doc = oci_index()
    del doc["mediaType"]
    index = parse_manifest(dump(doc), mt.DOCKER_MANIFEST_LIST)
    assert isinstance(index, Index)
    assert index.media_type == mt.DOCKER_MANIFEST_LIST


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "application/octet-stream; x=y"]
)
def test_shape_based_guess(content_type: str | None) -> None:
    index_doc = oci_index()
    del index_doc["mediaType"]
    index = parse_manifest(dump(index_doc), content_type)
    assert isinstance(index, Index)
    assert index.media_type == mt.OCI_INDEX

    manifest_doc = oci_manifest()
    del manifest_doc["mediaType"]
    manifest = parse_manifest(dump(manifest_doc), content_type)
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == mt.OCI_MANIFEST


def test_shape_unknown_without_media_type() -> None:
    with pytest.raises(InvalidManifestError, match="cannot tell what kind of manifest"):
        parse_manifest(dump({"schemaVersion": 2, "config": desc(mt.OCI_CONFIG, b"c")}))


def test_accepts_str_and_utf8_bom() -> None:
    assert isinstance(parse_manifest(json.dumps(oci_index())), Index)  # type: ignore[arg-type]
    assert isinstance(parse_manifest(b"\xef\xbb\xbf" + dump(oci_index())), Index)


# ---------------------------------------------------------------------------------------------
# Descriptors: platforms, foreign layers, urls
# ---------------------------------------------------------------------------------------------


def test_platform_str() -> None:
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(Platform("windows", "amd64", None, "10.0")) == "windows/amd64"
    assert str(Platform("linux", "arm", "")) == "linux/arm"


def test_platform_extra_fields_ignored() -> None:
    doc = oci_index()
    doc["manifests"][0]["platform"]["os.features"] = ["win32k"]
    doc["manifests"][0]["platform"]["features"] = ["sse4"]
    index = parse_manifest(dump(doc))
    assert isinstance(index, Index)
    assert index.manifests[0].platform == Platform("linux", "amd64")


def test_foreign_layers_are_not_distributable() -> None:
    urls = ["https://go.microsoft.com/fwlink/?linkid=0000"]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mt.DOCKER_CONFIG, b"cfg"),
        "layers": [
            desc(mt.DOCKER_FOREIGN_LAYER, b"base", urls=urls),
            desc(mt.DOCKER_LAYER, b"app"),
            desc(OCI_NONDISTRIBUTABLE, b"oci-foreign", urls=urls),
        ],
    }
    manifest = parse_manifest(dump(doc))
    assert isinstance(manifest, Manifest)
    foreign, regular, oci_foreign = manifest.layers
    assert foreign.distributable is False
    assert foreign.urls == tuple(urls)
    assert regular.distributable is True
    assert regular.urls == ()
    assert oci_foreign.distributable is False
    assert manifest.config is not None
    assert manifest.config.distributable is True


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def parse_error(data: bytes, content_type: str | None = None) -> InvalidManifestError:
    with pytest.raises(InvalidManifestError) as info:
        parse_manifest(data, content_type)
    assert type(info.value) is InvalidManifestError
    return info.value


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"{", b'{"a": 1,}', b"\x80\x81", b"\xff\xfe\x00", b"NaNx"]
)
def test_not_json(data: bytes) -> None:
    assert "manifest is not valid JSON" in parse_error(data).message


@pytest.mark.parametrize("data", [b"[]", b"[{}]", b'"manifest"', b"42", b"null", b"true"])
def test_not_an_object(data: bytes) -> None:
    assert parse_error(data).message == "manifest is not a JSON object"


def test_deeply_nested_json_is_invalid_manifest() -> None:
    # BUG: json.loads raises RecursionError (not a ValueError) on deeply nested input, and
    # parse_manifest lets it escape instead of raising InvalidManifestError.
    parse_error(b"[" * 100_000 + b"]" * 100_000)


SCHEMA1 = {
    "schemaVersion": 1,
    "name": "library/alpine",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
    "history": [{"v1Compatibility": "{}"}],
}


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (SCHEMA1, None),
        (SCHEMA1, mt.DOCKER_SCHEMA1_MANIFEST),
        ({**SCHEMA1, "signatures": []}, mt.DOCKER_SCHEMA1_SIGNED_MANIFEST),
        (SCHEMA1, "application/json"),
        ({**SCHEMA1, "mediaType": mt.DOCKER_SCHEMA1_MANIFEST}, None),
        ({"mediaType": mt.DOCKER_SCHEMA1_SIGNED_MANIFEST}, None),
        # schemaVersion 1 is refused even when the rest claims to be schema 2.
        ({**SCHEMA1, "mediaType": mt.DOCKER_MANIFEST, "config": {}, "layers": []}, None),
    ],
)
def test_schema1_is_refused_with_a_hint(doc: dict[str, Any], content_type: str | None) -> None:
    exc = parse_error(dump(doc), content_type)
    assert "schema 1" in exc.message
    assert exc.hint is not None
    assert "schema 2 or OCI" in exc.hint


@pytest.mark.parametrize(
    ("doc", "content_type", "media_type"),
    [
        ({"mediaType": "application/vnd.example+json", "layers": []}, None, "vnd.example"),
        ({"config": {}}, "application/vnd.example+json", "vnd.example"),
        ({**oci_manifest(), "mediaType": mt.OCI_CONFIG}, None, mt.OCI_CONFIG),
    ],
)
def test_unknown_media_type(doc: dict[str, Any], content_type: str | None, media_type: str) -> None:
    exc = parse_error(dump(doc), content_type)
    assert "unsupported manifest media type" in exc.message
    assert media_type in exc.message
    assert exc.hint is not None


@pytest.mark.parametrize("value", [1, ["x"], {"a": "b"}, True])
def test_media_type_field_not_a_string(value: object) -> None:
    exc = parse_error(dump(oci_manifest(mediaType=value)))
    assert exc.message == "manifest mediaType is not a string"


def _with_layer(index: int, **changes: Any) -> bytes:
    doc = oci_manifest()
    layer = doc["layers"][index]
    for key, value in changes.items():
        if value is _DELETE:
            del layer[key]
        else:
            layer[key] = value
    return dump(doc)


_DELETE = object()

# (layers[1] changes, message)
DESCRIPTOR_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"digest": _DELETE}, "layers[1]: descriptor has no digest"),
    ({"digest": None}, "layers[1]: descriptor has no digest"),
    ({"digest": 12}, "layers[1]: descriptor has no digest"),
    ({"digest": "sha256:abc"}, "layers[1]: invalid digest 'sha256:abc': sha256 needs 64"),
    ({"digest": "md5:" + "0" * 32}, "layers[1]: invalid digest 'md5:"),
    ({"digest": "abc"}, "layers[1]: invalid digest 'abc'"),
    ({"mediaType": _DELETE}, "layers[1]: descriptor has no mediaType"),
    ({"mediaType": ""}, "layers[1]: descriptor has no mediaType"),
    ({"mediaType": 7}, "layers[1]: descriptor has no mediaType"),
    ({"size": -1}, "layers[1]: descriptor size must be a non-negative integer"),
    ({"size": True}, "layers[1]: descriptor size must be a non-negative integer"),
    ({"size": False}, "layers[1]: descriptor size must be a non-negative integer"),
    ({"size": 1.0}, "layers[1]: descriptor size must be a non-negative integer"),
    ({"size": "6"}, "layers[1]: descriptor size must be a non-negative integer"),
    ({"size": None}, "layers[1]: descriptor size must be a non-negative integer"),
    ({"size": _DELETE}, "layers[1]: descriptor size must be a non-negative integer"),
    ({"annotations": {"a": 1}}, "layers[1]: annotations must map strings to strings"),
    ({"annotations": {"a": None}}, "layers[1]: annotations must map strings to strings"),
    ({"annotations": ["a"]}, "layers[1]: annotations must map strings to strings"),
    ({"annotations": "a=b"}, "layers[1]: annotations must map strings to strings"),
    ({"urls": "https://x"}, "layers[1]: urls must be a list of strings"),
    ({"urls": [1]}, "layers[1]: urls must be a list of strings"),
    ({"artifactType": 1}, "layers[1]: 'artifactType' is not a string"),
    ({"platform": "linux/amd64"}, "layers[1]: platform is not an object"),
    ({"platform": {"architecture": "amd64"}}, "layers[1]: platform needs 'os' and 'architecture'"),
    ({"platform": {"os": "linux"}}, "layers[1]: platform needs 'os' and 'architecture'"),
    ({"platform": {"os": 1, "architecture": "x"}}, "layers[1]: platform needs 'os'"),
    (
        {"platform": {"os": "linux", "architecture": "arm", "variant": 7}},
        "layers[1]: 'variant' is not a string",
    ),
    (
        {"platform": {"os": "windows", "architecture": "amd64", "os.version": 10}},
        "layers[1]: 'os.version' is not a string",
    ),
]


@pytest.mark.parametrize(("changes", "message"), DESCRIPTOR_ERRORS)
def test_descriptor_errors_name_the_place(changes: dict[str, Any], message: str) -> None:
    exc = parse_error(_with_layer(1, **changes))
    assert exc.message.startswith(message)


def test_digest_error_keeps_the_digest_detail() -> None:
    exc = parse_error(_with_layer(0, digest="SHA256:" + "a" * 64))
    assert (
        exc.message == "layers[0]: invalid digest 'SHA256:" + "a" * 64 + "': bad algorithm 'SHA256'"
    )


def test_descriptor_not_an_object() -> None:
    doc = oci_manifest()
    doc["layers"][1] = "sha256:" + "a" * 64
    assert parse_error(dump(doc)).message == "layers[1]: descriptor is not an object"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (oci_manifest(config=None), "config: descriptor is not an object"),
        (oci_manifest(config={"mediaType": mt.OCI_CONFIG}), "config: descriptor has no digest"),
        (oci_manifest(subject={"digest": "x"}), "subject: descriptor has no mediaType"),
        (oci_manifest(subject=[]), "subject: descriptor is not an object"),
        (oci_manifest(annotations={"k": 1}), "manifest: annotations must map strings"),
        (oci_manifest(annotations=[]), "manifest: annotations must map strings"),
        (oci_manifest(artifactType=["x"]), "manifest: 'artifactType' is not a string"),
        (oci_manifest(layers={"0": {}}), "field 'layers' is not a list"),
        (oci_manifest(layers="x"), "field 'layers' is not a list"),
        (oci_index(manifests={}), "field 'manifests' is not a list"),
        (
            {"mediaType": mt.OCI_ARTIFACT_MANIFEST, "blobs": {"a": 1}},
            "artifact manifest 'blobs' is not a list",
        ),
        (
            {"mediaType": mt.OCI_ARTIFACT_MANIFEST, "blobs": [desc("x/y", b"0"), {"size": 1}]},
            "blobs[1]: descriptor has no mediaType",
        ),
        (
            oci_index(
                manifests=[desc(mt.OCI_MANIFEST, b"ok"), desc(mt.OCI_MANIFEST, b"x", size=-5)]
            ),
            "manifests[1]: descriptor size must be a non-negative integer",
        ),
        (
            oci_index(manifests=[desc(mt.OCI_MANIFEST, b"x", platform={"architecture": "amd64"})]),
            "manifests[0]: platform needs 'os' and 'architecture'",
        ),
    ],
)
def test_document_errors_name_the_place(doc: dict[str, Any], message: str) -> None:
    assert message in parse_error(dump(doc)).message


def test_manifest_without_config() -> None:
    doc = oci_manifest()
    del doc["config"]
    exc = parse_error(dump(doc))
    assert exc.message == f"{mt.OCI_MANIFEST} manifest has no 'config'"


@pytest.mark.parametrize("value", [{}, "", 0, False], ids=["{}", "empty-string", "0", "false"])
def test_urls_of_the_wrong_type_are_refused(value: object) -> None:
    # BUG: `value.get("urls") or []` lets falsy non-lists ({}, "", 0, false) through as "no
    # urls", while truthy non-lists are refused with "urls must be a list of strings".
    exc = parse_error(_with_layer(0, urls=value))
    assert exc.message == "layers[0]: urls must be a list of strings"


@pytest.mark.parametrize("value", [{}, "", 0, False], ids=["{}", "empty-string", "0", "false"])
def test_artifact_blobs_of_the_wrong_type_are_refused(value: object) -> None:
    # BUG: `doc.get("blobs") or []` has the same hole as urls: falsy non-lists are accepted.
    exc = parse_error(dump({"mediaType": mt.OCI_ARTIFACT_MANIFEST, "blobs": value}))
    assert exc.message == "artifact manifest 'blobs' is not a list"


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------

_MEDIA_TYPES = [
    mt.OCI_MANIFEST,
    mt.OCI_INDEX,
    mt.DOCKER_MANIFEST,
    mt.DOCKER_MANIFEST_LIST,
    mt.OCI_ARTIFACT_MANIFEST,
    mt.DOCKER_SCHEMA1_MANIFEST,
    mt.OCI_CONFIG,
    mt.OCI_LAYER_GZIP,
    "application/json",
]
_KEYS = st.sampled_from(
    [
        "mediaType",
        "schemaVersion",
        "config",
        "layers",
        "manifests",
        "blobs",
        "subject",
        "artifactType",
        "annotations",
        "digest",
        "size",
        "urls",
        "platform",
        "os",
        "architecture",
        "variant",
        "os.version",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([*_MEDIA_TYPES, str(Digest.of(b"x")), "sha256:abc", "linux", "amd64"]),
    st.text(max_size=5),
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(_KEYS | st.text(max_size=3), children, max_size=6)
    ),
    max_leaves=25,
)
_CONTENT_TYPES = st.none() | st.sampled_from(_MEDIA_TYPES) | st.text(max_size=10)


@settings(max_examples=300, deadline=None)
@given(_JSON, _CONTENT_TYPES)
def test_property_structured_junk_only_raises_invalid_manifest_error(
    doc: Any, content_type: str | None
) -> None:
    outcome = _parse_or_error(dump(doc), content_type)
    if isinstance(outcome, InvalidManifestError):
        assert type(outcome) is InvalidManifestError
        assert outcome.message
    else:
        assert isinstance(outcome, Manifest | Index)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), _CONTENT_TYPES)
def test_property_arbitrary_bytes_only_raise_invalid_manifest_error(
    data: bytes, content_type: str | None
) -> None:
    outcome = _parse_or_error(data, content_type)
    assert type(outcome) is InvalidManifestError or isinstance(outcome, Manifest | Index)


def _parse_or_error(
    data: bytes, content_type: str | None
) -> Manifest | Index | InvalidManifestError:
    try:
        return parse_manifest(data, content_type)
    except InvalidManifestError as exc:
        return exc


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=16), max_size=8),
    st.sampled_from([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST]),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_property_manifest_descriptors_match_content(
    layers: list[bytes], media_type: str, annotations: dict[str, str]
) -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": desc(mt.OCI_CONFIG, b"cfg"),
        "layers": [desc(mt.OCI_LAYER, data) for data in layers],
        "annotations": annotations,
    }
    manifest = parse_manifest(dump(doc))
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == media_type
    assert [(d.digest, d.size) for d in manifest.layers] == [
        (Digest.of(data), len(data)) for data in layers
    ]
    assert len(manifest.blobs) == len(layers) + 1
    assert manifest.annotations == annotations
