"""The one YAML dialect of every file imgctl reads: PyYAML's safe YAML 1.1, minus ambiguity.

A configuration file must mean one thing. On top of what PyYAML's SafeLoader refuses (syntax
errors, unknown tags, a second document, a reused anchor), these are errors, each naming the
line and column of both places involved:

* a key repeated in one mapping, at any depth, in block or flow (JSON) style;
* two keys of one mapping that are the same key written differently: differing only by case,
  spacing or Unicode form (``prod`` / ``Prod`` / ``"prod "`` / ``PROD``), or equal values
  written differently (``1`` / ``0x1`` / ``1.0``);
* a merge key (``<<``) bringing in a key that the mapping sets itself or that another merge
  also brings: YAML lets the mapping's own key silently win, which hides the other one;
* a key that is a list or a mapping;
* an alias inside the node it refers to (a recursive document).

An alias used as a key counts as the key it refers to. Merges are expanded here, so the nodes
and data handed on never hold a ``<<`` key.

Booleans and numbers are YAML's own: ``true``/``false`` (and YAML 1.1's ``yes``/``no``/``on``/
``off``, which PyYAML reads as booleans too) are booleans, ``"true"`` in quotes is a string.
Each file's reader refuses a string where it expects a boolean or a number.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from imgctl._internal.files import read_text
from imgctl.errors import UsageError

__all__ = [
    "LOADER",
    "Document",
    "PythonLoader",
    "StrictYAMLError",
    "compose",
    "load",
    "load_document",
    "load_file",
    "normalise_key",
]


class Mark(Protocol):
    """A place in a YAML text (PyYAML's and libyaml's marks both have these)."""

    @property
    def line(self) -> int:
        """0-based line."""

    @property
    def column(self) -> int:
        """0-based column."""


MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"

# Dropped when comparing keys: spaces of every kind, and invisible characters (zero-width
# spaces and joiners, byte-order marks, control characters).
_IGNORED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def normalise_key(text: str) -> str:
    """``text`` as keys are compared: NFKC, case-folded, without spaces or invisible characters."""
    if text.isascii() and text.isprintable():
        # The common case, 4x faster: NFKC changes no printable ASCII, casefold is lower.
        return text.replace(" ", "").lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        char
        for char in folded
        if not char.isspace() and unicodedata.category(char) not in _IGNORED_CATEGORIES
    )


def _where(mark: Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class StrictYAMLError(ValueError):
    """A YAML document that is invalid or ambiguous; ``str()`` gives line, column and problem.

    ``redacted()`` says the same without quoting anything from the document, for files holding
    secrets.
    """

    def __init__(
        self,
        problem: str,
        mark: Mark | None,
        *,
        redacted: str,
        first: Mark | None = None,
        note: str | None = None,
    ) -> None:
        self.problem = problem
        self.mark = mark
        self.first = first
        self._note = note
        self._redacted = redacted
        super().__init__(self._message(problem))

    @property
    def line(self) -> int | None:
        """The 1-based line of the problem, when known."""
        return None if self.mark is None else self.mark.line + 1

    def _message(self, problem: str) -> str:
        text = f"{_where(self.mark)}: {problem}" if self.mark is not None else problem
        if self.first is not None:
            text += f" (first at {_where(self.first)}{f'; {self._note}' if self._note else ''})"
        return text

    def redacted(self) -> str:
        """The message without any text quoted from the document."""
        return self._message(self._redacted)


def _show(node: Node) -> str:
    return repr(str(node.value))


def _kind(node: Node) -> str:
    return "a mapping" if isinstance(node, MappingNode) else "a list"


@dataclass(frozen=True, slots=True)
class _Entry:
    """One key of a mapping where it occurs: an alias as key has its own place in the file."""

    key: Node
    value: Node
    mark: Mark  # where this occurrence of the key is written
    via: Mark | None = None  # the '<<' that merged it in, if any


class _StrictComposer(yaml.composer.Composer):
    """A Composer that expands merges and refuses what makes a document ambiguous."""

    # Provided by the parser (PyYAML's or libyaml's) it is combined with.
    peek_event: Callable[[], Any]

    def _state(self) -> tuple[set[str], dict[int, list[Mark]], dict[int, list[_Entry]]]:
        # Set lazily: libyaml's loader class runs its own __init__, not a chain of ours.
        state: tuple[set[str], dict[int, list[Mark]], dict[int, list[_Entry]]] | None
        state = self.__dict__.get("_imgctl_state")
        if state is None:
            state = (set(), {}, {})
            self.__dict__["_imgctl_state"] = state
        return state

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        opened, key_marks, _ = self._state()
        event = self.peek_event()
        if isinstance(parent, MappingNode) and index is None:
            # A key of ``parent`` is about to be composed: remember where it is written.
            key_marks.setdefault(id(parent), []).append(event.start_mark)
        if isinstance(event, AliasEvent) and event.anchor in opened:
            raise StrictYAMLError(
                f"alias *{event.anchor} is inside the node it refers to",
                event.start_mark,
                redacted="an alias is inside the node it refers to",
            )
        anchor = event.anchor if isinstance(event, CollectionStartEvent) else None
        if anchor is not None:
            opened.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            if anchor is not None:
                opened.discard(anchor)
        return node

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node: MappingNode = super().compose_mapping_node(anchor)
        _, key_marks, entries_of = self._state()
        marks = key_marks.pop(id(node), [])
        merged: list[_Entry] = []
        own: list[_Entry] = []
        merge_keys: list[_Entry] = []
        for (key, value), mark in zip(node.value, marks, strict=True):
            if isinstance(key, ScalarNode) and key.tag == MERGE_TAG:
                merge_keys.append(_Entry(key, value, mark))
                if len(merge_keys) > 1:
                    _refuse_twice(merge_keys[0], merge_keys[1])
                # Sources were composed, so expanded, already: they hold no '<<' of their own.
                for source in _merge_sources(key, value, mark):
                    merged.extend(replace(e, via=mark) for e in entries_of[id(source)])
            else:
                own.append(_Entry(key, value, mark))
        entries = [*merged, *own]
        seen: dict[object, _Entry] = {}
        for entry in entries:
            if not isinstance(entry.key, ScalarNode):
                problem = f"a key must be a plain value, not {_kind(entry.key)}"
                raise StrictYAMLError(problem, entry.mark, redacted=problem)
            forms = _forms(entry.key)
            for form in forms:
                if form in seen:
                    _refuse_twice(seen[form], entry)
            for form in forms:
                seen[form] = entry
        # Kept while the document is composed: a later '<<' may merge this mapping in.
        entries_of[id(node)] = [replace(e, via=None) for e in entries] if merged else own
        if merged:
            node.value = [(e.key, e.value) for e in entries]
        return node


def _merge_sources(key: ScalarNode, value: Node, mark: Mark) -> list[MappingNode]:
    if isinstance(value, MappingNode):
        return [value]
    if isinstance(value, SequenceNode) and all(isinstance(v, MappingNode) for v in value.value):
        return list(value.value)
    problem = "'<<' (merge) must be followed by a mapping or a list of mappings"
    raise StrictYAMLError(problem, mark, redacted=problem)


def _forms(key: ScalarNode) -> list[object]:
    """What makes two keys the same: their normalised text and, unless a string, their value."""
    forms: list[object] = [("text", normalise_key(str(key.value)))]
    if key.tag != STR_TAG:
        try:
            value = yaml.constructor.SafeConstructor().construct_object(key, deep=True)
            hash(value)
        except (yaml.YAMLError, TypeError):
            return forms
        # Python's dict, which the data ends up in, holds 1, 1.0 and true as one key.
        forms.append(("value", value))
    return forms


def _refuse_twice(first: _Entry, second: _Entry) -> None:
    # The later of the two in the file is the one reported; the message points back at the other.
    earlier, later = sorted((first, second), key=lambda e: (e.mark.line, e.mark.column))
    if earlier.key is later.key or earlier.key.value == later.key.value:
        problem = f"duplicate key {_show(later.key)}"
        redacted = "duplicate key"
    else:
        problem = (
            f"key {_show(later.key)} is the same as key {_show(earlier.key)},"
            " differing only in case, spacing or form"
        )
        redacted = "a key is the same as an earlier key, differing only in case, spacing or form"
    raise StrictYAMLError(
        problem,
        later.mark,
        redacted=redacted,
        first=earlier.mark,
        note=_merge_note(earlier.via, later.via),
    )


def _merge_note(earlier: Mark | None, later: Mark | None) -> str | None:
    """Which of two keys came in through a merge key, and which one."""
    if earlier is None and later is None:
        return None
    if earlier is None or later is None:
        via = earlier or later
        assert via is not None
        which = "the first" if earlier is not None else "the second"
        return f"{which} merged in by '<<' at {_where(via)}"
    if (earlier.line, earlier.column) == (later.line, later.column):
        return f"both merged in by '<<' at {_where(earlier)}"
    return f"merged in by '<<' at {_where(earlier)} and at {_where(later)}"


class PythonLoader(_StrictComposer, yaml.SafeLoader):
    """The strict loader on PyYAML's pure-Python parser."""


LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = PythonLoader
if yaml.__with_libyaml__:

    class _LibyamlLoader(_StrictComposer, yaml.CSafeLoader):
        """The same, composing libyaml's events: five times faster on a large images.yaml."""

        def __init__(self, stream: str) -> None:
            yaml.CSafeLoader.__init__(self, stream)
            yaml.composer.Composer.__init__(self)

    LOADER = _LibyamlLoader


def _invalid(exc: yaml.YAMLError) -> StrictYAMLError:
    if isinstance(exc, yaml.MarkedYAMLError):
        if exc.context_mark is not None and exc.problem == "second occurrence":
            # PyYAML's "found duplicate anchor 'a'; first occurrence ... second occurrence".
            anchor = str(exc.context).removeprefix("found duplicate anchor ").split(";")[0]
            return StrictYAMLError(
                f"anchor {anchor} is defined twice",
                exc.problem_mark,
                redacted="an anchor is defined twice",
                first=exc.context_mark,
            )
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        return StrictYAMLError(
            f"invalid YAML: {problem}",
            exc.problem_mark or exc.context_mark,
            redacted="invalid YAML",
        )
    return StrictYAMLError(f"invalid YAML: {exc}", None, redacted="invalid YAML")


def compose(text: str) -> Node | None:
    """The node tree of ``text`` (None when it holds no document); StrictYAMLError otherwise."""
    loader = LOADER(text)
    try:
        node: Node | None = loader.get_single_node()
        return node
    except yaml.YAMLError as exc:
        raise _invalid(exc) from None
    finally:
        loader.dispose()


@dataclass(frozen=True, slots=True)
class Document:
    """Loaded data, and the line each of its mappings and lists starts on."""

    data: Any
    _lines: Mapping[int, int]
    _key_lines: Mapping[int, Mapping[str, int]]

    def line(self, value: object) -> int | None:
        """The 1-based line where ``value`` (a dict or list of ``data``) starts, if known."""
        return self._lines.get(id(value))

    def at(self, value: object) -> str:
        """``" (line N)"`` for ``value``, or nothing when unknown: to append to a message."""
        line = self.line(value)
        return "" if line is None else f" (line {line})"

    def key_line(self, mapping: object, key: object) -> int | None:
        """The 1-based line of ``key`` in ``mapping`` (a dict of ``data``), if known."""
        return self._key_lines.get(id(mapping), {}).get(str(key))

    def key_at(self, mapping: object, key: object) -> str:
        """``" (line N)"`` for ``key`` of ``mapping`` (a dict of ``data``), or nothing."""
        line = self.key_line(mapping, key)
        return "" if line is None else f" (line {line})"


def load_document(text: str) -> Document:
    """Like :func:`load`, keeping the line of every mapping and list for error messages."""
    loader = LOADER(text)
    lines: dict[int, int] = {}
    key_lines: dict[int, dict[str, int]] = {}
    construct = loader.construct_object

    def recording(node: Node, deep: bool = False) -> Any:
        value = construct(node, deep=deep)
        if isinstance(node, MappingNode | SequenceNode):
            lines.setdefault(id(value), node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            key_lines.setdefault(
                id(value), {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
            )
        return value

    loader.construct_object = recording  # type: ignore[method-assign]
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _invalid(exc) from None
    finally:
        loader.dispose()
    return Document(data, lines, key_lines)


def load(text: str) -> Any:
    """The data of ``text`` (None when empty); StrictYAMLError when invalid or ambiguous."""
    loader = LOADER(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _invalid(exc) from None
    finally:
        loader.dispose()


def load_file(path: Path, what: str) -> Document:
    """Read ``path`` (read_text: bounded UTF-8) and load it; UsageError naming file and line."""
    text = read_text(path, what)
    try:
        return load_document(text)
    except StrictYAMLError as exc:
        raise UsageError(f"{path}: {exc}") from None
