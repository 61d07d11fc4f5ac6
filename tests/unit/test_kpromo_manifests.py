"""kpromo's own manifest-parsing tables, row by row, through imgctl's loaders.

Upstream: kubernetes-sigs/promo-tools internal/legacy/dockerregistry/inventory_test.go at
48c350003b29ea789b830dbe06324c761a10090f (the last commit before 650d61b6 removed it):
TestParseRegistryManifest, TestParseThinManifestsFromDir, TestParseImageDigest,
TestParseImageTag, TestValidateRegistryImagePath. (TestValidateThinManifestsFromDir is
reproduced by the fixture tables of test_manifests.py; kpromo's count of the real k8s.gcr.io
tree, promoter/image/schema/manifest_test.go at 63ddc9f7022567731beebde1334c8e066008c32e
TestParseThinManifestsFromDirPostsubmit, by test_k8s_io_tree.py.)

Each thin-tree row writes the files kpromo's fixture directory holds, from the row's expected
manifests (registries, then images), and compares what imgctl reads with the row. Digest and
tag rows go through a plain manifest, where imgctl validates as kpromo does; registry image
path rows are registry names of a manifest, the place imgctl checks such paths. kpromo's
messages are compared where imgctl's error contains them (imgctl adds the file and line).
Differences are in docs/manifests.md, "kpromo's own tests".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imgctl.errors import ManifestError
from imgctl.promotion.manifests import (
    ImageEntry,
    RegistryEntry,
    load_manifest,
    load_thin_tree,
)

# ----------------------------------------------------------------- TestParseRegistryManifest

BASIC = (
    "registries:\n"
    "- name: gcr.io/bar\n"
    "  service-account: foobar@google-containers.iam.gserviceaccount.com\n"
    "- name: gcr.io/foo\n"
    "  service-account: src@google-containers.iam.gserviceaccount.com\n"
    "  src: true\n"
    "images:\n"
    "- name: agave\n"
    "  dmap:\n"
    '    "sha256:aab34c5841987a1b133388fa9f27e7960c4b1307e2f9147dca407ba26af48a54": ["latest"]\n'
    "- name: banana\n"
    "  dmap:\n"
    '    "sha256:07353f7b26327f0d933515a22b1de587b040d3d85c464ea299c1b9f242529326": [ "1.8.3" ]'
    "  # Branches: ['master']\n"
)

BAR = RegistryEntry("gcr.io/bar", False, "foobar@google-containers.iam.gserviceaccount.com")
FOO = RegistryEntry("gcr.io/foo", True, "src@google-containers.iam.gserviceaccount.com")

PARSE_REGISTRY_MANIFEST: list[tuple[str, str, object]] = [
    ("Empty manifest (invalid)", "", "'registries' field cannot be empty"),
    (
        "Stub manifest (`images` field is empty)",
        """registries:
- name: gcr.io/bar
  service-account: foobar@google-containers.iam.gserviceaccount.com
- name: gcr.io/foo
  service-account: src@google-containers.iam.gserviceaccount.com
  src: true
images: []
""",
        ((BAR, FOO), ()),
    ),
    (
        "Basic manifest",
        BASIC,
        (
            (BAR, FOO),
            (
                ImageEntry(
                    "agave",
                    {
                        "sha256:aab34c5841987a1b133388fa9f27e7960c4b1307e2f9147dca407ba26af48a54": (
                            "latest",
                        )
                    },
                ),
                ImageEntry(
                    "banana",
                    {
                        "sha256:07353f7b26327f0d933515a22b1de587b040d3d85c464ea299c1b9f242529326": (
                            "1.8.3",
                        )
                    },
                ),
            ),
        ),
    ),
    (
        "Missing src registry in registries (invalid)",
        BASIC.replace("  src: true\n", ""),
        "source registry must be set",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [row[1:] for row in PARSE_REGISTRY_MANIFEST],
    ids=[row[0] for row in PARSE_REGISTRY_MANIFEST],
)
def test_parse_registry_manifest(tmp_path: Path, text: str, expected: object) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    if isinstance(expected, str):
        with pytest.raises(ManifestError) as caught:
            load_manifest(path)
        assert expected in str(caught.value)
        return
    loaded = load_manifest(path)
    assert (loaded.registries, loaded.images) == expected


# ---------------------------------------------------------------- TestParseThinManifestsFromDir

SA = "sa@robot.com"


def prod(suffix: str = "") -> list[RegistryEntry]:
    return [
        RegistryEntry(f"{region}.gcr.io/some-prod{suffix}", False, SA)
        for region in ("us", "eu", "asia")
    ]


def thin_manifest(
    subdir: str, staging: str, destinations: list[RegistryEntry], image: str, digest: str
) -> tuple[str, tuple[RegistryEntry, ...], tuple[ImageEntry, ...]]:
    registries = (RegistryEntry(staging, True, SA), *destinations)
    return subdir, registries, (ImageEntry(image, {digest: ("1.0",)}),)


PARSE_THIN: list[
    tuple[str, list[tuple[str, tuple[RegistryEntry, ...], tuple[ImageEntry, ...]]]]
] = [
    (
        "Singleton (single manifest)",
        [
            thin_manifest(
                "a",
                "gcr.io/foo-staging",
                prod(),
                "foo-controller",
                "sha256:c3d310f4741b3642497da8826e0986db5e02afc9777a2b8e668c8e41034128c1",
            )
        ],
    ),
    (
        "Multiple (with 'rebase')",
        [
            thin_manifest(
                "a", "gcr.io/foo-staging", prod("/foo"), "foo-controller", "sha256:" + "a" * 64
            ),
            thin_manifest(
                "b", "gcr.io/bar-staging", prod("/bar"), "bar-controller", "sha256:" + "b" * 64
            ),
        ],
    ),
    (
        "Basic (multiple thin manifests)",
        [
            thin_manifest(
                "a", "gcr.io/foo-staging", prod(), "foo-controller", "sha256:" + "a" * 64
            ),
            thin_manifest(
                "b", "gcr.io/bar-staging", prod(), "bar-controller", "sha256:" + "b" * 64
            ),
            thin_manifest(
                "c", "gcr.io/cat-staging", prod(), "cat-controller", "sha256:" + "c" * 64
            ),
            thin_manifest(
                "d", "gcr.io/qux-staging", prod(), "qux-controller", "sha256:" + "0" * 64
            ),
        ],
    ),
]


def write_tree(
    root: Path, manifests: list[tuple[str, tuple[RegistryEntry, ...], tuple[ImageEntry, ...]]]
) -> None:
    """The files of kpromo's fixture directory for these manifests."""
    for subdir, registries, images in manifests:
        lines = ["registries:"]
        for registry in registries:
            lines.append(f"- name: {registry.name}")
            lines.append(f"  service-account: {registry.service_account}")
            if registry.src:
                lines.append("  src: true")
        (root / "manifests" / subdir).mkdir(parents=True)
        (root / "manifests" / subdir / "promoter-manifest.yaml").write_text("\n".join(lines) + "\n")
        lines = []
        for image in images:
            lines += [f"- name: {image.name}", "  dmap:"]
            lines += [
                f'    "{d}": [{", ".join(repr(t) for t in tags)}]' for d, tags in image.dmap.items()
            ]
        (root / "images" / subdir).mkdir(parents=True)
        (root / "images" / subdir / "images.yaml").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "manifests", [row[1] for row in PARSE_THIN], ids=[row[0] for row in PARSE_THIN]
)
def test_parse_thin_manifests_from_dir(
    tmp_path: Path, manifests: list[tuple[str, tuple[RegistryEntry, ...], tuple[ImageEntry, ...]]]
) -> None:
    write_tree(tmp_path, manifests)
    tree = load_thin_tree(tmp_path)
    assert tree.warnings == ()
    assert [(m.path, m.registries, m.images) for m in tree.manifests] == [
        (str(tmp_path / "manifests" / subdir / "promoter-manifest.yaml"), registries, images)
        for subdir, registries, images in manifests
    ]


def test_parse_thin_manifests_from_dir_empty(tmp_path: Path) -> None:
    # "No manifests found (invalid)": a directory holding only non-manifest.txt. kpromo:
    # "stat <dir>/images: no such file or directory"; imgctl names what it looked for.
    (tmp_path / "non-manifest.txt").write_text("not a manifest\n")
    with pytest.raises(ManifestError, match=r"^no manifests found in dir: "):
        load_thin_tree(tmp_path)


# ------------------------------------------------------ TestParseImageDigest / TestParseImageTag

VALID_DIGESTS = [
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "sha256:3243f6a8885a308d313198a2e03707344a4093822299f31d0082efa98ec4e6c8",
]
INVALID_DIGESTS = [
    "",  # Empty.
    "sha256:0",  # Too short.
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef1",  # Too long.
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdex",  # 'x'.
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",  # No prefix.
]
VALID_TAGS = [
    "a",
    "_",
    "latest",
    "_latest",
    "_____----hello........",  # Awkward, but valid.
    # Longest tag is 128 chars.
    "this-is-exactly-128-chars-this-is-exactly-128-chars-this-is-exactly-128-chars-this-is-exactly-128-chars-this-is-exactly-128-char",
]
INVALID_TAGS = [
    "",  # Empty.
    ".",  # Does not begin with an ASCII word character.
    "-",  # Does not begin with an ASCII word character.
    "안녕",  # Unicode not allowed.
    "a b",  # No spaces allowed.
    # Too long (>128 ASCII chars).
    "this-is-longer-than-128-chars-this-is-longer-than-128-chars-this-is-longer-than-128-chars-this-is-longer-than-128-chars-this-is-l",
]
A = "sha256:" + "a" * 64


def manifest_with(tmp_path: Path, digest: str = A, tag: str = "1.0") -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        "registries:\n- name: gcr.io/foo\n  src: true\n- name: gcr.io/bar\n"
        f'images:\n- name: a\n  dmap:\n    "{digest}": ["{tag}"]\n'
    )
    return path


@pytest.mark.parametrize("digest", VALID_DIGESTS)
def test_parse_image_digest_valid(tmp_path: Path, digest: str) -> None:
    [image] = load_manifest(manifest_with(tmp_path, digest=digest)).images
    assert list(image.dmap) == [digest]


@pytest.mark.parametrize("digest", INVALID_DIGESTS)
def test_parse_image_digest_invalid(tmp_path: Path, digest: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest_with(tmp_path, digest=digest))
    assert f": invalid digest: {digest} (image 'a')" in str(caught.value)


@pytest.mark.parametrize("tag", VALID_TAGS)
def test_parse_image_tag_valid(tmp_path: Path, tag: str) -> None:
    [image] = load_manifest(manifest_with(tmp_path, tag=tag)).images
    assert image.dmap[A] == (tag,)


@pytest.mark.parametrize("tag", INVALID_TAGS)
def test_parse_image_tag_invalid(tmp_path: Path, tag: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest_with(tmp_path, tag=tag))
    assert f": invalid tag: {tag} (image 'a', digest {A})" in str(caught.value)


# ------------------------------------------------------------- TestValidateRegistryImagePath

VALID_PATHS = [
    "gcr.io/foo/bar",
    "k8s.gcr.io/foo",
    "staging-k8s.gcr.io/foo",
    "staging-k8s.gcr.io/foo/bar/nested/path/image",
]
INVALID_PATHS = [
    "",  # Empty.
    "gcrio",  # No dot.
    "gcr..io",  # Too many dots.
    ".gcr.io",  # Leading dot.
    "gcr.io.",  # Trailing dot.
    "gcr.io//foo",  # Too many slashes.
    "/gcr.io",  # Leading slash.
    "gcr.io/",  # Trailing slash (1).
    "gcr.io/foo/",  # Trailing slash (2).
]


def manifest_to(tmp_path: Path, destination: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        f"registries:\n- name: gcr.io/src\n  src: true\n- name: '{destination}'\nimages: []\n"
    )
    return path


@pytest.mark.parametrize("name", VALID_PATHS)
def test_validate_registry_image_path_valid(tmp_path: Path, name: str) -> None:
    assert load_manifest(manifest_to(tmp_path, name)).destinations == (RegistryEntry(name),)


@pytest.mark.parametrize("name", INVALID_PATHS)
def test_validate_registry_image_path_invalid(tmp_path: Path, name: str) -> None:
    # kpromo: "invalid registry image path: <name>"
    path = manifest_to(tmp_path, name)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    if name:
        assert str(caught.value).startswith(f"{path}: invalid registry name: {name} (")
        assert "registry.invalid" not in str(caught.value)  # the probe host stays internal
    else:
        assert (
            str(caught.value) == f"{path}: registries: 'name' field cannot be empty (registry #2)"
        )
