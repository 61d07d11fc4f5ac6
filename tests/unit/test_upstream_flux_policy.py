"""Flux's own image policy test tables, run against imgctl.scan.policy.ImagePolicy.

Upstream:
- github.com/fluxcd/image-reflector-controller, commit debe2aaa3a98ad3ca69e178638402a5a0feec4a6
  (main, 2026-06-23): internal/policy/semver_test.go, alphabetical_test.go, numerical_test.go,
  filter_test.go and factory_test.go. Its go.mod requires github.com/fluxcd/pkg/version v0.16.0
  and github.com/Masterminds/semver/v3 v3.5.0.
- github.com/fluxcd/pkg, tag version/v0.16.0, commit 3f9f27f0ba23cf7953c25b7eba7ccac1b525f60e:
  version/version_test.go (TestParseVersion, TestSort; the Repo*/Flux* tests are about Flux's
  own release numbers and do not apply).

Every row is carried over as written. How the rows map onto imgctl:
- The policy package's orders "ASC" / "DESC" are what Flux's factory makes of the spec's
  ``asc`` / ``desc`` (strings.ToUpper); "" is an order left out. imgctl reads the spec's
  lowercase values (``ImagePolicy.from_spec``).
- Where Flux's Latest returns an error because no tag qualifies (an empty list, nothing in
  range), imgctl's ``latest`` returns None; a tag a numerical policy cannot read is a
  PolicyError in both.
- TestRegexFilter compares the filtered (extracted) values, sorted: ``_candidates`` gives them.
To follow an upstream change, diff those files against the commits above.
"""

from __future__ import annotations

from typing import Any

import pytest

from imgctl.errors import PolicyError, UsageError
from imgctl.scan._semver import compile_constraint as _compile_constraint
from imgctl.scan._semver import parse_tag as _parse_tag
from imgctl.scan.policy import ImagePolicy

SPEC_ORDER = {"": None, "ASC": "asc", "DESC": "desc", "invalid": "invalid"}


def policy(kind: str, order: str = "", **body: str) -> ImagePolicy:
    spec: dict[str, Any] = dict(body)
    if SPEC_ORDER[order] is not None:
        spec["order"] = SPEC_ORDER[order]
    return ImagePolicy.from_spec({kind: spec})


# ---------------------------------------------------------------------------------------------
# semver_test.go
# ---------------------------------------------------------------------------------------------

# TestNewSemVer: (label, ranges, expectErr)
NEW_SEMVER = [
    ("With valid range", ["1.0.x", "^1.0", "=1.0.0", "~1.0", ">=1.0", ">0,<2.0"], False),
    ("With invalid range", ["1.0.0p", "1x", "x1", "-1", "a", ""], True),
]


@pytest.mark.parametrize(
    ("label", "range_"), [(label, r) for label, ranges, _ in NEW_SEMVER for r in ranges]
)
def test_new_semver(label: str, range_: str) -> None:
    expect_err = dict((lbl, err) for lbl, _, err in NEW_SEMVER)[label]
    if expect_err:
        with pytest.raises(UsageError, match="invalid constraint"):
            policy("semver", range=range_)
    else:
        assert policy("semver", range=range_).range == range_


# TestSemVer_Latest: (label, range, versions, expectedVersion, expectErr)
SEMVER_LATEST = [
    ("With valid format", "1.0.x", ["1.0.0", "1.0.0.1", "1.0.0p", "1.0.1", "1.2.0", "0.1.0"],
     "1.0.1", False),
    ("With valid format prefix", "1.0.x", ["v1.2.3", "v1.0.0", "v0.1.0"], "v1.0.0", False),
    ("With invalid format prefix", "1.0.x", ["b1.2.3", "b1.0.0", "b0.1.0"], "", True),
    ("With empty list", "1.0.x", [], "", True),
    ("With non-matching version list", "1.0.x", ["1.2.0"], "", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "range_", "versions", "expected", "expect_err"),
    SEMVER_LATEST,
    ids=[row[0] for row in SEMVER_LATEST],
)
def test_semver_latest(
    label: str, range_: str, versions: list[str], expected: str, expect_err: bool
) -> None:
    latest = policy("semver", range=range_).latest(versions)
    assert latest == (None if expect_err else expected)


# ---------------------------------------------------------------------------------------------
# alphabetical_test.go, numerical_test.go
# ---------------------------------------------------------------------------------------------

# TestNewAlphabetical and TestNewNumerical: (label, order, expectErr)
NEW_ORDERED = [
    ("With valid empty order", "", False),
    ("With valid asc order", "ASC", False),
    ("With valid desc order", "DESC", False),
    ("With invalid order", "invalid", True),
]


@pytest.mark.parametrize("kind", ["alphabetical", "numerical"])
@pytest.mark.parametrize(("label", "order", "expect_err"), NEW_ORDERED)
def test_new_ordered_policy(kind: str, label: str, order: str, expect_err: bool) -> None:
    if expect_err:
        with pytest.raises(UsageError, match='must be "asc" or "desc"'):
            policy(kind, order)
    else:
        assert policy(kind, order).order == SPEC_ORDER[order]


UBUNTU_CALVER = ["16.04", "16.04.1", "16.10", "20.04", "20.10"]
UBUNTU_NAMES = ["xenial", "yakkety", "zesty", "artful", "bionic"]
UNIX_TIMESTAMPS = ["1606234201", "1606364286", "1606334092", "1606334284", "1606334201"]
RFC3339 = [
    "2021-01-08T21-18-21Z",
    "2020-05-08T21-18-21Z",
    "2021-01-08T19-20-00Z",
    "1990-01-08T00-20-00Z",
    "2023-05-08T00-20-00Z",
]

# TestAlphabetical_Latest: (label, order, versions, expectedVersion, expectErr)
ALPHABETICAL_LATEST = [
    ("With Ubuntu CalVer", "", UBUNTU_CALVER, "20.10", False),
    ("With Ubuntu CalVer descending", "DESC", UBUNTU_CALVER, "16.04", False),
    ("With Ubuntu code names", "", UBUNTU_NAMES, "zesty", False),
    ("With Ubuntu code names descending", "DESC", UBUNTU_NAMES, "artful", False),
    ("With Timestamps", "", UNIX_TIMESTAMPS, "1606364286", False),
    ("With Unix Timestamps desc", "DESC", UNIX_TIMESTAMPS, "1606234201", False),
    ("With Unix Timestamps prefix", "", [f"rel-{t}" for t in UNIX_TIMESTAMPS], "rel-1606364286",
     False),
    ("With RFC3339", "", RFC3339, "2023-05-08T00-20-00Z", False),
    ("With RFC3339 desc", "DESC", RFC3339, "1990-01-08T00-20-00Z", False),
    ("Empty version list", "", [], "", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "order", "versions", "expected", "expect_err"),
    ALPHABETICAL_LATEST,
    ids=[row[0] for row in ALPHABETICAL_LATEST],
)
def test_alphabetical_latest(
    label: str, order: str, versions: list[str], expected: str, expect_err: bool
) -> None:
    alphabetical = policy("alphabetical", order)
    for listing in (versions, list(reversed(versions))):
        assert alphabetical.latest(listing) == (None if expect_err else expected)


# TestNumerical_Latest: (label, order, versions, expectedVersion, expectErr). Upstream shuffles
# the lists; imgctl's answer does not depend on the order, checked both ways.
NUMERICAL_LATEST = [
    ("With unordered list of integers ascending", "",
     ["-62", "-88", "73", "72", "15", "16", "15", "29", "-33", "-91"], "73", False),
    ("With unordered list of integers descending", "DESC",
     ["5", "-8", "-78", "25", "70", "-4", "80", "92", "-20", "-24"], "-78", False),
    ("With unordered list of floats ascending", "",
     ["47.40896403322944", "-27.8520927455902", "-27.930666514224427", "-31.352485948094568",
      "-50.41072694704882", "-21.962849842263736", "24.71884721436865", "-39.99177354004344",
      "53.47333823144817", "3.2008658570411086"], "53.47333823144817", False),
    ("With unordered list of floats descending", "DESC",
     ["-65.27202780220686", "57.82948329142309", "22.40184684363291", "-86.36934305697784",
      "-90.29082099756083", "-12.041712603564264", "77.70488240399305", "-38.98425003883552",
      "16.06867070412028", "53.735674335181216"], "-90.29082099756083", False),
    ("With Unix Timestamps ascending", "", UNIX_TIMESTAMPS, "1606364286", False),
    ("With Unix Timestamps descending", "DESC", UNIX_TIMESTAMPS, "1606234201", False),
    ("With single value ascending", "", ["1"], "1", False),
    ("With single value descending", "DESC", ["1"], "1", False),
    ("With invalid numerical value", "", ["0", "1a", "b"], "", True),
    ("Empty version list", "", [], "", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "order", "versions", "expected", "expect_err"),
    NUMERICAL_LATEST,
    ids=[row[0] for row in NUMERICAL_LATEST],
)
def test_numerical_latest(
    label: str, order: str, versions: list[str], expected: str, expect_err: bool
) -> None:
    numerical = policy("numerical", order)
    for listing in (versions, list(reversed(versions))):
        if expect_err and versions:
            with pytest.raises(PolicyError, match="is not a number"):
                numerical.latest(listing)
        else:
            assert numerical.latest(listing) == (None if expect_err else expected)


# ---------------------------------------------------------------------------------------------
# filter_test.go, factory_test.go
# ---------------------------------------------------------------------------------------------

COMPLEX = [
    "123-123.123.abcd123-debug",
    "123-123.123.abcd123",
    "123-123.123.abcd456-debug",
    "123-123.123.abcd456",
]

# TestRegexFilter: (label, tags, pattern, extract, expected)
REGEX_FILTER = [
    ("none", ["a"], "", "", ["a"]),
    ("valid pattern", ["ver1", "ver2", "ver3", "rel1"], "^ver", "", ["ver1", "ver2", "ver3"]),
    ("valid pattern with capture group", ["ver1", "ver2", "ver3", "rel1"], r"ver(\d+)", "$1",
     ["1", "2", "3"]),
    ("valid pattern (complex regex 1)", COMPLEX, r"^(123-[0-9]+\.[0-9]+\.[a-z0-9]+-debug)", "",
     ["123-123.123.abcd123-debug", "123-123.123.abcd456-debug"]),
    ("valid pattern with capture group (complex regex 2)", COMPLEX,
     r"^(?P<tag>123-[0-9]+\.[0-9]+\.[a-z0-9]+[^-debug])", "$tag",
     ["123-123.123.abcd123", "123-123.123.abcd456"]),
    ("valid pattern with capture group (complex regex 3)", COMPLEX,
     r"^(?P<tag>123-[0-9]+\.[0-9]+\.[a-z0-9]+$)", "$tag",
     ["123-123.123.abcd123", "123-123.123.abcd456"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "tags", "pattern", "extract", "expected"),
    REGEX_FILTER,
    ids=[row[0] for row in REGEX_FILTER],
)
def test_regex_filter(
    label: str, tags: list[str], pattern: str, extract: str, expected: list[str]
) -> None:
    filtered = ImagePolicy.from_spec({"alphabetical": {}}, {"pattern": pattern, "extract": extract})
    assert sorted({value for value, _ in filtered._candidates(tags)}) == expected


def test_factory_policer_from_spec() -> None:
    with pytest.raises(UsageError, match="names no policy kind"):
        ImagePolicy.from_spec({})
    assert ImagePolicy.from_spec({"semver": {"range": "1.0.x"}}).kind == "semver"
    assert ImagePolicy.from_spec({"alphabetical": {}}).kind == "alphabetical"
    with pytest.raises(UsageError, match='invalid constraint "\\*-\\*"'):
        ImagePolicy.from_spec({"semver": {"range": "*-*"}})


# ---------------------------------------------------------------------------------------------
# fluxcd/pkg version/version_test.go
# ---------------------------------------------------------------------------------------------

# TestParseVersion: (version, err)
PARSE_VERSION = [
    ("v1.2.3", False),
    ("v2025.07.03", False),
    ("v1.0", True),
    ("v1", True),
    ("v1.2.beta", True),
    ("v1.2-5", True),
    ("v1.2-beta5", True),
    ("\nv1.2", True),
    ("v1.2.0-x.Y.0+metadata", False),
    ("v1.2.0-x.Y.0+metadata-width-hypen", False),
    ("v1.2.3-rc1-with-hypen", False),
    ("v1.2.3.4", True),
]


@pytest.mark.parametrize(("text", "err"), PARSE_VERSION, ids=[ascii(r[0]) for r in PARSE_VERSION])
def test_parse_version(text: str, err: bool) -> None:
    assert (_parse_tag(text) is None) is err
    # A tag that parses is a candidate of the widest range that admits pre-releases.
    latest = ImagePolicy("semver", range=">=0.0.0-0").latest([text])
    assert latest == (None if err else text)


# TestSort: the constraint, the input and the sorted result (descending, ties as listed).
SORT_CONSTRAINT = ">= 1.2.0, < 1.3.0"
SORT_INPUT = [
    "v1.2.0",
    "v1.2.3",
    "v1.3.0",
    "1.2.4",
    "v1.1.0",
    "something-invalid",
    "v1.2.4",
    "another-invalid",
    "1.2.4",
]
SORT_OUTPUT = ["1.2.4", "v1.2.4", "1.2.4", "v1.2.3", "v1.2.0"]


def test_sort() -> None:
    # imgctl has no Sort; the same constraint and reading admit the same tags, and latest is
    # the head of the sorted list, ties broken by imgctl's rule (the greatest tag, v1.2.4).
    constraint = _compile_constraint(SORT_CONSTRAINT)
    admitted = [t for t in SORT_INPUT if (v := _parse_tag(t)) is not None and constraint.allows(v)]
    assert sorted(admitted) == sorted(SORT_OUTPUT)
    latest = ImagePolicy("semver", range=SORT_CONSTRAINT).latest(SORT_INPUT)
    head = _parse_tag(SORT_OUTPUT[0])
    assert latest == "v1.2.4"
    assert head is not None
    assert _parse_tag(latest) == head
