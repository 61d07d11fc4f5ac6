"""Describing a parsed value in an error message by its kind, never by its content.

Files and answers that imgctl reads may hold secrets (a token where a flag was expected), so a
message names what kind of value it found: in YAML's words for the files imgctl reads as YAML,
in JSON's for JSON documents and answers.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["json_kind", "yaml_kind"]


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
