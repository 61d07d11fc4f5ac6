"""Strict reading of a parsed YAML document: typed fields, every problem collected, each located.

A file imgctl reads is checked whole: each problem is one line naming the file, the line (when
the document came from a file) and the field path (``watches[2].policy.semver.range``), and all
of them are reported at once. ``FieldReader`` holds that bookkeeping and the typed access to
fields; what the keys mean belongs to the reader of each file (``imgctl.scan.watches``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from imgctl._internal import strict_yaml
from imgctl._internal.messages import closest, yaml_kind
from imgctl.errors import ImgctlError, UsageError

__all__ = ["FieldReader", "show"]


def show(value: object) -> str:
    """A value as the message quotes it: JSON-ish, so YAML users recognise it."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return yaml_kind(value)


# A field path as messages name it: watches[2].policy.semver.range, serviceIdentity.groups[0].
_FIELD_PATH: Final = re.compile(r"[A-Za-z]\w*(?:\[\d+\])*(?:\.[A-Za-z]\w*(?:\[\d+\])*)*")
_PATH_PART: Final = re.compile(r"([A-Za-z]\w*)|\[(\d+)\]")


class FieldReader:
    """Typed access to a parsed document, collecting every problem (with its line) on the way."""

    def __init__(
        self,
        source: str,
        base_dir: Path | None,
        document: strict_yaml.Document | None = None,
    ) -> None:
        self.source = source
        self.base_dir = base_dir
        self.document = document
        self.problems: list[str] = []

    # -- reporting

    def add(self, where: str, problem: str) -> None:
        """Record ``problem`` at the field path ``where``, with its line when known."""
        line = self.line(where)
        prefix = f"line {line}: " if line else ""
        prefix += f"{where}: " if where else ""
        self.problems.append(f"{self.source}: {prefix}{problem}")

    def add_error(self, exc: ImgctlError) -> None:
        """Record an error whose message starts with its field path, adding the line."""
        # The error already names its field (parse_duration, ImagePolicy.from_spec).
        text = str(exc)
        path = text.split(": ", 1)[0]
        line = self.line(path) if _FIELD_PATH.fullmatch(path) else None
        self.problems.append(
            f"{self.source}: line {line}: {text}" if line else f"{self.source}: {text}"
        )

    def line(self, path: str) -> int | None:
        """The line of the deepest part of ``path`` the file has (a missing key: its mapping)."""
        if self.document is None:
            return None
        document = self.document
        value: object = document.data
        line = document.line(value)
        for name, index in _PATH_PART.findall(path):
            if name:
                if not isinstance(value, Mapping) or name not in value:
                    break
                line = document.key_line(value, name) or document.line(value[name]) or line
                value = value[name]
            else:
                if not isinstance(value, list) or int(index) >= len(value):
                    break
                value = value[int(index)]
                line = document.line(value) or line
        return line

    def check(self) -> None:
        """Raise one UsageError listing every problem recorded, if any."""
        if self.problems:
            raise UsageError("\n".join(self.problems))

    # -- typed access

    def mapping(
        self, value: object, where: str, allowed: Sequence[str]
    ) -> Mapping[str, object] | None:
        """The mapping's known keys, or None (reported) when ``value`` is not a mapping."""
        if not isinstance(value, Mapping):
            self.add(where, f"must be a mapping, not {yaml_kind(value)}")
            return None
        known: dict[str, object] = {}
        for key, item in value.items():
            if isinstance(key, str) and key in allowed:
                known[key] = item
                continue
            shown = show(key)
            guess = closest(key, allowed)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            self.add(where, f"unknown key {shown}{hint}; allowed keys: {', '.join(allowed)}")
        return known

    def string(
        self,
        data: Mapping[str, object],
        key: str,
        where: str,
        *,
        required: bool = False,
        secret: bool = False,
    ) -> str | None:
        """A non-empty string, or None when absent (reported when required) or wrong."""
        value = data.get(key)
        path = f"{where}.{key}" if where else key
        if value is None:
            if required:
                self.add(path, "is required")
            return None
        if not isinstance(value, str):
            shown = yaml_kind(value) if secret else show(value)
            self.add(path, f"must be a string, not {shown}")
            return None
        if not value:
            self.add(path, "must not be empty")
            return None
        return value

    def flag(self, data: Mapping[str, object], key: str, where: str) -> bool:
        """A boolean, False when absent or wrong (reported)."""
        value = data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.add(f"{where}.{key}", f"must be true or false, not {show(value)}")
            return False
        return value

    def path(self, value: str) -> Path:
        """``value`` as a path, relative ones from the document's directory."""
        path = Path(value)
        if self.base_dir is not None and not path.is_absolute():
            path = self.base_dir / path
        return path

    def existing_file(self, data: Mapping[str, object], key: str, where: str) -> Path | None:
        """The path of a file that exists, or None (reported)."""
        value = self.string(data, key, where)
        if value is None:
            return None
        path = self.path(value)
        if not path.exists():
            self.add(f"{where}.{key}", f"{path} does not exist")
            return None
        if not path.is_file():
            self.add(f"{where}.{key}", f"{path} is not a file")
            return None
        return path
