"""Reading a file of catalog entries for ``imgctl catalog import``, strictly and by line.

Formats (``auto`` tells them by the first character that is not white space):

* ``jsonl``: one catalog object per line, ``{"id", "name", "tags", ...}``, the objects that
  ``GET /images`` answers with (imagelist's five fields and imgctl's own);
* ``json``: a JSON list of those objects: ``GET /images``'s answer, ``imgctl catalog ls -o
  json``'s output; a JSON list of snapshot entries (``{"name", "dmap"}``) is a snapshot;
* ``snapshot``: ``imgctl cip --snapshot`` / ``kpromo cip --snapshot`` YAML (a list of ``name``
  and ``dmap: {digest: [tags]}``), names relative to ``--registry``;
* ``csv``: the same snapshot as CSV (``name@digest,name:tag``, ``name@digest,-``).

Every problem is reported with its line, and the whole file is read before anything is
written: a file with one bad line imports nothing. The file's size and each line's length are
bounded before they are read.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from imgctl._internal.bounds import MAX_CATALOG_TAGS, MAX_ENVIRONMENT, MAX_REFERENCE, MAX_SUBJECT
from imgctl.errors import ImgctlError, InvalidDigestError, InvalidReferenceError, UsageError
from imgctl.oci.digest import Digest
from imgctl.oci.reference import DEFAULT_REGISTRY, NAME_TOTAL_LENGTH_MAX, Reference, valid_tag
from imgctl.store import ImportImage

__all__ = [
    "FORMATS",
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_IMAGES",
    "MAX_LINE_BYTES",
    "MAX_REPORTED",
    "BadLine",
    "ImportFile",
    "ImportFileError",
    "read_import_file",
]

FORMATS: Final = ("auto", "jsonl", "json", "snapshot", "csv")
MAX_IMPORT_BYTES: Final = 512 << 20
"""Largest file read: 512 MiB, room for a million catalog objects with every field set."""
MAX_SNAPSHOT_BYTES: Final = 64 << 20
"""Largest YAML snapshot read: YAML is read whole, node by node (as every YAML file imgctl
reads; ``_internal.files.MAX_CONFIG_BYTES``)."""
MAX_IMPORT_IMAGES: Final = 1_000_000
"""Most entries one import may hold (one transaction)."""
MAX_LINE_BYTES: Final = 1 << 20
"""Longest line (or, in a JSON list, one object): ``PUT /images``'s largest body."""
MAX_REPORTED: Final = 20
"""Bad lines reported one by one; the rest are counted."""

# Environments as promotions record them (IMGCTL_REGISTRY_<NAME>, lowercase), or a DNS label.
_ENVIRONMENT_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_SHA256: Final = re.compile(r"sha256:[0-9a-f]{64}")
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_TIMES: dict[str, datetime] = {}
# imgctl.oci.reference's repository path grammar as one expression (a test checks they agree).
_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# What a stored text may not hold: control characters, and lone surrogates (not UTF-8).
_UNSTORABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CATALOG_KEYS: Final = frozenset(
    {
        "id",
        "name",
        "tags",
        "environment",
        "created_at",
        "updated_at",
        "source",
        "promoted_by",
        "promoted_at",
        "signed",
        "attested",
    }
)
_SNAPSHOT_KEYS: Final = frozenset({"name", "dmap"})


@dataclass(frozen=True, slots=True)
class BadLine:
    """One problem of the file, at its (1-based) line."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportFileError(UsageError):
    """The file has bad lines; nothing was imported. ``bad`` holds the first ones."""

    def __init__(self, path: str, bad: list[BadLine], count: int) -> None:
        more = f" (the first {len(bad)} listed)" if count > len(bad) else ""
        super().__init__(
            f"{path}: {count} bad line{'s' if count != 1 else ''}{more}; nothing was imported",
            hint="fix the lines and import the file again",
        )
        self.path = path
        self.bad = bad
        self.count = count


@dataclass
class ImportFile:
    """What a file holds: its entries (each with its line) and the format it was read as."""

    format: str
    images: list[ImportImage]
    lines: list[int]


@dataclass
class _Problems:
    bad: list[BadLine] = field(default_factory=list)
    count: int = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.bad) < MAX_REPORTED:
            self.bad.append(BadLine(line, message))


class _Bad(Exception):
    """One line's problem, raised while reading it."""


def read_import_file(
    path: Path,
    *,
    environment: str | None = None,
    registry: str | None = None,
    format: str = "auto",
) -> ImportFile:
    """Read and check every entry of ``path``; raise ImportFileError listing the bad lines.

    ``environment`` is the environment of entries that name none (snapshots name none);
    an entry naming another one is a bad line. ``registry`` (``REGISTRY[/PATH]``, what
    ``cip --snapshot`` was given) is put before a snapshot's names. Raises UsageError for a
    file that cannot be read at all (missing, too large, not UTF-8, an unknown format).
    """
    if format not in FORMATS:
        raise UsageError(f"unknown format {format!r}", hint=f"use one of {', '.join(FORMATS)}")
    if environment is not None:
        _check_environment(environment, "-e/--environment")
    prefix = _registry_prefix(registry) if registry is not None else None
    shown = str(path)
    text, size = _read(path)
    if format == "auto":
        format = _detect(text)
    if format == "snapshot" and size > MAX_SNAPSHOT_BYTES:
        raise UsageError(
            f"{shown}: {size} bytes; a YAML snapshot may have at most {MAX_SNAPSHOT_BYTES}",
            hint="write the snapshot as CSV (cip --snapshot ... -o csv), or split it",
        )
    problems = _Problems()
    entries: list[tuple[int, ImportImage]] = []
    if format in ("snapshot", "csv") or (format == "json" and _json_snapshot(text)):
        if prefix is None:
            raise UsageError(
                f"{shown}: a snapshot's names are relative to the registry it was taken of",
                hint="give --registry REGISTRY[/PATH], as given to cip --snapshot",
            )
        if environment is None:
            raise UsageError(
                f"{shown}: a snapshot names no environment",
                hint="give -e/--environment ENV: the environment whose registry it was taken of",
            )
        if format == "snapshot":
            rows = _snapshot_yaml(shown, text, problems)
        elif format == "csv":
            rows = _snapshot_csv(text, problems)
        else:
            rows = _snapshot_json(text, problems)
        format = "json snapshot" if format == "json" else format
        entries = _from_snapshot(rows, prefix, environment, problems)
    else:
        if prefix is not None:
            raise UsageError(
                f"{shown}: --registry is for snapshots; catalog objects name whole repositories"
            )
        objects = _json_lines(text, problems) if format == "jsonl" else _json_list(text, problems)
        for line, document in objects:
            try:
                entries.append((line, _catalog_entry(document, environment)))
            except _Bad as bad:
                problems.add(line, str(bad))
            if len(entries) > MAX_IMPORT_IMAGES:
                break  # refused below, before reading the rest
    if len(entries) > MAX_IMPORT_IMAGES:
        raise UsageError(
            f"{shown}: more than {MAX_IMPORT_IMAGES} entries; one import takes at most that",
            hint="split the file",
        )
    _check_across(entries, problems)
    if problems.count:
        # Problems found across lines come after those of single lines: report by line.
        raise ImportFileError(shown, sorted(problems.bad, key=lambda bad: bad.line), problems.count)
    return ImportFile(format, [image for _, image in entries], [line for line, _ in entries])


# --- the file ---------------------------------------------------------------------------------


def _read(path: Path) -> tuple[str, int]:
    try:
        size = os.stat(path).st_size
        if size > MAX_IMPORT_BYTES:
            raise UsageError(
                f"{path}: {size} bytes; an import file may have at most {MAX_IMPORT_BYTES}",
                hint="split the file",
            )
        with open(path, "rb") as stream:
            data = stream.read(MAX_IMPORT_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_IMPORT_BYTES:  # it grew since stat
        raise UsageError(f"{path}: more than {MAX_IMPORT_BYTES} bytes", hint="split the file")
    try:
        # A byte order mark says nothing.
        return data.decode("utf-8").removeprefix("\ufeff"), len(data)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UsageError(f"{path}: line {line}: not UTF-8 ({error.reason})") from None


def _detect(text: str) -> str:
    start = text.lstrip(" \t\r\n")[:1]
    if start in ("{", ""):  # an empty file is no lines
        return "jsonl"
    if start == "[":
        return "json"
    first = text.lstrip().split("\n", 1)[0]
    if "," in first and "@" in first and not first.startswith(("-", "#")):
        return "csv"
    return "snapshot"


def _json_snapshot(text: str) -> bool:
    """A JSON list whose first element is a snapshot entry (has ``dmap``)."""
    head = text.lstrip()[1:].lstrip()
    if not head.startswith("{"):
        return False
    try:
        first, _ = _DECODER.raw_decode(head)
    except (ValueError, _Bad):
        return False
    return isinstance(first, dict) and "dmap" in first


# --- JSON -------------------------------------------------------------------------------------


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Bad(f"key {key!r} appears twice")
            seen.add(key)
    return document


def _constant(name: str) -> Any:
    raise _Bad(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def _json_lines(text: str, problems: _Problems) -> Iterator[tuple[int, Any]]:
    """Each line that is not blank, decoded; a line that does not decode is a bad line."""
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:  # characters, at least as many bytes
            problems.add(number, f"longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            yield number, _DECODER.decode(line)
        except _Bad as bad:
            problems.add(number, str(bad))
        except json.JSONDecodeError as error:
            problems.add(number, f"not JSON: {error.msg} (column {error.colno})")


def _json_list(text: str, problems: _Problems) -> Iterator[tuple[int, Any]]:
    """The elements of one JSON list, each with the line it starts on.

    A syntax error ends the reading: past it, nothing can be told apart.
    """
    lines = _Lines(text)
    at = _skip(text, 0)
    if text[at : at + 1] != "[":
        problems.add(lines.at(at), "expected a JSON list ('[')")
        return
    at = _skip(text, at + 1)
    if text[at : at + 1] == "]":
        at += 1
    else:
        while True:
            line = lines.at(at)
            try:
                document, end = _DECODER.raw_decode(text, at)
            except _Bad as bad:
                problems.add(line, str(bad))
                return
            except json.JSONDecodeError as error:
                problems.add(error.lineno, f"not JSON: {error.msg} (column {error.colno})")
                return
            if end - at > MAX_LINE_BYTES:
                problems.add(line, f"an element longer than {MAX_LINE_BYTES} bytes")
            else:
                yield line, document
            at = _skip(text, end)
            if text[at : at + 1] == ",":
                at = _skip(text, at + 1)
                continue
            if text[at : at + 1] == "]":
                at += 1
                break
            problems.add(lines.at(at), "expected ',' or ']' after a list element")
            return
    rest = _skip(text, at)
    if rest != len(text):
        problems.add(lines.at(rest), "text after the end of the list")


def _skip(text: str, at: int) -> int:
    """The offset of the first character at or after ``at`` that is not JSON white space."""
    found = _WHITESPACE.match(text, at)
    assert found is not None  # the expression matches the empty string
    return found.end()


class _Lines:
    """The line of growing offsets into one text, each newline counted once."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._offset = 0
        self._line = 1

    def at(self, offset: int) -> int:
        """The (1-based) line of ``offset``, which is not before the last one asked about."""
        self._line += self._text.count("\n", self._offset, offset)
        self._offset = offset
        return self._line


def _catalog_entry(document: Any, environment: str | None) -> ImportImage:
    """One catalog object (``GET /images``'s) as an entry to import; _Bad says what is wrong."""
    if not isinstance(document, dict):
        raise _Bad(f'expected a catalog object ({{"id", "name", "tags"}}), not {_kind(document)}')
    unknown = document.keys() - _CATALOG_KEYS
    if unknown:
        raise _Bad(
            f"unknown key {sorted(unknown)[0]!r} (expected {', '.join(sorted(_CATALOG_KEYS))})"
        )
    for key in ("id", "name", "tags"):
        if key not in document:
            raise _Bad(f"no {key!r}")
    digest = _digest(_string(document, "id"), "id")
    name = _repository(_string(document, "name"))
    tags = document["tags"]
    if not isinstance(tags, list):
        raise _Bad(f"'tags' must be a list of tags, not {_kind(tags)}")
    if len(tags) > MAX_CATALOG_TAGS:
        raise _Bad(f"{len(tags)} tags; an entry has at most {MAX_CATALOG_TAGS}")
    for tag in tags:
        _tag(tag)
    own = _optional_string(document, "environment", MAX_ENVIRONMENT)
    if own:
        _check_environment(own, "'environment'")
        if environment is not None and own != environment:
            raise _Bad(f"'environment' is {own!r}, but -e/--environment says {environment!r}")
    elif environment is None:
        raise _Bad("no 'environment': give -e/--environment ENV for entries that name none")
    _time(document, "updated_at")  # checked, not kept: the import's own time is the entry's
    return ImportImage(
        environment=own or environment or "",
        name=name,
        id=digest,
        tags=tuple(dict.fromkeys(tags)),
        source=_optional_string(document, "source", MAX_REFERENCE),
        promoted_by=_optional_string(document, "promoted_by", MAX_SUBJECT),
        promoted_at=_time(document, "promoted_at"),
        signed=_flag(document, "signed"),
        attested=_flag(document, "attested"),
        created_at=_time(document, "created_at"),
    )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _string(document: dict[str, Any], key: str) -> str:
    value = document[key]
    if not isinstance(value, str):
        raise _Bad(f"{key!r} must be a string, not {_kind(value)}")
    return value


def _optional_string(document: dict[str, Any], key: str, limit: int) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{key!r} must be a string, not {_kind(value)}")
    if len(value) > limit:
        raise _Bad(f"{key!r} is {len(value)} characters long; the limit is {limit}")
    bad = _UNSTORABLE.search(value)
    if bad:
        raise _Bad(f"{key!r} holds the character U+{ord(bad.group()):04X}, which cannot be stored")
    return value


def _flag(document: dict[str, Any], key: str) -> bool | None:
    value = document.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _Bad(f"{key!r} must be true or false, not {_kind(value)}")


def _time(document: dict[str, Any], key: str) -> datetime | None:
    value = document.get(key)
    if value is None:
        return None
    moment = _TIMES.get(value) if isinstance(value, str) else None
    if moment is not None:
        return moment
    if not isinstance(value, str):
        raise _Bad(f"{key!r} must be an RFC 3339 time, not {_kind(value)}")
    if not _RFC3339.fullmatch(value):
        raise _Bad(f"{key!r} is not an RFC 3339 time with an offset: {value[:64]!r}")
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError as error:
        raise _Bad(f"{key!r} is not a time: {value!r} ({error})") from None
    if len(_TIMES) >= 4096:  # an export's entries share times; a bound keeps this small
        _TIMES.clear()
    _TIMES[value] = moment
    return moment


def _digest(value: str, what: str) -> str:
    if _SHA256.fullmatch(value):
        return value
    try:
        return str(Digest.parse(value))
    except InvalidDigestError as error:
        hint = (
            " (an imported entry's id is the image's digest, as promotions record it)"
            if "@" in value or ":" not in value
            else ""
        )
        raise _Bad(f"{what}: {error.message}{hint}") from None


def _repository(name: str) -> str:
    host, slash, path = name.partition("/")
    if slash and len(path) <= NAME_TOTAL_LENGTH_MAX and _PATH.fullmatch(path) and _plain_host(host):
        return name  # the common case, without parsing the whole reference again
    try:
        reference = Reference.parse_repository(name)
    except InvalidReferenceError as error:
        raise _Bad(f"name: {error.message}") from None
    if reference.name != name:
        # The webhook asks about canonical names: another spelling would never match.
        raise _Bad(
            f"name: {name!r} is not the canonical repository name the admission webhook asks "
            f"about: use {reference.name!r}"
        )
    return name


@functools.lru_cache(maxsize=4096)
def _plain_host(host: str) -> bool:
    """True for a registry host that names itself canonically and needs no Docker Hub rule.

    Then a name is canonical exactly when its path is a valid repository path.
    """
    if host == DEFAULT_REGISTRY:
        return False  # docker.io/nginx is docker.io/library/nginx
    try:
        return Reference.parse(f"{host}/probe").registry == host
    except InvalidReferenceError:
        return False


def _tag(tag: object) -> str:
    if not isinstance(tag, str):
        raise _Bad(f"a tag must be a string, not {_kind(tag)}")
    if not valid_tag(tag):
        raise _Bad(
            f"invalid tag {tag!r}: 1-128 characters of [A-Za-z0-9_.-], not starting with . or -"
        )
    return tag


def _check_environment(name: str, what: str) -> None:
    if len(name) > MAX_ENVIRONMENT or not _ENVIRONMENT_RE.fullmatch(name):
        message = (
            f"{what}: {name!r} is not an environment name (lowercase letters, digits, _ and -, "
            f"at most {MAX_ENVIRONMENT})"
        )
        if what.startswith("-"):
            raise UsageError(message)
        raise _Bad(message)


# --- snapshots ------------------------------------------------------------------------------

# (line of the digest, image name, digest, tags)
_SnapshotRow = tuple[int, str, str, list[str]]


def _registry_prefix(registry: str) -> str:
    """``REGISTRY[/PATH]`` checked as ``cip --snapshot`` checks it, without a trailing /."""
    prefix = registry.strip().rstrip("/")
    host = prefix.partition("/")[0]
    try:
        parsed = Reference.parse_repository(f"{prefix}/probe")
    except InvalidReferenceError as error:
        raise UsageError(
            f"--registry {registry!r} is not REGISTRY[/PATH]: {error.message}"
        ) from None
    if parsed.registry != host:
        raise UsageError(
            f"--registry {registry!r}: {host!r} is not a registry host",
            hint="start with the registry's host name, e.g. registry.example.com/prod",
        )
    return prefix


def _snapshot_yaml(shown: str, text: str, problems: _Problems) -> list[_SnapshotRow]:
    """The rows of a YAML (or JSON) snapshot; its shape errors are the file's (as kpromo's)."""
    from imgctl.promotion.manifests._yaml import Document, parse_images

    try:
        images = parse_images(Document(shown), text)
    except ImgctlError as error:
        # "FILE: line N: problem": the line, when the reader names one.
        message = error.message.removeprefix(f"{shown}: ")
        found = re.match(r"line (\d+)[:,] (.*)", message, re.DOTALL)
        if found:
            problems.add(int(found.group(1)), found.group(2))
        else:
            problems.add(1, message)
        return []
    rows: list[_SnapshotRow] = []
    for image in images:
        if not image.entry.dmap:
            problems.add(image.line, "'dmap' is empty")
        for digest, tags in image.entry.dmap.items():
            rows.append(
                (image.digest_lines.get(digest, image.line), image.entry.name, digest, list(tags))
            )
    return rows


def _snapshot_json(text: str, problems: _Problems) -> list[_SnapshotRow]:
    rows: list[_SnapshotRow] = []
    for line, document in _json_list(text, problems):
        try:
            if not isinstance(document, dict):
                raise _Bad(f'expected a snapshot entry ({{"name", "dmap"}}), not {_kind(document)}')
            unknown = document.keys() - _SNAPSHOT_KEYS
            if unknown:
                raise _Bad(f"unknown key {sorted(unknown)[0]!r} (expected name, dmap)")
            name = _string(document, "name") if "name" in document else ""
            dmap = document.get("dmap")
            if not isinstance(dmap, dict) or not dmap:
                raise _Bad("'dmap' must be a non-empty object of digest: [tags]")
            for digest, tags in dmap.items():
                if not isinstance(tags, list):
                    raise _Bad(f"the tags of {digest} must be a list, not {_kind(tags)}")
                rows.append((line, name, digest, tags))
        except _Bad as bad:
            problems.add(line, str(bad))
    return rows


def _snapshot_csv(text: str, problems: _Problems) -> list[_SnapshotRow]:
    """``name@digest,name:tag`` (``-`` for none) per line, grouped by name and digest."""
    grouped: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            problems.add(number, f"longer than {MAX_LINE_BYTES} bytes")
            continue
        pinned, comma, tagged = line.partition(",")
        name, at, digest = pinned.partition("@")
        if not comma or not at or "," in tagged:
            problems.add(number, "expected NAME@DIGEST,NAME:TAG or NAME@DIGEST,-")
            continue
        _, tags = grouped.setdefault((name, digest), (number, []))
        if tagged == "-":
            continue
        tag_name, colon, tag = tagged.rpartition(":")
        if not colon or tag_name != name:
            problems.add(number, f"{tagged!r} is not {name}:TAG")
            continue
        tags.append(tag)
    return [(line, name, digest, tags) for (name, digest), (line, tags) in grouped.items()]


def _from_snapshot(
    rows: list[_SnapshotRow], prefix: str, environment: str, problems: _Problems
) -> list[tuple[int, ImportImage]]:
    entries: list[tuple[int, ImportImage]] = []
    for line, name, digest, tags in rows:
        try:
            if not name:
                raise _Bad("an image without a 'name'")
            repository = _repository(f"{prefix}/{name}")
            for tag in tags:
                _tag(tag)
            entries.append(
                (
                    line,
                    ImportImage(
                        environment=environment,
                        name=repository,
                        id=_digest(digest, f"image {name!r}"),
                        tags=tuple(dict.fromkeys(tags)),
                    ),
                )
            )
        except _Bad as bad:
            problems.add(line, str(bad))
    return entries


# --- across lines ---------------------------------------------------------------------------


def _check_across(entries: list[tuple[int, ImportImage]], problems: _Problems) -> None:
    """An entry given twice, and a tag of one repository given to two digests, are bad lines."""
    first: dict[tuple[str, str, str], int] = {}
    owner: dict[tuple[str, str, str], tuple[str, int]] = {}
    for line, image in entries:
        seen = first.setdefault(image.key, line)
        if seen != line:
            problems.add(
                line, f"{image.name}@{image.id} in {image.environment} is also on line {seen}"
            )
            continue
        for tag in image.tags:
            other, other_line = owner.setdefault(
                (image.environment, image.name, tag), (image.id, line)
            )
            if other != image.id:
                problems.add(
                    line,
                    f"tag {tag!r} of {image.name} in {image.environment} is given to {other} "
                    f"on line {other_line}: a tag names one digest",
                )
