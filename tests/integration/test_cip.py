"""`imgctl cip` end to end: thin manifests against real registries, shards, faults, snapshots."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import IMGCTL, PushedImage
from ..support.proxy import Fault, FaultProxy
from ..support.registry import Registry
from ..support.skopeo import digest_of

IMAGES = 30


@dataclass
class Setup:
    source: Registry
    mirrors: tuple[Registry, Registry]
    digests: dict[str, str]  # image name -> digest of its v1

    def source_name(self) -> str:
        return f"{self.source.host}/staging"

    def destinations(self) -> list[str]:
        return [f"{self.mirrors[0].host}/prod", self.mirrors[1].host]


def cip(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["IMGCTL_ENABLE_IAAS_AUTH"] = "false"
    return subprocess.run(
        [IMGCTL, "cip", "--rate-limit", "2000", "--burst", "100", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def write_thin(
    root: Path,
    source: str,
    destinations: list[str],
    images: dict[str, dict[str, list[str]]],
) -> Path:
    """A thin manifest tree with one project, 'main'."""
    (root / "manifests" / "main").mkdir(parents=True)
    (root / "images" / "main").mkdir(parents=True)
    registries = [{"name": source, "src": True}] + [{"name": d} for d in destinations]
    (root / "manifests" / "main" / "promoter-manifest.yaml").write_text(
        json.dumps({"registries": registries})
    )
    document = [{"name": name, "dmap": dmap} for name, dmap in sorted(images.items())]
    (root / "images" / "main" / "images.yaml").write_text(json.dumps(document))
    return root


@pytest.fixture(scope="module")
def setup(registries: Callable[..., Registry], layouts: Callable[..., Any]) -> Setup:
    from ..support.skopeo import push_layout

    source = registries()
    digests = {}
    for number in range(IMAGES):
        built = layouts(tag="v1", layers=1, layer_size=2_000 + number)
        name = f"img-{number:02d}"
        push_layout(built.oci_ref, f"{source.host}/staging/{name}:v1")
        digests[name] = built.digest
    return Setup(source, (registries(), registries()), digests)


def plan_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_thin_manifest_promotes_once_and_then_finds_everything(
    setup: Setup, tmp_path: Path
) -> None:
    images = {name: {digest: ["v1"]} for name, digest in setup.digests.items()}
    tree = write_thin(tmp_path / "tree", setup.source_name(), setup.destinations(), images)
    dry = cip("--thin-manifest-dir", str(tree), "-o", "json")
    assert dry.returncode == 0, dry.stderr
    assert plan_json(dry)["summary"]["copy"] == 2 * IMAGES
    assert not setup.mirrors[1].has_tag("img-00", "v1")  # a dry run writes nothing

    done = cip("--thin-manifest-dir", str(tree), "--confirm")
    assert done.returncode == 0, done.stderr
    assert f"promoted {2 * IMAGES} of {2 * IMAGES} edges" in done.stdout
    for name, digest in setup.digests.items():
        assert digest_of(f"{setup.mirrors[0].host}/prod/{name}:v1") == digest
        assert digest_of(f"{setup.mirrors[1].host}/{name}:v1") == digest

    again = cip("--thin-manifest-dir", str(tree), "--confirm", "-o", "json")
    assert again.returncode == 0, again.stderr
    document = plan_json(again)
    assert document["summary"]["present"] == 2 * IMAGES
    assert document["results"] == []
    # A plan that finds everything costs one HEAD per edge (plus the ping and token), and for
    # the referrers one tag listing per source repository and one referrers-API probe.
    assert document["requests"] <= 2 * IMAGES + IMAGES + 5

    # Snapshot of a mirror -> images.yaml -> a plan that finds everything present.
    snapshot = cip("--snapshot", f"{setup.mirrors[0].host}/prod")
    assert snapshot.returncode == 0, snapshot.stderr
    assert "img-00" in snapshot.stdout
    back = tmp_path / "back"
    (back / "manifests" / "main").mkdir(parents=True)
    (back / "images" / "main").mkdir(parents=True)
    (back / "images" / "main" / "images.yaml").write_text(snapshot.stdout)
    (back / "manifests" / "main" / "promoter-manifest.yaml").write_text(
        json.dumps(
            {
                "registries": [
                    {"name": setup.source_name(), "src": True},
                    {"name": f"{setup.mirrors[0].host}/prod"},
                ]
            }
        )
    )
    replan = cip("--thin-manifest-dir", str(back), "-o", "json")
    assert replan.returncode == 0, replan.stderr
    summary = plan_json(replan)["summary"]
    assert summary["present"] == summary["edges"] > IMAGES  # tags and index children


def test_lost_image_is_reported_and_the_rest_promoted(
    setup: Setup, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    mirror = registries()
    missing = "sha256:" + "ab" * 32
    images = {"img-01": {setup.digests["img-01"]: ["v1"]}, "ghost": {missing: ["v9"]}}
    tree = write_thin(tmp_path / "tree", setup.source_name(), [mirror.host], images)
    result = cip("--thin-manifest-dir", str(tree), "--confirm")
    assert result.returncode == 0, result.stderr
    assert f"lost      {mirror.host}/ghost:v9: {missing}" in result.stdout
    assert digest_of(f"{mirror.host}/img-01:v1") == setup.digests["img-01"]


def test_refused_entries_are_skipped_and_the_rest_promoted(
    setup: Setup, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    """A kubernetes/k8s.io-like tree: a null dmap, a 63-digit digest, a comment-only project."""
    mirror = registries()
    good, other = setup.digests["img-02"], setup.digests["img-03"]
    tree = tmp_path / "tree"
    write_thin(tree, setup.source_name(), [mirror.host], {})
    (tree / "images" / "main" / "images.yaml").write_text(
        f"- name: img-02\n  dmap:\n    '{good}': [v1]\n    '{good[:-1]}': [typo]\n"
        f"- name: new-image\n  dmap:\n- name: img-03\n  dmap:\n    '{other}': [v1]\n"
    )
    write_thin(tree / "new", setup.source_name(), [mirror.host], {})
    (tree / "manifests" / "new").mkdir()
    (tree / "new" / "manifests" / "main" / "promoter-manifest.yaml").rename(
        tree / "manifests" / "new" / "promoter-manifest.yaml"
    )
    (tree / "images" / "new").mkdir()
    (tree / "images" / "new" / "images.yaml").write_text("# No images yet\n")
    (tree / "images" / "orphan").mkdir()
    (tree / "images" / "orphan" / "images.yaml").write_text("[]\n")
    images = tree / "images" / "main" / "images.yaml"
    warnings = [
        f"{images}: line 4: invalid digest: {good[:-1]} (image 'img-02'); this digest is skipped",
        f"{images}: line 5: images: 'dmap' field cannot be empty (image 'new-image'); this"
        " image is skipped",
    ]
    orphan = (
        f'corresponding file "{tree}/manifests/orphan/promoter-manifest.yaml" does not exist;'
        f' "{tree}/images/orphan/images.yaml" is not promoted'
    )

    strict = cip("--thin-manifest-dir", str(tree), "--confirm", "--strict")
    assert strict.returncode == 2
    assert strict.stderr == f"imgctl: error: {orphan.split('; ')[0]}\n"
    assert not mirror.has_tag("img-02", "v1")

    result = cip("--thin-manifest-dir", str(tree), "--confirm")
    assert result.returncode == 0, result.stderr
    # The manifests' warnings, then the provenance phase's: the sources carry no attestation.
    *manifest_warnings, provenance = result.stderr.splitlines()
    assert manifest_warnings == [f"imgctl: warning: {w}" for w in [orphan, *warnings]]
    assert provenance.startswith("imgctl: warning: no attestation on 2 source(s), promoted anyway")
    assert "promoted 2 of 2 edges" in result.stdout
    assert digest_of(f"{mirror.host}/img-02:v1") == good
    assert digest_of(f"{mirror.host}/img-03:v1") == other

    again = cip("--thin-manifest-dir", str(tree), "-o", "json")
    assert again.returncode == 0, again.stderr
    assert plan_json(again)["warnings"] == [orphan, *warnings]
    assert plan_json(again)["summary"]["present"] == 2


def test_tag_move_is_refused_in_the_dry_run(
    setup: Setup,
    registries: Callable[..., Registry],
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    mirror = registries()
    squatter = push_image(mirror, repository="img-02", tag="v1", layers=1, layer_size=999)
    images = {"img-02": {setup.digests["img-02"]: ["v1"]}}
    tree = write_thin(tmp_path / "tree", setup.source_name(), [mirror.host], images)
    dry = cip("--thin-manifest-dir", str(tree))
    assert dry.returncode == 1
    assert "REFUSED (--allow-tag-moves)" in dry.stdout
    confirmed = cip("--thin-manifest-dir", str(tree), "--confirm")
    assert confirmed.returncode == 1
    assert digest_of(f"{mirror.host}/img-02:v1") == squatter.digest  # untouched
    moved = cip("--thin-manifest-dir", str(tree), "--confirm", "--allow-tag-moves")
    assert moved.returncode == 0, moved.stderr
    assert digest_of(f"{mirror.host}/img-02:v1") == setup.digests["img-02"]


def test_faults_leave_a_resumable_state(
    setup: Setup,
    registries: Callable[..., Registry],
    proxy_for: Callable[[Registry], FaultProxy],
    tmp_path: Path,
) -> None:
    mirror = registries()
    proxy = proxy_for(mirror)
    # Every manifest PUT fails for a while: more failures than the client's retries.
    proxy.faults.append(Fault(500, 40, method="PUT", path=r"/manifests/"))
    images = {name: {digest: ["v1"]} for name, digest in list(setup.digests.items())[:10]}
    tree = write_thin(tmp_path / "tree", setup.source_name(), [proxy.host], images)
    first = cip("--thin-manifest-dir", str(tree), "--confirm", "--retries", "1")
    assert first.returncode == 1
    assert "run again to finish" in first.stderr
    proxy.faults.clear()
    second = cip("--thin-manifest-dir", str(tree), "--confirm", "-o", "json")
    assert second.returncode == 0, second.stderr
    for name, digest in images.items():
        assert digest_of(f"{mirror.host}/{name}:v1") == next(iter(digest))


def test_two_shards_cover_every_edge_once(
    setup: Setup, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    mirrors = [registries(), registries()]
    images = {name: {digest: ["v1", "stable"]} for name, digest in setup.digests.items()}
    tree = write_thin(tmp_path / "tree", setup.source_name(), [m.host for m in mirrors], images)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    processes = [
        subprocess.Popen(
            [
                IMGCTL,
                "cip",
                "--thin-manifest-dir",
                str(tree),
                "--confirm",
                "-o",
                "json",
                "--shard-count",
                "2",
                "--rate-limit",
                "2000",
                "--burst",
                "100",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env | {"JOB_COMPLETION_INDEX": str(index), "IMGCTL_ENABLE_IAAS_AUTH": "false"},
        )
        for index in (0, 1)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    shards = [
        {(e["destination"], e["digest"]) for e in json.loads(stdout)["edges"]}
        for stdout, _ in outputs
    ]
    assert shards[0].isdisjoint(shards[1])
    assert len(shards[0] | shards[1]) == len(images) * 2 * 2
    assert shards[0]
    assert shards[1]
    for mirror in mirrors:
        for name, digest in setup.digests.items():
            assert digest_of(f"{mirror.host}/{name}:stable") == digest


def test_manifest_based_snapshot_and_parse_only(setup: Setup, tmp_path: Path) -> None:
    images = {name: {digest: ["v1"]} for name, digest in list(setup.digests.items())[:3]}
    tree = write_thin(tmp_path / "tree", setup.source_name(), setup.destinations(), images)
    parsed = cip("--thin-manifest-dir", str(tree), "--parse-only")
    assert parsed.returncode == 0, parsed.stderr
    assert "parsed 1 manifest(s), 3 image(s), 3 digest(s): 6 edges" in parsed.stdout
    csv = cip(
        "--thin-manifest-dir",
        str(tree),
        "--manifest-based-snapshot-of",
        setup.mirrors[1].host,
        "-o",
        "csv",
    )
    assert csv.returncode == 0, csv.stderr
    first = sorted(images)[0]
    assert csv.stdout.splitlines()[0] == f"{first}@{images[first].popitem()[0]},{first}:v1"
    unknown = cip("--thin-manifest-dir", str(tree), "--manifest-based-snapshot-of", "nowhere.io")
    assert unknown.returncode == 2
    assert "no manifest promotes to 'nowhere.io'" in unknown.stderr


def test_confirmed_promotions_are_recorded_in_the_catalog(
    setup: Setup, registries: Callable[..., Registry], tmp_path: Path
) -> None:
    import httpx

    from ..support.catalog import catalog_server

    mirror = registries()
    images = {name: {digest: ["v1", "stable"]} for name, digest in list(setup.digests.items())[:3]}
    tree = write_thin(tmp_path / "tree", setup.source_name(), [mirror.host], images)
    with catalog_server(IMGCTL, tmp_path) as url:
        result = cip(
            "--thin-manifest-dir",
            str(tree),
            "--confirm",
            "--catalog-url",
            url,
            "--catalog-token",
            "write-me",
            "--catalog-environment",
            "prod",
        )
        assert result.returncode == 0, result.stderr
        assert "recorded 3 image(s) in the catalog (prod)" in result.stdout
        listed = httpx.get(f"{url}/images", params={"environment": "prod"}).json()
        assert {(i["name"], i["id"]) for i in listed} == {
            (f"{mirror.host}/{name}", next(iter(dmap))) for name, dmap in images.items()
        }
        assert all(sorted(i["tags"]) == ["stable", "v1"] for i in listed)
        refused = cip(
            "--thin-manifest-dir",
            str(tree),
            "--confirm",
            "--catalog-url",
            url,
            "--catalog-token",
            "wrong",
            "--catalog-environment",
            "prod",
        )
        assert refused.returncode == 1
        assert "not recorded in the catalog" in refused.stderr
