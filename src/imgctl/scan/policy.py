"""Flux ``ImagePolicy`` semantics: the latest tag by semver range, alphabetically or numerically.

Pure functions over tag strings, no I/O. The rules follow Flux's image-reflector-controller:

* ``semver``: ``range`` is a Masterminds/semver v3 constraint (``>=1.0.0 <2.0.0``, ``^1.2``,
  ``~1.2.3``, ``1.x``, ``*``, ``1.2 - 1.4.5``, AND by space or comma, OR by ``||``). Tags are read
  as fluxcd/pkg ``version.ParseVersion`` v0.16.0 reads them: the tag must split on ``.`` into
  three parts (so it has at least two dots), then Masterminds' lenient ``NewVersion`` parses it
  (one leading ``v``, leading zeros allowed: ``v2025.07.03`` is 2025.7.3, ``1.2-rc.1`` is
  1.2.0-rc.1), so ``v1.2`` and ``1`` are *not* versions, although ranges may abbreviate
  (``>=1.2``). Pre-releases take part only in an AND group that names a pre-release itself
  (``>=1.2.3-0 <2``): the rule of Masterminds/semver v3.4. ``^*`` admits only ``0.0.0``, as
  Masterminds' code reads it (its comment calls it "any"; Flux runs the code).
* ``alphabetical``: ``asc`` (the default) picks the greatest tag, ``desc`` the smallest, comparing
  code points, which orders exactly like Go's byte-wise comparison of the UTF-8 strings.
* ``numerical``: tags are Go ``strconv.ParseFloat`` numbers; one tag that is not a number fails the
  whole evaluation (``PolicyError``). NaN is refused too: it has no place in an order, and Flux's
  pick would then depend on the registry's listing order.
* ``filterTags``: ``pattern`` (Go RE2 syntax) drops the tags it does not match; ``extract`` (a
  ``Regexp.Expand`` template: ``$name``, ``${name}``, ``$1``, ``$$``) gives the value the policy
  orders, but the result is always the original tag. Unlike Flux, an ``extract`` naming a group
  the pattern lacks is refused: Go would expand it to an empty string, silently.

Determinism: when the policy cannot tell candidates apart (``1.0.0`` and ``v1.0.0``, ``1.0.0+a``
and ``1.0.0+b``, ``1`` and ``1.0`` numerically, or two tags extracting the same value), the
lexically greatest original tag wins, so the answer never depends on the registry's listing order.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar, cast

from imgctl.errors import ImgctlError, UsageError

__all__ = ["ImagePolicy", "PolicyError", "compile_go_regex", "describe_kind"]

_KINDS: Final = ("semver", "alphabetical", "numerical")
_ORDERS: Final = ("asc", "desc")
_FILTER_KEYS: Final = ("pattern", "extract")
_UINT64_MAX: Final = 2**64 - 1

_RANGE_HINT: Final = (
    'write a Masterminds/semver constraint such as ">=1.0.0 <2.0.0", "^1.2", "~1.2.3", '
    '"1.x" or "1.0 - 1.4"'
)
_PATTERN_HINT: Final = (
    r"write the pattern in Go RE2 syntax, e.g. '^main-[a-f0-9]+-(?P<ts>[0-9]+)$'; imgctl "
    r"does not support \p{...} classes, (?U), or flags set after the pattern's start"
)
_EXAMPLES: Final = {
    "semver": '{"semver": {"range": ">=1.0.0"}}',
    "alphabetical": '{"alphabetical": {"order": "asc"}}',
    "numerical": '{"numerical": {"order": "asc"}}',
}


class PolicyError(ImgctlError):
    """The tags cannot be ordered under the policy (e.g. a numerical policy met 'latest')."""


# ------------------------------------------------------------------------------ semver versions

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


def _parse_tag(text: str) -> _Version | None:
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
def _compile_constraint(text: str) -> _Constraint:
    """The range parsed once; ValueError says what is wrong with it."""
    if not text.strip(" \t\n\f\r"):
        raise ValueError("the range is empty")
    # "1.2 - 1.4.5" is ">= 1.2, <= 1.4.5"; spaces around the hyphen tell it from a pre-release.
    text = _rewrite_ranges(text)
    groups = tuple(_parse_group(part) for part in text.split("||"))
    with_pre = tuple(any(c.version.pre for c in group) for group in groups)
    return _Constraint(groups, with_pre)


# ------------------------------------------------------------------------ RE2 patterns, extract

_POSIX_CLASSES: Final = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_REPEAT_RE: Final = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
# Group openings RE2 refuses but Python would accept, with a different meaning or none in Go.
_NOT_RE2: Final = (
    ("(?=", "a lookahead"),
    ("(?!", "a negative lookahead"),
    ("(?<=", "a lookbehind"),
    ("(?<!", "a negative lookbehind"),
    ("(?>", "an atomic group"),
    ("(?(", "a conditional group"),
    ("(?P=", "a backreference"),
    ("(?#", "a comment"),
)


def _translate_class(pattern: str, start: int) -> tuple[str, int]:
    """The character class at ``start`` in Python syntax, and where it ends."""
    out, pos = ["["], start + 1
    if pattern.startswith("^", pos):
        out.append("^")
        pos += 1
    if pattern.startswith("]", pos):  # a leading ] is literal in RE2
        out.append("\\]")
        pos += 1
    while pos < len(pattern) and pattern[pos] != "]":
        if pattern[pos] == "\\":
            out.append(pattern[pos : pos + 2])
            pos += 2
            continue
        if pattern.startswith("[:", pos) and (end := pattern.find(":]", pos + 2)) >= 0:
            name = pattern[pos + 2 : end]
            if name not in _POSIX_CLASSES:
                raise ValueError(f"unknown or negated POSIX class [:{name}:]; spell the set out")
            out.append(_POSIX_CLASSES[name])
            pos = end + 2
            continue
        # Python reads "[" inside a set as the start of a future nested set; RE2 as a literal.
        out.append("\\[" if pattern[pos] == "[" else pattern[pos])
        pos += 1
    if pos >= len(pattern):
        raise ValueError("a character class has no closing ]")
    out.append("]")
    return "".join(out), pos + 1


def _translate(pattern: str) -> str:
    """Go RE2 syntax as Python ``re`` syntax, refusing what RE2 would refuse but Python not.

    Known gaps: Python's ``$`` also matches before a final newline (tags never have one), and
    its backtracking lacks RE2's linear-time bound, so a pathological pattern such as
    ``(a+)+$`` can be slow on a long tag.
    """
    out: list[str] = []
    pos, after_repeat = 0, False
    while pos < len(pattern):
        char, repeat = pattern[pos], False
        if char == "\\":
            nxt = pattern[pos + 1 : pos + 2]
            if nxt == "Q":  # \Q...\E quotes literally
                end = pattern.find("\\E", pos + 2)
                stop = len(pattern) if end < 0 else end
                out.append(re.escape(pattern[pos + 2 : stop]))
                pos = stop if end < 0 else end + 2
            elif nxt in tuple("123456789"):
                raise ValueError(f"backreference \\{nxt} is not RE2 syntax")
            else:
                out.append("\\Z" if nxt == "z" else pattern[pos : pos + 2])
                pos += 2
        elif char == "[":
            text, pos = _translate_class(pattern, pos)
            out.append(text)
        elif pattern.startswith("(?", pos):
            for opening, what in _NOT_RE2:
                if pattern.startswith(opening, pos):
                    raise ValueError(f"{what} {opening}...) is not RE2 syntax")
            if pattern.startswith("(?<", pos):  # Go 1.22's (?<name>...) is Python's (?P<name>...)
                out.append("(?P<")
                pos += 3
            else:
                out.append("(?")
                pos += 2
        elif char == "{":
            match = _REPEAT_RE.match(pattern, pos)
            # "{" that does not start a repeat is a literal in RE2 (Python reads "{,3}" as one).
            out.append(match[0] if match else "\\{")
            pos = match.end() if match else pos + 1
            repeat = match is not None
        elif char == "+" and after_repeat:
            raise ValueError("possessive repeats such as 'a*+' are not RE2 syntax")
        else:
            out.append(char)
            pos += 1
            repeat = char in "*+?"
        after_repeat = repeat
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """The filter pattern compiled once; ValueError says what is wrong with it."""
    try:
        # ASCII: RE2's \d, \w, \s and \b are ASCII-only.
        return re.compile(_translate(pattern), re.ASCII)
    except re.error as exc:
        raise ValueError(str(exc)) from None


_Token = tuple[str, str | None]
# After "$": a name in braces, or the longest run of letters, digits and underscores ("$1x" is
# the group named "1x", not group 1 then "x"), as in Go's Regexp.Expand.
_REFERENCE_RE: Final = re.compile(r"\{(\w+)\}|(\w+)")


@functools.lru_cache(maxsize=256)
def _template(template: str) -> tuple[_Token, ...]:
    """``template`` as (literal, None) and ("", group reference) pieces, as Go's Expand reads it."""
    tokens: list[_Token] = []
    literal: list[str] = []
    pos = 0
    while pos < len(template):
        if template[pos] != "$":
            literal.append(template[pos])
            pos += 1
            continue
        if template.startswith("$$", pos):
            literal.append("$")
            pos += 2
            continue
        match = _REFERENCE_RE.match(template, pos + 1)
        if match is None:  # a malformed reference is literal text in Go
            literal.append("$")
            pos += 1
            continue
        tokens.append(("".join(literal), None))
        literal.clear()
        tokens.append(("", match[1] or match[2]))
        pos = match.end()
    tokens.append(("".join(literal), None))
    return tuple(token for token in tokens if token != ("", None))


def _group_number(name: str) -> int | None:
    """The group number a reference means, or None when it is a group name (Go's rules)."""
    if name.isascii() and name.isdigit() and (name == "0" or name[0] != "0"):
        return int(name)
    return None


def _expand(template: str, match: re.Match[str]) -> str:
    parts: list[str] = []
    for literal, name in _template(template):
        if name is None:
            parts.append(literal)
            continue
        number = _group_number(name)
        group = number if number is not None else match.re.groupindex.get(name)
        if group is not None and group <= match.re.groups:
            parts.append(match.group(group) or "")
    return "".join(parts)


def _unknown_references(template: str, pattern: re.Pattern[str]) -> list[str]:
    unknown: list[str] = []
    for _, name in _template(template):
        if name is None:
            continue
        number = _group_number(name)
        if (number is None and name not in pattern.groupindex) or (
            number is not None and number > pattern.groups
        ):
            unknown.append(name)
    return unknown


# ---------------------------------------------------------------------------- numerical values

_DEC: Final = "[0-9](?:_?[0-9])*"
_HEX: Final = "[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_DECIMAL_RE: Final = re.compile(rf"[+-]?(?:{_DEC}(?:\.(?:{_DEC})?)?|\.{_DEC})(?:[eE][+-]?{_DEC})?")
_HEX_FLOAT_RE: Final = re.compile(
    rf"[+-]?0[xX](?:_?{_HEX}(?:\.(?:{_HEX})?)?|\.{_HEX})[pP][+-]?{_DEC}"
)
_INFINITY_RE: Final = re.compile(r"([+-]?)(?:inf|infinity)", re.IGNORECASE)


def _parse_number(text: str) -> float | None:
    """``text`` as Go's ``strconv.ParseFloat(text, 64)`` reads it, or None (NaN included)."""
    if infinity := _INFINITY_RE.fullmatch(text):
        return -math.inf if infinity[1] == "-" else math.inf
    try:
        if _DECIMAL_RE.fullmatch(text):
            value = float(text.replace("_", ""))
        elif _HEX_FLOAT_RE.fullmatch(text):
            value = float.fromhex(text.replace("_", ""))
        else:
            return None
    except OverflowError:
        return None
    # Go reports a finite literal that overflows as a range error, which Flux treats as invalid.
    return None if math.isinf(value) else value


# ------------------------------------------------------------------------------------- helpers


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


_K = TypeVar("_K", bound=_Ordered)


def _select(scored: Iterable[tuple[_K, str]], *, highest: bool) -> str | None:
    """The tag with the highest (or lowest) key; on equal keys, the lexically greatest tag."""
    best: tuple[_K, str] | None = None
    for key, tag in scored:
        if best is None:
            best = (key, tag)
            continue
        best_key, best_tag = best
        better = (best_key < key) if highest else (key < best_key)
        tied = not (key < best_key or best_key < key)
        if better or (tied and best_tag < tag):
            best = (key, tag)
    return None if best is None else best[1]


def describe_kind(value: object) -> str:
    """A parsed YAML value's kind for messages ("a mapping", "null"), never its content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    """A value as messages quote it: JSON for strings, the kind of anything else."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return describe_kind(value)


def _filter_path(where: str) -> str:
    """Where filterTags sits: beside the policy in Flux, so ``watches[2].filterTags``."""
    if where == "policy":
        return "filterTags"
    if where.endswith(".policy"):
        return where[: -len("policy")] + "filterTags"
    return f"{where}.filterTags"


def _suggest(key: object, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(str(key), list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _check_keys(body: Mapping[object, object], allowed: tuple[str, ...], path: str) -> None:
    for key in sorted(body, key=str):
        if key not in allowed:
            names = ", ".join(allowed)
            raise UsageError(
                f"{path}.{key}: unknown key; expected {names}",
                hint=_suggest(key, allowed) or f"remove it; the keys are {names}",
            )


def _check_fields(
    kind: object,
    range_: object,
    order: object,
    pattern: object,
    extract: object,
    where: str,
) -> None:
    """Validate the policy's fields, raising UsageError naming the field path under ``where``."""
    if kind not in _KINDS:
        raise UsageError(
            f"{where}: unknown policy kind {_show(kind)}",
            hint="use semver, alphabetical or numerical",
        )
    if kind == "semver":
        if order is not None:
            raise UsageError(
                f"{where}.semver: has an order, which only alphabetical and numerical take",
                hint="remove the order; a semver policy always picks the highest version",
            )
        path = f"{where}.semver.range"
        if range_ is None:
            raise UsageError(f"{path}: is required", hint=_RANGE_HINT)
        if not isinstance(range_, str):
            raise UsageError(
                f"{path}: must be a string, not {_show(range_)}",
                hint='quote the range in YAML, e.g. range: "1.2"',
            )
        try:
            _compile_constraint(range_)
        except ValueError as exc:
            raise UsageError(
                f"{path}: invalid constraint {_show(range_)}: {exc}", hint=_RANGE_HINT
            ) from None
    else:
        if range_ is not None:
            raise UsageError(
                f"{where}.{kind}: has a range, which only semver policies take",
                hint='use {"semver": {"range": ...}} to select versions by range',
            )
        if order is not None and order not in _ORDERS:
            raise UsageError(
                f'{where}.{kind}.order: must be "asc" or "desc", not {_show(order)}',
                hint='"asc" (the default) picks the highest tag, "desc" the lowest',
            )
    fpath = _filter_path(where)
    compiled: re.Pattern[str] | None = None
    if pattern is not None:
        if not isinstance(pattern, str):
            raise UsageError(
                f"{fpath}.pattern: must be a string, not {_show(pattern)}",
                hint="quote the regular expression in YAML",
            )
        try:
            compiled = compile_go_regex(pattern)
        except ValueError as exc:
            raise UsageError(
                f"{fpath}.pattern: invalid regular expression {_show(pattern)}: {exc}",
                hint=_PATTERN_HINT,
            ) from None
    if extract is None:
        return
    if not isinstance(extract, str):
        raise UsageError(
            f"{fpath}.extract: must be a string, not {_show(extract)}",
            hint="write a template such as '$ts' or '${1}', quoted in YAML",
        )
    if not extract:
        raise UsageError(f"{fpath}.extract: is empty", hint="omit it to order the whole tags")
    if compiled is None or not pattern:
        raise UsageError(
            f"{fpath}.extract: needs a pattern to extract from",
            hint=r"add a pattern with a group, e.g. pattern: '^main-(?P<ts>\d+)$', extract: '$ts'",
        )
    unknown = _unknown_references(extract, compiled)
    if unknown:
        named = ", ".join(sorted(compiled.groupindex))
        groups = f"{compiled.groups} group{'s' if compiled.groups != 1 else ''}"
        raise UsageError(
            f"{fpath}.extract: {_show(extract)} refers to group {_show(unknown[0])}, "
            f"which the pattern does not define (it has {groups}"
            f"{f', named {named}' if named else ''})",
            hint="write ${name} when letters or digits follow the reference, e.g. '${1}x'",
        )


# -------------------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    """A Flux ImagePolicy: how to pick a repository's latest tag, with optional filterTags."""

    kind: Literal["semver", "alphabetical", "numerical"]
    range: str | None = None
    order: Literal["asc", "desc"] | None = None
    filter_pattern: str | None = None
    filter_extract: str | None = None

    def __post_init__(self) -> None:
        _check_fields(
            self.kind, self.range, self.order, self.filter_pattern, self.filter_extract, "policy"
        )

    @classmethod
    def from_spec(
        cls, policy: object, filter_tags: object | None = None, *, where: str = "policy"
    ) -> ImagePolicy:
        """Validate a Flux-shaped policy spec (and filterTags) into an ImagePolicy.

        ``policy`` is ``{"semver": {"range": "..."}}``, ``{"alphabetical": {"order": "asc"}}`` or
        ``{"numerical": {"order": "desc"}}`` (order optional, "asc" by default); ``filter_tags``
        is ``{"pattern": "...", "extract": "..."}`` or None. Every problem raises UsageError
        naming the field path under ``where``, e.g. ``watches[2].policy.semver.range: invalid
        constraint ">>1": ...``. filterTags sits beside the policy in Flux, so its problems are
        reported at ``watches[2].filterTags.pattern`` when ``where`` is ``watches[2].policy``.
        """
        if not isinstance(policy, Mapping):
            raise UsageError(
                f"{where}: must be a mapping naming one of semver, alphabetical or numerical, "
                f"not {_show(policy)}",
                hint=f"e.g. {_EXAMPLES['semver']}",
            )
        for key in sorted(policy, key=str):
            if key not in _KINDS:
                raise UsageError(
                    f"{where}.{key}: unknown policy kind",
                    hint=_suggest(key, _KINDS) or "use semver, alphabetical or numerical",
                )
        kinds = [kind for kind in _KINDS if kind in policy]
        if not kinds:
            raise UsageError(
                f"{where}: names no policy kind",
                hint="add one of semver, alphabetical or numerical",
            )
        if len(kinds) > 1:
            raise UsageError(
                f"{where}: has {' and '.join(kinds)}; a policy has exactly one kind",
                hint="keep one of them",
            )
        kind = kinds[0]
        body = policy[kind]
        if body is None:  # "alphabetical:" with nothing under it means the defaults
            body = {}
        if not isinstance(body, Mapping):
            raise UsageError(
                f"{where}.{kind}: must be a mapping, not {_show(body)}",
                hint=f"e.g. {_EXAMPLES[kind]}",
            )
        _check_keys(body, ("range",) if kind == "semver" else ("order",), f"{where}.{kind}")
        pattern: object = None
        extract: object = None
        if filter_tags is not None:
            fpath = _filter_path(where)
            if not isinstance(filter_tags, Mapping):
                raise UsageError(
                    f"{fpath}: must be a mapping of pattern and extract, not {_show(filter_tags)}",
                    hint=r"e.g. {pattern: '^main-(?P<ts>[0-9]+)$', extract: '$ts'}",
                )
            _check_keys(filter_tags, _FILTER_KEYS, fpath)
            # An empty pattern matches every tag, like no filter; Flux ignores an empty extract.
            pattern = filter_tags.get("pattern")
            extract = filter_tags.get("extract")
            pattern = None if pattern == "" else pattern
            extract = None if extract == "" else extract
        range_, order = body.get("range"), body.get("order")
        _check_fields(kind, range_, order, pattern, extract, where)
        return cls(
            kind=cast(Literal["semver", "alphabetical", "numerical"], kind),
            range=cast("str | None", range_),
            order=cast('Literal["asc", "desc"] | None', order),
            filter_pattern=cast("str | None", pattern),
            filter_extract=cast("str | None", extract),
        )

    def _candidates(self, tags: Iterable[str]) -> list[tuple[str, str]]:
        """(value the policy orders, original tag) for every distinct tag the filter keeps."""
        if isinstance(tags, str):
            raise TypeError("latest() takes an iterable of tags, not a single tag string")
        unique = set(tags)
        if self.filter_pattern is None:
            return [(tag, tag) for tag in unique]
        pattern = compile_go_regex(self.filter_pattern)
        kept: list[tuple[str, str]] = []
        for tag in unique:
            match = pattern.search(tag)
            if match is not None:
                value = _expand(self.filter_extract, match) if self.filter_extract else tag
                kept.append((value, tag))
        return kept

    def latest(self, tags: Iterable[str]) -> str | None:
        """The tag the policy selects (the original tag string), or None when no tag qualifies.

        Raises PolicyError when a numerical policy meets a candidate that is not a number.
        """
        candidates = self._candidates(tags)
        highest = self.order != "desc"
        if self.kind == "semver":
            constraint = _compile_constraint(cast(str, self.range))
            versions = ((_parse_tag(value), tag) for value, tag in candidates)
            return _select(
                ((v.key, tag) for v, tag in versions if v is not None and constraint.allows(v)),
                highest=True,
            )
        if self.kind == "alphabetical":
            # Code point order is UTF-8 byte order, which is what Go's string comparison uses.
            return _select(candidates, highest=highest)
        numbers: list[tuple[float, str]] = []
        invalid: list[tuple[str, str]] = []
        for value, tag in candidates:
            number = _parse_number(value)
            if number is None:
                invalid.append((tag, value))
            else:
                numbers.append((number, tag))
        if invalid:
            invalid.sort()
            tag, value = invalid[0]
            shown = repr(tag) if value == tag else f"{tag!r} (extracted {value!r})"
            more = f" ({len(invalid)} tags are not)" if len(invalid) > 1 else ""
            raise PolicyError(
                f"numerical policy: tag {shown} is not a number{more}",
                hint="add filterTags with a pattern that keeps only numeric tags, e.g. '^[0-9]+$'"
                if self.filter_extract is None
                else "make filterTags.pattern match only tags whose extracted part is a number",
            )
        return _select(numbers, highest=highest)

    def describe(self) -> str:
        """Short human text, e.g. 'semver >=1.0.0 <2.0.0' or 'numerical desc, filter ^x -> $ts'."""
        text = (
            f"semver {self.range}"
            if self.kind == "semver"
            else f"{self.kind} {self.order or 'asc'}"
        )
        if self.filter_pattern is not None:
            text += f", filter {self.filter_pattern}"
            if self.filter_extract:
                text += f" -> {self.filter_extract}"
        return text

    def as_json(self) -> dict[str, object]:
        """Flux-shaped echo of the spec: {"semver": {"range": ...}} plus "filterTags" when set."""
        body: dict[str, object] = {}
        if self.kind == "semver":
            body["range"] = self.range
        elif self.order is not None:
            body["order"] = self.order
        result: dict[str, object] = {self.kind: body}
        if self.filter_pattern is not None:
            filter_tags: dict[str, object] = {"pattern": self.filter_pattern}
            if self.filter_extract:
                filter_tags["extract"] = self.filter_extract
            result["filterTags"] = filter_tags
        return result
