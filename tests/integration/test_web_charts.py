"""The charts (/charts, /api/stats) against a real imgctl server, in Chromium.

The server's database holds the real promotions of tests/support/webdeploy.py (today) plus 60
days of history written through the store API (AuditStore.record, as the server writes them), so
the charts have something to draw. Every expected number is computed here from the raw
audit_events rows (sqlite3, not imgctl's query), by the definition in docs/web.md.
"""

from __future__ import annotations

import itertools
import math
import re
import sqlite3
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imgctl.store import AuditRecord, AuditStore

from ..support.browser import browser, csp_violations, page, screenshot  # noqa: F401
from ..support.webdeploy import WebDeployment, run_async, web_deployment  # noqa: F401

PIPELINE = ("ci", "dev", "staging", "prod")
HISTORY_DAYS = 60


def history(now: datetime) -> list[AuditRecord]:
    """Digests flowing ci -> dev -> staging -> prod over 60 days, some stopping on the way."""
    records = []
    for n in range(40):
        start = now - timedelta(days=HISTORY_DAYS) + timedelta(hours=31 * n + 7)
        digest = f"sha256:{n:064x}"
        # Deterministic, varied waits: 20 min to 9 days before each next environment.
        waits = [timedelta(minutes=20 + (n * 37) % 600), timedelta(hours=(n * 13) % 50 + 1)]
        waits.append(timedelta(hours=(n * 29) % 216 + 2))
        when = start
        for step, (source, destination) in enumerate(itertools.pairwise(PIPELINE)):
            when += waits[step]
            if when > now or (n % 5 == 4 and destination == "prod"):
                break
            records.append(
                AuditRecord(
                    request_id=f"history-{n}-{step}",
                    time=when,
                    action="promote",
                    result="failed" if (n % 7 == 3 and step == 0) else "succeeded",
                    email="history@example.com",
                    kind="image",
                    reference=f"history/app{n % 3}:1.{n}.0",
                    source_env=source,
                    destination_env=destination,
                    digest=digest,
                )
            )
            if n % 7 == 3 and step == 0:
                break  # a failed first step: this digest went no further
    return records


@pytest.fixture(scope="module")
def charted(web_deployment: WebDeployment) -> WebDeployment:  # noqa: F811
    """The deployment with 60 days of audit history added through the store API."""

    async def add() -> None:
        async with await AuditStore.open(web_deployment.database) as store:
            for record in history(datetime.now(UTC)):
                await store.record(record)

    run_async(add)
    return web_deployment


def audit_rows(
    deployment: WebDeployment,
) -> list[tuple[datetime, str, str, str | None, str | None, str | None]]:
    """(time, action, result, source_env, destination_env, digest) of every row, raw SQLite."""
    path = deployment.database.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT time, action, result, source_env, destination_env, digest FROM audit_events"
        ).fetchall()
    return [(datetime.fromisoformat(t).replace(tzinfo=UTC), *rest) for t, *rest in rows]


def expected(
    deployment: WebDeployment, environments: tuple[str, ...], days: int, now: datetime
) -> dict[str, Any]:
    """The statistics docs/web.md defines, computed from the raw rows."""
    first_day = now.date() - timedelta(days=days - 1)
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    rows = [r for r in audit_rows(deployment) if r[1] == "promote" and r[2] == "succeeded"]
    dates = [first_day + timedelta(days=i) for i in range(days)]
    per_day = {
        env: [
            sum(1 for r in rows if r[4] == env and start <= r[0] <= now and r[0].date() == day)
            for day in dates
        ]
        for env in environments
    }
    first, last = environments[0], environments[-1]
    reached, lead = 0, []
    for digest in {r[5] for r in rows if r[5]}:
        mine = [r for r in rows if r[5] == digest]
        arrivals = [r[0] for r in mine if r[4] == last]
        if not arrivals or not start <= min(arrivals) <= now:
            continue
        reached += 1
        seen = [r[0] for r in mine if first in (r[3], r[4])]
        if seen and min(seen) <= min(arrivals):
            lead.append((min(arrivals) - min(seen)).total_seconds())
    lead.sort()
    return {
        "days": [d.isoformat() for d in dates],
        "per_day": per_day,
        "reached": reached,
        "lead": lead,
        "median": statistics.median(lead) if lead else None,
        "p90": lead[math.ceil(0.9 * len(lead)) - 1] if lead else None,
    }


def test_api_stats_are_the_audit_trails(charted: WebDeployment) -> None:
    for user, environments in (("olga", PIPELINE), ("alice", PIPELINE[:3])):
        for days in (1, 30, 366):
            answer = charted.get_json(f"/api/stats?days={days}", charted.tokens[user])
            now = datetime.fromisoformat(answer["end"])
            want = expected(charted, environments, days, now)
            assert answer["days"] == want["days"]
            assert answer["start"] == f"{want['days'][0]}T00:00:00Z"
            # alice may not promote to prod: she does not see it at all.
            assert [e["name"] for e in answer["environments"]] == list(environments)
            for env in answer["environments"]:
                assert env["per_day"] == want["per_day"][env["name"]], (user, days, env["name"])
                assert env["total"] == sum(env["per_day"])
            lead = answer["lead_time"]
            assert (lead["first"], lead["last"]) == (environments[0], environments[-1])
            assert lead["reached"] == want["reached"]
            assert lead["measured"] == len(want["lead"])
            assert lead["median_seconds"] == pytest.approx(want["median"])
            assert lead["p90_seconds"] == pytest.approx(want["p90"])
            assert sum(b["digests"] for b in lead["distribution"]) == len(want["lead"])
    # Today's real promotions: 4 into dev, 3 into staging and 2 into prod (webdeploy's scenario).
    today = charted.get_json("/api/stats?days=1", charted.tokens["olga"])
    totals = {e["name"]: e["total"] for e in today["environments"]}
    assert totals["dev"] >= 4
    assert totals["prod"] >= 2
    month = charted.get_json("/api/stats", charted.tokens["olga"])
    assert len(month["days"]) == 30  # the default period
    assert month["lead_time"]["measured"] >= 10


def test_api_stats_refuses_bad_periods_and_strangers(charted: WebDeployment) -> None:
    token = charted.tokens["olga"]
    for days in ("0", "367", "-1", "abc", "1.5", "99999999999999999999"):
        answer = charted.get(f"/api/stats?days={days}", token)
        assert answer.status_code == 400, (days, answer.text)
        assert answer.json()["error"]["message"].startswith(
            "days must be a whole number from 1 to 366, got"
        )
    anonymous = charted.get("/api/stats")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    stranger = charted.get("/api/stats", charted.tokens["carl"])  # not in OIDC_ALLOWED_GROUPS
    assert stranger.status_code == 403
    assert "environments" not in stranger.text
    page_answer = charted.get("/charts?days=400", token)
    assert page_answer.status_code == 400
    assert "days must be a whole number from 1 to 366" in page_answer.text
    schema = charted.get_json("/openapi.json")
    assert "/api/stats" in schema["paths"]
    assert "StatsOut" in schema["components"]["schemas"]


def login(page: Any, deployment: WebDeployment, user: str, next_path: str) -> None:  # noqa: F811
    page.goto(f"{deployment.url}/login?next={next_path}")
    page.get_by_label(re.compile("Your token")).fill(deployment.tokens[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def bar_heights(svg: Any) -> list[tuple[int, float]]:
    """(data-count, height) of every bar of one chart in the page."""
    return [
        (int(bar.get_attribute("data-count")), float(bar.get_attribute("height")))
        for bar in svg.locator("rect.bar").all()
    ]


def test_charts_page_in_chromium(charted: WebDeployment, page: Any) -> None:  # noqa: F811
    login(page, charted, "olga", "/charts?days=90")
    assert page.url == f"{charted.url}/charts?days=90"
    assert page.get_by_role("heading", level=1).all_inner_texts() == ["Charts"]
    answer = charted.get_json("/api/stats?days=90", charted.tokens["olga"])
    drawn = [e for e in answer["environments"] if e["total"]]
    # One chart per environment something was promoted into (ci never is), plus the lead time.
    charts = page.get_by_role("img")
    assert charts.count() == len(drawn) + 1
    for env in drawn:
        svg = page.get_by_role("img", name=f"Promotions into {env['name']} per day")
        assert svg.count() == 1
        heights = bar_heights(svg)
        assert [count for count, _ in heights] == env["per_day"]
        unit = {round(h / c, 6) for c, h in heights if c}
        assert len(unit) == 1  # heights proportional to counts, one scale for every chart
    scale = {
        round(h / c, 6)
        for env in drawn
        for c, h in bar_heights(
            page.get_by_role("img", name=f"Promotions into {env['name']} per day")
        )
        if c
    }
    assert len(scale) == 1
    lead = answer["lead_time"]
    lead_chart = page.get_by_role("img", name="Lead time from ci to prod")
    assert [c for c, _ in bar_heights(lead_chart)] == [b["digests"] for b in lead["distribution"]]
    description = lead_chart.get_attribute("aria-labelledby")
    assert description == "lead-time-title lead-time-desc"
    assert "median" in page.locator("#lead-time-desc").text_content()
    figures = page.locator("dl.figures").inner_text()
    assert f"Digests that reached prod\n{lead['reached']}" in figures
    assert "ci" not in [e["name"] for e in drawn]
    assert "No promotion into ci in this period." in page.locator("main").inner_text()

    screenshot(page, "charts")

    # The table under the charts says the same numbers.
    page.get_by_text("Promotions per day as a table").click()
    table = page.get_by_role("table", name="Successful promotions per UTC day and environment")
    assert table.is_visible()
    headers = table.locator("thead th").all_inner_texts()
    assert headers == ["Day", *PIPELINE]
    today = table.locator("tbody tr").last
    cells = today.locator("td").all_inner_texts()
    assert [int(c) for c in cells] == [e["per_day"][-1] for e in answer["environments"]]

    # The period select submits itself; the URL keeps it.
    page.get_by_label("Period", exact=True).select_option("7")
    page.wait_for_url(f"{charted.url}/charts?days=7")
    assert (
        page.get_by_role("img", name="Promotions into dev per day").locator("rect.bar").count() == 7
    )
    assert page.locator('nav[aria-label="Main"] a[aria-current="page"]').inner_text() == "Charts"
    assert csp_violations(page) == []
    assert page.console_errors == []


def test_a_reader_of_fewer_environments_sees_fewer_charts(
    charted: WebDeployment,
    page: Any,  # noqa: F811
) -> None:
    login(page, charted, "alice", "/charts")
    text = page.locator("main").inner_text()
    assert "prod" not in text
    assert page.get_by_role("img", name="Lead time from ci to staging").count() == 1
    assert page.get_by_role("img", name="Promotions into prod per day").count() == 0
