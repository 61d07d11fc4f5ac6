"""kpromo manifests: fixture trees, every validation message, edges, overlaps, snapshots.

The fixture tables reproduce kpromo's TestValidateThinManifestsFromDir,
TestParseThinManifestsFromDir (basic-thin) and TestParseRegistryManifest cases from
kubernetes-sigs/promo-tools internal/legacy/dockerregistry/inventory_test.go at
48c350003b29ea789b830dbe06324c761a10090f (the last commit before 650d61b6 removed it; the
trees under its inventory_test/ directory), with our own files; test_kpromo_manifests.py has
the rows themselves. Thin trees are read two ways: strictly (``--strict``,
load_thin_manifests), where what imgctl's validation finds is an error, and as kpromo reads
them (load_thin_tree), where it is a warning and only that entry is left out.

Pure: files only, no registry, no network.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgctl._internal import strict_yaml
from imgctl.errors import ManifestError, UsageError
from imgctl.promotion.manifests import (
    Edge,
    ImageEntry,
    Manifest,
    RegistryEntry,
    edges_of,
    load_images,
    load_manifest,
    load_thin_manifests,
    load_thin_tree,
    snapshot_csv,
    snapshot_yaml,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "manifests"

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
D = "sha256:" + "d" * 64

REGISTRIES = """\
registries:
- name: staging.example.com
  src: true
- name: prod.example.com
"""


@pytest.fixture(params=["python", "libyaml"] if yaml.__with_libyaml__ else ["python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both YAML parsers imgctl may use: libyaml when PyYAML has it, pure Python otherwise."""
    if request.param == "python":
        monkeypatch.setattr(strict_yaml, "LOADER", strict_yaml.PythonLoader)
    return str(request.param)


def load_case(case: Path) -> list[Manifest]:
    plain = case / "manifest.yaml"
    if plain.exists():
        return [load_manifest(plain)]
    return load_thin_manifests(case)


# ------------------------------------------------------------------------ fixture cases
#
# (case, edges when valid / message prefix when invalid, kpromo's outcome, origin)
# "{dir}" in a message stands for the case directory. kpromo cases come from
# kubernetes-sigs/promo-tools internal/legacy/dockerregistry/inventory_test.go at 48c35000:
# TestValidateThinManifestsFromDir (thin trees), TestParseThinManifestsFromDir (basic-thin) and
# TestParseRegistryManifest (plain files); the fixtures are our own files reproducing each case.

THIN_TEST = "kpromo TestValidateThinManifestsFromDir"
PLAIN_TEST = "kpromo TestParseRegistryManifest"

VALID: list[tuple[str, int, str, str]] = [
    ("singleton", 3, "accepted", THIN_TEST),
    ("multiple-rebases", 6, "accepted", THIN_TEST),
    ("overlapping-src-registries", 6, "accepted", THIN_TEST),
    # two manifests, same digest at the same tag: redundant; the first edge per destination stays
    ("overlapping-destination-vertices-same-digest", 3, "accepted", THIN_TEST),
    ("malformed-directory-tree-structure-bad-prefix-is-ignored", 3, "accepted", THIN_TEST),
    ("basic-thin", 12, "accepted", "kpromo TestParseThinManifestsFromDir"),
    ("stub-manifest", 0, "accepted", PLAIN_TEST),
    ("basic-manifest", 2, "accepted", PLAIN_TEST),
    ("registry-paths", 2, "accepted", "imgctl"),
    ("multiple-destinations", 6, "accepted", "imgctl"),
    ("tagless-digests", 4, "accepted", "imgctl"),
    # "# No images yet": new subprojects in kubernetes/k8s.io
    ("empty-images-file", 0, "accepted (no images)", "imgctl"),
]

INVALID: list[tuple[str, str, str, str]] = [
    # kpromo: stat <dir>/images: no such file or directory
    ("empty", "no manifests found in dir: {dir}", "rejected", THIN_TEST),
    (
        "overlapping-destination-vertices-different-digest",
        "overlapping edges detected: ap.registry.example.com/prod/gateway:2.0 is wanted at",
        "rejected",
        THIN_TEST,
    ),
    (
        "malformed-directory-tree-structure",
        'corresponding file "{dir}/images/b/images.yaml" does not exist',
        "rejected",
        THIN_TEST,
    ),
    (
        "malformed-directory-tree-structure-nested",
        'unexpected manifest path "{dir}/manifests/b/c/promoter-manifest.yaml"',
        "rejected",
        THIN_TEST,
    ),
    (
        "empty-file",
        "{dir}/manifest.yaml: 'registries' field cannot be empty (the file is empty)",
        "rejected",
        PLAIN_TEST,
    ),
    (
        "missing-source",
        "{dir}/manifest.yaml: source registry must be set",
        "rejected",
        PLAIN_TEST,
    ),
    (
        "duplicate-key",
        "{dir}/images/dup/images.yaml: line 4, column 5: duplicate key 'sha256:",
        "rejected (yaml.v2 strict: key already set in map)",
        "imgctl",
    ),
    (
        "unknown-key",
        "{dir}/manifest.yaml: line 9: unknown key 'tags' in an image (expected name, dmap)",
        "rejected (yaml.v2 strict: field not found)",
        "imgctl",
    ),
    (
        "unknown-key-thin",
        "{dir}/manifests/x/promoter-manifest.yaml: line 10: unknown key 'images' in a thin"
        " manifest (expected registries, imagesPath)",
        "rejected (yaml.v2 strict: field not found)",
        "imgctl",
    ),
    # thin trees: errors with --strict (load_thin_manifests); see WARNED for the default
    (
        "bad-digest-thin",
        "{dir}/images/x/images.yaml: line 3: invalid digest: sha256:0123abcd (image 'app-x')",
        "accepted (thin manifests are not validated)",
        "imgctl",
    ),
    (
        "bad-tag-thin",
        "{dir}/images/x/images.yaml: line 3: invalid tag: -rc1 (image 'app-x', digest sha256:",
        "accepted (thin manifests are not validated)",
        "imgctl",
    ),
    (
        "two-sources",
        "{dir}/manifest.yaml: cannot have more than 1 source registry"
        " (staging-one.example.com, staging-two.example.com)",
        "rejected",
        "imgctl",
    ),
    (
        "no-source-thin",
        "{dir}/manifests/x/promoter-manifest.yaml: source registry must be set",
        "rejected (could not find source registry)",
        "imgctl",
    ),
    (
        "empty-registries",
        "{dir}/manifest.yaml: 'registries' field cannot be empty",
        "rejected",
        "imgctl",
    ),
    (
        "mismatched-subdirectories",
        'corresponding file "{dir}/manifests/b/promoter-manifest.yaml" does not exist',
        "accepted (images/b is silently ignored)",
        "imgctl",
    ),
    (
        "overlap-within-file",
        "overlapping edges detected: prod.example.com/app:1.0 is wanted at",
        "rejected",
        "imgctl",
    ),
    (
        "overlap-via-registry-path",
        "overlapping edges detected: prod.example.com/k8s/tools/cli:1.0 is wanted at",
        "rejected (same PQIN)",
        "imgctl",
    ),
    (
        "uppercase-image-name",
        "{dir}/manifest.yaml: line 6: invalid image name: MyApp (repository 'MyApp' must be"
        " lowercase)",
        "accepted by the parser (the registry refuses it later)",
        "imgctl",
    ),
]


def test_every_fixture_directory_is_in_the_tables() -> None:
    on_disk = {(p.parent.name, p.name) for p in FIXTURES.glob("*/*") if p.is_dir()}
    listed = {("valid", case[0]) for case in VALID} | {("invalid", case[0]) for case in INVALID}
    assert on_disk == listed


@pytest.mark.parametrize(("case", "count", "kpromo", "origin"), VALID, ids=[c[0] for c in VALID])
def test_valid_fixture(case: str, count: int, kpromo: str, origin: str) -> None:
    loaded = load_case(FIXTURES / "valid" / case)
    edges = edges_of(loaded)
    assert len(edges) == count
    assert edges == sorted(edges)
    for one in loaded:
        assert one.source.src
        assert one.destinations
        assert Path(one.path).is_file()


@pytest.mark.parametrize(
    ("case", "message", "kpromo", "origin"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_fixture(case: str, message: str, kpromo: str, origin: str) -> None:
    directory = FIXTURES / "invalid" / case
    with pytest.raises(ManifestError) as caught:
        edges_of(load_case(directory))
    assert str(caught.value).startswith(message.format(dir=directory))
    assert isinstance(caught.value, UsageError)
    assert caught.value.path is not None
    assert caught.value.path in str(caught.value)


# The thin cases of INVALID without --strict: read as kpromo reads them, the refused entry
# left out with a warning. (case, edges, warnings; "{dir}" stands for the case directory)
WARNED: list[tuple[str, int, list[str]]] = [
    (
        "bad-digest-thin",
        0,
        [
            "{dir}/images/x/images.yaml: line 3: invalid digest: sha256:0123abcd (image"
            " 'app-x'); this digest is skipped"
        ],
    ),
    (
        "bad-tag-thin",
        0,
        [
            "{dir}/images/x/images.yaml: line 3: invalid tag: -rc1 (image 'app-x', digest"
            " sha256:85ec68ada9aae5daefd9752947585fec72f9c29c4afc44d52d8a19220c62dff2); this"
            " digest is skipped"
        ],
    ),
    (
        "mismatched-subdirectories",
        3,
        [
            'corresponding file "{dir}/manifests/b/promoter-manifest.yaml" does not exist;'
            ' "{dir}/images/b/images.yaml" is not promoted'
        ],
    ),
]


@pytest.mark.parametrize(("case", "count", "warnings"), WARNED, ids=[c[0] for c in WARNED])
def test_warned_fixture(case: str, count: int, warnings: list[str]) -> None:
    directory = FIXTURES / "invalid" / case
    tree = load_thin_tree(directory)
    assert [str(w) for w in tree.warnings] == [w.format(dir=directory) for w in warnings]
    assert len(edges_of(tree.manifests)) == count
    # --strict: the first warning is the error, word for word
    with pytest.raises(ManifestError) as caught:
        load_thin_tree(directory, strict=True)
    assert str(caught.value) == tree.warnings[0].message
    assert caught.value.path == tree.warnings[0].path


def test_fixture_details() -> None:
    thin = load_thin_manifests(FIXTURES / "valid" / "registry-paths")
    [tools] = thin
    assert tools.path.endswith("manifests/tools/promoter-manifest.yaml")
    assert tools.images_path is not None
    assert tools.images_path.endswith("images/tools/images.yaml")
    assert tools.source == RegistryEntry("registry.example.com:5000/staging/team-a", src=True)
    assert [e.destination for e in edges_of(thin)] == [
        "mirror.example.org/k8s/prod/team-a/tools/cli:5.0.0",
        "registry.example.com:5000/prod/team-a/tools/cli:5.0.0",
    ]

    [plain] = load_case(FIXTURES / "valid" / "basic-manifest")
    assert plain.images_path is None
    assert plain.registries == (
        RegistryEntry("registry.example.com/prod", service_account="promoter@example.iam"),
        RegistryEntry("registry.example.com/staging", True, "reader@example.iam"),
    )
    assert [image.name for image in plain.images] == ["quince", "rhubarb"]

    redundant = edges_of(
        load_case(FIXTURES / "valid" / "overlapping-destination-vertices-same-digest")
    )
    # kpromo keeps the first of redundant edges; ours is the first in sort order
    assert {e.source_registry for e in redundant} == {"staging.example.com/team-blue"}

    tree = load_thin_manifests(FIXTURES / "valid" / "basic-thin")
    assert [Path(m.path).parent.name for m in tree] == ["alpha", "beta", "delta", "gamma"]


# ----------------------------------------------------------------- validation messages


def refusal(
    tmp_path: Path,
    text: str | bytes,
    loader: Callable[[Path], object] = load_manifest,
    name: str = "manifest.yaml",
) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        loader(path)
    assert caught.value.path == str(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message.replace(str(path), "FILE")


def image(dmap: str, name: str = "app") -> str:
    return f"{REGISTRIES}images:\n- name: {name}\n  dmap:\n{dmap}"


LONG_TAG = "t" * 127 + "x"  # 128 characters: the longest tag

MESSAGES: list[tuple[str, str, str]] = [
    # --- INTEROP section 4, verbatim
    ("empty", "", "FILE: 'registries' field cannot be empty (the file is empty)"),
    (
        "comments-only",
        "# nothing yet\n",
        "FILE: 'registries' field cannot be empty (the file is empty)",
    ),
    ("registries-empty-list", "registries: []\n", "FILE: 'registries' field cannot be empty"),
    ("registries-null", "registries:\nimages: []\n", "FILE: 'registries' field cannot be empty"),
    ("registries-missing", "images: []\n", "FILE: 'registries' field cannot be empty"),
    (
        "two-sources",
        "registries:\n- name: a.example.com\n  src: true\n- name: b.example.com\n  src: yes\n",
        "FILE: cannot have more than 1 source registry (a.example.com, b.example.com)",
    ),
    (
        "no-source",
        "registries:\n- name: a.example.com\n- name: b.example.com\n  src: false\n",
        "FILE: source registry must be set; mark one registry with src: true",
    ),
    (
        "source-without-name",
        "registries:\n- src: true\n- name: b.example.com\n",
        "FILE: source registry must be set; mark one registry with src: true",
    ),
    (
        "registry-name-empty",
        REGISTRIES + "- name: ''\n",
        "FILE: registries: 'name' field cannot be empty (registry #3)",
    ),
    (
        "registry-name-null",
        REGISTRIES + "- name:\n  service-account: robot@example.iam\n",
        "FILE: registries: 'name' field cannot be empty (registry #3)",
    ),
    (
        "image-name-empty",
        REGISTRIES + f"images:\n- dmap:\n    '{A}': []\n",
        "FILE: line 6: images: 'name' field cannot be empty (image #1)",
    ),
    (
        "dmap-empty",
        REGISTRIES + "images:\n- name: app\n  dmap: {}\n",
        "FILE: line 6: images: 'dmap' field cannot be empty (image 'app')",
    ),
    (
        "dmap-missing",
        REGISTRIES + "images:\n- name: app\n",
        "FILE: line 6: images: 'dmap' field cannot be empty (image 'app')",
    ),
    (
        "dmap-null",
        REGISTRIES + "images:\n- name: app\n  dmap:\n",
        "FILE: line 6: images: 'dmap' field cannot be empty (image 'app')",
    ),
    (
        "digest-short",
        image('    "sha256:xyz": ["1.0"]\n'),
        "FILE: line 8: invalid digest: sha256:xyz (image 'app')",
    ),
    (
        "digest-uppercase-hex",
        image(f'    "sha256:{"A" * 64}": ["1.0"]\n'),
        f"FILE: line 8: invalid digest: sha256:{'A' * 64} (image 'app')",
    ),
    (
        "digest-65-hex",
        image(f'    "{A}0": ["1.0"]\n'),
        f"FILE: line 8: invalid digest: {A}0 (image 'app')",
    ),
    (
        "digest-no-algorithm",
        image(f'    "{"a" * 64}": ["1.0"]\n'),
        f"FILE: line 8: invalid digest: {'a' * 64} (image 'app')",
    ),
    (
        "digest-sha512",
        image(f'    "sha512:{"a" * 128}": ["1.0"]\n'),
        f"FILE: line 8: invalid digest: sha512:{'a' * 128} (image 'app')",
    ),
    (
        "tag-empty",
        image(f'    "{A}": [""]\n'),
        f"FILE: line 8: invalid tag:  (image 'app', digest {A})",
    ),
    (
        "tag-null",
        image(f'    "{A}": [~]\n'),
        f"FILE: line 8: invalid tag:  (image 'app', digest {A})",
    ),
    (
        "tag-leading-dot",
        image(f'    "{A}": [".hidden"]\n'),
        f"FILE: line 8: invalid tag: .hidden (image 'app', digest {A})",
    ),
    (
        "tag-leading-dash",
        image(f'    "{A}": ["-x"]\n'),
        f"FILE: line 8: invalid tag: -x (image 'app', digest {A})",
    ),
    (
        "tag-space",
        image(f'    "{A}": ["v 1"]\n'),
        f"FILE: line 8: invalid tag: v 1 (image 'app', digest {A})",
    ),
    (
        "tag-slash",
        image(f'    "{A}": ["v1/2"]\n'),
        f"FILE: line 8: invalid tag: v1/2 (image 'app', digest {A})",
    ),
    (
        "tag-non-ascii",
        image(f'    "{A}": ["version-é"]\n'),
        f"FILE: line 8: invalid tag: version-é (image 'app', digest {A})",
    ),
    (
        "tag-129",
        image(f'    "{A}": ["{LONG_TAG}y"]\n'),
        f"FILE: line 8: invalid tag: {LONG_TAG}y (image 'app', digest {A})",
    ),
    # --- names (imgctl: valid repository paths and host[:port][/path])
    (
        "image-name-uppercase",
        image(f'    "{A}": []\n', name="Tools/CLI"),
        "FILE: line 6: invalid image name: Tools/CLI (repository 'Tools/CLI' must be lowercase)",
    ),
    (
        "image-name-with-tag",
        image(f'    "{A}": []\n', name="app:1.0"),
        "FILE: line 6: invalid image name: app:1.0 (reference names a tag or digest where a"
        " repository was expected); use app",
    ),
    (
        "image-name-double-slash",
        image(f'    "{A}": []\n', name="tools//cli"),
        "FILE: line 6: invalid image name: tools//cli (repository 'tools//cli' has an empty path"
        " component)",
    ),
    (
        "image-name-bad-component",
        image(f'    "{A}": []\n', name="tools/-cli"),
        "FILE: line 6: invalid image name: tools/-cli (repository path component '-cli' is"
        " invalid); use lowercase letters and digits, separated by '.', '_', '__' or '-'",
    ),
    (
        "registry-uppercase-path",
        "registries:\n- name: gcr.io/Staging\n  src: true\n",
        "FILE: invalid registry name: gcr.io/Staging (repository 'Staging' must be lowercase)",
    ),
    (
        "registry-no-host",
        "registries:\n- name: staging/images\n  src: true\n",
        "FILE: invalid registry name: staging/images ('staging' is not a registry host); a"
        " registry name starts with a host that has a '.', a ':port', or is localhost",
    ),
    (
        "registry-scheme",
        "registries:\n- name: https://gcr.io/staging\n  src: true\n",
        "FILE: invalid registry name: https://gcr.io/staging (reference has a URL scheme); drop"
        " the http:// or https:// prefix",
    ),
    (
        "registry-trailing-slash",
        "registries:\n- name: gcr.io/staging/\n  src: true\n",
        "FILE: invalid registry name: gcr.io/staging/ (repository 'staging/' has an empty path"
        " component)",
    ),
    (
        "registry-bad-port",
        "registries:\n- name: gcr.io:99999\n  src: true\n",
        "FILE: invalid registry name: gcr.io:99999 (registry port 99999 is out of range)",
    ),
    (
        "registry-bad-host",
        "registries:\n- name: gcr..io\n  src: true\n",
        "FILE: invalid registry name: gcr..io (registry 'gcr..io' is not a valid host[:port])",
    ),
    (
        "registry-twice",
        REGISTRIES + "- name: prod.example.com\n",
        "FILE: registry listed twice: prod.example.com",
    ),
    (
        "repository-too-long",
        f"registries:\n- name: staging.example.com/{'s' * 200}\n  src: true\n"
        f"- name: prod.example.com\nimages:\n- name: {'i' * 60}\n  dmap:\n    '{A}': []\n",
        f"FILE: line 6: invalid repository: staging.example.com/{'s' * 200}/{'i' * 60}"
        f" (repository path {'s' * 200}/{'i' * 60} is 261 characters long; the limit is 255)",
    ),
    (
        # The registry host does not count (distribution/reference v0.6.0): only the path does.
        "registry-host-not-counted",
        f"registries:\n- name: {'h' * 250}.io/{'s' * 200}\n  src: true\nimages:\n"
        f"- name: {'i' * 55}\n  dmap:\n    '{A}': []\n",
        f"FILE: line 5: invalid repository: {'h' * 250}.io/{'s' * 200}/{'i' * 55} (repository path"
        f" {'s' * 200}/{'i' * 55} is 256 characters long; the limit is 255)",
    ),
    # --- strict parsing: duplicate keys, at every level
    (
        "duplicate-top-level-key",
        REGISTRIES + "registries: []\n",
        "FILE: line 5, column 1: duplicate key 'registries' (first at line 1, column 1)",
    ),
    (
        "duplicate-registry-key",
        "registries:\n- name: a.example.com\n  src: true\n  src: false\n",
        "FILE: line 4, column 3: duplicate key 'src' (first at line 3, column 3)",
    ),
    (
        "duplicate-image-key",
        REGISTRIES + f"images:\n- name: app\n  name: other\n  dmap:\n    '{A}': []\n",
        "FILE: line 7, column 3: duplicate key 'name' (first at line 6, column 3)",
    ),
    (
        "duplicate-digest",
        image(f"    '{A}': ['1.0']\n    \"{A}\": ['1.1']\n"),
        f"FILE: line 9, column 5: duplicate key '{A}' (first at line 8, column 5)",
    ),
    # --- strict parsing: unknown keys, at every level
    (
        "unknown-top-level-key",
        REGISTRIES + "image: []\n",
        "FILE: line 5: unknown key 'image' in a manifest (expected registries, images)",
    ),
    (
        "unknown-registry-key",
        "registries:\n- name: a.example.com\n  src: true\n  serviceAccount: robot\n",
        "FILE: line 4: unknown key 'serviceAccount' in a registry (expected name, src,"
        " service-account)",
    ),
    (
        "unknown-image-key",
        image(f"    '{A}': []\n") + "  tags: [latest]\n",
        "FILE: line 9: unknown key 'tags' in an image (expected name, dmap)",
    ),
    (
        "images-path-in-plain-manifest",
        REGISTRIES + "imagesPath: images\n",
        "FILE: line 5: unknown key 'imagesPath' in a manifest (expected registries, images)",
    ),
    (
        "merge-key",
        "registries:\n- &src {name: a.example.com, src: true}\n- <<: *src\n  name: b.example.com\n",
        # Merges are expanded; one bringing in a key the mapping sets itself is ambiguous.
        "FILE: line 4, column 3: duplicate key 'name' (first at line 2, column 9; the first merged"
        " in by '<<' at line 3, column 3)",
    ),
    # --- wrong types
    ("root-list", "- registries\n", "FILE: line 1: a manifest must be a mapping, not a list"),
    ("root-scalar", "registries\n", "FILE: line 1: a manifest must be a mapping, not 'registries'"),
    (
        "registries-mapping",
        "registries:\n  name: a.example.com\n",
        "FILE: line 2: 'registries' must be a list, not a mapping",
    ),
    (
        "registry-scalar",
        "registries:\n- a.example.com\n",
        "FILE: line 2: a registry must be a mapping, not 'a.example.com'",
    ),
    (
        "src-string",
        "registries:\n- name: a.example.com\n  src: 'true'\n",
        "FILE: line 3: 'src' must be true or false, not 'true'",
    ),
    (
        "src-number",
        "registries:\n- name: a.example.com\n  src: 1\n",
        "FILE: line 3: 'src' must be true or false, not '1'",
    ),
    (
        "name-list",
        "registries:\n- name: [a.example.com]\n  src: true\n",
        "FILE: line 2: 'name' must be a string, not a list",
    ),
    (
        "service-account-mapping",
        "registries:\n- name: a.example.com\n  src: true\n  service-account: {a: b}\n",
        "FILE: line 4: 'service-account' must be a string, not a mapping",
    ),
    (
        "images-mapping",
        REGISTRIES + "images:\n  app: {}\n",
        "FILE: line 6: 'images' must be a list, not a mapping",
    ),
    (
        "dmap-list",
        REGISTRIES + f"images:\n- name: app\n  dmap: ['{A}']\n",
        "FILE: line 7: 'dmap' must be a mapping, not a list",
    ),
    (
        "tags-scalar",
        image(f"    '{A}': latest\n"),
        "FILE: line 8: the tags must be a list, not 'latest'",
    ),
    (
        "tag-mapping",
        image(f"    '{A}': [{{latest: 1}}]\n"),
        "FILE: line 8: a tag must be a string, not a mapping",
    ),
    (
        "digest-key-list",
        image("    [a, b]: []\n"),
        "FILE: line 8, column 5: a key must be a plain value, not a list",
    ),
    # --- not YAML, not text
    (
        "two-documents",
        REGISTRIES + "---\nimages: []\n",
        "FILE: line 5, column 1: invalid YAML: expected a single document in the stream, but found"
        " another document",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in MESSAGES], ids=[c[0] for c in MESSAGES]
)
def test_validation_message(tmp_path: Path, yaml_loader: str, text: str, expected: str) -> None:
    assert refusal(tmp_path, text) == expected


def test_syntax_error(tmp_path: Path, yaml_loader: str) -> None:
    # the wording after the location is the YAML library's, and libyaml words it differently
    message = refusal(tmp_path, "registries: [\n")
    assert message.startswith("FILE: line 2, column 1: invalid YAML: while parsing a flow node, ")


def test_file_problems(tmp_path: Path) -> None:
    # Read as every file imgctl reads: bounded UTF-8 text (_internal.files.read_text).
    path = tmp_path / "manifest.yaml"
    for data, problem in [
        (b"registries: [\xff]\n", "is not UTF-8 text (byte 13, line 1)"),
        (b"registries: [\x00]\n", "is binary, not text (a NUL byte on line 1)"),
    ]:
        path.write_bytes(data)
        with pytest.raises(ManifestError) as caught:
            load_manifest(path)
        assert caught.value.message == f"manifest {path} {problem}"
        assert caught.value.path == str(path)
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ManifestError, match=f"^manifest {missing} does not exist$"):
        load_manifest(missing)
    with pytest.raises(ManifestError, match=f"^manifest {tmp_path} is a directory, not a file$"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match=f"^images file {missing} does not exist$"):
        load_images(missing)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registries: []\n", "FILE: line 1: 'images' must be a list, not a mapping"),
        (
            f"- name: app\n  dmap:\n    '{A}': [v1]\n  dmap: {{}}\n",
            "FILE: line 4, column 3: duplicate key 'dmap' (first at line 2, column 3)",
        ),
        (
            "- name: app\n  dmap:\n    sha256:0: []\n",
            "FILE: line 3: invalid digest: sha256:0 (image 'app')",
        ),
        (
            f"- name: app\n  dmap:\n    '{A}': []\n  src: true\n",
            "FILE: line 4: unknown key 'src' in an image (expected name, dmap)",
        ),
    ],
)
def test_load_images_message(tmp_path: Path, yaml_loader: str, text: str, expected: str) -> None:
    assert refusal(tmp_path, text, load_images, "images.yaml") == expected


@pytest.mark.parametrize(
    "text", ["", "\n", "# No images yet\n", "# TODO: add images\n# No images yet\n", "~\n", "[]\n"]
)
def test_no_images(tmp_path: Path, yaml_loader: str, text: str) -> None:
    # yaml.v2 (kpromo) reads an empty document, comments only or null as an empty list
    path = tmp_path / "images.yaml"
    path.write_text(text)
    assert load_images(path) == ()
    thin(tmp_path / "tree", "a", images=text)
    for strict in (False, True):
        tree = load_thin_tree(tmp_path / "tree", strict=strict)
        assert [m.images for m in tree.manifests] == [()]
        assert tree.warnings == ()


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param("_", "_", id="underscore"),
        pytest.param("a", "a", id="one-letter"),
        pytest.param(LONG_TAG, LONG_TAG, id="128-characters"),
        pytest.param("__--..x", "__--..x", id="awkward"),
        # yaml.v2 decodes any scalar into a string by its text; so do we
        pytest.param("1.10", "1.10", id="float-looking"),
        pytest.param("010", "010", id="octal-looking"),
        pytest.param("yes", "yes", id="bool-looking"),
        pytest.param("2024-01-02", "2024-01-02", id="date-looking"),
        pytest.param("'latest'", "latest", id="single-quoted"),
    ],
)
def test_valid_tag(tmp_path: Path, written: str, read: str) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(image(f"    '{A}': [{written}]\n"))
    [entry] = load_manifest(path).images
    assert entry.dmap[A] == (read,)


def test_scalars_and_nulls(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        "# a comment\n"
        "registries:\n"
        "- name: staging.example.com\n"
        "  src: True\n"
        "  service-account: reader@example.iam\n"
        "- name: prod.example.com\n"
        "  src: ~\n"
        "  service-account:\n"
        "- name: localhost:5000/mirror\n"
        "  src: off\n"
        "images:\n"
        "- name: app\n"
        "  dmap:\n"
        f"    {A}: [b, a, b]\n"
        f"    {B}:\n"
        "- name: '1.0'\n"
        "  dmap:\n"
        f"    {C}: []\n"
    )
    loaded = load_manifest(path)
    assert loaded.registries == (
        RegistryEntry("staging.example.com", True, "reader@example.iam"),
        RegistryEntry("prod.example.com"),
        RegistryEntry("localhost:5000/mirror"),
    )
    app, numeric = loaded.images
    assert app == ImageEntry("app", {A: ("b", "a"), B: ()})  # file order, repeats dropped
    assert numeric.name == "1.0"
    assert loaded.source.name == "staging.example.com"
    assert [r.name for r in loaded.destinations] == ["prod.example.com", "localhost:5000/mirror"]
    with pytest.raises(TypeError):
        app.dmap[C] = ()  # type: ignore[index]


def test_anchors_and_aliases_are_followed(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        REGISTRIES + f"images:\n- name: app\n  dmap:\n    '{A}': &tags [1.0, latest]\n"
        f"    '{B}': *tags\n"
    )
    [entry] = load_manifest(path).images
    assert dict(entry.dmap) == {A: ("1.0", "latest"), B: ("1.0", "latest")}


# ---------------------------------------------------------------------------- thin dirs


def thin(
    root: Path,
    name: str,
    registries: str | None = REGISTRIES,
    images: str | None = f"- name: app\n  dmap:\n    '{A}': ['1.0']\n",
) -> None:
    if registries is not None:
        (root / "manifests" / name).mkdir(parents=True, exist_ok=True)
        (root / "manifests" / name / "promoter-manifest.yaml").write_text(registries)
    if images is not None:
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        (root / "images" / name / "images.yaml").write_text(images)


def thin_refusal(root: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        load_thin_manifests(root)
    assert caught.value.path is not None
    return str(caught.value).replace(str(root), "DIR")


THIN_MESSAGES: list[tuple[str, dict[str, str | None], str]] = [
    (
        "bad-digest",
        {"images": "- name: app\n  dmap:\n    'sha256:12': []\n"},
        "DIR/images/x/images.yaml: line 3: invalid digest: sha256:12 (image 'app')",
    ),
    (
        "bad-tag",
        {"images": f"- name: app\n  dmap:\n    '{A}': ['a b']\n"},
        f"DIR/images/x/images.yaml: line 3: invalid tag: a b (image 'app', digest {A})",
    ),
    (
        "dmap-empty",
        {"images": "- name: app\n  dmap: {}\n"},
        "DIR/images/x/images.yaml: line 1: images: 'dmap' field cannot be empty (image 'app')",
    ),
    (
        "image-name-empty",
        {"images": f"- name: ''\n  dmap:\n    '{A}': []\n"},
        "DIR/images/x/images.yaml: line 1: images: 'name' field cannot be empty (image #1)",
    ),
    (
        "no-source",
        {"registries": "registries:\n- name: prod.example.com\n"},
        "DIR/manifests/x/promoter-manifest.yaml: source registry must be set; mark one registry"
        " with src: true",
    ),
    (
        "two-sources",
        {"registries": "registries:\n- name: a.io\n  src: true\n- name: b.io\n  src: true\n"},
        "DIR/manifests/x/promoter-manifest.yaml: cannot have more than 1 source registry"
        " (a.io, b.io)",
    ),
    (
        "registries-empty",
        {"registries": "registries: []\n"},
        "DIR/manifests/x/promoter-manifest.yaml: 'registries' field cannot be empty",
    ),
    (
        "registry-name-empty",
        {"registries": REGISTRIES + "- service-account: robot\n"},
        "DIR/manifests/x/promoter-manifest.yaml: registries: 'name' field cannot be empty"
        " (registry #3)",
    ),
    (
        "manifest-empty",
        {"registries": ""},
        "DIR/manifests/x/promoter-manifest.yaml: 'registries' field cannot be empty (the file is"
        " empty)",
    ),
    (
        "images-not-a-list",
        {"images": "app: {}\n"},
        "DIR/images/x/images.yaml: line 1: 'images' must be a list, not a mapping",
    ),
    (
        "images-key-in-thin-manifest",
        {"registries": REGISTRIES + "images: []\n"},
        "DIR/manifests/x/promoter-manifest.yaml: line 5: unknown key 'images' in a thin manifest"
        " (expected registries, imagesPath)",
    ),
    (
        "images-path-wrong-type",
        {"registries": REGISTRIES + "imagesPath: [a]\n"},
        "DIR/manifests/x/promoter-manifest.yaml: line 5: 'imagesPath' must be a string, not a list",
    ),
    (
        "duplicate-key-in-images",
        {"images": f"- name: app\n  dmap:\n    '{A}': []\n  name: again\n"},
        "DIR/images/x/images.yaml: line 4, column 3: duplicate key 'name' (first at line 1,"
        " column 3)",
    ),
    (
        "repository-too-long",
        {"images": f"- name: {'i' * 256}\n  dmap:\n    '{A}': []\n"},
        f"DIR/images/x/images.yaml: line 1: invalid repository: staging.example.com/{'i' * 256}"
        f" (repository path {'i' * 256} is 256 characters long; the limit is 255)",
    ),
]


@pytest.mark.parametrize(
    ("files", "expected"), [c[1:] for c in THIN_MESSAGES], ids=[c[0] for c in THIN_MESSAGES]
)
def test_thin_validation_message(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    thin(tmp_path, "x", **files)
    assert thin_refusal(tmp_path) == expected


# What is left out, without --strict, for the rows of THIN_MESSAGES that are about one entry;
# every other row stays an error (the file's shape, YAML, or the manifest's registries).
ENTRY_ROWS = {
    "bad-digest": "this digest is skipped",
    "bad-tag": "this digest is skipped",
    "dmap-empty": "this image is skipped",
    "image-name-empty": "this image is skipped",
    "repository-too-long": "this image is skipped",
}


@pytest.mark.parametrize(
    ("case", "files", "expected"), THIN_MESSAGES, ids=[c[0] for c in THIN_MESSAGES]
)
def test_thin_entry_problems_are_warnings(
    tmp_path: Path, case: str, files: dict[str, str], expected: str
) -> None:
    thin(tmp_path, "x", **files)
    if case not in ENTRY_ROWS:
        with pytest.raises(ManifestError) as caught:
            load_thin_tree(tmp_path)
        assert str(caught.value).replace(str(tmp_path), "DIR").startswith(expected.split(";")[0])
        return
    # a good image after the bad one is still read
    images = tmp_path / "images" / "x" / "images.yaml"
    images.write_text(images.read_text() + f"- name: other\n  dmap:\n    '{B}': ['2.0']\n")
    tree = load_thin_tree(tmp_path)
    [warning] = tree.warnings
    assert str(warning).replace(str(tmp_path), "DIR") == f"{expected}; {ENTRY_ROWS[case]}"
    assert warning.path == str(images)
    assert warning.line == int(expected.split("line ")[1].split(":")[0])
    [loaded] = tree.manifests
    kept = [(i.name, dict(i.dmap)) for i in loaded.images]
    if ENTRY_ROWS[case] == "this digest is skipped":
        assert kept == [("app", {}), ("other", {B: ("2.0",)})]  # the image, without the digest
    else:
        assert kept == [("other", {B: ("2.0",)})]
    assert [e.image for e in edges_of(tree.manifests)] == ["other"]


def test_thin_directory_structure(tmp_path: Path) -> None:
    assert thin_refusal(tmp_path) == (
        "no manifests found in dir: DIR; expected manifests/<name>/promoter-manifest.yaml and"
        " images/<name>/images.yaml"
    )
    (tmp_path / "manifests" / "empty-project").mkdir(parents=True)
    (tmp_path / "manifests" / "empty-project" / "OWNERS").write_text("approvers: []\n")
    (tmp_path / "images").mkdir()
    assert thin_refusal(tmp_path).startswith("no manifests found in dir: DIR;")

    with pytest.raises(ManifestError, match="no such directory"):
        load_thin_manifests(tmp_path / "absent")

    # images only: no manifest, as for kpromo
    thin(tmp_path, "a", registries=None)
    assert thin_refusal(tmp_path).startswith("no manifests found in dir: DIR;")
    with pytest.raises(ManifestError, match=r"^no manifests found in dir"):
        load_thin_tree(tmp_path)

    # images without a manifest beside a manifest: kpromo ignores them; a warning, since
    # nothing promotes them (--strict: an error)
    thin(tmp_path, "b")
    assert thin_refusal(tmp_path) == (
        'corresponding file "DIR/manifests/a/promoter-manifest.yaml" does not exist'
    )
    tree = load_thin_tree(tmp_path)
    assert [str(w).replace(str(tmp_path), "DIR") for w in tree.warnings] == [
        'corresponding file "DIR/manifests/a/promoter-manifest.yaml" does not exist;'
        ' "DIR/images/a/images.yaml" is not promoted'
    ]
    assert [Path(m.path).parent.name for m in tree.manifests] == ["b"]

    # a manifest without its images: an error either way, as for kpromo
    thin(tmp_path, "a")
    thin(tmp_path, "c", images=None)
    expected = 'corresponding file "DIR/images/c/images.yaml" does not exist'
    assert thin_refusal(tmp_path) == expected
    with pytest.raises(ManifestError) as caught:
        load_thin_tree(tmp_path)
    assert str(caught.value).replace(str(tmp_path), "DIR") == expected
    (tmp_path / "images" / "c" / "images.yaml").mkdir(parents=True)
    assert thin_refusal(tmp_path) == (
        'corresponding file "DIR/images/c/images.yaml" is not a regular file'
    )
    (tmp_path / "images" / "c" / "images.yaml").rmdir()
    thin(tmp_path, "c")
    assert len(load_thin_manifests(tmp_path)) == 3


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("manifests/promoter-manifest.yaml", 'unexpected manifest path "DIR/{where}"'),
        ("manifests/a/deeper/promoter-manifest.yaml", 'unexpected manifest path "DIR/{where}"'),
        ("images/images.yaml", 'unexpected images path "DIR/{where}"'),
        ("images/a/deeper/images.yaml", 'unexpected images path "DIR/{where}"'),
    ],
)
def test_thin_misplaced_files(tmp_path: Path, where: str, expected: str) -> None:
    thin(tmp_path, "a")
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text(REGISTRIES)
    assert thin_refusal(tmp_path) == expected.format(where=where)
    if where.startswith("manifests/"):
        # kpromo: an error (it walks manifests/)
        with pytest.raises(ManifestError):
            load_thin_tree(tmp_path)
        return
    # kpromo never reads it: a warning
    tree = load_thin_tree(tmp_path)
    assert [str(w).replace(str(tmp_path), "DIR") for w in tree.warnings] == [
        expected.format(where=where) + "; it is not read"
    ]
    assert len(tree.manifests) == 1


def test_thin_ignores_everything_else(tmp_path: Path) -> None:
    thin(tmp_path, "a", registries=REGISTRIES + "imagesPath: ../../images/a\n")
    (tmp_path / "manifest" / "a").mkdir(parents=True)
    (tmp_path / "manifest" / "a" / "promoter-manifest.yaml").write_text("not: [valid\n")
    (tmp_path / "manifests" / "a" / "OWNERS").write_text("- someone\n")
    (tmp_path / "images" / "a" / "README.md").write_text("notes\n")
    (tmp_path / "README.md").write_text("top\n")
    [loaded] = load_thin_manifests(tmp_path)
    assert loaded.path == str(tmp_path / "manifests" / "a" / "promoter-manifest.yaml")
    assert loaded.images_path == str(tmp_path / "images" / "a" / "images.yaml")


def test_thin_empty_image_list_is_fine(tmp_path: Path) -> None:
    thin(tmp_path, "a", images="[]\n")
    [loaded] = load_thin_manifests(tmp_path)
    assert loaded.images == ()
    assert edges_of([loaded]) == []


# -------------------------------------------------------------------------------- edges


def manifest(
    images: Mapping[str, Mapping[str, Sequence[str]]],
    source: str = "staging.example.com",
    destinations: Sequence[str] = ("prod.example.com",),
    path: str = "m.yaml",
) -> Manifest:
    return Manifest(
        (RegistryEntry(source, src=True), *(RegistryEntry(d) for d in destinations)),
        tuple(ImageEntry(n, {d: tuple(t) for d, t in dmap.items()}) for n, dmap in images.items()),
        path,
    )


def test_edge_counts_tagless_and_destinations() -> None:
    m = manifest(
        {"app": {A: [], B: ["1.0"], C: ["2.0", "latest"]}, "tools/cli": {D: ["9"]}},
        destinations=("us.example.com/prod", "eu.example.com/prod", "localhost:5000"),
    )
    edges = edges_of([m])
    # (1 tagless + 1 + 2 tags) for app, 1 for cli; times 3 destinations
    assert len(edges) == (1 + 1 + 2 + 1) * 3
    assert {e.source_registry for e in edges} == {"staging.example.com"}
    assert {e.destination_registry for e in edges} == {
        "us.example.com/prod",
        "eu.example.com/prod",
        "localhost:5000",
    }
    tagless = [e for e in edges if e.tag is None]
    assert {(e.image, e.digest) for e in tagless} == {("app", A)}
    assert len(tagless) == 3


def test_edge_text() -> None:
    tagged = Edge("reg.example.com:5000/staging/sub", "prod.example.com/k8s", "tools/cli", A, "1.0")
    tagless = dataclasses.replace(tagged, tag=None)
    assert tagged.source_repository == "reg.example.com:5000/staging/sub/tools/cli"
    assert tagged.destination_repository == "prod.example.com/k8s/tools/cli"
    assert tagged.destination == "prod.example.com/k8s/tools/cli:1.0"
    assert tagless.destination == f"prod.example.com/k8s/tools/cli@{A}"
    assert tagged.key == (
        f"reg.example.com:5000/staging/sub/tools/cli@{A} -> prod.example.com/k8s/tools/cli:1.0"
    )
    assert tagless.key == (
        f"reg.example.com:5000/staging/sub/tools/cli@{A} -> prod.example.com/k8s/tools/cli@{A}"
    )
    assert tagged != tagless
    assert len({tagged, tagless, dataclasses.replace(tagless)}) == 2
    assert repr(tagless).endswith("tag=None)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tagged.tag = "2.0"  # type: ignore[misc]


def test_edges_are_sorted() -> None:
    edges = edges_of(
        [
            manifest({"zeta": {B: ["b", "a"], A: []}, "alpha": {C: ["x"]}}),
            manifest({"mid": {D: ["1"]}}, source="another.example.com", path="n.yaml"),
        ]
    )
    assert edges == sorted(edges)
    assert [(e.source_registry, e.image, e.digest, e.tag) for e in edges] == [
        ("another.example.com", "mid", D, "1"),
        ("staging.example.com", "alpha", C, "x"),
        ("staging.example.com", "zeta", A, None),
        ("staging.example.com", "zeta", B, "a"),
        ("staging.example.com", "zeta", B, "b"),
    ]
    # a tagless edge sorts before the tagged ones of its digest and never meets None < str
    same = [Edge("s.io", "d.io", "x", A, "1"), Edge("s.io", "d.io", "x", A, None)]
    assert sorted(same) == same[::-1]


def test_edges_are_deduplicated() -> None:
    once = manifest({"app": {A: ["1.0", "1.0"]}})
    twice_in_file = Manifest(
        once.registries, (*once.images, ImageEntry("app", {A: ("1.0",), B: ()})), "m.yaml"
    )
    assert len(edges_of([once])) == 1
    assert len(edges_of([twice_in_file])) == 2
    assert len(edges_of([twice_in_file, twice_in_file])) == 2

    # same digest, same tag, two sources: one edge, the first in sort order (kpromo keeps one)
    red = manifest({"app": {A: ["1.0"]}}, source="red.example.com", path="red.yaml")
    blue = manifest({"app": {A: ["1.0"]}}, source="blue.example.com", path="blue.yaml")
    [edge] = edges_of([red, blue])
    assert edge.source_registry == "blue.example.com"

    # two registry/image splits naming one repository: one copy
    split_a = manifest({"tools/cli": {A: ["1.0"]}}, destinations=("prod.example.com/k8s",))
    split_b = manifest({"cli": {A: ["1.0"]}}, destinations=("prod.example.com/k8s/tools",))
    [edge] = edges_of([split_a, split_b])
    assert edge.destination == "prod.example.com/k8s/tools/cli:1.0"


def test_same_digest_twice_is_fine_and_tagless_never_overlaps() -> None:
    a = manifest({"app": {A: ["1.0"], C: []}}, path="a.yaml")
    b = manifest({"app": {A: ["1.0", "latest"], D: []}}, source="other.example.com", path="b.yaml")
    assert len(edges_of([a, b])) == 4  # 1.0, latest, tagless C, tagless D


def test_overlap_within_one_file() -> None:
    m = manifest({"app": {A: ["1.0", "latest"], B: ["1.0"]}}, path="dir/m.yaml")
    with pytest.raises(ManifestError) as caught:
        edges_of([m])
    assert str(caught.value) == (
        f"overlapping edges detected: prod.example.com/app:1.0 is wanted at {A} (dir/m.yaml)"
        f" and at {B} (dir/m.yaml); a tag can point at one digest only: fix one of the files"
    )


def test_overlap_across_files() -> None:
    first = dataclasses.replace(
        manifest({"app": {B: ["1.0"]}}, destinations=("p1.io", "p2.io"), path="m/a.yaml"),
        images_path="i/a.yaml",
    )
    second = dataclasses.replace(
        manifest({"app": {A: ["1.0"]}, "other": {C: ["1"], D: ["1"]}}, path="m/b.yaml"),
        images_path="i/b.yaml",
        registries=(RegistryEntry("s2.io", src=True), RegistryEntry("p1.io")),
    )
    with pytest.raises(ManifestError) as caught:
        edges_of([first, second])
    message = str(caught.value)
    assert message.startswith(
        f"overlapping edges detected: p1.io/app:1.0 is wanted at {A} (i/b.yaml) and at {B}"
        " (i/a.yaml); 1 more destination tag(s) conflict;"
    )
    assert caught.value.path == "i/b.yaml"

    third = manifest({"app": {C: ["1.0"]}}, destinations=("p1.io",), path="c.yaml")
    with pytest.raises(ManifestError, match=r"and at .* and 1 more digest\(s\)"):
        edges_of([first, manifest({"app": {A: ["1.0"]}}, destinations=("p1.io",)), third])


def test_source_is_required_even_when_built_by_hand() -> None:
    m = Manifest((RegistryEntry("prod.example.com"),), (), "hand.yaml")
    assert m.destinations == (RegistryEntry("prod.example.com"),)
    with pytest.raises(ManifestError, match=r"^hand\.yaml: source registry must be set$"):
        edges_of([m])


# ---------------------------------------------------------------------------- snapshots

SNAPSHOT = {
    "tools/cli": {D: ["9"]},
    "app": {B: ["latest", "1.0", "1.0"], A: []},
    "empty-repository": {},
    "null": {C: ["x"]},
}


def test_snapshot_yaml() -> None:
    assert snapshot_yaml(SNAPSHOT) == (
        "- name: app\n"
        "  dmap:\n"
        f'    "{A}": []\n'
        f'    "{B}": ["1.0", "latest"]\n'
        '- name: "null"\n'
        "  dmap:\n"
        f'    "{C}": ["x"]\n'
        "- name: tools/cli\n"
        "  dmap:\n"
        f'    "{D}": ["9"]\n'
    )
    assert snapshot_yaml({}) == "[]\n"
    assert snapshot_yaml({"repo": {}}) == "[]\n"


def test_snapshot_csv() -> None:
    assert snapshot_csv(SNAPSHOT) == (
        f"app@{A},-\n"
        f"app@{B},app:1.0\n"
        f"app@{B},app:latest\n"
        f"null@{C},null:x\n"
        f"tools/cli@{D},tools/cli:9\n"
    )
    assert snapshot_csv({}) == ""


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        (
            {"App": {A: []}},
            "snapshot: invalid image name: App (repository 'App' must be lowercase)",
        ),
        ({"app": {"sha256:1": []}}, "snapshot: invalid digest: sha256:1 (image 'app')"),
        ({"app": {A: ["-x"]}}, "snapshot: invalid tag: -x (image 'app')"),
    ],
)
def test_snapshot_refuses_what_cannot_load_back(
    images: dict[str, dict[str, list[str]]], expected: str
) -> None:
    for write in (snapshot_yaml, snapshot_csv):
        with pytest.raises(ManifestError) as caught:
            write(images)
        assert str(caught.value) == expected


def as_mapping(entries: Sequence[ImageEntry]) -> dict[str, dict[str, tuple[str, ...]]]:
    return {e.name: dict(e.dmap) for e in entries}


def normalised(images: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[str, object]:
    return {
        name: {digest: tuple(sorted(set(tags))) for digest, tags in dmap.items()}
        for name, dmap in images.items()
        if dmap
    }


def test_snapshot_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(snapshot_yaml(SNAPSHOT))
    assert as_mapping(load_images(path)) == normalised(SNAPSHOT)
    path.write_text(snapshot_yaml({}))
    assert load_images(path) == ()


_component = st.from_regex(r"\A[a-z0-9]{1,4}([._-][a-z0-9]{1,3})?\Z")
_names = st.one_of(
    st.lists(_component, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["null", "true", "yes", "on", "1.0", "0x10", "1e3", "2024-01-01"]),
)
_digests = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map("sha256:".__add__)
_tag_start = string.ascii_letters + string.digits + "_"
_tags = st.builds(
    str.__add__,
    st.sampled_from(_tag_start),
    st.text(alphabet=_tag_start + ".-", max_size=12),
)
_snapshots = st.dictionaries(
    _names,
    st.dictionaries(_digests, st.lists(_tags, max_size=4), max_size=3),
    max_size=5,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(images=_snapshots)
def test_snapshot_round_trip_property(
    tmp_path: Path, images: dict[str, dict[str, list[str]]]
) -> None:
    path = tmp_path / "images.yaml"
    text = snapshot_yaml(images)
    path.write_text(text)
    loaded = load_images(path)
    assert as_mapping(loaded) == normalised(images)
    assert snapshot_yaml(as_mapping(loaded)) == text
    rows = snapshot_csv(images).splitlines()
    assert len(rows) == sum(max(1, len(set(t))) for dmap in images.values() for t in dmap.values())
    assert rows == sorted(rows, key=lambda row: (row.split("@")[0], row))
