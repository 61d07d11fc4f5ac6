"""Masterminds/semver v3 constraints and versions, as Flux's ``semver`` policy reads them.

Versions are read as fluxcd/pkg ``version.ParseVersion`` v0.16.0 reads tags (three dot parts,
then Masterminds' lenient ``NewVersion``); ranges as Masterminds/semver v3.4 parses and checks
them (hyphen ranges rewritten exactly as its ``rewriteRange``). ``imgctl.scan.policy`` says
which tags a range admits and how the highest is chosen.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["compile_constraint", "parse_tag"]

_UINT64_MAX: Final = 2**64 - 1

_IDENTS: Final = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
# Masterminds' looseSemVerRegex, which NewVersion uses (CoerceNewVersion, the default): leading
# zeros allowed, minor and patch optional, one lowercase "v".
_LOOSE_RE: Final = re.compile(
    rf"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-({_IDENTS}))?(?:\+{_IDENTS})?"
)

_PreKey = tuple[tuple[int, int, str], ...]
_VersionKey = tuple[int, int, int, int, _PreKey]


@dataclass(frozen=True, slots=True)
class _Version:
    """A parsed version; ``key`` orders by semver 2.0.0 precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...]
    key: _VersionKey


def _uint64(digits: str) -> int:
    """``digits`` as Go's ``strconv.ParseUint(digits, 10, 64)``; ValueError when out of range."""
    significant = digits.lstrip("0")
    # Checked before int(): a long digit string would hit Python's conversion limit.
    if len(significant) > 20 or (significant and int(significant) > _UINT64_MAX):
        raise ValueError(f"{digits} does not fit in 64 bits")
    return int(significant or "0")


def _pre_key(ident: str) -> tuple[int, int, str]:
    # Masterminds compares an identifier as a number only when ParseUint reads it; a longer run
    # of digits is compared as text, like any alphanumeric identifier.
    if ident.isascii() and ident.isdigit():
        try:
            return (0, _uint64(ident), "")
        except ValueError:
            pass
    return (1, 0, ident)


def _make_version(major: int, minor: int, patch: int, pre: str | None) -> _Version:
    idents = tuple(pre.split(".")) if pre else ()
    for ident in idents:
        if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
            raise ValueError(f"pre-release identifier {ident!r} has a leading zero")
    if max(major, minor, patch) > _UINT64_MAX:
        raise ValueError("a version number does not fit in 64 bits")
    # Numeric identifiers sort below alphanumeric ones; a shorter list of equal identifiers sorts
    # first; a release (flag 1) sorts above every pre-release (flag 0) of the same core.
    pre_key = tuple(_pre_key(i) for i in idents)
    return _Version(major, minor, patch, idents, (major, minor, patch, 0 if idents else 1, pre_key))


def _new_version(text: str) -> _Version | None:
    """``text`` as Masterminds' ``NewVersion`` (lenient, the default) reads it, or None."""
    match = _LOOSE_RE.fullmatch(text)
    if match is None:
        return None
    try:
        numbers = [_uint64(part) if part else 0 for part in match.group(1, 2, 3)]
        return _make_version(numbers[0], numbers[1], numbers[2], match[4])
    except ValueError:
        return None


def parse_tag(text: str) -> _Version | None:
    """The tag as Flux reads it (fluxcd/pkg ``version.ParseVersion`` v0.16.0), or None."""
    # ParseVersion: strings.SplitN(tag, ".", 3) must give three parts, then NewVersion.
    if text.count(".") < 2:
        return None
    return _new_version(text)


# --------------------------------------------------------------------------- semver constraints

_WS: Final = "[ \t\n\f\r]"  # Go's \s: ASCII only, unlike Python's
_PART: Final = r"(?:[0-9]+|[xX*])"
# Masterminds' cvRegex as its range rewrite uses it (the class admits '|', as upstream's does).
_GO_PART: Final = r"[0-9|xX*]+"
_GO_CV: Final = rf"v?{_GO_PART}(?:\.{_GO_PART})?(?:\.{_GO_PART})?(?:-{_IDENTS})?(?:\+{_IDENTS})?"
_HYPHEN_RE: Final = re.compile(rf"{_WS}*({_GO_CV}){_WS}+-{_WS}+({_GO_CV}){_WS}*")
_COMPARISON_RE: Final = re.compile(
    rf"(!=|>=|=>|<=|=<|~>|>|<|=|~|\^|){_WS}*v?(?P<major>{_PART})(?:\.(?P<minor>{_PART}))?"
    rf"(?:\.(?P<patch>{_PART}))?(?:-(?P<pre>{_IDENTS}))?(?:\+{_IDENTS})?"
)
_OP_ALIASES: Final = {"": "=", "=>": ">=", "=<": "<=", "~>": "~"}


def _cmp(a: _Version, b: _Version) -> int:
    return (a.key > b.key) - (a.key < b.key)


@dataclass(frozen=True, slots=True)
class _Comparison:
    """One comparison of a range, e.g. ``>=1.2`` (``patch_dirty``: the patch was left out)."""

    op: str
    version: _Version
    major_wild: bool
    minor_dirty: bool
    patch_dirty: bool

    def allows(self, v: _Version, include_pre: bool) -> bool:
        """Whether ``v`` satisfies this comparison (Masterminds/semver v3.4 semantics)."""
        if v.pre and not include_pre:
            return False
        c = self.version
        dirty = self.major_wild or self.minor_dirty or self.patch_dirty
        if self.op == "=":
            return self._tilde(v) if dirty else _cmp(v, c) == 0
        if self.op == "~":
            return self._tilde(v)
        if self.op == "^":
            return self._caret(v)
        if self.op == "<":
            return _cmp(v, c) < 0
        if self.op == ">=":
            return _cmp(v, c) >= 0
        if self.op == ">":
            # ">1" means 2.0.0 and up, ">1.2" means 1.3.0 and up.
            if not dirty or self.major_wild:
                return _cmp(v, c) > 0 if v.major == c.major else v.major > c.major
            if v.major != c.major:
                return v.major > c.major
            return not self.minor_dirty and v.minor > c.minor
        if self.op == "<=":
            # "<=1" admits all of 1.x, "<=1.2" all of 1.2.x.
            if not dirty:
                return _cmp(v, c) <= 0
            if v.major > c.major:
                return False
            return not (v.major == c.major and v.minor > c.minor and not self.minor_dirty)
        return self._not_equal(v, dirty)

    def _not_equal(self, v: _Version, dirty: bool) -> bool:
        c = self.version
        if dirty:
            # "!=1.x" excludes all of 1.x, "!=1.2" all of 1.2.x.
            if c.major != v.major:
                return True
            if self.minor_dirty:
                return False
            if c.minor != v.minor:
                return True
            if self.patch_dirty:
                return v.pre != c.pre
            if c.patch != v.patch:
                return True
        return _cmp(v, c) != 0

    def _tilde(self, v: _Version) -> bool:
        c = self.version
        if _cmp(v, c) < 0:
            return False
        if c.major == c.minor == c.patch == 0 and not (self.minor_dirty or self.patch_dirty):
            return True  # ~0.0.0 and ~* admit everything
        return v.major == c.major and (self.minor_dirty or v.minor == c.minor)

    def _caret(self, v: _Version) -> bool:
        c = self.version
        if _cmp(v, c) < 0:
            return False
        # ^* is 0.0.0 with only its major dirty: Masterminds' code admits 0.0.0 alone (its
        # comment says "any"); Flux runs the code, and so does this.
        if c.major > 0 or self.minor_dirty:
            return v.major == c.major
        if v.major > 0:
            return False
        # ^0.y is the y minor series; ^0.0.z only z itself.
        if c.minor > 0 or self.patch_dirty:
            return v.minor == c.minor
        return v.minor == 0 and v.patch == c.patch


@dataclass(frozen=True, slots=True)
class _Constraint:
    """A parsed range: OR of AND groups, with whether each group names a pre-release."""

    groups: tuple[tuple[_Comparison, ...], ...]
    with_pre: tuple[bool, ...]

    def allows(self, v: _Version) -> bool:
        return any(
            all(c.allows(v, pre) for c in group)
            for group, pre in zip(self.groups, self.with_pre, strict=True)
        )


def _is_x(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


def _comparison(match: re.Match[str]) -> _Comparison:
    op = _OP_ALIASES.get(match[1], match[1])
    major, minor, patch = match["major"], match["minor"], match["patch"]
    # Like Masterminds: the first wildcard (or missing part) makes every later part a wildcard.
    if _is_x(major):
        numbers, wild = (0, 0, 0), (True, False, False)
    elif _is_x(minor):
        numbers, wild = (int(major), 0, 0), (False, True, False)
    elif _is_x(patch):
        numbers, wild = (int(major), int(minor), 0), (False, False, True)
    else:
        numbers, wild = (int(major), int(minor), int(patch)), (False, False, False)
    version = _make_version(*numbers, match["pre"])
    return _Comparison(op, version, *wild)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\f\r":
        pos += 1
    return pos


def _parse_group(text: str) -> tuple[_Comparison, ...]:
    """One AND group: comparisons separated by whitespace or a comma."""
    if not text.strip(" \t\n\f\r"):
        raise ValueError("an alternative around '||' is empty")
    comparisons: list[_Comparison] = []
    pos = _skip_ws(text, 0)
    while True:
        match = _COMPARISON_RE.match(text, pos)
        if match is None:
            rest = text[pos:]
            if not rest:
                raise ValueError(f"{text.strip()!r} ends with a comma")
            raise ValueError(
                f"{rest!r} is not a comparison (an operator such as >=, <, ~ or ^, then a version)"
            )
        comparisons.append(_comparison(match))
        pos = _skip_ws(text, match.end())
        if pos == len(text):
            return tuple(comparisons)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        elif pos == match.end():
            raise ValueError(
                f"unexpected {text[pos:]!r} after {match[0].strip()!r}; "
                "separate comparisons with a space or a comma"
            )


def _rewrite_ranges(text: str) -> str:
    """Hyphen ranges as comparisons, exactly as Masterminds' ``rewriteRange`` writes them.

    ``1.2 - 1.4.5`` becomes ``>= 1.2, <= 1.4.5 `` (the trailing space separates it from a
    comparison that follows). The match takes the whitespace around the range with it, so a
    range after another comparison and only a space (``<=3 1 - 2``) would be glued to it
    (``<=3>= 1, <= 2``), which upstream refuses: that is refused here with a clear message.
    """
    out: list[str] = []
    pos = 0
    for match in _HYPHEN_RE.finditer(text):
        out.append(text[pos : match.start()])
        # What the rewritten range lands after: nothing, a comma, '||' or an earlier range.
        before = next((chunk[-1] for chunk in reversed(out) if chunk), "")
        if before and before not in ",| ":
            written = match[0].strip(" \t\n\f\r")
            prefix = text[: match.start()]
            raise ValueError(
                f"the hyphen range {written!r} follows {prefix!r} with no comma between them; "
                f"Masterminds/semver joins the two and refuses the range, so write "
                f"{prefix + ', ' + written!r}"
            )
        out.append(f">= {match[1]}, <= {match[2]} ")
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_constraint(text: str) -> _Constraint:
    """The range parsed once; ValueError says what is wrong with it."""
    if not text.strip(" \t\n\f\r"):
        raise ValueError("the range is empty")
    # "1.2 - 1.4.5" is ">= 1.2, <= 1.4.5"; spaces around the hyphen tell it from a pre-release.
    text = _rewrite_ranges(text)
    groups = tuple(_parse_group(part) for part in text.split("||"))
    with_pre = tuple(any(c.version.pre for c in group) for group in groups)
    return _Constraint(groups, with_pre)
