"""Tests for imgctl.scan.policy: Flux ImagePolicy semantics (semver, alphabetical, numerical)."""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgctl.errors import ImgctlError, PolicyError, UsageError
from imgctl.scan.policy import ImagePolicy


def semver(range_: str, tags: list[str]) -> str | None:
    return ImagePolicy("semver", range=range_).latest(tags)


# ---------------------------------------------------------------------------------------------
# semver: selection over tag lists
# ---------------------------------------------------------------------------------------------

# (range, tags, expected latest)
SEMVER_CASES: list[tuple[str, list[str], str | None]] = [
    # Flux's documented example (its test rows are in test_upstream_flux_policy.py).
    ("5.0.x", ["5.0.0", "5.0.1", "5.1.0"], "5.0.1"),
    # Comparisons, AND by space or comma, OR.
    (">=1.0.0 <2.0.0", ["0.9.0", "1.0.0", "1.9.9", "2.0.0", "3.0.0"], "1.9.9"),
    (">=1.0.0, <2.0.0", ["0.9.0", "1.0.0", "1.9.9", "2.0.0"], "1.9.9"),
    (">= 1.0.0 , < 2.0.0", ["1.0.0", "1.9.9", "2.0.0"], "1.9.9"),
    (">0,<2.0", ["0.0.0", "0.0.1", "1.9.0", "2.0.0"], "1.9.0"),
    ("<1.0.0 || >=3.0.0", ["0.9.0", "2.0.0", "2.9.9"], "0.9.0"),
    ("<1.0.0 || >=3.0.0", ["0.9.0", "2.0.0", "3.1.0"], "3.1.0"),
    (">=1.1, <2, !=1.2.3 || > 3", ["1.2.3", "1.1.0", "3.1.2"], "1.1.0"),
    ("!=2.0.0", ["1.0.0", "2.0.0"], "1.0.0"),
    ("=1.2.3", ["1.2.3", "1.2.4"], "1.2.3"),
    ("1.2.3", ["1.2.3", "1.2.4"], "1.2.3"),
    ("=> 1.2, =< 1.4", ["1.1.0", "1.3.0", "1.4.9", "1.5.0"], "1.4.9"),
    # Caret, tilde, x-ranges, wildcards.
    ("^1.2", ["1.1.0", "1.2.0", "1.9.0", "2.0.0"], "1.9.0"),
    ("^1.2.3", ["1.2.2", "1.2.3", "1.8.9", "2.0.0"], "1.8.9"),
    ("^0.2.3", ["0.2.2", "0.2.9", "0.3.0"], "0.2.9"),
    ("^0.0.3", ["0.0.3", "0.0.4"], "0.0.3"),
    ("^0", ["0.0.1", "0.9.9", "1.0.0"], "0.9.9"),
    ("~1.2.3", ["1.2.2", "1.2.3", "1.2.9", "1.3.0"], "1.2.9"),
    ("~> 1.2", ["1.2.0", "1.2.9", "1.3.0"], "1.2.9"),
    ("~1", ["1.0.0", "1.9.9", "2.0.0"], "1.9.9"),
    ("1.x", ["0.9.0", "1.0.0", "1.9.0", "2.0.0"], "1.9.0"),
    ("1.X", ["1.0.0", "1.9.0", "2.0.0"], "1.9.0"),
    ("1.2.*", ["1.2.0", "1.2.7", "1.3.0"], "1.2.7"),
    ("1", ["1.0.0", "1.5.0", "2.0.0"], "1.5.0"),
    ("*", ["1.0.0", "10.0.0", "9.9.9"], "10.0.0"),
    ("x", ["0.1.0", "3.0.0"], "3.0.0"),
    ("<=1.x", ["1.9.0", "2.0.0"], "1.9.0"),
    # Hyphen ranges: inclusive; a partial upper end means the whole x-range.
    ("1.2 - 1.4.5", ["1.1.9", "1.2.0", "1.4.5", "1.4.6"], "1.4.5"),
    ("1.2 - 1.4", ["1.2.0", "1.4.5", "1.5.0"], "1.4.5"),
    ("1.2.3 - 2.3.4 || 5 - 6", ["2.3.4", "6.9.9", "7.0.0"], "6.9.9"),
    # No spaces: "1.1-3" is 1.1.x from pre-release 1.1.0-3 on, not the range 1.1 - 3.
    ("1.1-3", ["1.1.0-2", "1.1.5", "2.0.0"], "1.1.5"),
    # A leading "v" on tags and in ranges.
    ("v1.2.x", ["v1.2.0", "1.2.5", "v1.3.0"], "1.2.5"),
    (">=v1.0.0", ["v0.9.0", "v1.5.0"], "v1.5.0"),
    ("^v2", ["v2.0.0", "v2.1.0", "v3.0.0"], "v2.1.0"),
    # Pre-releases: out unless the AND group names one.
    (">=1.2.3", ["1.2.3", "1.2.4-beta.1"], "1.2.3"),
    (">=1.2.3-0", ["1.2.3", "1.2.4-beta.1"], "1.2.4-beta.1"),
    (">=1.0.0-0 <2.0.0-0", ["1.4.0", "1.5.0-rc.1", "2.0.0-rc.1"], "1.5.0-rc.1"),
    # Pre-releases included, 2.0.0-rc.1 precedes 2.0.0: Masterminds semantics, not node-semver's.
    (">=1.0.0-0 <2.0.0", ["1.4.0", "1.5.0-rc.1", "2.0.0-rc.1"], "2.0.0-rc.1"),
    (">=1.0.0 <2.0.0-0", ["1.4.0", "1.5.0-rc.1"], "1.5.0-rc.1"),
    (">=1.0.0-0 <2.0.0 || >=3", ["1.0.0", "3.0.0-rc.1"], "1.0.0"),
    ("*", ["1.0.0", "2.0.0-rc.1"], "1.0.0"),
    ("*", ["2.0.0-rc.1"], None),
    ("*-0", ["1.0.0", "2.0.0-rc.1"], "2.0.0-rc.1"),
    ("~1.2.3-beta.2", ["1.2.3-beta.1", "1.2.4-beta.2", "1.3.0-beta.1"], "1.2.4-beta.2"),
    (">=1.0.0-0", ["1.0.0-rc.1", "1.0.0"], "1.0.0"),
    (">=1.0.0-0", ["1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-rc.9"], "1.0.0-rc.10"),
    (">=0.0.0-0", ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7"], "1.0.0-alpha.1"),
    # Build metadata is ignored for matching and ordering.
    ("1.0.0", ["1.0.0+build.1"], "1.0.0+build.1"),
    ("<=1.0.0", ["1.0.0+20240101", "1.0.1"], "1.0.0+20240101"),
    (">=1.0.0-0", ["1.0.0-rc.1+b", "1.0.0-rc.1+a", "0.9.0"], "1.0.0-rc.1+b"),
    # Tags Flux does not read as versions are ignored, never an error.
    ("*", ["latest", "main-abc123", "sha256-abc.sig", "1.2.0"], "1.2.0"),
    ("*", ["v1.2", "1", "2.0", "v3", "1.2-rc1", "v2025.07"], None),  # fewer than 3 dot parts
    ("*", ["1.2.3-01", "1.2.3-rc.01", "v2025.07.03-01"], None),  # pre-release leading zero
    ("*", ["V1.2.3", "vv1.2.3", " 1.2.3", "1.2.3 ", "1.2.3\n"], None),
    ("*", ["1.2.3.4", "1.2.3-", "1.2.3+", "1.2.3-a..b", "1.2.3+a..b", "1.2.3-é"], None),
    ("*", ["18446744073709551616.0.0", "18446744073709551615.0.0"], "18446744073709551615.0.0"),
    (
        "*",
        ["1.2.000000000000000000000000000000000000009"],
        "1.2.000000000000000000000000000000000000009",
    ),
    ("*", ["latest"], None),
    # Leading zeros (CalVer): fluxcd/pkg version v0.16.0 reads them as numbers.
    ("*", ["v2025.07.03", "v2025.06.30", "v2025.7.2"], "v2025.07.03"),
    ("*", ["2025.07.03", "2025.10.01", "2025.9.30"], "2025.10.01"),
    (
        ">=2025.7.0 <2025.8.0",
        ["v2025.06.30", "v2025.07.03", "v2025.07.31", "v2025.08.01"],
        "v2025.07.31",
    ),
    ("~2025.7", ["v2025.07.03", "v2025.07.09", "v2025.08.01"], "v2025.07.09"),
    (">=2025.2.3-0", ["v2025.02.03-rc.1", "v2025.02.02"], "v2025.02.03-rc.1"),
    ("*", ["01.2.3", "1.02.3", "1.2.03"], "1.2.03"),  # all 1.2.3: the greatest tag wins
    ("*", ["007.0.0", "6.99.99"], "007.0.0"),
    # Three dot parts need not be MAJOR.MINOR.PATCH: the dots may sit in the pre-release or
    # the build metadata, and NewVersion fills in the rest (1.2-rc.1 is 1.2.0-rc.1).
    (">=1.2.0-0", ["1.2-rc.1", "1.1.9"], "1.2-rc.1"),
    ("*", ["1+build.5.6", "0.9.0"], "1+build.5.6"),  # 1.0.0, a release
    (">=1.0.0-0 <1.0.0", ["1-a.b.c", "0.9.0"], "1-a.b.c"),
    ("*", ["v1.2+sha.abc", "1.1.9"], "v1.2+sha.abc"),
    # ^* is 0.0.0 with only its major dirty: Masterminds' code, which Flux runs, admits 0.0.0
    # alone (its comment says "any").
    ("^*", ["0.0.0", "1.2.3", "2.0.0-rc.1"], "0.0.0"),
    ("^*", ["0.0.1", "0.1.0", "1.0.0"], None),
]


@pytest.mark.parametrize(("range_", "tags", "expected"), SEMVER_CASES)
def test_semver_latest(range_: str, tags: list[str], expected: str | None) -> None:
    assert semver(range_, tags) == expected
    assert semver(range_, list(reversed(tags))) == expected


# Single-version checks adapted from Masterminds/semver's constraint tests, versions written in
# full (its verbatim rows are in test_upstream_masterminds_semver.py): (range, version, allowed).
CHECKS: list[tuple[str, str, bool]] = [
    (">11", "12.0.0", True),
    ("0.0.x", "0.0.7", True),
    ("1.5.0 - 4.5", "4.5.9", True),
    ("1.5.0 - 4.5", "4.6.0", False),
]


@pytest.mark.parametrize(("range_", "version", "allowed"), CHECKS)
def test_semver_constraint_check(range_: str, version: str, allowed: bool) -> None:
    assert semver(range_, [version]) == (version if allowed else None)


# Semver 2.0.0, item 11: each version has lower precedence than the next.
PRECEDENCE = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1-0",
    "1.0.1-9",
    "1.0.1-10",
    "1.0.1--",
    "1.0.1-A",
    "1.0.1-a",
    "1.0.1",
    "1.1.0",
    "1.10.0",
    "2.0.0",
    "10.0.0",
]


@pytest.mark.parametrize("index", range(1, len(PRECEDENCE)))
def test_semver_precedence(index: int) -> None:
    lower = PRECEDENCE[:index]
    highest = PRECEDENCE[index]
    shuffled = [*lower, highest]
    random.Random(index).shuffle(shuffled)
    assert semver(">=0.0.0-0", shuffled) == highest
    assert semver(">=0.0.0-0", lower) == PRECEDENCE[index - 1]


# Ties: the policy cannot tell these apart, so the lexically greatest original tag wins.
SEMVER_TIES: list[tuple[str, list[str], str]] = [
    ("*", ["1.0.0", "v1.0.0"], "v1.0.0"),
    ("*", ["1.0.0+a", "1.0.0+b"], "1.0.0+b"),
    ("*", ["1.0.0", "1.0.0+build"], "1.0.0+build"),
    ("*", ["v1.0.0+z", "1.0.0+zz", "v1.0.0"], "v1.0.0+z"),
    (">=1.0.0-0", ["1.0.0-rc.1+a", "v1.0.0-rc.1", "0.9.0"], "v1.0.0-rc.1"),
]


@pytest.mark.parametrize(("range_", "tags", "expected"), SEMVER_TIES)
def test_semver_ties_are_deterministic(range_: str, tags: list[str], expected: str) -> None:
    for order in (tags, list(reversed(tags))):
        assert semver(range_, order) == expected


@pytest.mark.parametrize(
    "range_",
    # Flux's and Masterminds' own invalid rows are in the test_upstream_* modules.
    [">>1", "   ", "1.0 ||", "|| 1.0", "1,,2", "1,", ">=1.0.0-01", "1.2.3-", ">=1.0 - 2.0",
     "1.2.3 -", "18446744073709551616", "<=3 1.0.0 - 2.0.0", "1.x.xx", "x.1x"],
)  # fmt: skip
def test_semver_invalid_ranges_are_rejected(range_: str) -> None:
    with pytest.raises(UsageError) as info:
        ImagePolicy.from_spec({"semver": {"range": range_}}, where="watches[2].policy")
    message = str(info.value)
    assert message.startswith(f'watches[2].policy.semver.range: invalid constraint "{range_}": ')
    assert "Masterminds/semver" in message  # the hint shows the syntax


@pytest.mark.parametrize(
    "range_",
    ["01.2", "v2025.07.03", ">=2025.07 <2025.08", "1.0.0 - 2.0.0 <=2.0.0", "1 - 2 3 - 4"],
)  # fmt: skip
def test_semver_valid_ranges_are_accepted(range_: str) -> None:
    assert ImagePolicy.from_spec({"semver": {"range": range_}}).range == range_


# Hyphen ranges next to other comparisons. Masterminds rewrites "A - B" to ">= A, <= B " (with
# a trailing space, since v3.2.1) and takes the whitespace around the range with it, so a
# comparison may follow a range after a space, but may precede one only with a comma (with a
# space the two are glued: "<=3>= 1, <= 2"). Every row was checked against Masterminds/semver
# 71f2b39 and fluxcd/pkg version v0.16.0. (range, tags, expected; tags None: invalid range)
HYPHEN_RANGES: list[tuple[str, list[str] | None, str | None]] = [
    ("1.0.0 - 2.0.0 <=2.0.0", ["0.9.0", "1.5.0", "2.0.0", "2.0.1"], "2.0.0"),
    ("1.0.0 - 2.0.0 <1.5.0", ["0.9.0", "1.4.9", "1.5.0", "2.0.0"], "1.4.9"),
    ("1.0.0 - 2.0.0 !=2.0.0", ["1.9.0", "2.0.0"], "1.9.0"),
    ("1 - 2 >=1.5", ["1.4.0", "1.6.0", "2.9.0", "3.0.0"], "2.9.0"),
    ("1.0.0 - 2.0.0, <=2.0.0", ["1.5.0", "2.0.0", "2.0.1"], "2.0.0"),
    ("1.0.0\t-\t2.0.0\t<=1.5.0", ["1.5.0", "1.6.0"], "1.5.0"),
    ("1.0.0 - 2.0.0\n<=1.5.0", ["1.5.0", "1.6.0"], "1.5.0"),
    ("1 - 3 2 - 4", ["1.9.0", "2.5.0", "3.9.9", "4.0.0"], "3.9.9"),
    ("1 - 2 3 - 4", ["1.0.0", "2.0.0", "3.0.0"], None),
    ("<=3, 1.0.0 - 2.0.0", ["0.9.0", "1.9.0", "2.9.0"], "1.9.0"),
    (">=1.5,1 - 2", ["1.4.0", "1.5.0", "2.1.0"], "2.1.0"),  # "<= 2" admits all of 2.x
    ("1 - 2 || 4 - 5", ["2.5.0", "3.0.0", "5.9.0", "6.0.0"], "5.9.0"),
    ("1 - 2 <=2 || 4.0.0 - 5.0.0 !=5.0.0", ["2.0.0", "4.9.0", "5.0.0"], "4.9.0"),
    ("1.x - 2.x <2.0.0", ["1.9.9", "2.0.0", "2.9.0"], "1.9.9"),
    ("* - 2 <2", ["0.1.0", "1.9.0", "2.0.0"], "1.9.0"),
    ("v1.0.0 - v2.0.0 <=v1.5.0", ["v1.5.0", "v1.6.0"], "v1.5.0"),
    ("1.0.0+b1 - 2.0.0+b2 <=2.0.0", ["2.0.0", "2.0.1"], "2.0.0"),
    # Pre-releases: a range end that names one lets them into the whole AND group.
    ("1.0.0 - 2.0.0 <=2.0.0", ["1.5.0-rc.1", "1.4.0"], "1.4.0"),
    ("1.0.0-0 - 2.0.0 <=2.0.0", ["1.5.0-rc.1", "1.4.0"], "1.5.0-rc.1"),
    ("1.0.0 - 2.0.0-rc.1 >=1.5.0", ["1.5.0", "1.6.0-beta", "2.0.0-rc.2"], "1.6.0-beta"),
    ("1.0.0 - 2.0.0 >=1.5.0-0", ["1.5.0-alpha", "1.4.0"], "1.5.0-alpha"),
    # Invalid upstream too.
    ("<=3 1.0.0 - 2.0.0", None, None),  # a comparison, a space, then a range: glued
    (">=0.5 1 - 2 || 3", None, None),
    ("1 - 2 || >=5 3 - 4", None, None),
    ("1 - 2 <=2 ||4.0.0 - 5.0.0", None, None),  # '|' is a version character to the rewrite
    ("1 - 2 - 3", None, None),
    ("1.0.0 -2.0.0", None, None),
    ("1.0.0- 2.0.0", None, None),
]


@pytest.mark.parametrize(("range_", "tags", "expected"), HYPHEN_RANGES)
def test_hyphen_ranges_beside_other_comparisons(
    range_: str, tags: list[str] | None, expected: str | None
) -> None:
    if tags is None:
        with pytest.raises(UsageError, match="invalid constraint"):
            ImagePolicy.from_spec({"semver": {"range": range_}})
        return
    assert semver(range_, tags) == expected
    assert semver(range_, list(reversed(tags))) == expected


def test_glued_hyphen_range_error_says_to_add_a_comma() -> None:
    with pytest.raises(UsageError) as info:
        ImagePolicy.from_spec({"semver": {"range": "<=3 1.0.0 - 2.0.0"}})
    message = str(info.value)
    assert "the hyphen range '1.0.0 - 2.0.0' follows '<=3' with no comma" in message
    assert "'<=3, 1.0.0 - 2.0.0'" in message
    assert semver("<=3, 1.0.0 - 2.0.0", ["1.5.0", "2.5.0"]) == "1.5.0"


@settings(max_examples=200, deadline=None)
@given(
    dates=st.lists(
        st.tuples(st.integers(2000, 2099), st.integers(1, 12), st.integers(1, 31)),
        min_size=1,
        max_size=20,
    ),
    prefix=st.sampled_from(["", "v"]),
)
def test_calver_tags_order_by_number(dates: list[tuple[int, int, int]], prefix: str) -> None:
    tags = [f"{prefix}{y}.{m:02d}.{d:02d}" for y, m, d in dates]
    best = max(dates)
    assert semver("*", tags) == f"{prefix}{best[0]}.{best[1]:02d}.{best[2]:02d}"


# ---------------------------------------------------------------------------------------------
# alphabetical
# ---------------------------------------------------------------------------------------------

TIMESTAMPS = [
    "2024-01-02T03-04-05Z",
    "2024-11-30T23-59-59Z",
    "2023-12-31T23-59-59Z",
    "2024-11-30T00-00-00Z",
]

# (order, tags, expected)
ALPHABETICAL_CASES: list[tuple[str | None, list[str], str | None]] = [
    (None, ["a", "c", "b"], "c"),
    ("asc", ["a", "c", "b"], "c"),
    ("desc", ["a", "c", "b"], "a"),
    ("asc", TIMESTAMPS, "2024-11-30T23-59-59Z"),
    ("desc", TIMESTAMPS, "2023-12-31T23-59-59Z"),
    ("asc", ["RELEASE.2024-01-01", "RELEASE.2023-06-30"], "RELEASE.2024-01-01"),
    # Byte order: every upper-case letter sorts before every lower-case one.
    ("asc", ["a", "B", "b", "A", "Z"], "b"),
    ("desc", ["a", "B", "b", "A", "Z"], "A"),
    ("asc", ["v9", "v10", "v1"], "v9"),  # lexical, not numeric
    ("asc", ["1.0", "1.0-rc"], "1.0-rc"),
    ("asc", ["\uff61", "\U0001f600"], "\U0001f600"),  # UTF-8 bytes order, not UTF-16 units
    ("asc", [], None),
    ("desc", [], None),
]


@pytest.mark.parametrize(("order", "tags", "expected"), ALPHABETICAL_CASES)
def test_alphabetical_latest(order: Any, tags: list[str], expected: str | None) -> None:
    policy = ImagePolicy("alphabetical", order=order)
    assert policy.latest(tags) == expected
    assert policy.latest(list(reversed(tags))) == expected
    assert policy.latest(iter(tags)) == expected  # any iterable


# ---------------------------------------------------------------------------------------------
# numerical
# ---------------------------------------------------------------------------------------------

# (order, tags, expected)
NUMERICAL_CASES: list[tuple[str | None, list[str], str | None]] = [
    (None, ["1", "10", "9"], "10"),
    ("asc", ["1", "10", "9"], "10"),
    ("desc", ["1", "10", "9"], "1"),
    ("asc", ["1.5", "1.25", "1.125"], "1.5"),
    ("desc", ["1.5", "1.25", "1.125"], "1.125"),
    ("asc", ["-3", "-10", "-1"], "-1"),
    ("desc", ["-3", "-10", "0"], "-10"),
    ("asc", ["1e3", "999", "2E2"], "1e3"),
    ("asc", ["1700000000", "1699999999", "1700000001"], "1700000001"),
    ("asc", ["+2", ".5", "1.", "1_000", "0x1p4"], "1_000"),  # Go's ParseFloat syntax
    ("asc", ["0x1.8p1", "2"], "0x1.8p1"),
    ("asc", ["Inf", "1e308"], "Inf"),
    ("desc", ["-infinity", "-1e308"], "-infinity"),
    # Equal numbers: the lexically greatest tag wins, whichever the order.
    ("asc", ["1", "1.0", "01", "0.5"], "1.0"),
    ("desc", ["0", "-0", "0.0", "5"], "0.0"),
    ("asc", [], None),
]


@pytest.mark.parametrize(("order", "tags", "expected"), NUMERICAL_CASES)
def test_numerical_latest(order: Any, tags: list[str], expected: str | None) -> None:
    policy = ImagePolicy("numerical", order=order)
    assert policy.latest(tags) == expected
    assert policy.latest(list(reversed(tags))) == expected


@pytest.mark.parametrize(
    ("tags", "named"),
    [
        (["1", "2", "latest"], "'latest'"),
        (["1", "main-abc"], "'main-abc'"),
        (["nan"], "'nan'"),  # NaN has no order
        (["NaN", "1"], "'NaN'"),
        (["1__0"], "'1__0'"),
        (["_1"], "'_1'"),
        (["1_"], "'1_'"),
        (["0x10"], "'0x10'"),  # a hex float needs a p exponent
        (["1e400"], "'1e400'"),  # out of range
        ([""], "''"),
        (["1.2.3"], "'1.2.3'"),
        ([" 1"], "' 1'"),
        (["\u0661"], "'\u0661'"),  # ARABIC-INDIC DIGIT ONE: not a Go digit
    ],
)
def test_numerical_fails_on_a_non_numeric_tag(tags: list[str], named: str) -> None:
    with pytest.raises(PolicyError) as info:
        ImagePolicy("numerical").latest(tags)
    assert f"tag {named} is not a number" in str(info.value)
    assert "filterTags" in str(info.value)  # the hint says how to fix it


def test_numerical_failure_names_one_tag_deterministically_and_counts_the_rest() -> None:
    tags = ["3", "zeta", "latest", "alpha"]
    for order in (tags, list(reversed(tags))):
        with pytest.raises(PolicyError, match=r"tag 'alpha' is not a number \(3 tags are not\)"):
            ImagePolicy("numerical").latest(order)


def test_numerical_failure_names_the_extracted_value() -> None:
    policy = ImagePolicy("numerical", filter_pattern=r"^build-(?P<n>\w+)$", filter_extract="$n")
    with pytest.raises(PolicyError, match=r"tag 'build-x1' \(extracted 'x1'\) is not a number"):
        policy.latest(["build-1", "build-x1"])


def test_numerical_with_a_filter_ignores_the_tags_it_drops() -> None:
    policy = ImagePolicy.from_spec({"numerical": {}}, {"pattern": "^[0-9]+$"})
    assert policy.latest(["1", "20", "latest", "main-abc", "3"]) == "20"
    assert policy.latest(["latest"]) is None


def test_policy_error_is_an_imgctl_error() -> None:
    assert issubclass(PolicyError, ImgctlError)


# ---------------------------------------------------------------------------------------------
# filterTags
# ---------------------------------------------------------------------------------------------

FLUX_TAGS = [
    "main-8e1a3f0-1700000000",
    "main-27b4c1d-1700000100",
    "main-0f9e2d7-1699999999",
    "dev-aaaaaaa-1800000000",
    "latest",
]

# (policy, filterTags, tags, expected)
FILTER_CASES: list[tuple[dict[str, Any], dict[str, Any], list[str], str | None]] = [
    # Flux's documented pattern: order by the timestamp, return the whole tag.
    (
        {"numerical": {"order": "asc"}},
        {"pattern": "^main-[a-fA-F0-9]+-(?P<ts>.*)", "extract": "$ts"},
        FLUX_TAGS,
        "main-27b4c1d-1700000100",
    ),
    (
        {"numerical": {"order": "desc"}},
        {"pattern": "^main-[a-fA-F0-9]+-(?P<ts>.*)", "extract": "$ts"},
        FLUX_TAGS,
        "main-0f9e2d7-1699999999",
    ),
    # ${name}, $1, Go 1.22's (?<name>...) and the whole match $0.
    (
        {"numerical": {}},
        {"pattern": r"^main-[a-f0-9]+-(?P<ts>\d+)$", "extract": "${ts}"},
        FLUX_TAGS,
        "main-27b4c1d-1700000100",
    ),
    (
        {"numerical": {}},
        {"pattern": r"^main-[a-f0-9]+-(\d+)$", "extract": "$1"},
        FLUX_TAGS,
        "main-27b4c1d-1700000100",
    ),
    (
        {"numerical": {}},
        {"pattern": r"^main-[a-f0-9]+-(?<ts>\d+)$", "extract": "$ts"},
        FLUX_TAGS,
        "main-27b4c1d-1700000100",
    ),
    (
        {"alphabetical": {}},
        {"pattern": r"[0-9]+$", "extract": "$0"},
        FLUX_TAGS,
        "dev-aaaaaaa-1800000000",
    ),
    # Pattern only: filter, then order the whole tags.
    ({"alphabetical": {}}, {"pattern": "^main-"}, FLUX_TAGS, "main-8e1a3f0-1700000000"),
    (
        {"alphabetical": {"order": "desc"}},
        {"pattern": "^main-"},
        FLUX_TAGS,
        "main-0f9e2d7-1699999999",
    ),
    ({"alphabetical": {}}, {"pattern": "^nothing"}, FLUX_TAGS, None),
    ({"alphabetical": {}}, {"pattern": ""}, ["a", "b"], "b"),  # empty pattern: every tag
    ({"alphabetical": {}}, {"pattern": "", "extract": ""}, ["a", "b"], "b"),
    # Unanchored search, as Go's FindStringSubmatchIndex.
    ({"alphabetical": {}}, {"pattern": "rc"}, ["1.0-rc1", "2.0", "0.9-rc2"], "1.0-rc1"),
    # Semver over extracted values; the result is still the original tag.
    (
        {"semver": {"range": "^1.0"}},
        {"pattern": r"^app-(?P<v>.+)$", "extract": "$v"},
        ["app-1.2.0", "app-1.10.0", "app-2.0.0", "other-1.99.0", "app-latest"],
        "app-1.10.0",
    ),
    (
        {"semver": {"range": ">=1.0.0"}},
        {"pattern": r"^(?P<v>\d+\.\d+\.\d+)-(?P<arch>amd64|arm64)$", "extract": "$v"},
        ["1.2.0-amd64", "1.3.0-arm64", "1.3.0-amd64"],
        "1.3.0-arm64",  # 1.3.0 twice: the lexically greatest tag
    ),
    # Template details: $$ is a dollar, literal text is kept, and a malformed $ is literal.
    (
        {"alphabetical": {}},
        {"pattern": r"^(?P<a>[a-z])(?P<b>[0-9])$", "extract": "${b}$$x$a$"},
        ["a9", "b1", "z0"],
        "a9",
    ),
    (
        {"numerical": {}},
        {"pattern": r"^v(\d+)_(\d+)$", "extract": "${1}${2}"},
        ["v1_10", "v2_0", "v1_9"],
        "v1_10",  # 110 > 20 > 19
    ),
    # An optional group that did not take part expands to nothing.
    (
        {"alphabetical": {}},
        {"pattern": r"^(?:(x)|y)-(\d)$", "extract": "$1$2"},
        ["y-9", "x-1"],
        "x-1",
    ),
    # RE2 spellings Python lacks: POSIX classes, \z, \Q...\E, a literal "{".
    ({"numerical": {}}, {"pattern": "^[[:digit:]]+$"}, ["12", "x1", "3"], "12"),
    ({"alphabetical": {}}, {"pattern": r"^[[:alpha:]_]+\z"}, ["ab", "a1", "b_"], "b_"),
    ({"alphabetical": {}}, {"pattern": r"^\Q1.0+\E"}, ["1.0+a", "1x0+b", "1.00"], "1.0+a"),
    ({"alphabetical": {}}, {"pattern": "^a{,2}$"}, ["a{,2}", "aa"], "a{,2}"),
    (
        {"alphabetical": {}},
        {"pattern": r"^\d+$"},
        ["12", "\u0661\u0662"],
        "12",
    ),  # \d is ASCII in RE2
    ({"alphabetical": {}}, {"pattern": "(?i)^main-"}, ["MAIN-1", "dev-2", "main-0"], "main-0"),
]


@pytest.mark.parametrize(("policy", "filter_tags", "tags", "expected"), FILTER_CASES)
def test_filter_tags(
    policy: dict[str, Any], filter_tags: dict[str, Any], tags: list[str], expected: str | None
) -> None:
    image_policy = ImagePolicy.from_spec(policy, filter_tags)
    assert image_policy.latest(tags) == expected
    assert image_policy.latest(list(reversed(tags))) == expected


# Two tags extracting the same value: the lexically greatest original tag wins, whatever the
# registry's listing order (Flux keeps the last one it saw).
COLLISIONS: list[tuple[dict[str, Any], list[str], str]] = [
    ({"numerical": {}}, ["main-5", "dev-5", "main-3"], "main-5"),
    ({"numerical": {"order": "desc"}}, ["main-3", "dev-3", "main-5", "rel-3"], "rel-3"),
    ({"alphabetical": {}}, ["a-2", "c-1", "b-2"], "b-2"),
    ({"alphabetical": {"order": "desc"}}, ["a-1", "c-2", "b-1"], "b-1"),
    ({"semver": {"range": "*"}}, ["x-1.0.0", "y-1.0.0", "z-0.9.0"], "y-1.0.0"),
]


@pytest.mark.parametrize(("policy", "tags", "expected"), COLLISIONS)
def test_extract_collisions_are_deterministic(
    policy: dict[str, Any], tags: list[str], expected: str
) -> None:
    image_policy = ImagePolicy.from_spec(
        policy, {"pattern": r"^[a-z]+-(?P<v>.+)$", "extract": "$v"}
    )
    for seed in range(6):
        shuffled = list(tags)
        random.Random(seed).shuffle(shuffled)
        assert image_policy.latest(shuffled) == expected


def test_duplicate_tags_count_once() -> None:
    assert ImagePolicy("numerical").latest(["2", "2", "1"]) == "2"


def test_latest_refuses_a_single_string() -> None:
    with pytest.raises(TypeError, match="iterable of tags"):
        ImagePolicy("alphabetical").latest("1.0.0")


# ---------------------------------------------------------------------------------------------
# Validation: every error names the field path and the bad value
# ---------------------------------------------------------------------------------------------

W = "watches[2].policy"
F = "watches[2].filterTags"
A: dict[str, object] = {"alphabetical": {}}

# (policy, filterTags, substrings the message must contain)
SPEC_ERRORS: list[tuple[object, object, list[str]]] = [
    ("semver", None, [f"{W}: must be a mapping", '"semver"']),
    (["semver"], None, [f"{W}: must be a mapping", "not a list"]),
    (None, None, [f"{W}: must be a mapping", "null"]),
    ({}, None, [f"{W}: names no policy kind"]),
    ({"semvar": {"range": "1.x"}}, None, [f"{W}.semvar: unknown policy kind", "'semver'"]),
    ({"latest": {}}, None, [f"{W}.latest: unknown policy kind", "semver, alphabetical"]),
    ({"semver": {"range": "*"}, "numerical": {}}, None, [f"{W}: has semver and numerical"]),
    ({"semver": "1.x"}, None, [f"{W}.semver: must be a mapping", '"1.x"']),
    ({"numerical": "desc"}, None, [f"{W}.numerical: must be a mapping", '"desc"']),
    ({"semver": {}}, None, [f"{W}.semver.range: is required"]),
    ({"semver": None}, None, [f"{W}.semver.range: is required"]),
    ({"semver": {"range": None}}, None, [f"{W}.semver.range: is required"]),
    ({"semver": {"range": ">>1"}}, None, [f'{W}.semver.range: invalid constraint ">>1"']),
    ({"semver": {"range": 1.2}}, None, [f"{W}.semver.range: must be a string, not a number"]),
    ({"semver": {"range": "*", "order": "asc"}}, None, [f"{W}.semver.order: unknown key"]),
    ({"semver": {"rnage": "*"}}, None, [f"{W}.semver.rnage: unknown key", "'range'"]),
    (
        {"alphabetical": {"order": "ASC"}},
        None,
        [f"{W}.alphabetical.order", '"asc" or "desc"', '"ASC"'],
    ),
    ({"numerical": {"order": "up"}}, None, [f"{W}.numerical.order", '"up"']),
    ({"numerical": {"order": 1}}, None, [f"{W}.numerical.order", "not a number"]),
    ({"numerical": {"range": "1.x"}}, None, [f"{W}.numerical.range: unknown key"]),
    (A, "^main", [f"{F}: must be a mapping", '"^main"']),
    (A, {"pattern": "(", "extract": "$1"}, [f'{F}.pattern: invalid regular expression "("']),
    (A, {"pattern": "[a-"}, [f'{F}.pattern: invalid regular expression "[a-"']),
    (A, {"pattern": 5}, [f"{F}.pattern: must be a string, not a number"]),
    (A, {"pattern": "a", "flags": "i"}, [f"{F}.flags: unknown key"]),
    (A, {"patern": "a"}, [f"{F}.patern: unknown key", "'pattern'"]),
    (A, {"extract": "$1"}, [f"{F}.extract: needs a pattern"]),
    (A, {"pattern": "", "extract": "$1"}, [f"{F}.extract: needs a pattern"]),
    (A, {"pattern": "a", "extract": 1}, [f"{F}.extract: must be a string"]),
    (A, {"pattern": "(a)", "extract": "$2"}, [f'{F}.extract: "$2" refers to group "2"', "1 group"]),
    (A, {"pattern": "(?P<ts>a)", "extract": "$tsx"}, [f'{F}.extract: "$tsx"', '"tsx"', "named ts"]),
    (A, {"pattern": "(a)", "extract": "$1x"}, [f"{F}.extract", '"1x"', "${1}x"]),
    (A, {"pattern": "(a)", "extract": "$01"}, [f"{F}.extract", '"01"']),
    (A, {"pattern": "a", "extract": "${ts}"}, [f"{F}.extract", '"ts"', "0 groups"]),
    # RE2 refuses these; Python would accept them with another meaning.
    (A, {"pattern": "(?=a)b"}, [f"{F}.pattern", "lookahead"]),
    (A, {"pattern": "(?<=a)b"}, [f"{F}.pattern", "lookbehind"]),
    (A, {"pattern": "(?<!a)b"}, [f"{F}.pattern", "negative lookbehind"]),
    (A, {"pattern": r"(a)\1"}, [f"{F}.pattern", "backreference"]),
    (A, {"pattern": "(?P<a>x)(?P=a)"}, [f"{F}.pattern", "backreference"]),
    (A, {"pattern": "(?>a)"}, [f"{F}.pattern", "atomic"]),
    (A, {"pattern": "a*+"}, [f"{F}.pattern", "possessive"]),
    (A, {"pattern": "a{2}+"}, [f"{F}.pattern", "possessive"]),
    (A, {"pattern": "[[:^digit:]]"}, [f"{F}.pattern", "POSIX class"]),
    (A, {"pattern": "[[:digits:]]"}, [f"{F}.pattern", "POSIX class"]),
]


@pytest.mark.parametrize(("policy", "filter_tags", "expected"), SPEC_ERRORS)
def test_from_spec_errors_name_the_field(
    policy: object, filter_tags: object, expected: list[str]
) -> None:
    with pytest.raises(UsageError) as info:
        ImagePolicy.from_spec(policy, filter_tags, where=W)
    message = str(info.value)
    for part in expected:
        assert part in message, message
    assert info.value.hint, "every validation error says what to do"


@pytest.mark.parametrize(
    ("where", "policy", "filter_tags", "prefix"),
    [
        ("policy", {"semver": {}}, None, "policy.semver.range: "),
        ("policy", {"alphabetical": {}}, {"pattern": "("}, "filterTags.pattern: "),
        ("spec", {"alphabetical": {}}, {"pattern": "("}, "spec.filterTags.pattern: "),
        ("a.policy", {"alphabetical": {}}, {"extract": "$1"}, "a.filterTags.extract: "),
    ],
)
def test_error_paths_follow_where(
    where: str, policy: object, filter_tags: object, prefix: str
) -> None:
    with pytest.raises(UsageError) as info:
        ImagePolicy.from_spec(policy, filter_tags, where=where)
    assert str(info.value).startswith(prefix)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"kind": "semver"}, "policy.semver.range: is required"),
        ({"kind": "semver", "range": "1.x", "order": "asc"}, "policy.semver: has an order"),
        ({"kind": "alphabetical", "range": "1.x"}, "policy.alphabetical: has a range"),
        ({"kind": "numerical", "order": "up"}, 'policy.numerical.order: must be "asc" or "desc"'),
        ({"kind": "latest"}, 'policy: unknown policy kind "latest"'),
        ({"kind": "alphabetical", "filter_extract": "$1"}, "filterTags.extract: needs a pattern"),
        (
            {"kind": "alphabetical", "filter_pattern": "a", "filter_extract": ""},
            "filterTags.extract: is empty",
        ),
        ({"kind": "alphabetical", "filter_pattern": "(?=a)"}, "filterTags.pattern: invalid"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(UsageError) as info:
        ImagePolicy(**kwargs)
    assert str(info.value).startswith(expected)


def test_usage_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"semver\.range"):
        ImagePolicy.from_spec({"semver": {}})


# ---------------------------------------------------------------------------------------------
# describe() and as_json()
# ---------------------------------------------------------------------------------------------

# (policy, filterTags, describe(), as_json())
RENDERINGS: list[tuple[dict[str, Any], dict[str, Any] | None, str, dict[str, object]]] = [
    (
        {"semver": {"range": ">=1.0.0 <2.0.0"}},
        None,
        "semver >=1.0.0 <2.0.0",
        {"semver": {"range": ">=1.0.0 <2.0.0"}},
    ),
    ({"alphabetical": {}}, None, "alphabetical asc", {"alphabetical": {}}),
    ({"alphabetical": None}, None, "alphabetical asc", {"alphabetical": {}}),
    (
        {"alphabetical": {"order": "asc"}},
        None,
        "alphabetical asc",
        {"alphabetical": {"order": "asc"}},
    ),
    ({"numerical": {"order": "desc"}}, None, "numerical desc", {"numerical": {"order": "desc"}}),
    (
        {"numerical": {"order": "desc"}},
        {"pattern": r"^main-(?P<ts>\d+)$", "extract": "$ts"},
        r"numerical desc, filter ^main-(?P<ts>\d+)$ -> $ts",
        {
            "numerical": {"order": "desc"},
            "filterTags": {"pattern": r"^main-(?P<ts>\d+)$", "extract": "$ts"},
        },
    ),
    (
        {"semver": {"range": "^1"}},
        {"pattern": "^v"},
        "semver ^1, filter ^v",
        {"semver": {"range": "^1"}, "filterTags": {"pattern": "^v"}},
    ),
    # Go's (?<name>...) is echoed as written.
    (
        {"alphabetical": {}},
        {"pattern": r"^(?<ts>\d+)$", "extract": "${ts}"},
        r"alphabetical asc, filter ^(?<ts>\d+)$ -> ${ts}",
        {"alphabetical": {}, "filterTags": {"pattern": r"^(?<ts>\d+)$", "extract": "${ts}"}},
    ),
    # Empty pattern and extract are the same as none.
    (
        {"alphabetical": {}},
        {"pattern": "", "extract": ""},
        "alphabetical asc",
        {"alphabetical": {}},
    ),
    ({"alphabetical": {}}, {}, "alphabetical asc", {"alphabetical": {}}),
]


@pytest.mark.parametrize(("policy", "filter_tags", "description", "echo"), RENDERINGS)
def test_describe_and_as_json(
    policy: dict[str, Any],
    filter_tags: dict[str, Any] | None,
    description: str,
    echo: dict[str, object],
) -> None:
    image_policy = ImagePolicy.from_spec(policy, filter_tags)
    assert image_policy.describe() == description
    assert image_policy.as_json() == echo
    # The echo reads back as the same policy.
    spec = dict(echo)
    assert ImagePolicy.from_spec(spec, spec.pop("filterTags", None)) == image_policy


def test_from_spec_builds_the_dataclass() -> None:
    policy = ImagePolicy.from_spec(
        {"numerical": {"order": "desc"}}, {"pattern": "^b-(?P<n>[0-9]+)$", "extract": "$n"}
    )
    assert policy == ImagePolicy(
        "numerical", order="desc", filter_pattern="^b-(?P<n>[0-9]+)$", filter_extract="$n"
    )
    spec = policy.as_json()
    again = ImagePolicy.from_spec({"numerical": spec["numerical"]}, spec["filterTags"])
    assert hash(again) == hash(policy)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_IDENTIFIERS = ["alpha", "beta", "rc", "0", "1", "2", "11", "x-y"]


@st.composite
def _versions(draw: st.DrawFn) -> tuple[str, tuple[int, int, int], tuple[str, ...]]:
    """A semver tag with its core and pre-release identifiers, known without parsing it."""
    core = (draw(st.integers(0, 3)), draw(st.integers(0, 12)), draw(st.integers(0, 3)))
    pre = tuple(draw(st.lists(st.sampled_from(_IDENTIFIERS), max_size=3)))
    build = draw(st.sampled_from(["", "+b1", "+exp.sha.5114f85", "+001"]))
    prefix = draw(st.sampled_from(["", "v"]))
    text = f"{prefix}{core[0]}.{core[1]}.{core[2]}" + (f"-{'.'.join(pre)}" if pre else "") + build
    return text, core, pre


_JUNK = st.sampled_from(["latest", "main-abc123", "v1.2", "1", "01.2", "1.2.3.4", "stable"])


def _spec_compare(
    a: tuple[tuple[int, ...], tuple[str, ...]], b: tuple[tuple[int, ...], tuple[str, ...]]
) -> int:
    """Semver 2.0.0 precedence, written from the spec's prose (independent of the module)."""
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    pre_a, pre_b = a[1], b[1]
    if not pre_a or not pre_b:
        return (not pre_a) - (not pre_b)
    for x, y in zip(pre_a, pre_b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(pre_a) > len(pre_b)) - (len(pre_a) < len(pre_b))


@settings(max_examples=300, deadline=None)
@given(
    versions=st.lists(_versions(), max_size=25),
    junk=st.lists(_JUNK, max_size=5),
    data=st.data(),
)
def test_star_picks_the_highest_release(
    versions: list[tuple[str, tuple[int, int, int], tuple[str, ...]]],
    junk: list[str],
    data: st.DataObject,
) -> None:
    releases = [(core, text) for text, core, pre in versions if not pre]
    expected = max(releases)[1] if releases else None  # highest core, then greatest tag
    tags = [text for text, _, _ in versions] + junk
    shuffled = data.draw(st.permutations(tags))
    policy = ImagePolicy("semver", range="*")
    assert policy.latest(tags) == expected
    assert policy.latest(shuffled) == expected


@settings(max_examples=300, deadline=None)
@given(versions=st.lists(_versions(), min_size=1, max_size=25), data=st.data())
def test_prerelease_range_orders_by_semver_precedence(
    versions: list[tuple[str, tuple[int, int, int], tuple[str, ...]]], data: st.DataObject
) -> None:
    key = functools.cmp_to_key(_spec_compare)
    best = max(versions, key=lambda v: (key((v[1], v[2])), v[0]))
    tags = data.draw(st.permutations([text for text, _, _ in versions]))
    assert ImagePolicy("semver", range=">=0.0.0-0").latest(tags) == best[0]


@settings(max_examples=200, deadline=None)
@given(
    numbers=st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=20),
    descending=st.booleans(),
    data=st.data(),
)
def test_numerical_matches_integer_order(
    numbers: list[int], descending: bool, data: st.DataObject
) -> None:
    tags = data.draw(st.permutations([str(n) for n in numbers]))
    expected = str(min(numbers) if descending else max(numbers))
    policy = ImagePolicy("numerical", order="desc" if descending else "asc")
    assert policy.latest(tags) == expected
