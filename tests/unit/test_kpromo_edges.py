"""kpromo's own tables for edges, overlaps and snapshots, row by row, through imgctl.

Upstream (kubernetes-sigs/promo-tools):

* promoter/image/promotion/edge_test.go at 63ddc9f7022567731beebde1334c8e066008c32e:
  TestEdgeSrcReference, TestEdgeDstReference, TestToFQIN, TestToPQIN, TestToEdges,
  TestToEdgesTagless, TestCheckOverlappingEdgesClean, TestCheckOverlappingEdgesConflict,
  TestEdgesToRegInvImage, TestFilterByTag, TestFilterByTagNoMatch. (Its TestGetPromotionCandidates*
  and TestVertexProps* are in test_kpromo_promotion.py; TestGetRegistriesToRead and
  TestGetBaseRegistries test which inventories kpromo lists, which imgctl never does.)
* internal/legacy/dockerregistry/inventory_test.go at 48c350003b29ea789b830dbe06324c761a10090f
  (the last commit before 650d61b6 removed it): TestToPromotionEdges (the edges; the filtering
  is in test_kpromo_promotion.py), TestCheckOverlappingEdges, TestSnapshot.

How rows are carried over: kpromo's tests build Manifest structs by hand, without validation,
and so do these (``edges_of`` takes imgctl Manifests as they are). Where kpromo builds an edge
map directly, the row is written as the manifest that makes those edges (kpromo's ToEdges
always gives an edge the same image name at both ends, so rows whose source and destination
image differ keep the destination, which is what the overlap check looks at). Fake digests
("sha256:000") are used as they are for edges; where imgctl checks digests (snapshots it writes
must load back) they are padded with zeros to 64 hex digits, which keeps their order.
Differences are in docs/manifests.md, "kpromo's own tests".
"""

from __future__ import annotations

import pytest

from imgctl.errors import ManifestError, UsageError
from imgctl.promotion.manifests import (
    Edge,
    ImageEntry,
    Manifest,
    RegistryEntry,
    edges_of,
    snapshot_yaml,
)
from imgctl.promotion.snapshot import filter_by_tag, manifest_snapshot

DIGEST_1 = "sha256:" + "a" * 64
DIGEST_2 = "sha256:" + "b" * 64


def pad(digest: str) -> str:
    """A kpromo test digest ("sha256:000") as a valid one, in the same order."""
    algorithm, _, hex_digits = digest.partition(":")
    return f"{algorithm}:{hex_digits.ljust(64, '0')}"


def mfest(
    source: str,
    destinations: list[str],
    images: dict[str, dict[str, list[str]]],
    path: str = "manifest.yaml",
) -> Manifest:
    """A manifest built by hand, as kpromo's tests build schema.Manifest."""
    registries = [RegistryEntry(source, src=True, service_account="robot")]
    registries += [RegistryEntry(d, service_account="robot") for d in destinations]
    entries = tuple(
        ImageEntry(name, {d: tuple(t) for d, t in dmap.items()}) for name, dmap in images.items()
    )
    return Manifest(tuple(registries), entries, path)


def as_tuples(edges: list[Edge]) -> set[tuple[str, str, str, str, str | None]]:
    return {(e.source_registry, e.destination_registry, e.image, e.digest, e.tag) for e in edges}


# --------------------------------------------------------------------------- edge_test.go


def test_edge_src_reference() -> None:
    edge = Edge("gcr.io/staging", "us.gcr.io/prod", "foo", DIGEST_1, "v1")
    assert f"{edge.source_repository}@{edge.digest}" == f"gcr.io/staging/foo@{DIGEST_1}"
    # kpromo: an Edge with empty fields gives "". imgctl's edges always have every field.


def test_edge_dst_reference() -> None:
    edge = Edge("gcr.io/staging", "us.gcr.io/prod", "foo", DIGEST_1, "v1")
    assert f"{edge.destination_repository}@{edge.digest}" == f"us.gcr.io/prod/foo@{DIGEST_1}"


def test_fqin_and_pqin() -> None:
    edge = Edge("gcr.io/staging", "gcr.io/staging", "foo", "sha256:abc", "v1")
    assert f"{edge.source_repository}@{edge.digest}" == "gcr.io/staging/foo@sha256:abc"  # FQIN
    assert edge.destination == "gcr.io/staging/foo:v1"  # PQIN


def test_to_edges() -> None:
    edges = edges_of(
        [
            mfest(
                "gcr.io/staging",
                ["us.gcr.io/prod", "eu.gcr.io/prod"],
                {"foo": {DIGEST_1: ["v1", "latest"]}},
            )
        ]
    )
    assert len(edges) == 4  # 1 image x 2 tags x 2 destination registries
    assert all(e.destination_registry != "gcr.io/staging" for e in edges)
    assert all(e.source_registry == "gcr.io/staging" for e in edges)


def test_to_edges_tagless() -> None:
    [edge] = edges_of([mfest("gcr.io/staging", ["us.gcr.io/prod"], {"bar": {DIGEST_1: []}})])
    assert edge.tag is None


def test_check_overlapping_edges_clean() -> None:
    edges = edges_of([mfest("gcr.io/staging", ["us.gcr.io/prod"], {"foo": {DIGEST_1: ["v1"]}})])
    assert len(edges) == 1


def test_check_overlapping_edges_conflict() -> None:
    # two different digests for us.gcr.io/prod/foo:v1
    with pytest.raises(ManifestError, match=r"^overlapping edges detected"):
        edges_of(
            [
                mfest("gcr.io/staging", ["us.gcr.io/prod"], {"foo": {DIGEST_1: ["v1"]}}, "a.yaml"),
                mfest("gcr.io/staging", ["us.gcr.io/prod"], {"foo": {DIGEST_2: ["v1"]}}, "b.yaml"),
            ]
        )


def test_edges_to_reg_inv_image() -> None:
    manifests = [
        mfest("gcr.io/staging", ["us.gcr.io/prod"], {"foo": {DIGEST_1: ["v1", "v2"]}}),
        mfest("gcr.io/staging", ["eu.gcr.io/prod"], {"bar": {DIGEST_2: ["latest"]}}),
    ]
    assert manifest_snapshot(manifests, "us.gcr.io/prod") == {"foo": {DIGEST_1: ["v1", "v2"]}}


def test_filter_by_tag() -> None:
    inventory = {"foo": {DIGEST_1: ["v1", "latest"], DIGEST_2: ["v2"]}}
    # kpromo keeps every tag of a digest that carries the wanted one
    assert filter_by_tag(inventory, "v1") == {"foo": {DIGEST_1: ["v1", "latest"]}}


def test_filter_by_tag_no_match() -> None:
    assert filter_by_tag({"foo": {DIGEST_1: ["v1"]}}, "nonexistent") == {}


# ------------------------------------------------------- legacy inventory_test.go (48c35000)

SRC, DEST, DEST2 = "gcr.io/foo", "gcr.io/bar", "gcr.io/cat"


def edge(image: str, digest: str, tag: str | None, destination: str = DEST) -> tuple[str, ...]:
    return (SRC, destination, image, digest, tag)  # type: ignore[return-value]


TO_PROMOTION_EDGES: list[tuple[str, list[str], dict[str, dict[str, list[str]]], set[object]]] = [
    (
        "Basic case (1 new edge; already promoted)",
        [DEST],
        {"a": {"sha256:000": ["0.9"]}},
        {edge("a", "sha256:000", "0.9")},
    ),
    (
        "Basic case (2 new edges; already promoted)",
        [DEST, DEST2],
        {"a": {"sha256:000": ["0.9"]}},
        {edge("a", "sha256:000", "0.9"), edge("a", "sha256:000", "0.9", DEST2)},
    ),
    (
        "Tag move (tag swap image c:2.0 and c:3.0)",
        [DEST, DEST2],
        {"c": {"sha256:222": ["3.0"], "sha256:333": ["2.0"]}},
        {
            edge("c", "sha256:333", "2.0"),
            edge("c", "sha256:222", "3.0"),
            edge("c", "sha256:333", "2.0", DEST2),
            edge("c", "sha256:222", "3.0", DEST2),
        },
    ),
]


@pytest.mark.parametrize(
    ("destinations", "images", "expected"),
    [row[1:] for row in TO_PROMOTION_EDGES],
    ids=[row[0] for row in TO_PROMOTION_EDGES],
)
def test_to_promotion_edges(
    destinations: list[str], images: dict[str, dict[str, list[str]]], expected: set[object]
) -> None:
    # kpromo's registries1/registries2 list a destination before the source; order is moot
    assert as_tuples(edges_of([mfest(SRC, destinations, images)])) == expected


# (name, manifests as (image, digest, tag) per manifest, expected edges or None for the error)
CHECK_OVERLAPPING: list[tuple[str, list[list[tuple[str, str, str | None]]], set[object] | None]] = [
    ("Basic case (0 edges)", [], set()),
    (
        "Basic case (singleton edge, no overlapping edges)",
        [[("a", "sha256:000", "0.9")]],
        {edge("a", "sha256:000", "0.9")},
    ),
    (
        "Basic case (two edges, no overlapping edges)",
        [[("a", "sha256:000", "0.9"), ("b", "sha256:111", "0.9")]],
        {edge("a", "sha256:000", "0.9"), edge("b", "sha256:111", "0.9")},
    ),
    (
        # upstream: sources a and b, both to a:0.9 at gcr.io/bar
        "Basic case (two edges, overlapped)",
        [[("a", "sha256:000", "0.9")], [("a", "sha256:111", "0.9")]],
        None,
    ),
    (
        # upstream: sources a and b, both tagless to a at gcr.io/bar
        "Basic case (two tagless edges (different digests, same PQIN), no overlap)",
        [[("a", "sha256:000", None)], [("a", "sha256:111", None)]],
        {edge("a", "sha256:000", None), edge("a", "sha256:111", None)},
    ),
]


@pytest.mark.parametrize(
    ("manifests", "expected"),
    [row[1:] for row in CHECK_OVERLAPPING],
    ids=[row[0] for row in CHECK_OVERLAPPING],
)
def test_check_overlapping_edges(
    manifests: list[list[tuple[str, str, str | None]]], expected: set[object] | None
) -> None:
    built = []
    for number, rows in enumerate(manifests):
        images: dict[str, dict[str, list[str]]] = {}
        for image, digest, tag in rows:
            images.setdefault(image, {}).setdefault(digest, []).extend([tag] if tag else [])
        built.append(mfest(SRC, [DEST], images, f"m{number}.yaml"))
    if expected is None:
        with pytest.raises(ManifestError, match=r"^overlapping edges detected"):
            edges_of(built)
    else:
        assert as_tuples(edges_of(built)) == expected


def test_snapshot() -> None:
    inventory = {
        "foo": {
            pad("sha256:111"): ["one"],
            pad("sha256:fff"): ["0.9", "0.5"],
            pad("sha256:abc"): ["0.3", "0.2"],
        },
        "bar": {pad("sha256:000"): ["0.8", "0.5", "0.9"]},
    }
    assert snapshot_yaml(inventory) == (
        "- name: bar\n"
        "  dmap:\n"
        f'    "{pad("sha256:000")}": ["0.5", "0.8", "0.9"]\n'
        "- name: foo\n"
        "  dmap:\n"
        f'    "{pad("sha256:111")}": ["one"]\n'
        f'    "{pad("sha256:abc")}": ["0.2", "0.3"]\n'
        f'    "{pad("sha256:fff")}": ["0.5", "0.9"]\n'
    )


# ----------------------------------------------- --manifest-based-snapshot-of, by path prefix


def test_manifest_based_snapshot_by_path_prefix() -> None:
    # kpromo (EdgesToRegInvImage) takes every destination starting with the name given, and
    # puts the rest of the destination's path before the image name.
    manifests = [
        mfest(
            "gcr.io/staging-a",
            ["us.gcr.io/prod/team-a", "eu.gcr.io/prod/team-a"],
            {"app": {DIGEST_1: ["1.0"]}},
        ),
        mfest("gcr.io/staging-b", ["us.gcr.io/prod"], {"tools/cli": {DIGEST_2: []}}),
        mfest("gcr.io/staging-c", ["us.gcr.io/prod/team-c/deep"], {"db": {DIGEST_1: ["2", "1"]}}),
        # not under us.gcr.io/prod: another path segment that merely starts the same way
        mfest(
            "gcr.io/staging-d",
            ["us.gcr.io/production", "us.gcr.io/prod-eu/x"],
            {"evil": {DIGEST_2: ["1.0"]}},
        ),
    ]
    expected = {
        "team-a/app": {DIGEST_1: ["1.0"]},
        "tools/cli": {DIGEST_2: []},
        "team-c/deep/db": {DIGEST_1: ["1", "2"]},
    }
    assert manifest_snapshot(manifests, "us.gcr.io/prod") == expected
    assert manifest_snapshot(manifests, "us.gcr.io/prod/") == expected
    assert manifest_snapshot(manifests, "us.gcr.io/prod/team-c") == {
        "deep/db": {DIGEST_1: ["1", "2"]}
    }
    assert manifest_snapshot(manifests, "us.gcr.io/production") == {"evil": {DIGEST_2: ["1.0"]}}
    # the host alone covers every path on it
    assert set(manifest_snapshot(manifests, "us.gcr.io")) == {
        "prod/team-a/app",
        "prod/tools/cli",
        "prod/team-c/deep/db",
        "production/evil",
        "prod-eu/x/evil",
    }


@pytest.mark.parametrize(
    "target", ["us.gcr.io/pro", "us.gcr.io/prod/team", "eu.gcr.io/prod/team-a/app", "us.gcr"]
)
def test_manifest_based_snapshot_matches_whole_segments(target: str) -> None:
    manifests = [
        mfest(
            "gcr.io/s",
            ["us.gcr.io/prod/team-a", "eu.gcr.io/prod/team-a"],
            {"app": {DIGEST_1: ["1.0"]}},
        )
    ]
    with pytest.raises(UsageError, match=r"^no manifest promotes to"):
        manifest_snapshot(manifests, target)


def test_manifest_based_snapshot_checks_overlaps() -> None:
    # kpromo builds the snapshot from ToEdges, which refuses a tag wanted at two digests
    manifests = [
        mfest("gcr.io/a", ["us.gcr.io/prod"], {"app": {DIGEST_1: ["1.0"]}}, "a.yaml"),
        mfest("gcr.io/b", ["us.gcr.io/prod"], {"app": {DIGEST_2: ["1.0"]}}, "b.yaml"),
    ]
    with pytest.raises(ManifestError, match=r"^overlapping edges detected"):
        manifest_snapshot(manifests, "us.gcr.io/prod")
