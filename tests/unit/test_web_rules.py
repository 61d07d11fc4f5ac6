"""The web pages' rules that need no server: pipeline order, readable environments, the
login's origin check and where it may send a browser, relative times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from imgctl.errors import UsageError
from imgctl.web import Viewer, pipeline_order, read_pipeline
from imgctl.web._login import safe_next, same_origin
from imgctl.web._render import relative_time


def test_pipeline_order_follows_the_promotions_then_the_alphabet() -> None:
    edges = [("ci", "dev"), ("dev", "staging"), ("staging", "prod"), ("dev", "staging")]
    assert pipeline_order({"prod", "staging", "dev", "ci"}, (), edges) == [
        "ci",
        "dev",
        "staging",
        "prod",
    ]
    # No promotion: alphabetical; an unlinked environment takes its alphabetical turn.
    assert pipeline_order({"prod", "int", "dev"}, ()) == ["dev", "int", "prod"]
    assert pipeline_order({"b", "a", "z"}, (), [("z", "b")]) == ["a", "z", "b"]
    # A cycle is broken alphabetically, never dropped.
    assert pipeline_order({"x", "y"}, (), [("x", "y"), ("y", "x")]) == ["x", "y"]
    # IMGCTL_PIPELINE wins; what it leaves out follows alphabetically.
    assert pipeline_order({"dev", "qa", "prod"}, ("prod", "dev"), edges) == ["prod", "dev", "qa"]


def test_read_pipeline_is_strict() -> None:
    assert read_pipeline({"IMGCTL_PIPELINE": " Dev , int,prod "}, ["dev", "int", "prod"]) == (
        "dev",
        "int",
        "prod",
    )
    assert read_pipeline({}, ["dev"]) == ()
    for value, problem in (
        ("dev,,prod", "empty"),
        ("dev,qa", "'qa' is not a configured environment"),
        ("dev,dev", "names 'dev' twice"),
    ):
        with pytest.raises(UsageError, match=problem):
            read_pipeline({"IMGCTL_PIPELINE": value}, ["dev", "prod"])


def test_a_viewer_reads_where_they_promote_and_the_environment_before() -> None:
    order = ["ci", "dev", "staging", "prod"]
    assert Viewer("all").readable(order) == order
    assert Viewer("ops", promotes_to=frozenset({"prod"})).readable(order) == ["staging", "prod"]
    assert Viewer("eng", promotes_to=frozenset({"ci", "dev", "staging"})).readable(order) == [
        "ci",
        "dev",
        "staging",
    ]
    assert Viewer("nobody", promotes_to=frozenset()).readable(order) == []


def request(**headers: str) -> Request:
    raw = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/login", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"host": "pages.example.com", "sec_fetch_site": "same-origin", "origin": "null"}, True),
        ({"host": "pages.example.com", "sec_fetch_site": "same-origin"}, True),
        ({"host": "pages.example.com", "origin": "https://pages.example.com"}, True),
        ({"host": "pages.example.com", "origin": "https://evil.example"}, False),
        (
            {
                "host": "pages.example.com",
                "sec_fetch_site": "same-origin",
                "origin": "https://evil.example",
            },
            False,
        ),
        ({"host": "pages.example.com", "sec_fetch_site": "cross-site"}, False),
        ({"host": "pages.example.com", "sec_fetch_site": "same-site"}, False),
        ({"host": "pages.example.com", "origin": "null"}, False),
        ({"host": "pages.example.com"}, False),
    ],
)
def test_the_login_form_comes_from_this_server(headers: dict[str, str], allowed: bool) -> None:
    assert same_origin(request(**headers)) is allowed


def test_after_signing_in_only_a_local_path() -> None:
    assert safe_next("/?name=web&sort=drift") == "/?name=web&sort=drift"
    assert safe_next("/audit") == "/audit"
    for bad in ("", None, "https://evil.example/", "//evil.example", "/\\evil", "/\nx", "audit"):
        assert safe_next(bad) == "/"


def test_relative_times() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=3), now) == "just now"
    assert relative_time(now - timedelta(seconds=45), now) == "45 s ago"
    assert relative_time(now - timedelta(minutes=5), now) == "5 min ago"
    assert relative_time(now - timedelta(hours=3), now) == "3 h ago"
    assert relative_time(now - timedelta(days=1, hours=2), now) == "1 day ago"
    assert relative_time(now - timedelta(days=90), now) == "3 months ago"
    assert relative_time(now - timedelta(days=800), now) == "2 years ago"
    assert relative_time(now + timedelta(minutes=2), now) == "in 2 min"
    assert relative_time(None, now) == ""
