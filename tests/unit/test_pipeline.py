"""The phase runner of imgctl cip: order, stops, per-edge failures, events, budget shares."""

from __future__ import annotations

import asyncio

import pytest

from imgctl.promotion.pipeline import KPROMO_PHASES, Phase, PhaseEvent, PhaseResult, Pipeline
from imgctl.remote import RequestBudget


def kpromo(stop_after: str | None = None, budget: RequestBudget | None = None) -> Pipeline:
    phases = [
        Phase(n, "signing" if n in ("sign", "attest") else "promotion") for n in KPROMO_PHASES
    ]
    seen: list[PhaseEvent] = []
    return Pipeline(
        phases, seen.append, stop_after=stop_after, stop_reason="dry run", budget=budget
    )


async def result(value: PhaseResult) -> PhaseResult:
    return value


def test_an_edge_failed_once_keeps_its_first_failure_and_the_phase_says_failed() -> None:
    pipeline = kpromo()

    async def run() -> None:
        await pipeline.run("plan", lambda: result(PhaseResult("planned", {"a": "unreadable"})))
        await pipeline.run(
            "provenance",
            lambda: result(PhaseResult("checked", {"a": "again", "b": "bad"}, ["w"])),
        )
        await pipeline.run("validate", lambda: result(PhaseResult("ok", warnings=["only"])))

    asyncio.run(run())
    assert pipeline.failures == {"a": ("plan", "unreadable"), "b": ("provenance", "bad")}
    assert not pipeline.alive("a")
    assert not pipeline.alive("b")
    assert pipeline.alive("c")
    ended = [e for e in pipeline.events if e.status != "started"]
    assert [(e.phase, e.status, e.failed_count) for e in ended] == [
        ("plan", "failed", 1),
        ("provenance", "failed", 1),  # "a" had already failed: only "b" is new
        ("validate", "warning", 0),
    ]
    assert ended[1].failed == (("b", "bad"),)
    assert ended[1].as_dict()["warnings"] == ["w"]
    assert pipeline.failed


def test_phases_after_the_stop_are_skipped_with_the_reason() -> None:
    pipeline = kpromo(stop_after="validate")
    ran: list[str] = []

    async def run() -> None:
        for name in KPROMO_PHASES[1:]:
            ran_here = name

            async def work(name: str = ran_here) -> PhaseResult:
                ran.append(name)
                return PhaseResult()

            await pipeline.run(name, work)

    asyncio.run(run())
    assert ran == ["plan", "provenance", "validate"]
    skipped = [(e.phase, e.summary) for e in pipeline.events if e.status == "skipped"]
    assert skipped == [("promote", "dry run"), ("sign", "dry run"), ("attest", "dry run")]
    assert skipped[0]
    assert pipeline.events[-1].as_dict() == {
        "event": "phase",
        "phase": "attest",
        "status": "skipped",
        "time": pipeline.events[-1].as_dict()["time"],
        "summary": "dry run",
    }
    assert not pipeline.failed


def test_skip_remaining_reports_every_phase_not_reported() -> None:
    pipeline = kpromo(stop_after="setup")
    pipeline.begin("setup")
    pipeline.end("setup", PhaseResult("parsed"))
    pipeline.skip_remaining()
    assert [(e.phase, e.status) for e in pipeline.events][2:] == [
        (name, "skipped") for name in KPROMO_PHASES[1:]
    ]


def test_the_promotion_share_goes_to_signing_once_promote_has_ended() -> None:
    budget = RequestBudget(40, 2, {"promotion": 0.7, "signing": 0.3})
    pipeline = kpromo(budget=budget)

    async def run() -> None:
        for name in ("plan", "provenance", "validate"):
            await pipeline.run(name, lambda: result(PhaseResult()))
        assert budget.rates() == {"promotion": pytest.approx(28), "signing": pytest.approx(12)}
        await pipeline.run("promote", lambda: result(PhaseResult()))
        assert budget.rates() == {"promotion": 40, "signing": 40}

    asyncio.run(run())


def test_an_exception_ends_the_phase_failed_and_is_raised() -> None:
    pipeline = kpromo()

    async def boom() -> PhaseResult:
        raise RuntimeError("registry on fire")

    with pytest.raises(RuntimeError):
        asyncio.run(pipeline.run("plan", boom))
    last = pipeline.events[-1]
    assert (last.phase, last.status, last.error) == ("plan", "failed", "registry on fire")
    assert last.as_dict()["error"] == "registry on fire"


def test_phase_names_must_be_unique_and_the_stop_known() -> None:
    with pytest.raises(ValueError, match="repeat"):
        Pipeline([Phase("a"), Phase("a")], lambda e: None)
    with pytest.raises(ValueError, match="no phase"):
        Pipeline([Phase("a")], lambda e: None, stop_after="b")
