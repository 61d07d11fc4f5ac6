"""Checks of machine output (``-o json`` / ``-o yaml``) against docs/architecture.md's rules.

Keys are lowerCamelCase; counts and sizes are numbers; times are RFC 3339 strings; ``-o yaml``
is the same document as ``-o json``. ``verbatim`` names keys whose values are other formats'
documents reproduced as they are (an in-toto statement, the catalog's imagelist objects,
severity names counted): their insides are not checked.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import yaml

__all__ = ["KEY", "RFC3339", "check_document", "shape", "values", "yaml_and_json"]

KEY = re.compile(r"^[a-z][a-zA-Z0-9]*$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _keys(document: Any, path: str, verbatim: frozenset[str]) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield f"{path}.{key}".lstrip(".")
            if key not in verbatim:
                yield from _keys(value, f"{path}.{key}", verbatim)
    elif isinstance(document, list):
        for item in document:
            yield from _keys(item, f"{path}[]", verbatim)


def values(document: Any, path: str) -> list[Any]:
    """Every value at a dotted ``path``; ``*`` walks every item of a list."""
    found = [document]
    for part in path.split("."):
        step: list[Any] = []
        for item in found:
            if part == "*":
                assert isinstance(item, list), f"{path}: {part} is not a list"
                step.extend(item)
            elif isinstance(item, dict) and part in item:
                step.append(item[part])
        found = step
    return found


def check_document(
    document: Any,
    *,
    ints: Iterable[str] = (),
    times: Iterable[str] = (),
    verbatim: Iterable[str] = (),
) -> None:
    """Assert the rules: camelCase keys (but under ``verbatim``), ints, RFC 3339 times."""
    bad = [p for p in _keys(document, "", frozenset(verbatim)) if not KEY.match(p.split(".")[-1])]
    assert bad == [], f"keys not in lowerCamelCase: {bad}"
    for path in ints:
        found = values(document, path)
        assert found, f"no value at {path}"
        for value in found:
            assert type(value) is int, f"{path} is {value!r}, not a number"
    for path in times:
        found = values(document, path)
        assert found, f"no value at {path}"
        for value in found:
            assert isinstance(value, str), f"{path}: {value!r} is not a string"
            assert RFC3339.match(value), f"{path}: {value!r} is not RFC 3339"
            assert datetime.fromisoformat(value).utcoffset() is not None


def shape(document: Any) -> Any:
    """The document with each leaf replaced by its type name: two runs' documents compared."""
    if isinstance(document, dict):
        return {key: shape(value) for key, value in document.items()}
    if isinstance(document, list):
        return [shape(item) for item in document]
    return type(document).__name__


def yaml_and_json(
    run: Callable[[str], subprocess.CompletedProcess[str]], codes: tuple[int, ...] = (0,)
) -> tuple[Any, Any]:
    """Run a command as ``-o json`` then ``-o yaml``; both documents, parsed."""
    as_json = run("json")
    assert as_json.returncode in codes, as_json.stderr
    as_yaml = run("yaml")
    assert as_yaml.returncode in codes, as_yaml.stderr
    assert not as_yaml.stdout.lstrip().startswith(("{", "[")), "-o yaml printed JSON"
    assert "&id" not in as_yaml.stdout, "YAML aliases"
    return json.loads(as_json.stdout), yaml.safe_load(as_yaml.stdout)
