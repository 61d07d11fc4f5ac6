"""Strict reading of the small JSON documents signatures carry, and Go-compatible writing.

Signature payloads and Rekor bundles are read the way containers/image reads them: exactly the
expected fields, each of its type, duplicate keys refused (two parsers that keep different
duplicates would see different documents). What imgctl writes is byte-for-byte what Go's
``encoding/json`` writes for the same value, so a payload imgctl signs is the payload cosign
would have signed.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["Malformed", "b64decode", "exact_object", "go_json", "strict_json"]


class Malformed(Exception):
    """A document is not what it must be; the message says what, for a verdict."""


def strict_json(data: bytes | str, where: str) -> Any:
    """Parse JSON, refusing duplicate keys and NaN/Infinity; Malformed names ``where``."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise Malformed(f"{where}: duplicate key {key!r}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise Malformed(f"{where}: {name} is not JSON")

    try:
        return json.loads(data, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"{where}: not JSON ({exc})") from None


def exact_object(value: Any, fields: dict[str, Any], where: str) -> dict[str, Any]:
    """``value`` as an object with exactly ``fields`` (name -> type or tuple of types)."""
    if not isinstance(value, dict):
        raise Malformed(f"{where} is not a JSON object")
    missing = sorted(set(fields) - set(value))
    extra = sorted(set(value) - set(fields))
    if missing:
        raise Malformed(f"{where} has no {', '.join(missing)}")
    if extra:
        raise Malformed(f"{where} has unexpected {', '.join(extra)}")
    for key, kind in fields.items():
        item = value[key]
        # bool is an int to Python, never to JSON's readers.
        if not isinstance(item, kind) or (isinstance(item, bool) and bool not in _types(kind)):
            raise Malformed(f"{where}.{key} is not {_type_name(kind)}")
    return value


def _types(kind: Any) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: Any) -> str:
    names = {str: "a string", int: "an integer", dict: "an object", list: "a list"}
    names[type(None)] = "null"
    return " or ".join(names.get(k, k.__name__) for k in _types(kind))


def b64decode(text: str, where: str) -> bytes:
    """Standard base64 with padding, nothing else (as Go's StdEncoding reads it)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{where} is not base64") from None


# Go escapes these even inside strings (HTML safety, and JavaScript line terminators).
_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def go_json(value: Any) -> bytes:
    """``value`` as Go's json.Marshal writes it: compact, UTF-8, HTML characters escaped.

    Dict order is kept (Go writes struct fields in declaration order; callers pass maps
    sorted, as Go sorts map keys).
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # The escaped characters can only occur inside strings, so replacing everywhere is exact.
    for char, escaped in _GO_ESCAPES:
        text = text.replace(char, escaped)
    return text.encode()
