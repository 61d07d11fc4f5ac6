"""What commands print on stdout: the ``-o`` formats, JSON documents, sizes, progress bars.

Errors and warnings go to stderr through ``imgctl.cli._exit``. Rich is imported only when a
progress bar is actually drawn (a terminal, text output), never at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgctl.remote import CopyProgress

__all__ = ["Output", "copy_progress", "mib", "print_json", "transfer_progress"]


class Output(StrEnum):
    """Output formats."""

    text = "text"
    json = "json"


def print_json(document: Any) -> None:
    """Print ``document`` as indented JSON on stdout."""
    print(json.dumps(document, indent=2))


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
