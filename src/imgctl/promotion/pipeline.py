"""kpromo's pipeline: ordered phases, each timed and reported, with failures kept per edge.

``imgctl cip`` runs kpromo's phases in order — setup, plan, provenance, validate, promote,
sign, attest — through a :class:`Pipeline`. Each phase is announced when it starts and when it
ends (its duration, outcome, a one-line summary, the edges it failed and its warnings) as
:class:`PhaseEvent` objects handed to a callback, which the CLI prints (a Rich display, plain
lines or JSON lines). A phase that fails some edges stops the later phases for those edges
only: the others go on. ``stop_after`` ends a run early (kpromo: ``--parse-only`` after setup,
a dry run after validate); the phases after it are reported as skipped.

With a :class:`~imgctl.remote.RequestBudget`, each phase's requests draw from the share the
phase names (``Phase.share``), and a share is released to the others once the last phase
using it has ended (kpromo: signing gets the whole budget once promote is done).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from imgctl.remote import RequestBudget

__all__ = [
    "KPROMO_BUDGET",
    "KPROMO_PHASES",
    "Phase",
    "PhaseEvent",
    "PhaseResult",
    "Pipeline",
]

# kpromo's phases, in order (the seeds' kpromo document, "Pipeline phases").
KPROMO_PHASES: Final = ("setup", "plan", "provenance", "validate", "promote", "sign", "attest")
# kpromo's split of the request budget while promoting; signing gets all of it afterwards.
KPROMO_BUDGET: Final = {"promotion": 0.7, "signing": 0.3}
# A phase event lists at most this many failed edges and warnings; the counts are always whole.
_MAX_LISTED: Final = 1000

Status = Literal["started", "ok", "warning", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Phase:
    """A phase of a run: its name and the request budget share its requests draw from."""

    name: str
    share: str = "promotion"


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """What a phase did: a summary line, the edges it failed (edge -> why), its warnings."""

    summary: str = ""
    failed: Mapping[Hashable, str] = field(default_factory=dict)
    warnings: Sequence[str] = ()
    error: str | None = None  # the phase itself failed (not one edge): it is reported failed


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """A phase started, ended (ok, warning, failed) or was skipped."""

    phase: str
    status: Status
    time: datetime  # wall clock, UTC
    duration: float | None = None  # seconds, for an ended phase
    summary: str = ""  # what it did; for a skipped phase, why it was skipped
    failed: tuple[tuple[str, str], ...] = ()  # (edge, why), at most _MAX_LISTED
    failed_count: int = 0
    warnings: tuple[str, ...] = ()  # at most _MAX_LISTED
    warning_count: int = 0
    requests: int | None = None  # registry requests the phase sent
    error: str | None = None  # why the phase as a whole failed

    def as_dict(self) -> dict[str, Any]:
        """One JSON line's object (``imgctl cip -o json``)."""
        out: dict[str, Any] = {
            "event": "phase",
            "phase": self.phase,
            "status": self.status,
            "time": self.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if self.status == "started":
            return out
        if self.duration is not None:
            out["duration"] = round(self.duration, 3)
        out["summary"] = self.summary
        if self.status != "skipped":
            out["failed"] = [{"edge": edge, "reason": reason} for edge, reason in self.failed]
            out["failedCount"] = self.failed_count
            out["warnings"] = list(self.warnings)
            out["warningCount"] = self.warning_count
            if self.requests is not None:
                out["requests"] = self.requests
            if self.error is not None:
                out["error"] = self.error
        return out


class Pipeline:
    """Runs phases in order, reports each, and remembers which edges failed where."""

    def __init__(
        self,
        phases: Sequence[Phase],
        on_event: Callable[[PhaseEvent], None],
        *,
        label: Callable[[Any], str] = str,
        stop_after: str | None = None,
        stop_reason: str = "",
        budget: RequestBudget | None = None,
        requests: Callable[[], int] | None = None,
    ) -> None:
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names repeat: {names}")
        if stop_after is not None and stop_after not in names:
            raise ValueError(f"no phase {stop_after!r} to stop after")
        self.phases = {p.name: p for p in phases}
        self._order = names
        self._on_event = on_event
        self._label = label
        self._stop = names.index(stop_after) if stop_after is not None else len(names)
        self._stop_reason = stop_reason
        self.budget = budget  # may be set after setup, once the run knows whether it signs
        self.requests = requests  # the registry requests sent so far (set with the client)
        self.failures: dict[Hashable, tuple[str, str]] = {}  # edge -> (phase, why)
        self.events: list[PhaseEvent] = []
        self._started: dict[str, tuple[float, int | None]] = {}

    # ------------------------------------------------------------------ edges

    def alive(self, edge: Hashable) -> bool:
        """Whether ``edge`` has not failed in any phase so far."""
        return edge not in self.failures

    def failure(self, edge: Hashable) -> tuple[str, str] | None:
        """(phase, why) where ``edge`` failed, or None."""
        return self.failures.get(edge)

    @property
    def failed(self) -> bool:
        """Whether any edge failed (the run's exit status says so)."""
        return bool(self.failures)

    # ------------------------------------------------------------------ phases

    def stops_before(self, phase: str) -> bool:
        """Whether ``phase`` comes after the phase the run stops after."""
        return self._order.index(phase) > self._stop

    def _emit(self, event: PhaseEvent) -> PhaseEvent:
        self.events.append(event)
        self._on_event(event)
        return event

    def begin(self, phase: str) -> None:
        """Announce that ``phase`` starts."""
        count = self.requests() if self.requests is not None else None
        self._started[phase] = (time.monotonic(), count)
        self._emit(PhaseEvent(phase, "started", datetime.now(UTC)))

    def end(self, phase: str, result: PhaseResult) -> PhaseEvent:
        """Announce that ``phase`` ended; its failed edges skip the later phases."""
        began, before = self._started.pop(phase)
        new = {edge: why for edge, why in result.failed.items() if edge not in self.failures}
        for edge, why in new.items():
            self.failures[edge] = (phase, why)
        status: Status = "warning" if result.warnings else "ok"
        if new or result.error is not None:
            status = "failed"
        requests = None
        if self.requests is not None and before is not None:
            requests = self.requests() - before
        event = PhaseEvent(
            phase,
            status,
            datetime.now(UTC),
            time.monotonic() - began,
            result.summary,
            tuple((self._label(edge), why) for edge, why in list(new.items())[:_MAX_LISTED]),
            len(new),
            tuple(result.warnings[:_MAX_LISTED]),
            len(result.warnings),
            requests,
            result.error,
        )
        self._emit(event)
        self._release_after(phase)
        return event

    def skip(self, phase: str, reason: str) -> None:
        """Announce that ``phase`` does not run, and why."""
        self._emit(PhaseEvent(phase, "skipped", datetime.now(UTC), summary=reason))
        self._release_after(phase)

    def skip_remaining(self) -> None:
        """Report every phase not reported yet as skipped (the run stopped early)."""
        reported = {event.phase for event in self.events}
        for name in self._order:
            if name not in reported:
                self.skip(name, self._stop_reason if self.stops_before(name) else "not run")

    def _release_after(self, phase: str) -> None:
        """Hand a budget share to the others once no later phase draws from it."""
        if self.budget is None:
            return
        share = self.phases[phase].share
        later = self._order[self._order.index(phase) + 1 :]
        if all(self.phases[name].share != share for name in later):
            self.budget.release(share)

    async def run(
        self,
        phase: str,
        work: Callable[[], Awaitable[PhaseResult]],
        *,
        skip: str | None = None,
    ) -> PhaseResult | None:
        """Run ``phase`` (unless the run stopped before it, or ``skip`` says why not).

        ``work`` runs drawing from the phase's budget share. An exception out of it (the
        phases report per-edge failures in their result instead) ends the phase as failed
        and is raised again.
        """
        if self.stops_before(phase):
            self.skip(phase, self._stop_reason)
            return None
        if skip is not None:
            self.skip(phase, skip)
            return None
        self.begin(phase)
        share = self.phases[phase].share
        scope = self.budget.share(share) if self.budget is not None else nullcontext()
        try:
            with scope:
                result = await work()
        except BaseException as exc:
            self.end(phase, PhaseResult(summary="stopped", error=str(exc) or type(exc).__name__))
            raise
        self.end(phase, result)
        return result
