"""YAML input: a manifest's or images file's nodes as entries, with errors naming file and line.

Shape only (kpromo's ``yaml.UnmarshalStrict``): what the values mean is checked in ``_checks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from imgctl._internal import strict_yaml
from imgctl._internal.files import read_text
from imgctl.errors import ManifestError, UsageError
from imgctl.promotion.manifests._model import ImageEntry, RegistryEntry

__all__ = [
    "MANIFEST_KEYS",
    "THIN_KEYS",
    "Document",
    "ReadImage",
    "parse_images",
    "read_file",
    "read_images",
    "read_registries",
]

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"


def read_file(path: Path, what: str = "manifest") -> str:
    """The file's text (bounded UTF-8); a ManifestError naming it when it cannot be read."""
    try:
        return read_text(path, what)
    except UsageError as exc:
        raise ManifestError(exc.message, path=str(path), hint=exc.hint) from None


class Document:
    """One file being read: turns YAML nodes into values, or errors that name the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def compose(self, text: str) -> yaml.Node | None:
        """The root node of ``text`` (None when empty), read by imgctl's strict YAML."""
        try:
            return strict_yaml.compose(text)
        except strict_yaml.StrictYAMLError as exc:
            raise self.fail(str(exc)) from None

    def fail(self, core: str, context: str | None = None, hint: str | None = None) -> ManifestError:
        """An error naming the file: ``FILE: core (context)``."""
        message = f"{self.source}: {core}"
        if context:
            message += f" ({context})"
        return ManifestError(message, path=self.source, hint=hint)

    def at(self, node: yaml.Node, problem: str) -> ManifestError:
        """An error naming the file and the line of ``node``."""
        return self.fail(f"line {node.start_mark.line + 1}: {problem}")

    def fields(self, node: yaml.Node, what: str, allowed: Sequence[str]) -> dict[str, yaml.Node]:
        """A mapping's values by key; an unknown key is an error."""
        if not isinstance(node, yaml.MappingNode):
            raise self.at(node, f"{what} must be a mapping, not {_kind(node)}")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.value not in allowed:
                shown = key.value if isinstance(key, yaml.ScalarNode) else _kind(key)
                raise self.at(
                    key, f"unknown key {shown!r} in {what} (expected {', '.join(allowed)})"
                )
            out[key.value] = value
        return out

    def pairs(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The entries of a mapping: each key's text, its node and the value's node."""
        if _is_null(node):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.at(node, f"{what} must be a mapping, not {_kind(node)}")
        return [(self.text(key, f"a key of {what}"), key, value) for key, value in node.value]

    def items(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        """The nodes of a list (null is an empty list)."""
        if _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.at(node, f"{what} must be a list, not {_kind(node)}")
        return list(node.value)

    def text(self, node: yaml.Node, what: str) -> str:
        """A scalar's text, as a Go string field reads it."""
        # Like yaml.v2 decoding into a Go string: any scalar counts by its text (a tag written
        # 1.10 stays "1.10"), and null is the empty string.
        if not isinstance(node, yaml.ScalarNode):
            raise self.at(node, f"{what} must be a string, not {_kind(node)}")
        return "" if node.tag == _NULL_TAG else str(node.value)

    def flag(self, node: yaml.Node, what: str) -> bool:
        """A YAML boolean (null is false)."""
        if _is_null(node):
            return False
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL_TAG:
            return yaml.constructor.SafeConstructor.bool_values[str(node.value).lower()]
        raise self.at(node, f"{what} must be true or false, not {_kind(node)}")


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL_TAG:
        return "null"
    return repr(node.value)


# ------------------------------------------------------------------------------ structure


MANIFEST_KEYS = ("registries", "images")
THIN_KEYS = ("registries", "imagesPath")
_REGISTRY_KEYS = ("name", "src", "service-account")
_IMAGE_KEYS = ("name", "dmap")


@dataclass(frozen=True, slots=True)
class ReadImage:
    """One image entry as read, with the (1-based) lines of the entry and of each digest."""

    entry: ImageEntry
    line: int
    digest_lines: Mapping[str, int]


def read_registries(doc: Document, node: yaml.Node | None) -> tuple[RegistryEntry, ...]:
    """The ``registries`` list as entries, shape checked only."""
    if node is None:
        return ()
    out: list[RegistryEntry] = []
    for entry in doc.items(node, "'registries'"):
        fields = doc.fields(entry, "a registry", _REGISTRY_KEYS)
        name = doc.text(fields["name"], "'name'") if "name" in fields else ""
        src = doc.flag(fields["src"], "'src'") if "src" in fields else False
        account = None
        if "service-account" in fields:
            account = doc.text(fields["service-account"], "'service-account'") or None
        out.append(RegistryEntry(name, src, account))
    return tuple(out)


def read_images(doc: Document, node: yaml.Node | None) -> list[ReadImage]:
    """The ``images`` list as entries with their lines, shape checked only."""
    # Shape errors (a list that is not one, an unknown key, a tag that is a mapping) are the
    # file's, as in kpromo's yaml.UnmarshalStrict: nothing after them can be trusted.
    if node is None:
        return []
    out: list[ReadImage] = []
    for entry in doc.items(node, "'images'"):
        fields = doc.fields(entry, "an image", _IMAGE_KEYS)
        name = doc.text(fields["name"], "'name'") if "name" in fields else ""
        dmap: dict[str, tuple[str, ...]] = {}
        lines: dict[str, int] = {}
        if "dmap" in fields:
            for digest, key, tags_node in doc.pairs(fields["dmap"], "'dmap'"):
                tags = [doc.text(tag, "a tag") for tag in doc.items(tags_node, "the tags")]
                dmap[digest] = tuple(dict.fromkeys(tags))  # kpromo keeps a set of edges
                lines[digest] = key.start_mark.line + 1
        image = ImageEntry(name, MappingProxyType(dmap))
        out.append(ReadImage(image, entry.start_mark.line + 1, lines))
    return out


def parse_images(doc: Document, text: str) -> list[ReadImage]:
    """An images file's entries; empty, only comments or null is no images."""
    root = doc.compose(text)
    if root is None or _is_null(root):
        # Empty, only comments ("# No images yet" in kubernetes/k8s.io), or null: yaml.v2
        # decodes all three into an empty list, and so does kpromo.
        return []
    return read_images(doc, root)
