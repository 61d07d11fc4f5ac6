"""The charts at ``/charts`` and their numbers at ``/api/stats`` (issue 20 item 5).

From the audit trail (:func:`imgctl.store._stats.promotion_stats`, where the definitions are): the
successful promotions into each environment per UTC day, and the lead time from the first to the
last environment in pipeline order (median, p90 and a distribution), over ``days`` days ending
today (1 to :data:`~imgctl.store._stats.MAX_DAYS`, default :data:`DEFAULT_DAYS`). A caller sees the
environments they may read (:meth:`Viewer.readable`), and the lead time between the first and
the last of those. The charts are SVG drawn here (:mod:`._svg`), each with a table of the same
numbers under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from markupsafe import Markup
from pydantic import BaseModel, Field

from imgctl.store._stats import MAX_DAYS, PromotionStats, promotion_stats

from ._access import Viewer
from ._matrix import ErrorOut, environment_order
from ._render import BadFilter, CurrentViewer, Web
from ._svg import duration, histogram_svg, nice_ceiling, per_day_svg

__all__ = ["DEFAULT_DAYS", "PERIODS", "register"]

DEFAULT_DAYS: Final = 30
PERIODS: Final = (7, 30, 90, 180, 366)
"""The periods the page offers (any other ``days`` in range works too)."""

# --------------------------------------------------------------------------- the JSON's schema


class EnvironmentStatsOut(BaseModel):
    """One environment's successful promotions per day."""

    name: str
    per_day: list[int] = Field(description="Promotions on each day of `days`, oldest first")
    total: int


class BucketOut(BaseModel):
    """How many lead times fall in one bucket."""

    bucket: str = Field(
        description="'≤ 1 h', '≤ 6 h', '≤ 1 d', '≤ 3 d', '≤ 7 d', '≤ 30 d', '> 30 d'"
    )
    digests: int


class LeadTimeOut(BaseModel):
    """Lead times from the first to the last environment over the period."""

    first: str = Field(description="The first environment (in pipeline order) the caller reads")
    last: str = Field(description="The last one")
    reached: int = Field(description="Digests whose first promotion into `last` is in the period")
    measured: int = Field(
        description="Those of them seen in `first` (promoted into or out of it) before"
    )
    median_seconds: float | None = Field(description="Median lead time; null when none measured")
    p90_seconds: float | None = Field(description="90th percentile, nearest rank; null: none")
    distribution: list[BucketOut]


class StatsOut(BaseModel):
    """Promotions per day per environment and lead time, from the audit trail (UTC days)."""

    start: str = Field(description="The period's first instant, RFC 3339 (midnight UTC)")
    end: str = Field(description="Its last: now")
    days: list[str] = Field(description="The period's dates, oldest first")
    environments: list[EnvironmentStatsOut] = Field(description="In pipeline order")
    lead_time: LeadTimeOut | None = Field(
        description="Null when the caller reads fewer than two environments"
    )


# --------------------------------------------------------------------------- building it


def parse_days(value: str | None) -> int:
    """``?days=`` as a number of days; BadFilter when it is not 1 to MAX_DAYS."""
    if value is None or value == "":
        return DEFAULT_DAYS
    text = value.strip()
    if not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= MAX_DAYS:
        raise BadFilter(f"days must be a whole number from 1 to {MAX_DAYS}, got {value[:20]!r}")
    return int(text)


async def read_stats(web: Web, viewer: Viewer, days: int) -> PromotionStats:
    """The statistics of the environments ``viewer`` may read, in the matrix's pipeline order."""
    order = await environment_order(web)
    readable = viewer.readable(order)
    lead = (readable[0], readable[-1]) if len(readable) >= 2 else None
    if web.context.audit is None:
        raise BadFilter("no audit trail here: these charts need the server's database")
    return await promotion_stats(web.context.audit, environments=readable, days=days, lead=lead)


@dataclass(frozen=True)
class Chart:
    """One environment's chart on the page."""

    name: str
    total: int
    svg: Markup


def page_values(stats: PromotionStats, days: int) -> dict[str, Any]:
    """What charts.html shows: the SVGs, the figures and the table's rows."""
    shown = [env for env in stats.environments if stats.total(env)]
    top = nice_ceiling(max((max(stats.per_day[env]) for env in shown), default=0))
    charts = [
        Chart(
            env,
            stats.total(env),
            Markup(  # noqa: S704 - ElementTree wrote it and escaped every name
                per_day_svg(
                    stats.days,
                    stats.per_day[env],
                    ident=f"per-day-{index}",
                    environment=env,
                    top=top,
                )
            ),
        )
        for index, env in enumerate(shown)
    ]
    lead = stats.lead
    lead_svg = None
    if lead is not None and lead.seconds:
        median, p90 = duration(lead.median), duration(lead.p90)
        desc = (
            f"Bar chart of the lead times of {len(lead.seconds)} digest"
            f"{'' if len(lead.seconds) == 1 else 's'} from {lead.first} to {lead.last}, by how "
            f"long they took: median {median}, 90th percentile {p90}."
        )
        lead_svg = Markup(  # noqa: S704 - ElementTree wrote it and escaped every name
            histogram_svg(
                lead.distribution(),
                ident="lead-time",
                title=f"Lead time from {lead.first} to {lead.last}",
                desc=desc,
            )
        )
    return {
        "heading": "Charts",
        "stats": stats,
        "days": days,
        "periods": sorted({*PERIODS, days}),
        "charts": charts,
        "quiet": [env for env in stats.environments if not stats.total(env)],
        "lead": lead,
        "lead_svg": lead_svg,
        "duration": duration,
        "rows": [
            (day, [stats.per_day[env][i] for env in stats.environments])
            for i, day in enumerate(stats.days)
        ],
    }


def register(router: APIRouter, web: Web) -> None:
    """Add ``/charts`` (the page) and ``/api/stats`` (its numbers)."""

    @router.get("/charts", include_in_schema=False)
    async def charts_page(request: Request, viewer: CurrentViewer) -> Response:
        days = parse_days(request.query_params.get("days"))
        stats = await read_stats(web, viewer, days)
        return web.render(request, "charts.html", page_values(stats, days), viewer=viewer)

    @router.get(
        "/api/stats",
        summary="Promotions per day per environment and lead time, from the audit trail",
        response_model=None,
        responses={
            200: {"model": StatsOut},
            400: {"model": ErrorOut},
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
        },
    )
    async def stats_api(
        request: Request,
        viewer: CurrentViewer,
        days: Annotated[
            str | None,
            Query(description=f"The period: this many UTC days ending today, 1 to {MAX_DAYS}"),
        ] = None,
    ) -> Response:
        stats = await read_stats(web, viewer, parse_days(days))
        return JSONResponse(StatsOut.model_validate(stats.as_dict()).model_dump())
