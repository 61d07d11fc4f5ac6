"""Words for error messages: a parsed value by its kind, never by its content; a misspelt key.

Files and answers that imgctl reads may hold secrets (a token where a flag was expected), so a
message names what kind of value it found: in YAML's words for the files imgctl reads as YAML,
in JSON's for JSON documents and answers. An unknown key in a config file is most often a typo
of a known one: ``closest`` finds it, ``unknown_key`` says it, for every file imgctl reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["closest", "json_kind", "unknown_key", "yaml_kind"]


def closest(key: object, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The choice ``key`` most likely misspells (difflib ratio >= ``cutoff``), or None."""
    found = difflib.get_close_matches(str(key), list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def unknown_key(key: object, choices: Iterable[str], shown: str | None = None) -> str:
    """An unknown key as an error names it: ``emial (did you mean 'email'?)``, or just the key.

    ``shown`` is how to write the key when not as it is (with its line: ``emial (line 8)``).
    """
    text = str(key) if shown is None else shown
    guess = closest(key, choices)
    return f"{text} (did you mean {guess!r}?)" if guess else text


def yaml_kind(value: object) -> str:
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


def json_kind(value: object, *, article: bool = True) -> str:
    """A parsed JSON value's type in JSON's words ("an object", "null"), never its content.

    ``article=False`` gives the bare name ("object"), for messages such as "a JSON object".
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        name = "boolean"
    elif isinstance(value, int | float):
        name = "number"
    elif isinstance(value, str):
        name = "string"
    elif isinstance(value, list | tuple):
        name = "array"
    elif isinstance(value, Mapping):
        name = "object"
    else:
        return type(value).__name__
    if not article:
        return name
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
