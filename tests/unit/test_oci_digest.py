"""Unit and property tests for imgctl.oci.digest."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgctl.errors import DigestMismatchError, InvalidDigestError
from imgctl.oci import Digest, Digester, Reference

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
HEX = hashlib.sha256(b"imgctl").hexdigest()


@pytest.mark.parametrize(
    ("text", "algorithm", "length"),
    [
        (f"sha256:{HEX}", "sha256", 64),
        (f"sha256:{EMPTY_SHA256}", "sha256", 64),
        (f"sha384:{hashlib.sha384(b'x').hexdigest()}", "sha384", 96),
        (f"sha512:{hashlib.sha512(b'x').hexdigest()}", "sha512", 128),
    ],
)
def test_parse_valid(text: str, algorithm: str, length: int) -> None:
    digest = Digest.parse(text)
    assert digest.algorithm == algorithm
    assert len(digest.hex) == length
    assert str(digest) == text
    assert digest == Digest(algorithm, text.partition(":")[2])


# (input, text the message must contain besides the input itself)
INVALID: list[tuple[str, str]] = [
    ("", "expected <algorithm>:<hex>"),
    ("sha256", "expected <algorithm>:<hex>"),
    (HEX, "expected <algorithm>:<hex>"),
    (":" + HEX, "bad algorithm ''"),
    ("SHA256:" + HEX, "bad algorithm 'SHA256'"),
    ("sha 256:" + HEX, "bad algorithm 'sha 256'"),
    ("sha256+:" + HEX, "bad algorithm 'sha256+'"),
    ("sha256:", "bad encoded part ''"),
    ("sha256:ab cd", "bad encoded part 'ab cd'"),
    ("sha256:abc:def", "bad encoded part 'abc:def'"),
    ("sha256:" + HEX + "\n", "bad encoded part"),
    ("md5:" + "0" * 32, "unsupported algorithm 'md5'"),
    ("sha1:" + "0" * 40, "unsupported algorithm 'sha1'"),
    ("sha256:abc", "sha256 needs 64 lowercase hex characters (got 3)"),
    ("sha256:" + HEX + "0", "sha256 needs 64 lowercase hex characters (got 65)"),
    ("sha256:" + HEX[:63], "sha256 needs 64 lowercase hex characters (got 63)"),
    ("sha256:" + HEX.upper(), "sha256 needs 64 lowercase hex characters (got 64)"),
    ("sha256:" + "g" * 64, "sha256 needs 64 lowercase hex characters (got 64)"),
    ("sha512:" + HEX, "sha512 needs 128 lowercase hex characters (got 64)"),
    ("sha384:" + HEX, "sha384 needs 96 lowercase hex characters (got 64)"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(InvalidDigestError) as info:
        Digest.parse(text)
    assert type(info.value) is InvalidDigestError
    assert info.value.message.startswith(f"invalid digest {text!r}: ")
    assert fragment in info.value.message


def test_unsupported_algorithm_hint_lists_supported_ones() -> None:
    with pytest.raises(InvalidDigestError) as info:
        Digest.parse("md5:" + "0" * 32)
    assert info.value.hint == "use one of sha256, sha384, sha512"
    assert "sha256" in str(info.value)


def test_invalid_digest_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid digest"):
        Digest.parse("nope")


@pytest.mark.parametrize("value", [None, 42, b"sha256:" + HEX.encode()])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidDigestError):
        Digest.parse(value)  # type: ignore[arg-type]


def test_of_known_vectors() -> None:
    assert Digest.of(b"") == Digest("sha256", EMPTY_SHA256)
    assert str(Digest.of(b"abc")) == f"sha256:{ABC_SHA256}"
    assert Digest.of(b"abc", "sha512").hex == hashlib.sha512(b"abc").hexdigest()
    assert Digest.of(b"abc", "sha384").algorithm == "sha384"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", ""])
def test_of_rejects_unsupported_algorithms(algorithm: str) -> None:
    with pytest.raises(InvalidDigestError, match="unsupported digest algorithm"):
        Digest.of(b"abc", algorithm)


def test_verify_accepts_matching_content() -> None:
    for digest in (
        Digest.of(b"abc"),
        Digest.parse(f"sha256:{ABC_SHA256}"),
        Digest.of(b"abc", "sha512"),
    ):
        digest.verify(b"abc")  # raises on a mismatch, as the next line shows
        with pytest.raises(DigestMismatchError):
            digest.verify(b"abd")


def test_verify_raises_digest_mismatch() -> None:
    expected = Digest.of(b"abc")
    with pytest.raises(DigestMismatchError) as info:
        expected.verify(b"abd")
    message = info.value.message
    assert str(expected) in message
    assert str(Digest.of(b"abd")) in message
    assert message == f"content has digest {Digest.of(b'abd')}, expected {expected}"


def test_verify_uses_the_digest_algorithm() -> None:
    sha512 = Digest.of(b"abc", "sha512")
    sha512.verify(b"abc")
    with pytest.raises(DigestMismatchError):
        sha512.verify(b"abcd")


def test_tag_form() -> None:
    digest = Digest.parse(f"sha256:{HEX}")
    assert digest.tag_form == f"sha256-{HEX}"
    # The referrers fallback tag must itself be a valid tag.
    assert Reference.parse(f"reg.io/a:{digest.tag_form}").tag == digest.tag_form
    assert Digest.of(b"x", "sha512").tag_form.startswith("sha512-")


def test_short() -> None:
    digest = Digest.parse(f"sha256:{ABC_SHA256}")
    assert digest.short == "sha256:ba7816bf8f01"
    assert len(digest.short) == len("sha256:") + 12
    assert str(digest).startswith(digest.short)


def test_equality_and_hashing() -> None:
    a = Digest.parse(f"sha256:{HEX}")
    b = Digest.parse(f"sha256:{HEX}")
    c = Digest.of(b"other")
    assert a == b
    assert a is not b
    assert hash(a) == hash(b)
    assert a != c
    assert a != str(a)  # type: ignore[comparison-overlap]  # never equal to its string form
    assert len({a, b, c}) == 2
    assert {a: 1}[b] == 1
    with pytest.raises(AttributeError):
        a.hex = "0" * 64  # type: ignore[misc]


def test_ordering() -> None:
    low = Digest("sha256", "0" * 64)
    mid = Digest("sha256", "8" * 64)
    high = Digest("sha256", "f" * 64)
    other_algorithm = Digest("sha512", "0" * 128)
    assert sorted([high, other_algorithm, low, mid]) == [low, mid, high, other_algorithm]
    assert low < mid < high < other_algorithm
    assert max(low, high) is high


def test_digester_matches_one_shot() -> None:
    digester = Digester()
    assert digester.algorithm == "sha256"
    assert digester.size == 0
    assert digester.digest() == Digest("sha256", EMPTY_SHA256)
    digester.update(b"a")
    digester.update(b"")
    digester.update(b"bc")
    assert digester.size == 3
    assert digester.digest() == Digest.of(b"abc")
    # digest() does not finalise: more data can follow.
    assert digester.digest() == Digest.of(b"abc")
    digester.update(b"d")
    assert digester.digest() == Digest.of(b"abcd")
    assert digester.size == 4


def test_digester_from_digest_uses_its_algorithm() -> None:
    expected = Digest.of(b"payload", "sha512")
    digester = expected.digester()
    assert digester.algorithm == "sha512"
    digester.update(b"pay")
    digester.update(b"load")
    assert digester.digest() == expected


@pytest.mark.parametrize("algorithm", ["md5", "sha1", ""])
def test_digester_rejects_unsupported_algorithms(algorithm: str) -> None:
    with pytest.raises(InvalidDigestError, match="unsupported digest algorithm"):
        Digester(algorithm)


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------

ALGORITHMS = st.sampled_from(["sha256", "sha384", "sha512"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=512), max_size=20), ALGORITHMS)
def test_property_streaming_equals_one_shot(chunks: list[bytes], algorithm: str) -> None:
    digester = Digester(algorithm)
    for chunk in chunks:
        digester.update(chunk)
    whole = b"".join(chunks)
    assert digester.digest() == Digest.of(whole, algorithm)
    assert digester.size == len(whole)
    Digest.of(whole, algorithm).verify(whole)


@settings(max_examples=200, deadline=None)
@given(st.binary(), ALGORITHMS)
def test_property_str_round_trip(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert Digest.parse(str(digest)) == digest
    assert digest.hex == hashlib.new(algorithm, data).hexdigest()


@settings(max_examples=200, deadline=None)
@given(st.binary(), st.binary())
def test_property_order_follows_strings(a: bytes, b: bytes) -> None:
    da, db = Digest.of(a), Digest.of(b)
    assert (da < db) == (str(da) < str(db))
    assert (da == db) == (a == b)


@settings(max_examples=300, deadline=None)
@given(st.text() | st.text(alphabet="sha256:0123456789abcdefABCDEF+._- ", max_size=80))
def test_property_parse_only_raises_invalid_digest_error(text: str) -> None:
    outcome = _parse_or_error(text)
    if isinstance(outcome, Digest):
        assert str(outcome) == text
    else:
        assert type(outcome) is InvalidDigestError
        assert repr(text) in outcome.message


def _parse_or_error(text: str) -> Digest | InvalidDigestError:
    try:
        return Digest.parse(text)
    except InvalidDigestError as exc:
        return exc
