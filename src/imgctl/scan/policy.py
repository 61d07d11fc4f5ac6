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

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar, cast

from imgctl._internal.messages import closest, yaml_kind
from imgctl.errors import PolicyError, UsageError
from imgctl.scan._goregex import compile_go_regex, expand, unknown_references
from imgctl.scan._semver import compile_constraint, parse_tag

__all__ = ["ImagePolicy", "compile_go_regex"]

_KINDS: Final = ("semver", "alphabetical", "numerical")
_ORDERS: Final = ("asc", "desc")
_FILTER_KEYS: Final = ("pattern", "extract")

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


def _show(value: object) -> str:
    """A value as messages quote it: JSON for strings, the kind of anything else."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return yaml_kind(value)


def _filter_path(where: str) -> str:
    """Where filterTags sits: beside the policy in Flux, so ``watches[2].filterTags``."""
    if where == "policy":
        return "filterTags"
    if where.endswith(".policy"):
        return where[: -len("policy")] + "filterTags"
    return f"{where}.filterTags"


def _suggest(key: object, choices: Iterable[str]) -> str | None:
    close = closest(key, choices)
    return f"did you mean {close!r}?" if close else None


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
            compile_constraint(range_)
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
    unknown = unknown_references(extract, compiled)
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
                value = expand(self.filter_extract, match) if self.filter_extract else tag
                kept.append((value, tag))
        return kept

    def latest(self, tags: Iterable[str]) -> str | None:
        """The tag the policy selects (the original tag string), or None when no tag qualifies.

        Raises PolicyError when a numerical policy meets a candidate that is not a number.
        """
        candidates = self._candidates(tags)
        highest = self.order != "desc"
        if self.kind == "semver":
            constraint = compile_constraint(cast(str, self.range))
            versions = ((parse_tag(value), tag) for value, tag in candidates)
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
