"""Unit and property tests for imgctl.oci.reference (the distribution reference grammar)."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgctl.errors import InvalidReferenceError
from imgctl.oci import DEFAULT_REGISTRY, DEFAULT_TAG, Digest, Reference, canonical_registry

HEX = hashlib.sha256(b"imgctl").hexdigest()
HEX2 = hashlib.sha256(b"imgctl-2").hexdigest()
HEX512 = hashlib.sha512(b"imgctl").hexdigest()
SHA = f"sha256:{HEX}"
TAG128 = "T" + "a1_.-" * 25 + "xy"
PARTS = frozenset({"reference", "registry", "repository", "tag", "digest"})

assert len(TAG128) == 128


def _id(text: str) -> str:
    """A short, printable test id for a (possibly long or odd) reference string."""
    shown = text if len(text) <= 40 else f"{text[:30]}...({len(text)})"
    return ascii(shown)[1:-1] or "<empty>"


# ---------------------------------------------------------------------------------------------
# Valid references
# ---------------------------------------------------------------------------------------------

# (input, registry, repository, tag, digest, canonical str, familiar)
VALID: list[tuple[str, str, str, str | None, str | None, str, str]] = [
    # Docker Hub normalisation.
    ("alpine", "docker.io", "library/alpine", None, None, "docker.io/library/alpine", "alpine"),
    (
        "alpine:3.20",
        "docker.io",
        "library/alpine",
        "3.20",
        None,
        "docker.io/library/alpine:3.20",
        "alpine:3.20",
    ),
    (
        "library/alpine",
        "docker.io",
        "library/alpine",
        None,
        None,
        "docker.io/library/alpine",
        "alpine",
    ),
    (
        "docker.io/alpine",
        "docker.io",
        "library/alpine",
        None,
        None,
        "docker.io/library/alpine",
        "alpine",
    ),
    (
        "docker.io/library/alpine:3",
        "docker.io",
        "library/alpine",
        "3",
        None,
        "docker.io/library/alpine:3",
        "alpine:3",
    ),
    (
        "index.docker.io/library/alpine",
        "docker.io",
        "library/alpine",
        None,
        None,
        "docker.io/library/alpine",
        "alpine",
    ),
    (
        "index.docker.io/alpine",
        "docker.io",
        "library/alpine",
        None,
        None,
        "docker.io/library/alpine",
        "alpine",
    ),
    ("registry-1.docker.io/x/y", "docker.io", "x/y", None, None, "docker.io/x/y", "x/y"),
    ("Docker.IO/x/y", "docker.io", "x/y", None, None, "docker.io/x/y", "x/y"),
    ("user/repo", "docker.io", "user/repo", None, None, "docker.io/user/repo", "user/repo"),
    (
        "user/repo:v1",
        "docker.io",
        "user/repo",
        "v1",
        None,
        "docker.io/user/repo:v1",
        "user/repo:v1",
    ),
    (
        "library/a/b",
        "docker.io",
        "library/a/b",
        None,
        None,
        "docker.io/library/a/b",
        "library/a/b",
    ),
    # A bare name is a Docker Hub repository, even if it looks like a host.
    (
        "localhost",
        "docker.io",
        "library/localhost",
        None,
        None,
        "docker.io/library/localhost",
        "localhost",
    ),
    (
        "localhost:5000",
        "docker.io",
        "library/localhost",
        "5000",
        None,
        "docker.io/library/localhost:5000",
        "localhost:5000",
    ),
    # Other registries: localhost, ports, IP addresses.
    ("localhost/x", "localhost", "x", None, None, "localhost/x", "localhost/x"),
    (
        "localhost:5000/x/y/z:tag",
        "localhost:5000",
        "x/y/z",
        "tag",
        None,
        "localhost:5000/x/y/z:tag",
        "localhost:5000/x/y/z:tag",
    ),
    ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", None, None, "127.0.0.1:5000/a", "127.0.0.1:5000/a"),
    ("[::1]:5000/a/b", "[::1]:5000", "a/b", None, None, "[::1]:5000/a/b", "[::1]:5000/a/b"),
    ("[fe80::1]/a", "[fe80::1]", "a", None, None, "[fe80::1]/a", "[fe80::1]/a"),
    (
        "example.com:443/team/app:1.0",
        "example.com:443",
        "team/app",
        "1.0",
        None,
        "example.com:443/team/app:1.0",
        "example.com:443/team/app:1.0",
    ),
    # Digests, and tag plus digest.
    (
        f"gcr.io/proj/img@{SHA}",
        "gcr.io",
        "proj/img",
        None,
        SHA,
        f"gcr.io/proj/img@{SHA}",
        f"gcr.io/proj/img@{SHA}",
    ),
    (
        f"gcr.io/proj/img:v1@{SHA}",
        "gcr.io",
        "proj/img",
        "v1",
        SHA,
        f"gcr.io/proj/img:v1@{SHA}",
        f"gcr.io/proj/img:v1@{SHA}",
    ),
    (
        f"alpine:3@{SHA}",
        "docker.io",
        "library/alpine",
        "3",
        SHA,
        f"docker.io/library/alpine:3@{SHA}",
        f"alpine:3@{SHA}",
    ),
    (
        f"alpine@sha512:{HEX512}",
        "docker.io",
        "library/alpine",
        None,
        f"sha512:{HEX512}",
        f"docker.io/library/alpine@sha512:{HEX512}",
        f"alpine@sha512:{HEX512}",
    ),
    # Nested paths and separators.
    (
        "reg.example.com/a/b/c/d",
        "reg.example.com",
        "a/b/c/d",
        None,
        None,
        "reg.example.com/a/b/c/d",
        "reg.example.com/a/b/c/d",
    ),
    ("a__b", "docker.io", "library/a__b", None, None, "docker.io/library/a__b", "a__b"),
    ("a-b", "docker.io", "library/a-b", None, None, "docker.io/library/a-b", "a-b"),
    ("a--b", "docker.io", "library/a--b", None, None, "docker.io/library/a--b", "a--b"),
    ("a---b", "docker.io", "library/a---b", None, None, "docker.io/library/a---b", "a---b"),
    ("a.b", "docker.io", "library/a.b", None, None, "docker.io/library/a.b", "a.b"),
    ("a_b", "docker.io", "library/a_b", None, None, "docker.io/library/a_b", "a_b"),
    (
        "r.io/x0.y_z-w__v/9",
        "r.io",
        "x0.y_z-w__v/9",
        None,
        None,
        "r.io/x0.y_z-w__v/9",
        "r.io/x0.y_z-w__v/9",
    ),
    # Tags: the longest allowed, and ones starting with '_' or a digit.
    (
        f"alpine:{TAG128}",
        "docker.io",
        "library/alpine",
        TAG128,
        None,
        f"docker.io/library/alpine:{TAG128}",
        f"alpine:{TAG128}",
    ),
    ("a:_x", "docker.io", "library/a", "_x", None, "docker.io/library/a:_x", "a:_x"),
    (
        "a:0-RC.1_b",
        "docker.io",
        "library/a",
        "0-RC.1_b",
        None,
        "docker.io/library/a:0-RC.1_b",
        "a:0-RC.1_b",
    ),
    # Registries may be upper case (the first component is then always a registry).
    ("Example.COM/x", "Example.COM", "x", None, None, "Example.COM/x", "Example.COM/x"),
    ("Foo/bar", "Foo", "bar", None, None, "Foo/bar", "Foo/bar"),
    ("LOCALHOST/x", "LOCALHOST", "x", None, None, "LOCALHOST/x", "LOCALHOST/x"),
]


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "canonical", "familiar"),
    VALID,
    ids=[_id(row[0]) for row in VALID],
)
def test_parse_valid(
    text: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    canonical: str,
    familiar: str,
) -> None:
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert ref.digest == (Digest.parse(digest) if digest is not None else None)
    assert ref == Reference(registry, repository, tag, ref.digest)


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "canonical", "familiar"),
    VALID,
    ids=[_id(row[0]) for row in VALID],
)
def test_str_and_familiar(
    text: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    canonical: str,
    familiar: str,
) -> None:
    ref = Reference.parse(text)
    assert str(ref) == canonical
    assert ref.familiar == familiar
    assert ref.name == f"{registry}/{repository}"
    # Both forms parse back to the same reference.
    assert Reference.parse(canonical) == ref
    assert Reference.parse(familiar) == ref


def test_references_are_hashable_values() -> None:
    a = Reference.parse("alpine:3")
    b = Reference.parse("docker.io/library/alpine:3")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, Reference.parse("alpine:4")}) == 2
    with pytest.raises(AttributeError):
        a.tag = "5"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("Index.Docker.IO", "docker.io"),
        ("DOCKER.IO", "docker.io"),
        ("docker.io:443", "docker.io:443"),
        ("ghcr.io", "ghcr.io"),
        ("Example.COM", "Example.COM"),
        ("localhost:5000", "localhost:5000"),
    ],
)
def test_canonical_registry(host: str, expected: str) -> None:
    assert canonical_registry(host) == expected


# ---------------------------------------------------------------------------------------------
# Invalid references
# ---------------------------------------------------------------------------------------------

# (input, part, text the message must contain besides the input itself)
INVALID: list[tuple[str, str, str]] = [
    ("", "reference", "is empty"),
    (" ", "reference", "whitespace"),
    ("\t", "reference", "whitespace"),
    ("alpine ", "reference", "whitespace"),
    (" alpine", "reference", "whitespace"),
    ("alpine\n", "reference", "whitespace"),
    ("al pine", "reference", "whitespace"),
    ("alpine:3 @" + SHA, "reference", "whitespace"),
    ("alpine\u00a0", "reference", "whitespace"),
    ("http://x/y", "reference", "URL scheme"),
    ("https://reg.io/team/app:1", "reference", "URL scheme"),
    ("Foo/Bar", "repository", "'Bar' must be lowercase"),
    ("a/B", "repository", "'a/B' must be lowercase"),
    ("ALPINE", "repository", "'library/ALPINE' must be lowercase"),
    ("reg.io/Team/app", "repository", "'Team/app' must be lowercase"),
    ("a//b", "repository", "empty path component"),
    ("a/", "repository", "empty path component"),
    ("/a", "repository", "empty path component"),
    ("reg.io/", "repository", "is empty"),
    ("-a", "repository", "'-a'"),
    ("a-", "repository", "'a-'"),
    ("_a", "repository", "'_a'"),
    ("a..b", "repository", "'a..b'"),
    ("a.-b", "repository", "'a.-b'"),
    ("a___b", "repository", "'a___b'"),
    ("a/.b", "repository", "'.b'"),
    ("caf\u00e9", "repository", "'caf\u00e9'"),
    ("a:b:c", "repository", "'a:b'"),
    (":tag", "repository", "is empty"),
    (f"@{SHA}", "repository", "is empty"),
    (HEX, "repository", "image id"),
    ("a:", "tag", "'' is invalid"),
    ("a:-x", "tag", "'-x' is invalid"),
    ("a:.x", "tag", "'.x' is invalid"),
    ("a:x/y", "registry", "'a:x' is not a valid host[:port]"),
    ("a:x+y", "tag", "'x+y' is invalid"),
    ("a:" + "t" * 129, "tag", "'" + "t" * 129 + "' is invalid"),
    ("a@sha256:abc", "digest", "sha256 needs 64 lowercase hex characters (got 3)"),
    ("a@md5:" + HEX[:32], "digest", "unsupported algorithm 'md5'"),
    ("a@SHA256:" + HEX, "digest", "bad algorithm 'SHA256'"),
    ("a@sha256:" + HEX.upper(), "digest", "lowercase hex"),
    ("a@", "digest", "expected <algorithm>:<hex>"),
    ("a@sha256", "digest", "expected <algorithm>:<hex>"),
    ("a@sha256:", "digest", "bad encoded part"),
    (f"a@{SHA}@{SHA}", "digest", "bad encoded part"),
    ("reg.io:99999/x", "registry", "port 99999 is out of range"),
    ("[::1]:65536/x", "registry", "port 65536 is out of range"),
    ("reg.io:/x", "registry", "'reg.io:' is not a valid host[:port]"),
    ("reg.io:abc/x", "registry", "'reg.io:abc' is not a valid host[:port]"),
    ("reg_io.com/x", "registry", "'reg_io.com' is not a valid host[:port]"),
    ("-reg.io/x", "registry", "'-reg.io' is not a valid host[:port]"),
    ("reg..io/x", "registry", "'reg..io' is not a valid host[:port]"),
    ("[::1/x", "registry", "'[::1' is not a valid host[:port]"),
    ("[zz::1]/x", "registry", "is not a valid host[:port]"),
    # The limit applies to the repository path only (distribution/reference v0.6.0), after
    # normalisation: "library/" counts, the registry host does not.
    ("reg.io/" + "a" * 256, "repository", "path " + "a" * 256 + " is 256 characters long"),
    ("a" * 248, "repository", "path library/" + "a" * 248 + " is 256 characters long"),
    ("a/" * 127 + "ab", "repository", "is 256 characters long; the limit is 255"),
    ("localhost:5000/" + "b" * 300 + ":t", "repository", "is 300 characters long"),
    # The host has a bound of its own, the DNS maximum (distribution/reference has none).
    ("a." * 126 + "io/x", "registry", "host is 254 characters long; the limit is 253"),
    ("a." * 126 + "io:5000/x", "registry", "host is 254 characters long; the limit is 253"),
    ("[" + "0:" * 130 + "1]/x", "registry", "host is 263 characters long; the limit is 253"),
]


@pytest.mark.parametrize(("text", "part", "fragment"), INVALID, ids=[_id(r[0]) for r in INVALID])
def test_parse_invalid(text: str, part: str, fragment: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    exc = info.value
    assert type(exc) is InvalidReferenceError
    assert exc.part == part
    assert exc.reference == text
    assert repr(text) in exc.message
    assert f": {part} " in exc.message
    assert fragment in exc.message


def test_invalid_errors_carry_hints() -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse("https://reg.io/x")
    assert info.value.hint is not None
    assert "https://" in info.value.hint
    assert "https://" in str(info.value)

    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse("a:-x")
    assert info.value.hint is not None
    assert "128" in info.value.hint

    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse("a@md5:" + HEX[:32])
    assert info.value.hint is not None
    assert "sha256" in info.value.hint


def test_valid_128_and_invalid_129_character_tags() -> None:
    assert Reference.parse("a:" + "t" * 128).tag == "t" * 128
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse("a:" + "t" * 129)
    assert info.value.part == "tag"


@pytest.mark.parametrize(
    "host", ["reg.io", "h" * 250 + ".io", "[fe80::1]:5000", "a." * 100 + "example.com"]
)
def test_name_length_limit_counts_the_path_only(host: str) -> None:
    ok = f"{host}/{'a' * 255}"
    assert Reference.parse(ok).name == ok
    # Tags and digests do not count towards the limit either.
    assert Reference.parse(f"{ok}:{TAG128}@{SHA}").name == ok
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(f"{host}/{'a' * 256}")
    assert info.value.part == "repository"
    assert info.value.message.endswith("is 256 characters long; the limit is 255")
    assert info.value.hint is not None
    assert "registry host does not count" in info.value.hint


def test_longest_name_is_bounded() -> None:
    host = "a." * 125 + "iox"
    assert len(host) == 253
    ref = Reference.parse(f"{host}:65535/{'p' * 255}:{TAG128}@sha512:{HEX512}")
    assert len(ref.name) == 253 + len(":65535/") + 255 == 515


def test_name_length_limit_counts_library_prefix() -> None:
    # Docker Hub names are measured after normalisation, as ParseNormalizedNamed does.
    assert Reference.parse("a" * 247).repository == "library/" + "a" * 247
    with pytest.raises(InvalidReferenceError):
        Reference.parse("a" * 248)
    assert Reference.parse("docker.io/x/" + "a" * 253).repository == "x/" + "a" * 253


def test_port_boundaries() -> None:
    assert Reference.parse("reg.io:65535/x").registry == "reg.io:65535"
    assert Reference.parse("reg.io:0/x").registry == "reg.io:0"
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse("reg.io:65536/x")
    assert info.value.part == "registry"


def test_huge_port_is_an_invalid_reference() -> None:
    # BUG: the port is converted with int(), which raises a plain ValueError ("Exceeds the limit
    # (4300 digits) for integer string conversion") for very long digit strings, instead of the
    # InvalidReferenceError every other bad input gets.
    text = "reg.io:" + "9" * 5000 + "/x"
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert type(info.value) is InvalidReferenceError
    assert info.value.part == "registry"


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(None)  # type: ignore[arg-type]
    assert info.value.part == "reference"


# ---------------------------------------------------------------------------------------------
# parse_repository, identifier, with_tag, with_digest, in_repository
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", "docker.io/library/alpine"),
        ("user/repo", "docker.io/user/repo"),
        ("localhost:5000/a/b", "localhost:5000/a/b"),
    ],
)
def test_parse_repository_accepts_names(text: str, expected: str) -> None:
    ref = Reference.parse_repository(text)
    assert str(ref) == expected
    assert ref.tag is None
    assert ref.digest is None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("alpine:3", "docker.io/library/alpine"),
        (f"alpine@{SHA}", "docker.io/library/alpine"),
        (f"reg.io/a/b:1@{SHA}", "reg.io/a/b"),
    ],
)
def test_parse_repository_rejects_tags_and_digests(text: str, name: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse_repository(text)
    exc = info.value
    assert type(exc) is InvalidReferenceError
    assert exc.part == "reference"
    assert repr(text) in exc.message
    assert "tag or digest" in exc.message
    assert exc.hint == f"use {name}"


def test_parse_repository_propagates_grammar_errors() -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse_repository("a//b")
    assert info.value.part == "repository"


@pytest.mark.parametrize(
    ("text", "identifier"),
    [
        ("alpine", DEFAULT_TAG),
        ("alpine:3.20", "3.20"),
        (f"alpine@{SHA}", SHA),
        (f"alpine:3.20@{SHA}", SHA),
    ],
)
def test_identifier(text: str, identifier: str) -> None:
    assert Reference.parse(text).identifier == identifier


def test_defaults() -> None:
    assert DEFAULT_REGISTRY == "docker.io"
    assert DEFAULT_TAG == "latest"
    assert Reference.parse("alpine").tag is None  # latest is not filled in by parsing


def test_with_tag() -> None:
    ref = Reference.parse(f"reg.io/a/b:1@{SHA}")
    retagged = ref.with_tag("2")
    assert retagged == Reference("reg.io", "a/b", "2", None)
    assert str(retagged) == "reg.io/a/b:2"
    assert ref.tag == "1"  # the original is unchanged
    untagged = ref.with_tag(None)
    assert untagged == Reference("reg.io", "a/b")
    assert untagged.identifier == DEFAULT_TAG


def test_with_tag_accepts_a_digest_tag_form() -> None:
    digest = Digest.parse(SHA)
    ref = Reference.parse("reg.io/a").with_tag(digest.tag_form)
    assert ref.tag == f"sha256-{HEX}"
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a b", "a/b", "a:b", "t" * 129])
def test_with_tag_rejects_invalid_tags(tag: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse("reg.io/a").with_tag(tag)
    assert type(info.value) is InvalidReferenceError
    assert info.value.part == "tag"
    assert repr(tag) in info.value.message


def test_with_digest() -> None:
    ref = Reference.parse("reg.io/a/b:1")
    digest = Digest.parse(SHA)
    pinned = ref.with_digest(digest)
    assert pinned == Reference("reg.io", "a/b", None, digest)
    assert str(pinned) == f"reg.io/a/b@{SHA}"
    assert pinned.identifier == SHA
    other = pinned.with_digest(Digest.parse(f"sha256:{HEX2}"))
    assert other.digest == Digest.parse(f"sha256:{HEX2}")
    assert pinned.with_digest(None) == Reference("reg.io", "a/b")


def test_in_repository_keeps_tag_and_digest() -> None:
    ref = Reference.parse(f"alpine:3@{SHA}")
    moved = ref.in_repository("reg.example.com", "mirror/alpine")
    assert moved == Reference("reg.example.com", "mirror/alpine", "3", Digest.parse(SHA))
    assert str(moved) == f"reg.example.com/mirror/alpine:3@{SHA}"
    assert moved.familiar == str(moved)
    assert Reference.parse(str(moved)) == moved


def test_in_repository_normalises_and_validates() -> None:
    ref = Reference.parse("example.com/app:1")
    assert ref.in_repository("index.docker.io", "alpine") == Reference(
        "docker.io", "library/alpine", "1"
    )
    with pytest.raises(InvalidReferenceError) as caught:
        ref.in_repository("reg.io", "Bad//Repo")
    assert caught.value.part == "repository"


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------

_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_ALNUM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_SEPARATORS = st.sampled_from([".", "_", "__", "-", "--", "---"])
_HOST_CHARS = string.ascii_letters + string.digits


@st.composite
def domain_components(draw: st.DrawFn, *, upper: bool = False) -> str:
    """``[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]``, optionally starting upper case."""
    first = draw(st.sampled_from(string.ascii_uppercase if upper else _HOST_CHARS))
    middle = draw(st.text(alphabet=_HOST_CHARS + "-", max_size=6))
    if not middle and draw(st.booleans()):
        return first
    return first + middle + draw(st.sampled_from(_HOST_CHARS))


_PORT = st.integers(min_value=0, max_value=65535).map(str)
_TAGS = st.builds(
    str.__add__,
    st.sampled_from(_HOST_CHARS + "_"),
    st.text(alphabet=_HOST_CHARS + "_.-", max_size=127),
)
_DIGESTS = st.binary(max_size=32).map(
    lambda data: Digest("sha256", hashlib.sha256(data).hexdigest())
)


@st.composite
def path_components(draw: st.DrawFn) -> str:
    out = draw(_ALNUM)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        out += draw(_SEPARATORS) + draw(_ALNUM)
    return out


REPOSITORIES = st.lists(path_components(), min_size=1, max_size=4).map("/".join)


@st.composite
def registry_hosts(draw: st.DrawFn) -> str:
    """A host[:port] that Docker's rule recognises as a registry when written first."""
    kind = draw(st.sampled_from(["dotted", "localhost", "ipv4", "ipv6", "upper", "port"]))
    if kind == "port":  # a single lowercase label is a registry only with a port
        return draw(domain_components()) + ":" + draw(_PORT)
    if kind == "dotted":
        host = ".".join(draw(st.lists(domain_components(), min_size=2, max_size=4)))
    elif kind == "localhost":
        host = "localhost"
    elif kind == "ipv4":
        host = ".".join(str(draw(st.integers(0, 255))) for _ in range(4))
    elif kind == "ipv6":
        host = draw(st.sampled_from(["[::1]", "[fe80::1]", "[2001:DB8::42]", "[::]"]))
    else:
        host = draw(domain_components(upper=True))
    if draw(st.booleans()):
        host += ":" + draw(_PORT)
    return host


def _normalise(host: str, repository: str) -> tuple[str, str]:
    """Docker Hub normalisation, written independently of the code under test."""
    if host.lower() in _HUB_ALIASES:
        host = "docker.io"
        if "/" not in repository:
            repository = "library/" + repository
    return host, repository


@st.composite
def canonical_references(draw: st.DrawFn) -> Reference:
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        host, repository = _normalise("docker.io", draw(REPOSITORIES))
    else:
        host, repository = _normalise(draw(registry_hosts()), draw(REPOSITORIES))
    tag = draw(st.none() | _TAGS)
    digest = draw(st.none() | _DIGESTS)
    return Reference(host, repository, tag, digest)


@st.composite
def written_references(draw: st.DrawFn) -> tuple[str, Reference | None]:
    """Reference text as people write it, with the Reference it means.

    The expected Reference is None when the text is ambiguous: without a registry, a first path
    component containing '.' is taken as a registry host (and may not be a valid one).
    """
    kind = draw(st.sampled_from(["none", "hub", "registry"]))
    repository = draw(REPOSITORIES)
    if kind == "none":
        host, prefix = "docker.io", ""
    elif kind == "hub":
        host = draw(
            st.sampled_from(["docker.io", "index.docker.io", "registry-1.docker.io", "Docker.IO"])
        )
        prefix = host + "/"
    else:
        host = draw(registry_hosts())
        prefix = host + "/"
    tag = draw(st.none() | _TAGS)
    digest = draw(st.none() | _DIGESTS)
    text = prefix + repository
    if tag is not None:
        text += ":" + tag
    if digest is not None:
        text += "@" + str(digest)
    first = repository.split("/")[0]
    if kind == "none" and "/" in repository and ("." in first or first == "localhost"):
        return text, None
    return text, Reference(*_normalise(host, repository), tag, digest)


@settings(max_examples=300, deadline=None)
@given(canonical_references())
def test_property_canonical_round_trip(ref: Reference) -> None:
    text = str(ref)
    assert Reference.parse(text) == ref
    assert str(Reference.parse(text)) == text


@settings(max_examples=300, deadline=None)
@given(written_references())
def test_property_written_references_parse_as_meant(case: tuple[str, Reference | None]) -> None:
    text, expected = case
    if expected is None:
        return
    assert Reference.parse(text) == expected


@settings(max_examples=300, deadline=None)
@given(written_references())
def test_property_str_is_a_fixed_point(case: tuple[str, Reference | None]) -> None:
    text, expected = case
    try:
        parsed = Reference.parse(text)
    except InvalidReferenceError:
        assert expected is None  # only ambiguous text may turn out invalid
        return
    canonical = str(parsed)
    assert Reference.parse(canonical) == parsed
    assert str(Reference.parse(canonical)) == canonical


@settings(max_examples=300, deadline=None)
@given(canonical_references())
def test_property_familiar_parses_back(ref: Reference) -> None:
    # Docker's familiar form is ambiguous when a Docker Hub namespace itself looks like a
    # registry ("docker.io/foo.bar/x" -> "foo.bar/x"); Docker Hub namespaces never do.
    if ref.registry == DEFAULT_REGISTRY:
        first = ref.repository.split("/")[0]
        if "." in first or first == "localhost":
            return
    assert Reference.parse(ref.familiar) == ref
    assert len(ref.familiar) <= len(str(ref))


_REFERENCE_ALPHABET = "abcAZ09:/@._-[]sh256 \t"


@settings(max_examples=300, deadline=None)
@given(st.text() | st.text(alphabet=_REFERENCE_ALPHABET, max_size=60))
def test_property_arbitrary_text_only_raises_invalid_reference_error(text: str) -> None:
    outcome = _parse_or_error(text)
    if isinstance(outcome, Reference):
        assert str(Reference.parse(str(outcome))) == str(outcome)
    else:
        # Exactly this type: other ValueErrors (IndexError, int() overflow...) must not leak.
        assert type(outcome) is InvalidReferenceError
        assert outcome.part in PARTS
        assert outcome.reference == text


def _parse_or_error(text: str) -> Reference | InvalidReferenceError:
    try:
        return Reference.parse(text)
    except InvalidReferenceError as exc:
        return exc
