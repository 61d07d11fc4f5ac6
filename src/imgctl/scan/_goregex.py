"""Flux's ``filterTags``: Go RE2 patterns in Python's ``re``, and ``Regexp.Expand`` templates.

``compile_go_regex`` translates RE2 syntax and refuses what RE2 would refuse but Python would
accept with another meaning; ``expand`` fills an ``extract`` template from a match, and
``unknown_references`` names what a template asks for that the pattern does not define.
"""

from __future__ import annotations

import functools
import re
from typing import Final

__all__ = ["compile_go_regex", "expand", "unknown_references"]

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


def expand(template: str, match: re.Match[str]) -> str:
    """``template`` filled from ``match`` as Go's ``Regexp.Expand``: unknown groups expand to ""."""
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


def unknown_references(template: str, pattern: re.Pattern[str]) -> list[str]:
    """The group references in ``template`` that ``pattern`` does not define, in order."""
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
