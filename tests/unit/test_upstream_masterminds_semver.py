"""Masterminds/semver v3's own test tables, run against imgctl.scan.policy's semver engine.

Upstream: github.com/Masterminds/semver, commit 71f2b39f5a1f18100def1d01ef4f59576e4c6da2 (master
after #279, 2026-04-10: v3.4.0 plus #273, #278, #279); files constraints_test.go and
version_test.go. Flux's image-reflector-controller requires Masterminds/semver v3.5.0, which adds
#280 and #281 to this commit; those two could not be read here (see docs/scanning.md). Every row
of the tables below is carried over as written; to follow an upstream change, diff the two
files against that commit.

Flux calls ``NewConstraint`` and ``Check`` (never ``Validate``'s messages, ``String``, the
``IncludePrerelease`` switch or ``CoerceNewVersion = false``), and reads tags with
fluxcd/pkg's ParseVersion, which is ``NewVersion`` after a three-part check (its rows are in
test_upstream_flux_policy.py). imgctl implements the same: ``_compile_constraint`` is
``NewConstraint`` (``allows`` is ``Check``), ``_new_version`` is ``NewVersion``. Rows that test
what imgctl does not have are listed in NOT_APPLICABLE with the reason; rows answered differently
on purpose are in DIFFERENT, also listed in docs/scanning.md.
"""

# ruff: noqa: E501  (upstream's messages are kept on one line, as written)

from __future__ import annotations

import pytest

from imgctl.errors import UsageError
from imgctl.scan._semver import (
    _cmp,
    _Constraint,
    _is_x,
    _new_version,
    _rewrite_ranges,
    _Version,
)
from imgctl.scan._semver import compile_constraint as _compile_constraint
from imgctl.scan._semver import parse_tag as _parse_tag
from imgctl.scan.policy import ImagePolicy

# TestParseConstraint
PARSE_CONSTRAINT = [
    (">= 1.2", "constraintGreaterThanEqual", "1.2.0", False),
    ("1.0", "constraintTildeOrEqual", "1.0.0", False),
    ("foo", None, "", True),
    ("<= 1.2", "constraintLessThanEqual", "1.2.0", False),
    ("=< 1.2", "constraintLessThanEqual", "1.2.0", False),
    ("=> 1.2", "constraintGreaterThanEqual", "1.2.0", False),
    ("v1.2", "constraintTildeOrEqual", "1.2.0", False),
    ("=1.5", "constraintTildeOrEqual", "1.5.0", False),
    ("> 1.3", "constraintGreaterThan", "1.3.0", False),
    ("< 1.4.1", "constraintLessThan", "1.4.1", False),
    ("< 40.50.10", "constraintLessThan", "40.50.10", False),
]

# TestConstraintCheck
CONSTRAINT_CHECK = [
    ("=2.0.0", "1.2.3", False),
    ("=2.0.0", "2.0.0", True),
    ("=2.0", "1.2.3", False),
    ("=2.0", "2.0.0", True),
    ("=2.0", "2.0.1", True),
    ("4.1", "4.1.0", True),
    ("!=4.1.0", "4.1.0", False),
    ("!=4.1.0", "4.1.1", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1", "4.1.1", False),
    ("!=4.1", "5.1.0-alpha.1", False),
    ("!=4.1.0", "5.1.0-alpha.1", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("<11", "0.1.0", True),
    ("<11", "11.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<=11", "1.2.3", True),
    ("<=11", "12.2.3", False),
    ("<=11", "11.2.3", True),
    ("<=1.1", "1.2.3", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.1", "1.1.1", True),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    (">0", "0", False),
    (">0", "1", True),
    (">0", "0.0.1-alpha", False),
    (">0.0", "0.0.1-alpha", False),
    (">0-0", "0.0.1-alpha", False),
    (">0.0-0", "0.0.1-alpha", False),
    (">0", "0.0.0-alpha", False),
    (">0-0", "0.0.0-alpha", False),
    (">0.0.0-0", "0.0.0-alpha", True),
    (">1.2.3-alpha.1", "1.2.3-alpha.2", True),
    (">1.2.3-alpha.1", "1.3.3-alpha.2", True),
    (">11", "11.1.0", False),
    (">11.1", "11.1.0", False),
    (">11.1", "11.1.1", False),
    (">11.1", "11.2.1", True),
    (">=11", "11.1.2", True),
    (">=11.1", "11.1.2", True),
    (">=11.1", "11.0.2", False),
    (">=1.1", "4.1.0", True),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    (">=0", "0.0.1-alpha", False),
    (">=0.0", "0.0.1-alpha", False),
    (">=0-0", "0.0.1-alpha", True),
    (">=0.0-0", "0.0.1-alpha", True),
    (">=0", "0.0.0-alpha", False),
    (">=0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "1.2.3", True),
    (">=0.0.0-0", "3.4.5-beta.1", True),
    ("<0", "0.0.0-alpha", False),
    ("<0-z", "0.0.0-alpha", True),
    (">=0", "0", True),
    ("=0", "1", False),
    ("*", "1", True),
    ("*", "4.5.6", True),
    ("*", "1.2.3-alpha.1", False),
    ("*-0", "1.2.3-alpha.1", True),
    ("2.*", "1", False),
    ("2.*", "3.4.5", False),
    ("2.*", "2.1.1", True),
    ("2.1.*", "2.1.1", True),
    ("2.1.*", "2.2.1", False),
    ("", "1", True),
    ("", "4.5.6", True),
    ("", "1.2.3-alpha.1", False),
    ("2", "1", False),
    ("2", "3.4.5", False),
    ("2", "2.1.1", True),
    ("2.1", "2.1.1", True),
    ("2.1", "2.2.1", False),
    ("~1.2.3", "1.2.4", True),
    ("~1.2.3", "1.3.4", False),
    ("~1.2", "1.2.4", True),
    ("~1.2", "1.3.4", False),
    ("~1", "1.2.4", True),
    ("~1", "2.3.4", False),
    ("~0.2.3", "0.2.5", True),
    ("~0.2.3", "0.3.5", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    ("~1.2.3-beta.2", "1.2.4-beta.2", True),
    ("~1.2.3-beta.2", "1.3.4-beta.2", False),
    ("^1.2.3", "1.8.9", True),
    ("^1.2.3", "2.8.9", False),
    ("^1.2.3", "1.2.1", False),
    ("^1.1.0", "2.1.0", False),
    ("^1.2.0", "2.2.1", False),
    ("^1.2.0", "1.2.1-alpha.1", False),
    ("^1.2.0-alpha.0", "1.2.1-alpha.1", True),
    ("^1.2.0-alpha.0", "1.2.1-alpha.0", True),
    ("^1.2.0-alpha.2", "1.2.0-alpha.1", False),
    ("^1.2", "1.8.9", True),
    ("^1.2", "2.8.9", False),
    ("^1", "1.8.9", True),
    ("^1", "2.8.9", False),
    ("^0.2.3", "0.2.5", True),
    ("^0.2.3", "0.5.6", False),
    ("^0.2", "0.2.5", True),
    ("^0.2", "0.5.6", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.3", True),
    ("^0.0", "0.1.4", False),
    ("^0.0", "1.0.4", False),
    ("^0", "0.2.3", True),
    ("^0", "1.1.4", False),
    ("^0.2.3-beta.2", "0.2.3-beta.4", True),
    ("^0.2.3-beta.2", "0.2.4-beta.2", True),
    ("^0.2.3-beta.2", "0.3.4-beta.2", False),
    ("^0.2.3-beta.2", "0.2.3-beta.2", True),
]

# TestNewConstraint
NEW_CONSTRAINT = [
    (">= 1.1", 1, 1, False),
    (">40.50.60, < 50.70", 1, 2, False),
    ("2.0", 1, 1, False),
    ("v2.3.5-20161202202307-sha.e8fc5e5", 1, 1, False),
    ("v1.2.3-0abc", 1, 1, False),
    ("v1.2.3-beta.01", 1, 1, True),
    (">= bar", 0, 0, True),
    ("BAR >= 1.2.3", 0, 0, True),
    (">= 1.2.3 < 2.0", 1, 2, False),
    (">= 1.2.3 < 2.0 || => 3.0 < 4", 2, 2, False),
    (">= 1.2.3, < 2.0", 1, 2, False),
    (">= 1.2.3, < 2.0 || => 3.0, < 4", 2, 2, False),
    ("3 - 4 || => 3.0, < 4", 2, 2, False),
    ("12.3.4.1234", 0, 0, True),
    ("12.23.4.1234", 0, 0, True),
    ("12.3.34.1234", 0, 0, True),
    ("12.3.34 ~1.2.3", 1, 2, False),
    ("12.3.34~ 1.2.3", 0, 0, True),
    ("1.0.0 - 2.0.0, <=2.0.0", 1, 3, False),
]

# TestConstraintsCheck
CONSTRAINTS_CHECK = [
    ("*", "1.2.3", True),
    ("~0.0.0", "1.2.3", True),
    ("0.x.x", "1.2.3", False),
    ("0.0.x", "1.2.3", False),
    ("0.0.0", "1.2.3", False),
    ("*", "1.2.3", True),
    ("^0.0.0", "1.2.3", False),
    ("= 2.0", "1.2.3", False),
    ("= 2.0", "2.0.0", True),
    ("4.1", "4.1.0", True),
    ("4.1.x", "4.1.3", True),
    ("1.x", "1.4", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1-alpha", "4.1.0-alpha", False),
    ("!=4.1-alpha", "4.1.1-alpha", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<1.x", "1.1.1", False),
    ("<1.x", "0.1.1", True),
    ("<1.x", "2.0.0", False),
    ("<1.1.x", "1.2.1", False),
    ("<1.1.x", "1.1.500", False),
    ("<1.1.x", "1.0.500", True),
    ("<1.2.x", "1.1.1", True),
    (">=1.1", "4.1.0", True),
    (">=1.1", "4.1.0-beta", False),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "0.1.0-alpha", False),
    ("<=1.1-a", "0.1.0-alpha", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.0.0", False),
    ("<=1.1", "1.1.1", True),
    ("<=1.1.x", "1.2.500", False),
    ("<=4.5", "3.4.0", True),
    ("<=4.5", "3.7.0", True),
    ("<=4.5", "4.6.3", False),
    (">1.1, <2", "1.1.1", False),
    (">1.1, <2", "1.2.1", True),
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">1.1 <2", "1.1.1", False),
    (">1.1 <2", "1.2.1", True),
    (">1.1    <3", "4.3.2", False),
    (">=1.1    <2    !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 <2 !=1.2.3 || > 3", "1.2.3", False),
    ("> 1.1, <     2", "1.1.1", False),
    (">   1.1, <2", "1.2.1", True),
    (">1.1, <  3", "4.3.2", False),
    (">= 1.1, <     2, !=1.2.3", "1.2.3", False),
    ("> 1.1 < 2", "1.1.1", False),
    (">1.1 < 2", "1.2.1", True),
    ("> 1.1    <3", "4.3.2", False),
    (">=1.1    < 2    != 1.2.3", "1.2.3", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">= 1.1, <2, != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1, <2, != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", True),
    (">= 1.1 <2 != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1 <2 != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1 < 2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 < 2 !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1", True),
    (">= 1.0.0  <= 2.0.0-beta", "3.0.0", False),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "3.0.1-beta", False),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1 || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1-beta || > 3", "1.0.1-beta", False),
    (">= 1.0.0-0  <= 2.0.0", "1.0.1-beta", True),
    ("1.1 - 2", "1.1.1", True),
    ("1.5.0 - 4.5", "3.7.0", True),
    ("1.1-3", "4.3.2", False),
    ("^1.1", "1.1.1", True),
    ("^1.1", "4.3.2", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^1.x", "1.1.1-beta1", False),
    ("^1.1.2-alpha", "1.2.1-beta1", True),
    ("^1.2.x-alpha", "1.1.1-beta1", False),
    ("^0.0.1", "0.0.1", True),
    ("^0.0.1", "0.3.1", False),
    ("~*", "2.1.1", True),
    ("~1", "2.1.1", False),
    ("~1", "1.3.5", True),
    ("~1", "1.4", True),
    ("~1.x", "2.1.1", False),
    ("~1.x", "1.3.5", True),
    ("~1.x", "1.4", True),
    ("~1.1", "1.1.1", True),
    ("~1.1", "1.1.1-alpha", False),
    ("~1.1-alpha", "1.1.1-beta", True),
    ("~1.1.1-beta", "1.1.1-alpha", False),
    ("~1.1.1-beta", "1.1.1", True),
    ("~1.2.3", "1.2.5", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.2", False),
    ("~1.1", "1.2.3", False),
    ("~1.3", "2.4.5", False),
    ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", True),
    ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", True),
]

# TestConstraintsCheckIncludePrerelease
CONSTRAINTS_CHECK_INCLUDE_PRERELEASE = [
    (">=1.1", "4.1.0-beta", True),
    (">1.1", "4.1.0-beta", True),
    ("<=1.1", "0.1.0-alpha", True),
    ("<1.1", "0.1.0-alpha", True),
    ("^1.x", "1.1.1-beta1", True),
    ("~1.1", "1.1.1-alpha", True),
    ("*", "1.2.3-alpha", True),
    ("= 2.0", "2.0.1-beta", True),
    ("*", "1.2.3", True),
    ("~0.0.0", "1.2.3", True),
    ("0.x.x", "1.2.3", False),
    ("0.0.x", "1.2.3", False),
    ("0.0.0", "1.2.3", False),
    ("*", "1.2.3", True),
    ("^0.0.0", "1.2.3", False),
    ("= 2.0", "1.2.3", False),
    ("= 2.0", "2.0.0", True),
    ("4.1", "4.1.0", True),
    ("4.1.x", "4.1.3", True),
    ("1.x", "1.4", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1-alpha", "4.1.0-alpha", False),
    ("!=4.1-alpha", "4.1.1-alpha", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<1.x", "1.1.1", False),
    ("<1.x", "0.1.1", True),
    ("<1.x", "2.0.0", False),
    ("<1.1.x", "1.2.1", False),
    ("<1.1.x", "1.1.500", False),
    ("<1.1.x", "1.0.500", True),
    ("<1.2.x", "1.1.1", True),
    (">=1.1", "4.1.0", True),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1-a", "0.1.0-alpha", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.0.0", False),
    ("<=1.1", "1.1.1", True),
    ("<=1.1.x", "1.2.500", False),
    ("<=4.5", "3.4.0", True),
    ("<=4.5", "3.7.0", True),
    ("<=4.5", "4.6.3", False),
    (">1.1, <2", "1.1.1", False),
    (">1.1, <2", "1.2.1", True),
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">1.1 <2", "1.1.1", False),
    (">1.1 <2", "1.2.1", True),
    (">1.1    <3", "4.3.2", False),
    (">=1.1    <2    !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 <2 !=1.2.3 || > 3", "1.2.3", False),
    ("> 1.1, <     2", "1.1.1", False),
    (">   1.1, <2", "1.2.1", True),
    (">1.1, <  3", "4.3.2", False),
    (">= 1.1, <     2, !=1.2.3", "1.2.3", False),
    ("> 1.1 < 2", "1.1.1", False),
    (">1.1 < 2", "1.2.1", True),
    ("> 1.1    <3", "4.3.2", False),
    (">=1.1    < 2    != 1.2.3", "1.2.3", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">= 1.1, <2, != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1, <2, != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", True),
    (">= 1.1 <2 != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1 <2 != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1 < 2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 < 2 !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1", True),
    (">= 1.0.0  <= 2.0.0-beta", "3.0.0", False),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "3.0.1-beta", False),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1 || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1-beta || > 3", "1.0.1-beta", False),
    (">= 1.0.0-0  <= 2.0.0", "1.0.1-beta", True),
    ("1.1 - 2", "1.1.1", True),
    ("1.5.0 - 4.5", "3.7.0", True),
    ("1.1-3", "4.3.2", False),
    ("^1.1", "1.1.1", True),
    ("^1.1", "4.3.2", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^1.1.2-alpha", "1.2.1-beta1", True),
    ("^1.2.x-alpha", "1.1.1-beta1", False),
    ("^0.0.1", "0.0.1", True),
    ("^0.0.1", "0.3.1", False),
    ("~*", "2.1.1", True),
    ("~1", "2.1.1", False),
    ("~1", "1.3.5", True),
    ("~1", "1.4", True),
    ("~1.x", "2.1.1", False),
    ("~1.x", "1.3.5", True),
    ("~1.x", "1.4", True),
    ("~1.1", "1.1.1", True),
    ("~1.1-alpha", "1.1.1-beta", True),
    ("~1.1.1-beta", "1.1.1-alpha", False),
    ("~1.1.1-beta", "1.1.1", True),
    ("~1.2.3", "1.2.5", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.2", False),
    ("~1.1", "1.2.3", False),
    ("~1.3", "2.4.5", False),
    ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", True),
    ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", True),
]

# TestRewriteRange
REWRITE_RANGE = [
    ("2 - 3", ">= 2, <= 3 "),
    ("2 - 3, 2 - 3", ">= 2, <= 3 ,>= 2, <= 3 "),
    ("2 - 3, 4.0.0 - 5.1", ">= 2, <= 3 ,>= 4.0.0, <= 5.1 "),
    ("2 - 3 4.0.0 - 5.1", ">= 2, <= 3 >= 4.0.0, <= 5.1 "),
    ("1.0.0 - 2.0.0 <=2.0.0", ">= 1.0.0, <= 2.0.0 <=2.0.0"),
]

# TestIsX
IS_X = [
    ("A", False),
    ("%", False),
    ("X", True),
    ("x", True),
    ("*", True),
]

# TestConstraintsValidate
CONSTRAINTS_VALIDATE = [
    ("*", "1.2.3", True),
    ("~0.0.0", "1.2.3", True),
    ("= 2.0", "1.2.3", False),
    ("= 2.0", "2.0.0", True),
    ("4.1", "4.1.0", True),
    ("4.1.x", "4.1.3", True),
    ("1.x", "1.4", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1", "5.1.0", True),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<1.x", "1.1.1", False),
    ("<2.x", "1.1.1", True),
    ("<1.x", "2.1.1", False),
    ("<1.1.x", "1.2.1", False),
    ("<1.1.x", "1.1.500", False),
    ("<1.2.x", "1.1.1", True),
    (">=1.1", "4.1.0", True),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.1.0", False),
    ("<=1.1", "1.1.1", True),
    ("<=1.1.x", "1.2.500", False),
    (">1.1, <2", "1.1.1", False),
    (">1.1, <2", "1.2.1", True),
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    ("1.1 - 2", "1.1.1", True),
    ("1.1-3", "4.3.2", False),
    ("^1.1", "1.1.1", True),
    ("^1.1", "1.1.1-alpha", False),
    ("^1.1.1-alpha", "1.1.1-beta", True),
    ("^1.1.1-beta", "1.1.1-alpha", False),
    ("^1.1", "4.3.2", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^0.0.1", "0.1.3", False),
    ("^0.0.1", "0.0.1", True),
    ("~*", "2.1.1", True),
    ("~1", "2.1.1", False),
    ("~1", "1.3.5", True),
    ("~1", "1.3.5-beta", False),
    ("~1.x", "2.1.1", False),
    ("~1.x", "1.3.5", True),
    ("~1.x", "1.3.5-beta", False),
    ("~1.3.6-alpha", "1.3.5-beta", False),
    ("~1.3.5-alpha", "1.3.5-beta", True),
    ("~1.3.5-beta", "1.3.5-alpha", False),
    ("~1.x", "1.4", True),
    ("~1.1", "1.1.1", True),
    ("~1.2.3", "1.2.5", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.2", False),
    ("~1.1", "1.2.3", False),
    ("~1.3", "2.4.5", False),
]

# TestConstraintsValidate (tests2: Validate's messages)
CONSTRAINTS_VALIDATE_MESSAGES = [
    ("2.x", "1.2.3", '"1.2.3" is less than "2.x"'),
    ("2", "1.2.3", '"1.2.3" is less than "2"'),
    ("= 2.0", "1.2.3", '"1.2.3" is less than "2.0"'),
    ("!=4.1", "4.1.0", '"4.1.0" is equal to "4.1"'),
    ("!=4.x", "4.1.0", '"4.1.0" is equal to "4.x"'),
    ("!=4.2.x", "4.2.3", '"4.2.3" is equal to "4.2.x"'),
    (">1.1", "1.1.0", '"1.1.0" is less than or equal to "1.1"'),
    ("<1.1", "1.1.0", '"1.1.0" is greater than or equal to "1.1"'),
    ("<1.1", "1.1.1", '"1.1.1" is greater than or equal to "1.1"'),
    ("<1.x", "2.1.1", '"2.1.1" is greater than or equal to "1.x"'),
    ("<1.1.x", "1.2.1", '"1.2.1" is greater than or equal to "1.1.x"'),
    (">=1.1", "0.0.9", '"0.0.9" is less than "1.1"'),
    ("<=2.x", "3.1.0", '"3.1.0" is greater than "2.x"'),
    ("<=1.1", "1.2.1", '"1.2.1" is greater than "1.1"'),
    ("<=1.1.x", "1.2.500", '"1.2.500" is greater than "1.1.x"'),
    (">1.1, <3", "4.3.2", '"4.3.2" is greater than or equal to "3"'),
    (">=1.1, <2, !=1.2.3", "1.2.3", '"1.2.3" is equal to "1.2.3"'),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", '"3.0.0" is greater than or equal to "2"'),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", '"1.2.3" is equal to "1.2.3"'),
    ("1.1 - 3", "4.3.2", '"4.3.2" is greater than "3"'),
    ("^1.1", "4.3.2", '"4.3.2" does not have same major version as "1.1"'),
    ("^1.12.7", "1.6.6", '"1.6.6" is less than "1.12.7"'),
    ("^2.x", "1.1.1", '"1.1.1" is less than "2.x"'),
    ("^1.x", "2.1.1", '"2.1.1" does not have same major version as "1.x"'),
    (
        "^0.2",
        "0.3.0",
        '"0.3.0" does not have same minor version as "0.2". Expected minor versions to match when constraint major version is 0',
    ),
    ("^0.2", "0.1.1", '"0.1.1" is less than "0.2"'),
    ("^0.0.3", "0.1.1", '"0.1.1" does not have same minor version as "0.0.3"'),
    (
        "^0.0.3",
        "0.0.4",
        '"0.0.4" does not equal "0.0.3". Expect version and constraint to equal when major and minor versions are 0',
    ),
    ("^0.0.3", "0.0.2", '"0.0.2" is less than "0.0.3"'),
    ("~1", "2.1.2", '"2.1.2" does not have same major version as "1"'),
    ("~1.x", "2.1.1", '"2.1.1" does not have same major version as "1.x"'),
    ("~1.2.3", "1.2.2", '"1.2.2" is less than "1.2.3"'),
    ("~1.2.3", "1.3.2", '"1.3.2" does not have same major and minor version as "1.2.3"'),
    ("~1.1", "1.2.3", '"1.2.3" does not have same major and minor version as "1.1"'),
    ("~1.3", "2.4.5", '"2.4.5" does not have same major version as "1.3"'),
    (
        "> 1.2.3",
        "1.2.3-beta.1",
        '"1.2.3-beta.1" is a prerelease version and the constraint is only looking for release versions',
    ),
]

# TestConstraintsValidateIncludePrerelease
CONSTRAINTS_VALIDATE_INCLUDE_PRERELEASE = [
    ("^1.1", "1.1.1-alpha", True),
    ("~1", "1.3.5-beta", True),
    ("~1.x", "1.3.5-beta", True),
    (">=1.1", "4.1.0-beta", True),
    (">1.1", "4.1.0-beta", True),
    ("<=1.1", "0.1.0-alpha", True),
    ("<1.1", "0.1.0-alpha", True),
    ("^1.x", "1.1.1-beta1", True),
    ("~1.1", "1.1.1-alpha", True),
    ("*", "1.2.3-alpha", True),
    ("= 2.0", "2.0.1-beta", True),
    ("*", "1.2.3", True),
    ("~0.0.0", "1.2.3", True),
    ("= 2.0", "1.2.3", False),
    ("= 2.0", "2.0.0", True),
    ("4.1", "4.1.0", True),
    ("4.1.x", "4.1.3", True),
    ("1.x", "1.4", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1", "5.1.0", True),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<1.x", "1.1.1", False),
    ("<2.x", "1.1.1", True),
    ("<1.x", "2.1.1", False),
    ("<1.1.x", "1.2.1", False),
    ("<1.1.x", "1.1.500", False),
    ("<1.2.x", "1.1.1", True),
    (">=1.1", "4.1.0", True),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.1.0", False),
    ("<=1.1", "1.1.1", True),
    ("<=1.1.x", "1.2.500", False),
    (">1.1, <2", "1.1.1", False),
    (">1.1, <2", "1.2.1", True),
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    ("1.1 - 2", "1.1.1", True),
    ("1.1-3", "4.3.2", False),
    ("^1.1", "1.1.1", True),
    ("^1.1.1-alpha", "1.1.1-beta", True),
    ("^1.1.1-beta", "1.1.1-alpha", False),
    ("^1.1", "4.3.2", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^0.0.1", "0.1.3", False),
    ("^0.0.1", "0.0.1", True),
    ("~*", "2.1.1", True),
    ("~1", "2.1.1", False),
    ("~1", "1.3.5", True),
    ("~1.x", "2.1.1", False),
    ("~1.x", "1.3.5", True),
    ("~1.3.6-alpha", "1.3.5-beta", False),
    ("~1.3.5-alpha", "1.3.5-beta", True),
    ("~1.3.5-beta", "1.3.5-alpha", False),
    ("~1.x", "1.4", True),
    ("~1.1", "1.1.1", True),
    ("~1.2.3", "1.2.5", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.2", False),
    ("~1.1", "1.2.3", False),
    ("~1.3", "2.4.5", False),
]

# TestConstraintsValidateIncludePrerelease (tests2: Validate's messages)
CONSTRAINTS_VALIDATE_INCLUDE_PRERELEASE_MESSAGES = [
    ("> 1.2.3", "1.2.3-beta.1", '"1.2.3-beta.1" is less than or equal to "1.2.3"'),
    ("< 1.2.3", "1.2.4-beta.1", '"1.2.4-beta.1" is greater than or equal to "1.2.3"'),
    (">= 1.2.3", "1.2.3-beta.1", '"1.2.3-beta.1" is less than "1.2.3"'),
    ("<= 1.2.3", "1.2.4-beta.1", '"1.2.4-beta.1" is greater than "1.2.3"'),
    ("2.x", "1.2.3", '"1.2.3" is less than "2.x"'),
    ("2", "1.2.3", '"1.2.3" is less than "2"'),
    ("= 2.0", "1.2.3", '"1.2.3" is less than "2.0"'),
    ("!=4.1", "4.1.0", '"4.1.0" is equal to "4.1"'),
    ("!=4.x", "4.1.0", '"4.1.0" is equal to "4.x"'),
    ("!=4.2.x", "4.2.3", '"4.2.3" is equal to "4.2.x"'),
    (">1.1", "1.1.0", '"1.1.0" is less than or equal to "1.1"'),
    ("<1.1", "1.1.0", '"1.1.0" is greater than or equal to "1.1"'),
    ("<1.1", "1.1.1", '"1.1.1" is greater than or equal to "1.1"'),
    ("<1.x", "2.1.1", '"2.1.1" is greater than or equal to "1.x"'),
    ("<1.1.x", "1.2.1", '"1.2.1" is greater than or equal to "1.1.x"'),
    (">=1.1", "0.0.9", '"0.0.9" is less than "1.1"'),
    ("<=2.x", "3.1.0", '"3.1.0" is greater than "2.x"'),
    ("<=1.1", "1.2.1", '"1.2.1" is greater than "1.1"'),
    ("<=1.1.x", "1.2.500", '"1.2.500" is greater than "1.1.x"'),
    (">1.1, <3", "4.3.2", '"4.3.2" is greater than or equal to "3"'),
    (">=1.1, <2, !=1.2.3", "1.2.3", '"1.2.3" is equal to "1.2.3"'),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", '"3.0.0" is greater than or equal to "2"'),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", '"1.2.3" is equal to "1.2.3"'),
    ("1.1 - 3", "4.3.2", '"4.3.2" is greater than "3"'),
    ("^1.1", "4.3.2", '"4.3.2" does not have same major version as "1.1"'),
    ("^1.12.7", "1.6.6", '"1.6.6" is less than "1.12.7"'),
    ("^2.x", "1.1.1", '"1.1.1" is less than "2.x"'),
    ("^1.x", "2.1.1", '"2.1.1" does not have same major version as "1.x"'),
    (
        "^0.2",
        "0.3.0",
        '"0.3.0" does not have same minor version as "0.2". Expected minor versions to match when constraint major version is 0',
    ),
    ("^0.2", "0.1.1", '"0.1.1" is less than "0.2"'),
    ("^0.0.3", "0.1.1", '"0.1.1" does not have same minor version as "0.0.3"'),
    (
        "^0.0.3",
        "0.0.4",
        '"0.0.4" does not equal "0.0.3". Expect version and constraint to equal when major and minor versions are 0',
    ),
    ("^0.0.3", "0.0.2", '"0.0.2" is less than "0.0.3"'),
    ("~1", "2.1.2", '"2.1.2" does not have same major version as "1"'),
    ("~1.x", "2.1.1", '"2.1.1" does not have same major version as "1.x"'),
    ("~1.2.3", "1.2.2", '"1.2.2" is less than "1.2.3"'),
    ("~1.2.3", "1.3.2", '"1.3.2" does not have same major and minor version as "1.2.3"'),
    ("~1.1", "1.2.3", '"1.2.3" does not have same major and minor version as "1.1"'),
    ("~1.3", "2.4.5", '"2.4.5" does not have same major version as "1.3"'),
]

# TestConstraintString
CONSTRAINT_STRING = [
    ("*", "*"),
    (">=1.2.3", ">=1.2.3"),
    (">= 1.2.3", ">=1.2.3"),
    ("2.x,   >=1.2.3 || >4.5.6, < 5.7", "2.x >=1.2.3 || >4.5.6 <5.7"),
    (
        "2.x,   >=1.2.3 || >4.5.6, < 5.7 || >40.50.60, < 50.70",
        "2.x >=1.2.3 || >4.5.6 <5.7 || >40.50.60 <50.70",
    ),
    ("1.2", "1.2"),
]

# TestTextMarshalConstraints
TEXT_MARSHAL_CONSTRAINTS = [
    ("1.2.3", "1.2.3"),
    (">=1.2.3", ">=1.2.3"),
    ("<=1.2.3", "<=1.2.3"),
    ("1 <=1.2.3", "1 <=1.2.3"),
    ("1, <=1.2.3", "1 <=1.2.3"),
    (">1, <=1.2.3", ">1 <=1.2.3"),
    ("> 1 , <=1.2.3", ">1 <=1.2.3"),
]

# TestTextUnmarshalConstraints
TEXT_UNMARSHAL_CONSTRAINTS = [
    ("1.2.3", "1.2.3"),
    (">=1.2.3", ">=1.2.3"),
    ("<=1.2.3", "<=1.2.3"),
    (">1 <=1.2.3", ">1 <=1.2.3"),
    ("> 1 <=1.2.3", ">1 <=1.2.3"),
    (">1, <=1.2.3", ">1 <=1.2.3"),
]

# TestNewVersion
NEW_VERSION = [
    ("1.2.3", False),
    ("1.2.3-alpha.01", True),
    ("1.2.3+test.01", False),
    ("1.2.3-alpha.-1", False),
    ("v1.2.3", False),
    ("1.0", False),
    ("v1.0", False),
    ("1", False),
    ("v1", False),
    ("1.2.beta", True),
    ("v1.2.beta", True),
    ("foo", True),
    ("1.2-5", False),
    ("v1.2-5", False),
    ("1.2-beta.5", False),
    ("v1.2-beta.5", False),
    ("\n1.2", True),
    ("\nv1.2", True),
    ("1.2.0-x.Y.0+metadata", False),
    ("v1.2.0-x.Y.0+metadata", False),
    ("1.2.0-x.Y.0+metadata-width-hypen", False),
    ("v1.2.0-x.Y.0+metadata-width-hypen", False),
    ("1.2.3-rc1-with-hypen", False),
    ("v1.2.3-rc1-with-hypen", False),
    ("1.2.3-0abc123", False),
    ("1.2.3-beta.01", True),
    ("1.2.3.4", True),
    ("v1.2.3.4", True),
    ("1.2.2147483648", False),
    ("1.2147483648.3", False),
    ("2147483648.3.0", False),
    ("12.3.4.1234", True),
    ("12.23.4.1234", True),
    ("12.3.34.1234", True),
    ("20221209-update-renovatejson-v4", False),
    ("1.1.2+.123", True),
    ("1.0.0-alpha_beta", True),
    ("1.0.0-alpha..", True),
    ("1.0.0-alpha..1", True),
    ("9.8.7+meta+meta", True),
    ("1.2.31----RC-SNAPSHOT.12.09.1--.12+788", True),
    ("01.1.1", False),
    ("1.01.1", False),
    ("1.1.01", False),
]

# TestCoerceString
COERCE_STRING = [
    ("1.2.3", "1.2.3"),
    ("v1.2.3", "1.2.3"),
    ("1.0", "1.0.0"),
    ("v1.0", "1.0.0"),
    ("1", "1.0.0"),
    ("v1", "1.0.0"),
    ("1.2-5", "1.2.0-5"),
    ("v1.2-5", "1.2.0-5"),
    ("1.2-beta.5", "1.2.0-beta.5"),
    ("v1.2-beta.5", "1.2.0-beta.5"),
    ("1.2.0-x.Y.0+metadata", "1.2.0-x.Y.0+metadata"),
    ("v1.2.0-x.Y.0+metadata", "1.2.0-x.Y.0+metadata"),
    ("1.2.0-x.Y.0+metadata-width-hypen", "1.2.0-x.Y.0+metadata-width-hypen"),
    ("v1.2.0-x.Y.0+metadata-width-hypen", "1.2.0-x.Y.0+metadata-width-hypen"),
    ("1.2.3-rc1-with-hypen", "1.2.3-rc1-with-hypen"),
    ("v1.2.3-rc1-with-hypen", "1.2.3-rc1-with-hypen"),
]

# TestCompare
COMPARE = [
    ("1.2.3", "1.5.1", -1),
    ("2.2.3", "1.5.1", 1),
    ("2.2.3", "2.2.2", 1),
    ("3.2-beta", "3.2-beta", 0),
    ("1.3", "1.1.4", 1),
    ("4.2", "4.2-beta", 1),
    ("4.2-beta", "4.2", -1),
    ("4.2-alpha", "4.2-beta", -1),
    ("4.2-alpha", "4.2-alpha", 0),
    ("4.2-beta.2", "4.2-beta.1", 1),
    ("4.2-beta2", "4.2-beta1", 1),
    ("4.2-beta", "4.2-beta.2", -1),
    ("4.2-beta", "4.2-beta.foo", -1),
    ("4.2-beta.2", "4.2-beta", 1),
    ("4.2-beta.foo", "4.2-beta", 1),
    ("1.2+bar", "1.2+baz", 0),
    ("1.0.0-beta.4", "1.0.0-beta.-2", -1),
    ("1.0.0-beta.-2", "1.0.0-beta.-3", -1),
    ("1.0.0-beta.-3", "1.0.0-beta.5", 1),
]

# TestLessThan
LESS_THAN = [
    ("1.2.3", "1.5.1", True),
    ("2.2.3", "1.5.1", False),
    ("3.2-beta", "3.2-beta", False),
]

# TestLessThanEqual
LESS_THAN_EQUAL = [
    ("1.2.3", "1.5.1", True),
    ("2.2.3", "1.5.1", False),
    ("1.5.1", "1.5.1", True),
]

# TestGreaterThan
GREATER_THAN = [
    ("1.2.3", "1.5.1", False),
    ("2.2.3", "1.5.1", True),
    ("3.2-beta", "3.2-beta", False),
    ("3.2.0-beta.1", "3.2.0-beta.5", False),
    ("3.2-beta.4", "3.2-beta.2", True),
    ("7.43.0-SNAPSHOT.99", "7.43.0-SNAPSHOT.103", False),
    ("7.43.0-SNAPSHOT.FOO", "7.43.0-SNAPSHOT.103", True),
    ("7.43.0-SNAPSHOT.99", "7.43.0-SNAPSHOT.BAR", False),
]

# TestGreaterThanEqual
GREATER_THAN_EQUAL = [
    ("1.2.3", "1.5.1", False),
    ("2.2.3", "1.5.1", True),
    ("1.5.1", "1.5.1", True),
]

# TestValidatePrerelease
VALIDATE_PRERELEASE = [
    ("foo", None),
    ("alpha.1", None),
    ("alpha.01", "ErrSegmentStartsZero"),
    ("foo☃︎", "ErrInvalidPrerelease"),
    ("alpha.0-1", None),
]

# TestValidateMetadata
VALIDATE_METADATA = [
    ("foo", None),
    ("alpha.1", None),
    ("alpha.01", None),
    ("foo☃︎", "ErrInvalidMetadata"),
    ("alpha.0-1", None),
    ("al-pha.1Phe70CgWe050H9K1mJwRUqTNQXZRERwLOEg37wpXUb4JgzgaD5YkL52ABnoyiE", None),
]


# ---------------------------------------------------------------------------------------------
# How the rows run
# ---------------------------------------------------------------------------------------------

OPS = {
    "constraintGreaterThanEqual": ">=",
    "constraintTildeOrEqual": "=",
    "constraintLessThanEqual": "<=",
    "constraintGreaterThan": ">",
    "constraintLessThan": "<",
    "constraintNotEqual": "!=",
    "constraintTilde": "~",
    "constraintCaret": "^",
}
# parseConstraint("") is "*" (an internal special case); NewConstraint, which Flux calls,
# refuses "" (Flux's TestNewSemVer lists it as invalid), and so does imgctl.
EMPTY_CONSTRAINT_ROWS = [row for row in CONSTRAINT_CHECK if row[0] == ""]


def version(text: str) -> _Version:
    parsed = _new_version(text)
    assert parsed is not None, text
    return parsed


def constraint(text: str) -> _Constraint:
    return _compile_constraint(text)


def refused(text: str) -> None:
    with pytest.raises(UsageError, match="invalid constraint"):
        ImagePolicy.from_spec({"semver": {"range": text}})


def check(constraint_text: str, version_text: str, *, include_prerelease: bool = False) -> bool:
    """Constraints.Check; with include_prerelease, as with IncludePrerelease = true."""
    parsed = constraint(constraint_text)
    v = version(version_text)
    if not include_prerelease:
        return parsed.allows(v)
    return any(all(c.allows(v, True) for c in group) for group in parsed.groups)


def rendered(v: _Version) -> str:
    return f"{v.major}.{v.minor}.{v.patch}" + (f"-{'.'.join(v.pre)}" if v.pre else "")


def compare(a: str, b: str) -> int:
    return _cmp(version(a), version(b))


def through_flux(constraint_text: str, version_text: str, allowed: bool) -> None:
    """Where the version is also a tag Flux reads, the public policy must agree."""
    if _parse_tag(version_text) is not None:
        picked = ImagePolicy("semver", range=constraint_text).latest([version_text])
        assert picked == (version_text if allowed else None)


# ---------------------------------------------------------------------------------------------
# constraints_test.go
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "func", "want", "err"), PARSE_CONSTRAINT)
def test_parse_constraint(text: str, func: str | None, want: str, err: bool) -> None:
    if err:
        refused(text)
        return
    (group,) = constraint(text).groups
    (comparison,) = group
    assert func is not None
    assert comparison.op == OPS[func]
    assert rendered(comparison.version) == want


@pytest.mark.parametrize(
    ("text", "version_text", "allowed"),
    [row for row in CONSTRAINT_CHECK if row not in EMPTY_CONSTRAINT_ROWS],
)
def test_constraint_check(text: str, version_text: str, allowed: bool) -> None:
    (group,) = constraint(text).groups
    (comparison,) = group
    has_pre = bool(comparison.version.pre)
    assert comparison.allows(version(version_text), has_pre) is allowed


def test_constraint_check_empty_rows_are_the_refused_empty_range() -> None:
    assert [(v, a) for _, v, a in EMPTY_CONSTRAINT_ROWS] == [
        ("1", True),
        ("4.5.6", True),
        ("1.2.3-alpha.1", False),
    ]
    for _, version_text, allowed in EMPTY_CONSTRAINT_ROWS:
        assert check("*", version_text) is allowed  # what parseConstraint("") means
    with pytest.raises(ValueError, match="empty"):
        constraint("")


@pytest.mark.parametrize(("text", "ors", "count", "err"), NEW_CONSTRAINT)
def test_new_constraint(text: str, ors: int, count: int, err: bool) -> None:
    if err:
        refused(text)
        return
    parsed = constraint(text)
    assert len(parsed.groups) == ors
    assert len(parsed.groups[0]) == count


@pytest.mark.parametrize(("text", "version_text", "allowed"), CONSTRAINTS_CHECK)
def test_constraints_check(text: str, version_text: str, allowed: bool) -> None:
    assert check(text, version_text) is allowed
    through_flux(text, version_text, allowed)


@pytest.mark.parametrize(("text", "version_text", "allowed"), CONSTRAINTS_CHECK_INCLUDE_PRERELEASE)
def test_constraints_check_include_prerelease(text: str, version_text: str, allowed: bool) -> None:
    assert check(text, version_text, include_prerelease=True) is allowed


@pytest.mark.parametrize(("text", "rewritten"), REWRITE_RANGE)
def test_rewrite_range(text: str, rewritten: str) -> None:
    assert _rewrite_ranges(text) == rewritten


@pytest.mark.parametrize(("text", "wild"), IS_X)
def test_is_x(text: str, wild: bool) -> None:
    assert _is_x(text) is wild


@pytest.mark.parametrize(("text", "version_text", "allowed"), CONSTRAINTS_VALIDATE)
def test_constraints_validate(text: str, version_text: str, allowed: bool) -> None:
    assert check(text, version_text) is allowed
    through_flux(text, version_text, allowed)


@pytest.mark.parametrize(("text", "version_text", "message"), CONSTRAINTS_VALIDATE_MESSAGES)
def test_constraints_validate_messages_refuse(text: str, version_text: str, message: str) -> None:
    # The messages are NOT_APPLICABLE; the refusal they explain is checked.
    assert message
    assert check(text, version_text) is False


def test_constraints_validate_message_count_row_refuses() -> None:
    assert check("!= 1.2.5, ^2, <= 1.1.x", "1.2.3") is False


@pytest.mark.parametrize(
    ("text", "version_text", "allowed"), CONSTRAINTS_VALIDATE_INCLUDE_PRERELEASE
)
def test_constraints_validate_include_prerelease(
    text: str, version_text: str, allowed: bool
) -> None:
    assert check(text, version_text, include_prerelease=True) is allowed


@pytest.mark.parametrize(
    ("text", "version_text", "message"), CONSTRAINTS_VALIDATE_INCLUDE_PRERELEASE_MESSAGES
)
def test_constraints_validate_include_prerelease_messages_refuse(
    text: str, version_text: str, message: str
) -> None:
    assert message
    assert check(text, version_text, include_prerelease=True) is False


@pytest.mark.parametrize(
    ("text", "rendering"),
    CONSTRAINT_STRING + TEXT_MARSHAL_CONSTRAINTS + TEXT_UNMARSHAL_CONSTRAINTS,
)
def test_rendered_constraints_parse_alike(text: str, rendering: str) -> None:
    # imgctl never re-renders a range (NOT_APPLICABLE); both spellings must parse and agree.
    ours, theirs = constraint(text), constraint(rendering)
    for probe in ["0.0.1", "1.2.3", "1.2.4", "2.1.0", "4.6.0", "5.6.0", "40.60.0", "50.80.0"]:
        assert ours.allows(version(probe)) == theirs.allows(version(probe)), probe


# ---------------------------------------------------------------------------------------------
# version_test.go
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "err"), NEW_VERSION)
def test_new_version(text: str, err: bool) -> None:
    assert (_new_version(text) is None) is err
    # fluxcd/pkg ParseVersion: NewVersion after a split into exactly three dot parts.
    assert (_parse_tag(text) is None) is (err or text.count(".") < 2)


@pytest.mark.parametrize(("text", "want"), COERCE_STRING)
def test_coerce_string(text: str, want: str) -> None:
    # Build metadata does not order versions; imgctl keeps the tag, not the metadata.
    assert rendered(version(text)) == want.partition("+")[0]


def test_original_and_parts() -> None:
    # TestOriginal: every tag that parses is returned as written (Flux returns Original()).
    for text in [row[0] for row in COERCE_STRING]:
        if _parse_tag(text) is not None:
            assert ImagePolicy("semver", range="*-0").latest([text]) == text
    # TestParts
    v = version("1.2.3-beta.1+build.123")
    assert (v.major, v.minor, v.patch, v.pre) == (1, 2, 3, ("beta", "1"))


@pytest.mark.parametrize(("a", "b", "want"), COMPARE)
def test_compare(a: str, b: str, want: int) -> None:
    assert compare(a, b) == want


@pytest.mark.parametrize(("a", "b", "want"), LESS_THAN)
def test_less_than(a: str, b: str, want: bool) -> None:
    assert (compare(a, b) < 0) is want


@pytest.mark.parametrize(("a", "b", "want"), LESS_THAN_EQUAL)
def test_less_than_equal(a: str, b: str, want: bool) -> None:
    assert (compare(a, b) <= 0) is want


@pytest.mark.parametrize(("a", "b", "want"), GREATER_THAN)
def test_greater_than(a: str, b: str, want: bool) -> None:
    assert (compare(a, b) > 0) is want


@pytest.mark.parametrize(("a", "b", "want"), GREATER_THAN_EQUAL)
def test_greater_than_equal(a: str, b: str, want: bool) -> None:
    assert (compare(a, b) >= 0) is want


# TestEqual, its four rows with versions (the three nil rows are NOT_APPLICABLE).
EQUAL = [
    ("1.2.3", "1.5.1", False),
    ("2.2.3", "1.5.1", False),
    ("3.2-beta", "3.2-beta", True),
    ("3.2-beta+foo", "3.2-beta+bar", True),
]


@pytest.mark.parametrize(("a", "b", "want"), EQUAL)
def test_equal(a: str, b: str, want: bool) -> None:
    assert (compare(a, b) == 0) is want


@pytest.mark.parametrize(("pre", "err"), VALIDATE_PRERELEASE)
def test_validate_prerelease(pre: str, err: str | None) -> None:
    assert (_new_version(f"1.0.0-{pre}") is None) is (err is not None)


@pytest.mark.parametrize(("meta", "err"), VALIDATE_METADATA)
def test_validate_metadata(meta: str, err: str | None) -> None:
    assert (_new_version(f"1.0.0+{meta}") is None) is (err is not None)


# ---------------------------------------------------------------------------------------------
# What is not run, and why (also in docs/scanning.md)
# ---------------------------------------------------------------------------------------------

NOT_APPLICABLE = {
    "constraints_test.go TestConstraintCheck, 3 rows with an empty constraint": (
        "parseConstraint('') is '*', but NewConstraint (what Flux calls) refuses ''; "
        "imgctl too (test_constraint_check_empty_rows_are_the_refused_empty_range)"
    ),
    "constraints_test.go TestConstraintsValidate* messages": (
        "Flux calls Check, not Validate; imgctl reports the tag it picked, not why each tag "
        "was refused (the refusals themselves are checked)"
    ),
    "constraints_test.go TestConstraintString, TestTextMarshalConstraints, "
    "TestTextUnmarshalConstraints": (
        "imgctl echoes a range as written; both spellings are checked to parse alike"
    ),
    "version_test.go TestStrictNewVersion": (
        "fluxcd/pkg version stopped using StrictNewVersion (ParseVersion uses NewVersion)"
    ),
    "version_test.go TestNewVersion 'Without loose NewVersion', TestNewVersionCheckError": (
        "they set CoerceNewVersion = false, which Flux never does"
    ),
    "version_test.go TestEqual nil rows, TestNew, TestInc*, TestSetPrerelease, "
    "TestSetMetadata, TestOriginalVPrefix, TestJson*, TestText*, TestSQLScanner, "
    "TestDriverValuer": "APIs that neither Flux's policy nor imgctl has",
    "version_test.go TestCoerceString build metadata": (
        "metadata does not order versions; imgctl returns the tag as written"
    ),
}

# Constraints Masterminds accepts and imgctl refuses on purpose: parts after the first wildcard
# that are neither numbers nor wildcards, which Masterminds' cv pattern lets through and then
# discards ("1.x.xx" is 1.x). A typo should not quietly widen a range.
DIFFERENT = ["1.x.xx", "x.|", "1.*.1x", "^X.xx.3"]


@pytest.mark.parametrize("text", DIFFERENT)
def test_different_garbage_after_a_wildcard_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unexpected"):
        constraint(text)
