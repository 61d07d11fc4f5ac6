"""How ``imgctl cip`` shows its pipeline's phases: Rich on a terminal, plain lines, JSON lines.

Every phase event becomes, in text, one line ``phase NAME: started`` and then ``phase NAME:
STATUS (N.NN s): summary`` (``skipped: why``) on stdout; on a terminal a spinner with the
running time stands for the phase in progress and the ended line replaces it. With ``-o json``
(or ``-o yaml``) stdout is the run's report alone, so each event is one JSON object on its own
line on stderr (beside warnings and errors, which start with ``imgctl:``). Rich is imported only
when a terminal shows the display.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgctl.promotion.pipeline import PhaseEvent

__all__ = ["phase_display", "phase_line"]


def phase_line(event: PhaseEvent) -> str:
    """The text line of one phase event."""
    if event.status == "started":
        return f"phase {event.phase}: started"
    if event.status == "skipped":
        return f"phase {event.phase}: skipped: {event.summary}"
    line = f"phase {event.phase}: {event.status} ({event.duration or 0:.2f} s)"
    details = [event.summary] if event.summary else []
    if event.failed_count:
        details.append(f"{event.failed_count} edge(s) failed")
    if event.warning_count:
        details.append(f"{event.warning_count} warning(s)")
    if event.error:
        details.append(event.error)
    return line + (": " + "; ".join(details) if details else "")


def _json_line(event: PhaseEvent) -> None:
    print(json.dumps(event.as_dict()), file=sys.stderr, flush=True)


def _plain_line(event: PhaseEvent) -> None:
    print(phase_line(event), flush=True)


@contextmanager
def phase_display(output: str) -> Iterator[Callable[[PhaseEvent], None]]:
    """The callback that shows phase events for ``output`` (text, json or yaml), while in use."""
    if output in ("json", "yaml"):
        yield _json_line
        return
    if not sys.stdout.isatty():
        yield _plain_line
        return
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.text import Text

    styles = {"ok": "green", "warning": "yellow", "failed": "red", "skipped": "dim"}
    with Progress(
        SpinnerColumn(),
        TextColumn("phase {task.description}"),
        TimeElapsedColumn(),
        transient=True,
    ) as display:
        running: dict[str, TaskID] = {}

        def show(event: PhaseEvent) -> None:
            if event.status == "started":
                running[event.phase] = display.add_task(event.phase, total=None)
                return
            task = running.pop(event.phase, None)
            if task is not None:
                display.remove_task(task)
            display.console.print(Text(phase_line(event), style=styles.get(event.status, "")))

        yield show
