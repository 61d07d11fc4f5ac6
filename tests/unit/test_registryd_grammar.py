"""The embedded registry reads names, tags and digests with imgctl.oci's grammar, not its own.

It kept a private copy once, which drifted. These tests hold the registry's checks to what
``imgctl.oci`` parses: names and tags exactly, digests exactly but for algorithms the registry
does not store (sha384: well-formed for oci, refused by the registry as DIGEST_INVALID).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgctl.errors import InvalidDigestError, InvalidReferenceError
from imgctl.oci import Digest, Reference, valid_repository, valid_tag
from imgctl.registryd._storage import STORED_ALGORITHMS, parse_digest

# Characters that matter to the grammar, plus a few that never belong in a name or a tag.
NAME_TEXT = st.text(alphabet="ab9._-/A %", max_size=40)
TAG_TEXT = st.text(alphabet="aZ9._-+ é", max_size=140)


def reference_accepts(text: str) -> bool:
    try:
        Reference.parse(text)
    except InvalidReferenceError:
        return False
    return True


@given(NAME_TEXT)
def test_repository_names_are_what_references_accept(name: str) -> None:
    # A registry host of our own, so no Docker Hub normalisation changes the path.
    assert valid_repository(name) == reference_accepts(f"registry.example:5000/{name}")


@given(TAG_TEXT)
def test_tags_are_what_references_accept(tag: str) -> None:
    assert valid_tag(tag) == reference_accepts(f"registry.example:5000/app:{tag}")


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("library/alpine", True),
        ("a/b__c/d-e.f", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("a//b", False),
        ("/a", False),
        ("a/", False),
        ("A", False),
        ("a/_b", False),
        ("a..b", False),
        ("a/./b", False),
    ],
)
def test_repository_name_rows(name: str, valid: bool) -> None:
    assert valid_repository(name) is valid
    assert reference_accepts(f"registry.example:5000/{name}") is valid


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("v1", True),
        ("_x", True),
        ("A.b-c_d", True),
        ("v" * 128, True),
        ("v" * 129, False),
        (".hidden", False),
        ("-lead", False),
        ("", False),
        ("v 1", False),
        ("versión", False),
    ],
)
def test_tag_rows(tag: str, valid: bool) -> None:
    assert valid_tag(tag) is valid


def oci_digest(text: str) -> Digest | None:
    try:
        return Digest.parse(text)
    except InvalidDigestError:
        return None


DIGESTS = [
    f"sha256:{hashlib.sha256(b'x').hexdigest()}",
    f"sha512:{hashlib.sha512(b'x').hexdigest()}",
    f"sha384:{hashlib.sha384(b'x').hexdigest()}",
    f"sha256:{hashlib.sha256(b'x').hexdigest().upper()}",
    f"SHA256:{hashlib.sha256(b'x').hexdigest()}",
    f"sha256:{hashlib.sha256(b'x').hexdigest()[:-1]}",
    f"sha256+b64:{hashlib.sha256(b'x').hexdigest()}",
    f"sha512:{'a' * 128}/../../escape",
    "sha256:../../escape",
    "sha256:",
    ":abc",
    "",
]


@pytest.mark.parametrize("text", DIGESTS)
def test_registry_digests_are_oci_digests_of_stored_algorithms(text: str) -> None:
    parsed = oci_digest(text)
    expected = None
    if parsed is not None and parsed.algorithm in STORED_ALGORITHMS:
        expected = (parsed.algorithm, parsed.hex)
    assert parse_digest(text) == expected


def test_sha384_is_an_oci_digest_the_registry_does_not_store() -> None:
    text = f"sha384:{hashlib.sha384(b'x').hexdigest()}"
    assert oci_digest(text) is not None
    assert parse_digest(text) is None


@given(
    st.sampled_from(["sha256", "sha384", "sha512", "md5", "sha256+b64"]),
    st.text(alphabet="0123456789abcdefABCDEF=_-", min_size=0, max_size=130),
)
def test_registry_digest_check_follows_oci(algorithm: str, encoded: str) -> None:
    text = f"{algorithm}:{encoded}"
    parsed = oci_digest(text)
    accepted = parsed is not None and parsed.algorithm in STORED_ALGORITHMS
    assert (parse_digest(text) is not None) is accepted
