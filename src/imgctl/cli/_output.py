"""What commands print on stdout: the ``-o`` formats, JSON documents, sizes, progress bars.

Errors and warnings go to stderr through ``imgctl.cli._exit``. Rich is imported only when a
progress bar is actually drawn (a terminal, text output), never at start-up.

Machine output (docs/architecture.md "Machine-readable output"): ``-o json`` and ``-o yaml``
print the same document; keys are camelCase (the catalog's objects keep imagelist's names);
counts and sizes are numbers, never strings; times are RFC 3339 UTC strings. PyYAML and
protobuf are imported only when a document is printed, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgctl.remote import CopyProgress

__all__ = [
    "Output",
    "camel_keys",
    "copy_progress",
    "mib",
    "print_document",
    "print_json",
    "proto_document",
    "rfc3339",
    "transfer_progress",
    "yaml_text",
]


class Output(StrEnum):
    """Output formats: text for people; json and yaml print the same document."""

    text = "text"
    json = "json"
    yaml = "yaml"


def print_json(document: Any) -> None:
    """Print ``document`` as indented JSON on stdout."""
    print(json.dumps(document, indent=2))


def yaml_text(document: Any) -> str:
    """``document`` as block YAML: keys in their order, no anchors or aliases, plain types."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        # A list or dict printed twice must appear twice, not as &id001/*id001: a reader
        # (yq, a person) should not have to resolve aliases.
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 16,  # one scalar per line: never folded, so grep finds it whole
    )


def print_document(document: Any, output: str) -> None:
    """Print ``document`` as ``-o json`` or ``-o yaml`` asks (the same document either way)."""
    if output == Output.yaml:
        print(yaml_text(document), end="")
    else:
        print_json(document)


def camel_keys(document: Any) -> Any:
    """``document`` with every dict key in lowerCamelCase (``next_cursor`` -> ``nextCursor``).

    For documents whose keys are all field names (the audit API's page); never for one holding
    data as keys (labels, an in-toto statement), which must stay as written.
    """
    if isinstance(document, dict):
        return {_camel(str(key)): camel_keys(value) for key, value in document.items()}
    if isinstance(document, list):
        return [camel_keys(item) for item in document]
    return document


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def rfc3339(when: datetime | float) -> str:
    """A time (an aware datetime, or Unix seconds) as RFC 3339 in UTC: 2026-12-07T13:00:00Z."""
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # naive datetimes in imgctl are UTC
    text = when.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def proto_document(message: Any, *, times: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A protobuf message as a document: lowerCamelCase keys, every field, numbers as numbers.

    The proto3 JSON mapping (``MessageToDict``) writes 64-bit integers as strings; here they
    are numbers (a Python int holds any of them). ``times`` maps fields holding Unix seconds
    (``expires_at``) to the name their RFC 3339 string takes (``expiresAt``). Fields with
    presence (``optional``) appear only when set, as in the JSON mapping.
    """
    from google.protobuf.json_format import MessageToDict

    document: dict[str, Any] = MessageToDict(message, always_print_fields_with_no_presence=True)
    return _numbers(message, document, times or {})


def _numbers(message: Any, document: dict[str, Any], times: Mapping[str, str]) -> dict[str, Any]:
    from google.protobuf.descriptor import FieldDescriptor

    wide = {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
    out: dict[str, Any] = {}  # rebuilt in field order, so a renamed time keeps its place
    for field in message.DESCRIPTOR.fields:
        key = field.json_name
        if key not in document:
            continue
        value = document[key]
        nested = field.type == FieldDescriptor.TYPE_MESSAGE
        if field.type in wide:
            value = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif nested and not field.message_type.GetOptions().map_entry:
            inner = getattr(message, field.name)
            if isinstance(value, list):
                value = [_numbers(m, v, {}) for m, v in zip(inner, value, strict=True)]
            else:
                value = _numbers(inner, value, {})
        if field.name in times:
            key = times[field.name]
            value = rfc3339(value) if value else None  # 0: no time (a token without expiry)
        out[key] = value
    return out


def mib(size: int) -> str:
    """A byte count in MiB with one decimal, as every summary line shows sizes."""
    return f"{size / (1 << 20):.1f} MiB"


@contextmanager
def copy_progress(progress: CopyProgress, *, enabled: bool) -> Iterator[None]:
    """A bar of images copied and bytes streamed, fed by ``progress`` (when ``enabled``)."""
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("copying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images, {task.fields[copied]} streamed"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("copy", total=None, copied=mib(0))

        def update(p: CopyProgress) -> None:
            bar.update(
                task, total=p.images_total, completed=p.images_done, copied=mib(p.bytes_copied)
            )

        progress.on_change = update
        yield


@contextmanager
def transfer_progress(label: str, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A bar of bytes moved so far; yields the function to call with the running total."""
    if not enabled:
        yield lambda done: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn

    with Progress(label, BarColumn(), DownloadColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def show(done: int) -> None:
            bar.update(task, completed=done)

        yield show
