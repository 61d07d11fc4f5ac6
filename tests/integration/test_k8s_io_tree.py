"""The real kubernetes/k8s.io promoter trees load, and plan, as kpromo loads them.

Data (tests/data/README.md): ``k8s.gcr.io`` at kubernetes/k8s.io commit
86b8f390aac2e6c244868143ea03c8326c9064a0 — the commit kpromo's own test reads:
kubernetes-sigs/promo-tools promoter/image/schema/manifest_test.go at commit
63ddc9f7022567731beebde1334c8e066008c32e (the same test was
internal/legacy/dockerregistry/schema/manifest_test.go before 650d61b6),
TestParseThinManifestsFromDirPostsubmit, expects 76 manifests, 623 images and 12,344 digests —
and ``registry.k8s.io`` at 576d58a4e8553ac4ae81f3dcde680ed5ff4ebc3b (2024-06-06), whose
null ``dmap`` entries and 63-digit digest the outside run met.

kpromo's test counts manifests, images and digests, not edges, and no upstream test counts the
registry.k8s.io tree: those totals come from ``kpromo_walk`` below, a plain YAML walk written
from kpromo's code (ParseThinManifestsFromDir reads ``manifests/<x>/promoter-manifest.yaml`` and
its ``images/<x>/images.yaml``, nothing else; ToEdges makes one edge per image x digest x tag
(or one tagless) x registry that is not the source, as a set), not from imgctl's.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import IMGCTL
from ..support.registry import Registry

REPO = Path(__file__).resolve().parents[2]
GCR = ("86b8f390aac2e6c244868143ea03c8326c9064a0", "k8s.gcr.io")
REGISTRY_K8S_IO = ("576d58a4e8553ac4ae81f3dcde680ed5ff4ebc3b", "registry.k8s.io")
TREES = (GCR, REGISTRY_K8S_IO)

# kpromo's schema.ValidateDigest: imgctl skips (and warns about) what it refuses.
KPROMO_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _has_trees(root: Path) -> bool:
    return all((root / commit / folder / "manifests").is_dir() for commit, folder in TREES)


def _git_copies() -> list[Path]:
    """Git copies of kubernetes/k8s.io: $IMGCTL_K8S_IO_GIT, then the workplace's fetched mirrors."""
    named = os.environ.get("IMGCTL_K8S_IO_GIT")
    found = [Path(named)] if named else []
    for mirrors in {REPO.parent / ".mirror", Path("/work/.mirror")}:
        found += sorted(mirrors.glob("*k8s.io*/repo")) if mirrors.is_dir() else []
    return found


@functools.cache
def data_root() -> Path:
    """The trees: $IMGCTL_K8S_IO_TREES, tests/data/k8s.io, shared/data/k8s.io, or a git copy.

    From a git copy they are written once per run into a temporary folder, never into the
    repository (tests/data/README.md says why they are not committed).
    """
    candidates = [
        os.environ.get("IMGCTL_K8S_IO_TREES"),
        REPO / "tests" / "data" / "k8s.io",
        REPO.parent / "shared" / "data" / "k8s.io",
    ]
    for candidate in filter(None, candidates):
        if _has_trees(Path(candidate)):
            return Path(candidate)
    for git_dir in _git_copies():
        out = Path(tempfile.mkdtemp(prefix="imgctl-k8s-io-"))
        atexit.register(shutil.rmtree, out, ignore_errors=True)
        script = REPO / "tests" / "data" / "k8s_io_trees.py"
        done = subprocess.run(
            [sys.executable, str(script), "--git-dir", str(git_dir), "--out", str(out)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0 and _has_trees(out):
            return out
    pytest.fail(
        "the real k8s.io trees are not here: run `python tests/data/k8s_io_trees.py --git-dir "
        "<a git copy of kubernetes/k8s.io>` (tests/data/README.md), or set IMGCTL_K8S_IO_TREES "
        "or IMGCTL_K8S_IO_GIT"
    )


def tree(which: tuple[str, str]) -> Path:
    return data_root() / which[0] / which[1]


# ------------------------------------------------------------------ kpromo's reading, by hand


@dataclass
class Walk:
    manifests: int = 0
    images: int = 0
    digests: int = 0
    edges: set[tuple[str, str, str, str, str]] = field(default_factory=set)
    # what imgctl leaves out: (images file, image name) with no dmap; (file, image, digest)
    empty_dmaps: list[tuple[str, str]] = field(default_factory=list)
    bad_digests: list[tuple[str, str, str]] = field(default_factory=list)
    unmanifested: list[str] = field(default_factory=list)


def kpromo_walk(root: Path, leave_out: set[str] | frozenset[str] = frozenset()) -> Walk:
    """Read a thin tree as kpromo's ParseThinManifestsFromDir and ToEdges do."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    walk = Walk()
    for manifest in sorted((root / "manifests").glob("*/promoter-manifest.yaml")):
        name = manifest.parent.name
        if name in leave_out:
            continue
        registries = yaml.load(manifest.read_text(), Loader=loader)["registries"]
        [source] = [r for r in registries if r.get("src")]
        destinations = [r["name"] for r in registries if r != source]
        images_file = root / "images" / name / "images.yaml"
        images = yaml.load(images_file.read_text(), Loader=loader) or []  # a comment: no images
        walk.manifests += 1
        walk.images += len(images)
        for image in images:
            dmap = image.get("dmap") or {}
            walk.digests += len(dmap)
            if not dmap:
                walk.empty_dmaps.append((f"images/{name}/images.yaml", image["name"]))
            for digest, tags in dmap.items():
                if not KPROMO_DIGEST.fullmatch(digest):
                    walk.bad_digests.append((f"images/{name}/images.yaml", image["name"], digest))
                for destination in destinations:
                    for tag in tags or [""]:
                        walk.edges.add((source["name"], destination, image["name"], digest, tag))
    walk.unmanifested = sorted(
        p.parent.name
        for p in (root / "images").glob("*/images.yaml")
        if not (root / "manifests" / p.parent.name / "promoter-manifest.yaml").exists()
    )
    return walk


def test_kpromo_own_counts_of_k8s_gcr_io() -> None:
    walk = kpromo_walk(tree(GCR))
    # TestParseThinManifestsFromDirPostsubmit's numbers (onlyProwDiff false)
    assert (walk.manifests, walk.images, walk.digests) == (76, 623, 12344)


# ---------------------------------------------------------------------------- imgctl cip


def cip(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["IMGCTL_ENABLE_IAAS_AUTH"] = "false"
    return subprocess.run(
        [IMGCTL, "cip", *args], capture_output=True, text=True, env=env, timeout=600
    )


# Each warning imgctl prints for the tree: file (in the tree), line, what, what was skipped.
EXPECTED_WARNINGS = {
    GCR: [
        'corresponding file "{root}/manifests/k8s-staging-sched-simulator/promoter-manifest.yaml"'
        ' does not exist; "{root}/images/k8s-staging-sched-simulator/images.yaml" is not'
        " promoted",
    ],
    REGISTRY_K8S_IO: [
        "{root}/images/k8s-staging-ingress-nginx/images.yaml: line 152: invalid digest:"
        " sha256:23eb4b1775fbaa2adca55c73cf0341e1224d6308689b6f4b3aa1523312eb81c (image"
        " 'e2e-test-httpbin'); this digest is skipped",
        "{root}/images/k8s-staging-sig-storage/images.yaml: line 258: images: 'dmap' field cannot"
        " be empty (image 'objectstorage-controller'); this image is skipped",
        "{root}/images/k8s-staging-sig-storage/images.yaml: line 260: images: 'dmap' field cannot"
        " be empty (image 'objectstorage-sidecar'); this image is skipped",
    ],
}


@pytest.mark.parametrize("which", [GCR, REGISTRY_K8S_IO], ids=lambda w: w[1])
def test_whole_tree_loads_with_per_entry_warnings(which: tuple[str, str]) -> None:
    root = tree(which)
    walk = kpromo_walk(root)
    result = cip("--thin-manifest-dir", str(root), "--parse-only", "-o", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout)
    expected = [w.format(root=root) for w in EXPECTED_WARNINGS[which]]
    assert parsed["warnings"] == expected
    # Besides them, stderr has the phase events (JSON lines with -o json).
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert lines == [f"imgctl: warning: {w}" for w in expected]

    # The warnings are exactly what kpromo reads but imgctl's validation refuses.
    assert len(expected) == len(walk.empty_dmaps) + len(walk.bad_digests) + len(walk.unmanifested)
    skipped_edges = {e for e in walk.edges if (e[2], e[3]) in {b[1:] for b in walk.bad_digests}}
    assert parsed["manifests"] == walk.manifests
    assert parsed["images"] == walk.images - len(walk.empty_dmaps)
    assert parsed["digests"] == walk.digests - len(walk.bad_digests)
    assert parsed["edges"] == parsed["total"] == len(walk.edges) - len(skipped_edges)
    assert skipped_edges or not walk.bad_digests


def test_totals_of_the_trees() -> None:
    # Pinned so that a change to the data (or to kpromo_walk) shows. The outside run measured
    # 707,586 edges for registry.k8s.io without the two subprojects imgctl could not parse.
    gcr, k8s = kpromo_walk(tree(GCR)), kpromo_walk(tree(REGISTRY_K8S_IO))
    assert (gcr.manifests, gcr.images, gcr.digests, len(gcr.edges)) == (76, 623, 12344, 485530)
    assert (k8s.manifests, k8s.images, k8s.digests, len(k8s.edges)) == (75, 822, 20019, 720478)
    unparsed = {"k8s-staging-ingress-nginx", "k8s-staging-sig-storage"}
    parse_able = kpromo_walk(tree(REGISTRY_K8S_IO), leave_out=unparsed)
    assert len(parse_able.edges) == 707586


@pytest.mark.parametrize("which", [GCR, REGISTRY_K8S_IO], ids=lambda w: w[1])
def test_strict_makes_the_first_warning_an_error(which: tuple[str, str]) -> None:
    root = tree(which)
    result = cip("--thin-manifest-dir", str(root), "--parse-only", "--strict")
    assert result.returncode == 2
    first = EXPECTED_WARNINGS[which][0].format(root=root)
    assert result.stderr.startswith(f"imgctl: error: {first.rsplit('; ', 1)[0]}\n")
    # Nothing but the setup phase, failed (docs/cip.md).
    phases = [line.split(" (", 1)[0] for line in result.stdout.splitlines()]
    assert phases == ["phase setup: started", "phase setup: failed"]


def test_a_shard_of_the_real_tree_plans_against_a_registry(
    registries: Callable[..., Registry], tmp_path: Path
) -> None:
    """Every registry of the real tree moved under one loopback registry: a shard plans."""
    registry = registries()
    root = tmp_path / "registry.k8s.io"
    original = tree(REGISTRY_K8S_IO)
    for manifest in (original / "manifests").glob("*/promoter-manifest.yaml"):
        document: dict[str, Any] = yaml.safe_load(manifest.read_text())
        for entry in document["registries"]:
            entry["name"] = f"{registry.host}/{entry['name']}"
        target = root / "manifests" / manifest.parent.name / manifest.name
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(document))
        images = original / "images" / manifest.parent.name / "images.yaml"
        (root / "images" / manifest.parent.name).mkdir(parents=True)
        (root / "images" / manifest.parent.name / "images.yaml").write_bytes(images.read_bytes())
    shard = ("--shard-index", "7", "--shard-count", "2000")
    parsed = cip("--thin-manifest-dir", str(root), "--parse-only", "-o", "json", *shard)
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    in_shard = json.loads(parsed.stdout)["edges"]
    assert 200 < in_shard < 600  # about 720,478 / 2000
    planned = cip(
        "--thin-manifest-dir",
        str(root),
        "-o",
        "json",
        "--rate-limit",
        "5000",
        "--burst",
        "100",
        *shard,
    )
    # Nothing is in the loopback registry: every edge is lost, which is a warning, not a failure.
    assert planned.returncode == 0, planned.stderr[-2000:]
    plan = json.loads(planned.stdout)
    assert plan["summary"]["edges"] == plan["summary"]["lost"] == in_shard
    assert len(plan["warnings"]) == 3
    # HEAD destination tag (or digest), destination digest, source digest: at most 3 per edge.
    assert in_shard <= plan["requests"] <= 3 * in_shard + 2


def test_manifest_based_snapshot_of_a_path_prefix() -> None:
    """Item 5 on real data: every subproject's destination is a path under the one given."""
    root = tree(REGISTRY_K8S_IO)
    prefix = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
    result = cip(
        "--thin-manifest-dir", str(root), "--manifest-based-snapshot-of", prefix, "-o", "csv"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = set()
    for _source, destination, image, digest, tag in kpromo_walk(root).edges:
        if not (destination == prefix or destination.startswith(f"{prefix}/")):
            continue
        if not KPROMO_DIGEST.fullmatch(digest):
            continue  # the entry imgctl skips, with its warning
        name = f"{destination[len(prefix) :].strip('/')}/{image}".lstrip("/")
        expected.add(f"{name}@{digest},{name}:{tag}" if tag else f"{name}@{digest},-")
    lines = result.stdout.splitlines()
    assert len(lines) == len(set(lines)) == len(expected) > 10000
    assert set(lines) == expected
    assert {line.split("/")[0] for line in lines} >= {"kubernetes", "ingress-nginx", "sig-storage"}

    # a prefix of a path segment is not a path prefix
    partial = cip("--thin-manifest-dir", str(root), "--manifest-based-snapshot-of", prefix[:-1])
    assert partial.returncode == 2
    assert f"no manifest promotes to '{prefix[:-1]}'" in partial.stderr
