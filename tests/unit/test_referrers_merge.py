"""merge_signature_manifests: cosign's append rule for a destination .sig/.att with other content.

The destination's manifest stays the base (its layers first and byte-for-byte, its annotations),
the source's layers it lacks are appended in the source's order, and the config's diff_ids and
history grow with them when they had one entry per layer.
"""

from __future__ import annotations

import json
from typing import Any

from imgctl.oci import Digest
from imgctl.oci import mediatypes as mt
from imgctl.oci.manifest import parse_manifest
from imgctl.remote._client import FetchedManifest
from imgctl.remote._referrers import Merged, merge_signature_manifests

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def layer(data: bytes, media_type: str = SIMPLESIGNING) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "size": len(data),
        "digest": str(Digest.of(data)),
        "annotations": {"dev.cosignproject.cosign/signature": data.hex()},
    }


def config(layers: list[dict[str, Any]], history: bool = True) -> bytes:
    document: dict[str, Any] = {
        "architecture": "",
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [entry["digest"] for entry in layers]},
        "config": {},
    }
    if history:
        document["history"] = [
            {"created": "0001-01-01T00:00:00Z", "n": i} for i in range(len(layers))
        ]
    return json.dumps(document).encode()


def manifest(layers: list[dict[str, Any]], config_bytes: bytes, **extra: Any) -> FetchedManifest:
    data = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "size": len(config_bytes),
                "digest": str(Digest.of(config_bytes)),
            },
            "layers": layers,
            **extra,
        }
    ).encode()
    return FetchedManifest(data, parse_manifest(data), Digest.of(data))


A, B, C, D = (layer(x) for x in (b"a", b"b", b"c", b"d"))


def test_destination_layers_stay_first_and_the_missing_source_layers_follow_in_order() -> None:
    dst_config, src_config = config([A, B]), config([D, B, C])
    destination = manifest([A, B], dst_config, annotations={"kept": "yes"})
    source = manifest([D, B, C], src_config)
    merged = merge_signature_manifests(destination, source, dst_config, src_config)
    assert isinstance(merged, Merged)
    document = json.loads(merged.data)
    assert document["layers"] == [A, B, D, C]
    assert document["annotations"] == {"kept": "yes"}
    assert [d.digest for d in merged.added] == [
        Digest.parse(D["digest"]),
        Digest.parse(C["digest"]),
    ]
    assert merged.kept == 2
    assert merged.config is not None
    assert document["config"]["digest"] == str(Digest.of(merged.config))
    rewritten = json.loads(merged.config)
    assert rewritten["rootfs"]["diff_ids"] == [A["digest"], B["digest"], D["digest"], C["digest"]]
    # History entries come from the source's config, at the added layers' places.
    assert [h["n"] for h in rewritten["history"]] == [0, 1, 0, 2]


def test_nothing_to_add_keeps_the_destination_bytes() -> None:
    destination = manifest([A, B, C], config([A, B, C]))
    merged = merge_signature_manifests(destination, manifest([C, A], config([C, A])))
    assert isinstance(merged, Merged)
    assert merged.added == ()
    assert merged.data == destination.data


def test_without_configs_the_layers_are_merged_and_the_config_left_alone() -> None:
    dst_config = config([A])
    destination = manifest([A], dst_config)
    merged = merge_signature_manifests(destination, manifest([B], config([B])))
    assert isinstance(merged, Merged)
    assert merged.config is None
    assert json.loads(merged.data)["config"]["digest"] == str(Digest.of(dst_config))


def test_a_compressed_layer_without_the_source_config_leaves_the_config_alone() -> None:
    gzipped = layer(b"z", mt.OCI_LAYER_GZIP)
    dst_config = config([A])
    merged = merge_signature_manifests(
        manifest([A], dst_config), manifest([gzipped], config([gzipped])), dst_config, None
    )
    assert isinstance(merged, Merged)
    assert merged.config is None  # its diff_id is unknown: never guessed
    assert json.loads(merged.data)["layers"] == [A, gzipped]


def test_uncompressed_layers_without_the_source_config_use_their_digests() -> None:
    dst_config = config([A], history=False)
    merged = merge_signature_manifests(manifest([A], dst_config), manifest([B], b"{}"), dst_config)
    assert isinstance(merged, Merged)
    assert merged.config is not None
    rewritten = json.loads(merged.config)
    assert rewritten["rootfs"]["diff_ids"] == [A["digest"], B["digest"]]
    assert "history" not in rewritten


def test_an_index_is_not_merged() -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()
    index = FetchedManifest(data, parse_manifest(data), Digest.of(data))
    assert merge_signature_manifests(index, manifest([A], config([A]))) == (
        "not a single image manifest"
    )
    assert merge_signature_manifests(manifest([A], config([A])), index) == (
        "not a single image manifest"
    )
