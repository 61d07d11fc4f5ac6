"""kpromo's own promotion tables, row by row, planned by imgctl against a real registry.

Upstream (kubernetes-sigs/promo-tools):

* internal/legacy/dockerregistry/inventory_test.go at 48c350003b29ea789b830dbe06324c761a10090f
  (the last commit before 650d61b6 removed it): TestPromotion, TestToPromotionEdges (the
  filtering by the inventory; the edges are in test_kpromo_edges.py), TestValidateEdges.
* promoter/image/promotion/edge_test.go at 63ddc9f7022567731beebde1334c8e066008c32e:
  TestGetPromotionCandidates, TestGetPromotionCandidatesTagMove, TestVertexProps,
  TestVertexPropsNotPromoted, TestGetPromotionCandidatesWithBaseRegistries.

kpromo's tests hand the promoter an inventory (registry -> image -> digest -> tags); here that
inventory is pushed to a docker-registry on loopback, each registry name of the row becoming a
path under one row's prefix (``gcr.io/foo`` -> ``127.0.0.1:PORT/row3/gcr.io/foo``), and each
fake digest of the row (``sha256:000``, ``sha256:bad``) an image of its own whose real digest
stands for it. imgctl then plans the row's manifest (make_plan: HEADs only). kpromo's promotion
requests are compared with the edges imgctl would copy or tag (imgctl splits kpromo's one
"add" into copy and add_tag), and kpromo's "clean" with no refused tag move. Differences are in
docs/manifests.md, "kpromo's own tests".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from imgctl.oci import Digest, Reference
from imgctl.promotion.manifests import ImageEntry, Manifest, RegistryEntry, edges_of
from imgctl.promotion.plan import Plan, make_plan
from imgctl.remote import ClientOptions, RegistryClient

from ..support.proxy import FaultProxy
from ..support.registry import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = b"kpromo table layer\n"

Inventory = dict[str, dict[str, dict[str, list[str]]]]  # registry -> image -> digest -> tags
Request = tuple[str, str, str, str]  # destination registry, image, digest, tag ("" tagless)


@dataclass
class Row:
    name: str
    registries: list[tuple[str, bool]]  # (name, src), in the row's order
    images: dict[str, dict[str, list[str]]]
    inventory: Inventory
    requests: set[Request]
    clean: bool = True
    bad_reads: list[str] = field(default_factory=list)  # repositories that cannot be read
    # TestValidateEdges: the tag moves kpromo reports, as (tag, points to, wanted)
    tag_moves: set[tuple[str, str, str]] | None = None


FOO, BAR, CAT = "gcr.io/foo", "gcr.io/bar", "gcr.io/cat"
REGISTRIES = [(BAR, False), (FOO, True), (CAT, False)]
REBASE = [("us.gcr.io/dog/some/subdir/path/foo", False), (FOO, True)]

PROMOTION = [
    # "No promotion" (schema.Manifest{}): imgctl refuses a manifest without a source registry
    # (edges_of), so the row is no manifest at all.
    Row("No promotion", [], {}, {}, set()),
    Row(
        "No promotion; tag is already promoted",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9"]}},
        {
            FOO: {"a": {"sha256:000": ["0.9"]}},
            BAR: {"a": {"sha256:000": ["0.9"]}, "b": {"sha256:111": []}},
            CAT: {"a": {"sha256:000": ["0.9"]}},
        },
        set(),
    ),
    Row(
        "No promotion; network errors reading from src registry for all images",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9"]}, "b": {"sha256:111": ["0.9"]}},
        {FOO: {"a": {"sha256:000": ["0.9"]}, "b": {"sha256:111": ["0.9"]}}},
        set(),
        bad_reads=[f"{FOO}/a", f"{FOO}/b", f"{FOO}/c"],
    ),
    Row(
        "Promote 1 tag; image digest does not exist in dest",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9"]}},
        {
            FOO: {"a": {"sha256:000": ["0.9"]}},
            BAR: {"b": {"sha256:111": []}},
            CAT: {"a": {"sha256:000": ["0.9"]}},
        },
        {(BAR, "a", "sha256:000", "0.9")},
    ),
    Row(
        "Promote 1 tag; image already exists in dest, but digest does not",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9"]}},
        {
            FOO: {"a": {"sha256:000": ["0.9"]}},
            BAR: {"a": {"sha256:111": []}},
            CAT: {"a": {"sha256:000": ["0.9"]}},
        },
        {(BAR, "a", "sha256:000", "0.9")},
    ),
    Row(
        "Promote 1 tag; tag already exists in dest but is pointing to a different digest"
        " (move tag)",
        REGISTRIES,
        {"a": {"sha256:bad": ["good"]}},
        {
            FOO: {"a": {"sha256:bad": ["some-other-tag"]}},
            BAR: {"a": {"sha256:bad": ["some-other-tag"], "sha256:600d": ["good"]}},
            CAT: {"a": {"sha256:bad": ["some-other-tag"], "sha256:600d": ["good"]}},
        },
        set(),
        clean=False,
    ),
    Row(
        "Promote 1 tag as a 'rebase'",
        REBASE,
        {"a": {"sha256:000": ["0.9"]}},
        {
            FOO: {"a": {"sha256:000": ["0.9"]}},
            "us.gcr.io/dog/some/subdir/path": {"a": {"sha256:111": ["0.8"]}},
        },
        {("us.gcr.io/dog/some/subdir/path/foo", "a", "sha256:000", "0.9")},
    ),
    Row(
        "Promote 1 digest (tagless promotion)",
        REGISTRIES,
        {"a": {"sha256:000": []}},
        {
            FOO: {"a": {"sha256:000": []}},
            BAR: {"a": {"sha256:000": []}},  # "bar" already has it
            CAT: {"c": {"sha256:222": []}},
        },
        {(CAT, "a", "sha256:000", "")},
    ),
    Row(
        "NOP; dest has extra tag, but NOP because -delete-extra-tags NOT specified",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9"]}},
        {
            FOO: {"a": {"sha256:000": ["0.9"]}},
            BAR: {"a": {"sha256:000": ["0.9", "extra-tag"]}},
            CAT: {"a": {"sha256:000": ["0.9"]}},
        },
        set(),
    ),
    Row(
        "NOP (src registry does not have any of the images we want to promote)",
        REGISTRIES,
        {
            "a": {"sha256:000": ["missing-from-src"], "sha256:333": ["0.8"]},
            "b": {"sha256:bbb": ["also-missing"]},
        },
        {
            FOO: {"c": {"sha256:000": ["0.9"]}, "d": {"sha256:bbb": ["1.0"]}},
            BAR: {"a": {"sha256:333": ["0.8"]}},
        },
        set(),
    ),
    Row(
        "Add 1 tag for 2 registries",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9", "1.0"]}},
        {
            FOO: {"a": {"sha256:000": ["0.9"]}},
            BAR: {"a": {"sha256:000": ["0.9"]}},
            CAT: {"a": {"sha256:000": ["0.9"]}},
        },
        {(BAR, "a", "sha256:000", "1.0"), (CAT, "a", "sha256:000", "1.0")},
    ),
    Row(
        "Add 1 tag for 1 registry",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9", "1.0"]}},
        {
            FOO: {"a": {"sha256:000": ["0.9"]}},
            BAR: {"a": {"sha256:000": ["0.9"]}},
            CAT: {"a": {"sha256:000": ["0.9", "1.0", "extra-tag"]}},
        },
        {(BAR, "a", "sha256:000", "1.0")},
    ),
]

# TestToPromotionEdges: its manifests against its one SyncContext inventory.
TO_PROMOTION_INVENTORY: Inventory = {
    FOO: {"a": {"sha256:000": ["0.9"]}, "c": {"sha256:222": ["2.0"], "sha256:333": ["3.0"]}},
    BAR: {
        "a": {"sha256:000": ["0.9"]},
        "b": {"sha256:111": []},
        "c": {"sha256:222": ["2.0"], "sha256:333": ["3.0"]},
    },
    CAT: {"a": {"sha256:000": ["0.9"]}, "c": {"sha256:222": ["2.0"], "sha256:333": ["3.0"]}},
}
TO_PROMOTION_EDGES = [
    Row(
        "Basic case (1 new edge; already promoted)",
        [(BAR, False), (FOO, True)],
        {"a": {"sha256:000": ["0.9"]}},
        TO_PROMOTION_INVENTORY,
        set(),
    ),
    Row(
        "Basic case (2 new edges; already promoted)",
        REGISTRIES,
        {"a": {"sha256:000": ["0.9"]}},
        TO_PROMOTION_INVENTORY,
        set(),
    ),
    Row(
        "Tag move (tag swap image c:2.0 and c:3.0)",
        REGISTRIES,
        {"c": {"sha256:222": ["3.0"], "sha256:333": ["2.0"]}},
        TO_PROMOTION_INVENTORY,
        set(),
        clean=False,
    ),
]

SRC, DST = "gcr.io/src", "gcr.io/dst"
VALIDATE_EDGES = [
    Row(
        "No problems (nothing to promote)",
        [(SRC, True), (DST, False)],
        {"a": {"sha256:000": ["0.0"]}},
        {SRC: {"a": {"sha256:000": ["0.0"]}}, DST: {"a": {"sha256:000": ["0.0"]}}},
        set(),
        tag_moves=set(),
    ),
    Row(
        "Promotion edges OK",
        [(SRC, True), (DST, False)],
        {"a": {"sha256:000": ["0.0"], "sha256:111": ["1.0"]}},
        {SRC: {"a": {"sha256:000": [], "sha256:111": []}}, DST: {"a": {"sha256:000": ["0.0"]}}},
        {(DST, "a", "sha256:111", "1.0")},
        tag_moves=set(),
    ),
    Row(
        # kpromo: "tag '1.0' in dest points to sha256:111, not sha256:222 (as per the
        # manifest), but tag moves are not supported; skipping"
        "Tag move detected in promotion edge",
        [(SRC, True), (DST, False)],
        {"a": {"sha256:222": ["1.0"]}},
        {
            SRC: {"a": {"sha256:000": [], "sha256:111": []}},
            DST: {"a": {"sha256:000": ["0.0"], "sha256:111": ["1.0"]}},
        },
        set(),
        clean=False,
        tag_moves={("1.0", "sha256:111", "sha256:222")},
    ),
]

STAGING, PROD_US, PROD_EU = "gcr.io/staging", "us.gcr.io/prod", "eu.gcr.io/prod"
D1, D2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
CANDIDATES = [
    Row(
        "TestGetPromotionCandidates",
        [(STAGING, True), (PROD_US, False)],
        {"foo": {D1: ["v1"]}, "bar": {D2: ["v2"]}},
        {STAGING: {"foo": {D1: ["v1"]}, "bar": {D2: ["v2"]}}, PROD_US: {"foo": {D1: ["v1"]}}},
        {(PROD_US, "bar", D2, "v2")},
    ),
    Row(
        "TestGetPromotionCandidatesTagMove",
        [(STAGING, True), (PROD_US, False)],
        {"foo": {D1: ["v1"]}},
        {STAGING: {"foo": {D1: ["v1"]}}, PROD_US: {"foo": {D2: ["v1"]}}},
        set(),
        clean=False,
    ),
    Row(
        # both vertices have foo:v1 at the digest: already promoted
        "TestVertexProps",
        [(STAGING, True), (PROD_US, False)],
        {"foo": {D1: ["v1"]}},
        {STAGING: {"foo": {D1: ["v1"]}}, PROD_US: {"foo": {D1: ["v1"]}}},
        set(),
    ),
    Row(
        # the destination is empty: the digest is copied
        "TestVertexPropsNotPromoted",
        [(STAGING, True), (PROD_US, False)],
        {"foo": {D1: ["v1"]}},
        {STAGING: {"foo": {D1: ["v1"]}}},
        {(PROD_US, "foo", D1, "v1")},
    ),
    Row(
        "TestGetPromotionCandidatesWithBaseRegistries (already promoted)",
        [
            ("gcr.io/k8s-staging-foo", True),
            ("us-docker.pkg.dev/k8s-artifacts-prod/images/foo", False),
        ],
        {"myimage": {D1: ["v1.0"]}},
        {
            "gcr.io/k8s-staging-foo": {"myimage": {D1: ["v1.0"]}},
            "us-docker.pkg.dev/k8s-artifacts-prod/images/foo": {"myimage": {D1: ["v1.0"]}},
        },
        set(),
    ),
    Row(
        "TestGetPromotionCandidatesWithBaseRegistries (needs promotion)",
        [
            ("gcr.io/k8s-staging-foo", True),
            ("us-docker.pkg.dev/k8s-artifacts-prod/images/foo", False),
        ],
        {"myimage": {D1: ["v1.0"]}},
        {"gcr.io/k8s-staging-foo": {"myimage": {D1: ["v1.0"]}}},
        {("us-docker.pkg.dev/k8s-artifacts-prod/images/foo", "myimage", D1, "v1.0")},
    ),
]

ROWS = [
    *(("TestPromotion", row) for row in PROMOTION),
    *(("TestToPromotionEdges", row) for row in TO_PROMOTION_EDGES),
    *(("TestValidateEdges", row) for row in VALIDATE_EDGES),
    *(("edge_test.go", row) for row in CANDIDATES),
]


# ---------------------------------------------------------------------------------- harness


class Images:
    """One real image per fake digest of the tables, pushed where a row's inventory says."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.real: dict[str, bytes] = {}  # fake digest -> manifest bytes
        self.config: dict[str, bytes] = {}

    def manifest(self, fake: str) -> bytes:
        if fake not in self.real:
            config = json.dumps({"architecture": "amd64", "os": "linux", "stands-for": fake})
            self.config[fake] = config.encode()
            self.real[fake] = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": str(Digest.of(self.config[fake])),
                        "size": len(self.config[fake]),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": str(Digest.of(LAYER)),
                            "size": len(LAYER),
                        }
                    ],
                },
                sort_keys=True,
            ).encode()
        return self.real[fake]

    def digest(self, fake: str) -> str:
        return str(Digest.of(self.manifest(fake)))

    def fake(self, real: str) -> str:
        return next(f for f in self.real if self.digest(f) == real)

    async def push(self, repository: str, fake: str, tags: list[str]) -> None:
        data = self.manifest(fake)
        ref = Reference.parse(repository)
        for blob in (LAYER, self.config[fake]):
            location = await self.client.start_upload(ref)
            assert location is not None
            await self.client.finish_upload(ref, location, Digest.of(blob), blob)
        targets = [f":{tag}" for tag in tags] or [f"@{self.digest(fake)}"]  # tagless: by digest
        for target in targets:
            await self.client.put_manifest(Reference.parse(repository + target), data, OCI_MANIFEST)


@pytest.fixture(scope="module")
def registry_for_tables(registries: Callable[..., Registry]) -> Registry:
    return registries()


@pytest.fixture
async def tables_client() -> AsyncIterator[RegistryClient]:
    async with RegistryClient(
        options=ClientOptions(backoff=0.01, max_backoff=0.05, retries=1)
    ) as c:
        yield c


async def plan_row(
    client: RegistryClient, registry: str, reader: str, prefix: str, row: Row
) -> tuple[Plan, Images]:
    images = Images(client)
    pushes = [
        images.push(f"{registry}/{prefix}/{name}/{image}", fake, tags)
        for name, repositories in row.inventory.items()
        for image, digests in repositories.items()
        for fake, tags in digests.items()
    ]
    await asyncio.gather(*pushes)
    manifests = []
    if row.registries:
        manifests.append(
            Manifest(
                tuple(
                    RegistryEntry(f"{reader}/{prefix}/{name}", src, "robot")
                    for name, src in row.registries
                ),
                tuple(
                    ImageEntry(image, {images.digest(f): tuple(t) for f, t in dmap.items()})
                    for image, dmap in row.images.items()
                ),
                "manifest.yaml",
            )
        )
    return await make_plan(client, edges_of(manifests)), images


@pytest.mark.parametrize(("test", "row"), ROWS, ids=[f"{t}: {r.name}" for t, r in ROWS])
async def test_kpromo_promotion_row(
    test: str,
    row: Row,
    registry_for_tables: Registry,
    tables_client: RegistryClient,
    proxy_for: Callable[[Registry], FaultProxy],
) -> None:
    prefix = f"row{ROWS.index((test, row))}"
    reader = registry_for_tables.host
    if row.bad_reads:
        # The source repositories answer 500 through a proxy; every registry of the row is
        # read through it, as kpromo reads them all through one network.
        proxy = proxy_for(registry_for_tables)
        for repository in row.bad_reads:
            proxy.fail(500, 10_000, path=f"^/v2/{prefix}/{repository}/manifests/")
        reader = proxy.host
    plan, images = await plan_row(tables_client, registry_for_tables.host, reader, prefix, row)

    def unmap(name: str) -> str:
        return name.removeprefix(f"{reader}/{prefix}/")

    work = {
        (
            unmap(a.edge.destination_registry),
            a.edge.image,
            images.fake(a.edge.digest),
            a.edge.tag or "",
        )
        for a in plan.work()
    }
    assert work == row.requests
    assert (not plan.refused) == row.clean
    if row.tag_moves is not None:
        moves = {
            (a.edge.tag, images.fake(a.current or ""), images.fake(a.edge.digest))
            for a in plan.refused
        }
        assert moves == row.tag_moves
    if row.bad_reads:
        # kpromo skips what it could not read; imgctl skips it too, and says so (exit 1)
        assert {unmap(a.edge.source_registry) for a in plan.unreadable} == {FOO}
        assert len(plan.unreadable) == len(plan.actions) == 4
    else:
        assert plan.unreadable == []
