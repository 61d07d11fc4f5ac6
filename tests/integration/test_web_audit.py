"""The audit trail (/audit, /api/audit, its downloads, imgctl audit ls) against a real server.

The server's database was filled by real promotions through its gRPC API
(tests/support/webdeploy.py), plus, here, a sign-in check, a promotion into an environment that
does not exist and one of a reference written like a spreadsheet formula. Every answer is
checked against the audit rows in the database.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jsonschema
import pytest
import yaml

from imgctl.cli._output import camel_keys
from imgctl.store import AuditRecord, AuditStore
from imgctl.web._audit import csv_cell

from ..conftest import IMGCTL
from ..support import browser as browsers
from ..support import webdeploy
from ..support.browser import csp_violations, screenshot
from ..support.deployment import AUDIENCE, grpc_call, promote_request
from ..support.machine import check_document
from ..support.webdeploy import WebDeployment, run_async

# The fixtures of the support modules, used by this module.
browser, page = browsers.browser, browsers.page

FORMULA = '=HYPERLINK("http://evil.example/","x")'


@pytest.fixture(scope="module")
def deployment(web_deployment: WebDeployment) -> WebDeployment:
    """The web deployment plus rows of no environment, of an unknown one, and a 'formula'."""
    from imgctl.v1 import imgctl_pb2 as pb

    calls = [
        ("AuthCheck", pb.AuthCheckRequest(), "alice"),
        ("Promote", promote_request("shop/web:1.0.0", "qa", "dev"), "olga"),
        ("Promote", promote_request(FORMULA, "dev", "ci"), "olga"),
    ]
    for method, request, user in calls:
        run_async(
            lambda m=method, r=request, u=user: grpc_call(  # type: ignore[misc]
                web_deployment.grpc, m, r, token=web_deployment.tokens[u]
            )
        )
    return web_deployment


web_deployment = webdeploy.web_deployment


def rows(deployment: WebDeployment) -> list[AuditRecord]:
    """Every audit row, newest first, read from the database itself."""

    async def read() -> list[AuditRecord]:
        async with await AuditStore.open(deployment.database) as store:
            return await store.recent(1000)

    return run_async(read)


def visible_to_alice(record: AuditRecord) -> bool:
    """alice may promote into ci, dev and staging: rows naming only those, and one at least."""
    named = [e for e in (record.source_env, record.destination_env) if e is not None]
    return bool(named) and all(e in ("ci", "dev", "staging") for e in named)


def api(deployment: WebDeployment, query: str = "", user: str = "olga") -> Any:
    return deployment.get_json(f"/api/audit{query}", deployment.tokens[user])


def walk(deployment: WebDeployment, query: str, user: str = "olga") -> tuple[list[Any], int]:
    """Every event of ``query`` through the cursors, and how many pages it took."""
    events: list[Any] = []
    pages = 0
    cursor = None
    while True:
        suffix = f"&cursor={quote(cursor)}" if cursor else ""
        body = api(deployment, f"?{query}{suffix}", user)
        pages += 1
        events += body["events"]
        cursor = body["next_cursor"]
        if cursor is None:
            return events, pages


# --------------------------------------------------------------------------- the API


def test_api_answers_every_row_newest_first_and_matches_its_schema(
    deployment: WebDeployment,
) -> None:
    expected = rows(deployment)
    assert len(expected) == 15  # 10 promotions, 2 refused, a sign-in check, 2 invalid
    body = api(deployment)
    assert body["events"] == [record.as_dict() for record in expected]
    assert body["next_cursor"] is None
    assert body["limit"] == 50
    assert body["environments"] == ["ci", "dev", "staging", "prod"]
    assert body["filters"] == dict.fromkeys(("user", "environment", "result", "since", "until"))

    openapi = deployment.get_json("/openapi.json")
    operation = openapi["paths"]["/api/audit"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "user",
        "environment",
        "result",
        "since",
        "until",
        "limit",
        "cursor",
    }
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/AuditPageOut"}
    validator = jsonschema.Draft202012Validator({**schema, "components": openapi["components"]})
    validator.validate(body)
    # The schema is typed: a wrong type in an event does not pass.
    broken = {**body, "events": [{**body["events"][0], "bytes_copied": "lots"}]}
    assert not validator.is_valid(broken)
    event = openapi["components"]["schemas"]["AuditEventOut"]
    assert set(event["properties"]) == set(expected[0].as_dict())
    for path, media in (
        ("/api/audit.csv", "text/csv"),
        ("/api/audit.jsonl", "application/x-ndjson"),
    ):
        download = openapi["paths"][path]["get"]
        assert media in download["responses"]["200"]["content"]
        assert {p["name"] for p in download["parameters"]} == {
            "user",
            "environment",
            "result",
            "since",
            "until",
        }
    error = operation["responses"]["400"]["content"]["application/json"]["schema"]
    answer = deployment.get("/api/audit?result=maybe", deployment.tokens["olga"])
    jsonschema.Draft202012Validator({**error, "components": openapi["components"]}).validate(
        answer.json()
    )


def test_api_filters(deployment: WebDeployment) -> None:
    everything = rows(deployment)

    def ids(records: list[AuditRecord]) -> list[str]:
        return [r.request_id for r in records]

    def shown(query: str) -> list[str]:
        return [e["request_id"] for e in api(deployment, query)["events"]]

    alice = [r for r in everything if r.email == "alice@example.com"]
    assert len(alice) == 11
    assert shown("?user=alice@example.com") == ids(alice)
    assert shown(f"?user={alice[0].subject}") == ids(alice)  # the subject works as well
    prod = [r for r in everything if "prod" in (r.source_env, r.destination_env)]
    assert len(prod) == 3  # two promotions and alice's denied attempt
    assert shown("?environment=prod") == ids(prod)
    assert shown("?environment=PROD") == ids(prod)
    staging = [r for r in everything if "staging" in (r.source_env, r.destination_env)]
    assert shown("?environment=staging") == ids(staging)
    denied = [r for r in everything if r.result == "denied"]
    assert [(r.email, r.destination_env) for r in denied] == [("alice@example.com", "prod")]
    assert shown("?result=denied") == ids(denied)
    assert shown("?result=invalid") == ids([r for r in everything if r.result == "invalid"])
    # since is included, until is not; any offset.
    middle = everything[6].time
    since = quote(middle.isoformat())
    assert shown(f"?since={since}") == ids([r for r in everything if r.time >= middle])
    assert shown(f"?until={since}") == ids([r for r in everything if r.time < middle])
    later = (middle + timedelta(hours=2)).isoformat().replace("+00:00", "+02:00")
    assert shown(f"?until={quote(later)}") == ids([r for r in everything if r.time < middle])
    both = api(
        deployment, f"?user=alice@example.com&environment=dev&result=succeeded&since={since}"
    )
    assert [e["request_id"] for e in both["events"]] == ids(
        [
            r
            for r in everything
            if r.email == "alice@example.com"
            and "dev" in (r.source_env, r.destination_env)
            and r.result == "succeeded"
            and r.time >= middle
        ]
    )
    assert both["filters"]["since"] == middle.isoformat().replace("+00:00", "Z")
    # An environment no promotion names is no error for who may read everything: none match.
    assert shown("?environment=nowhere") == []
    assert shown("?environment=qa") == ids([r for r in everything if r.destination_env == "qa"])


def test_api_pages_by_cursor(deployment: WebDeployment) -> None:
    everything = [r.request_id for r in rows(deployment)]
    events, pages = walk(deployment, "limit=4")
    assert [e["request_id"] for e in events] == everything
    assert pages == 4  # 4 + 4 + 4 + 3
    first = api(deployment, "?limit=4")
    assert len(first["events"]) == 4
    assert first["next_cursor"]
    # The same cursor with a filter goes on from the same point, filtered.
    after = api(deployment, f"?limit=4&user=alice@example.com&cursor={quote(first['next_cursor'])}")
    fourth = rows(deployment)[3].time
    assert [e["request_id"] for e in after["events"]] == [
        r.request_id for r in rows(deployment)[4:] if r.email == "alice@example.com"
    ][:4]
    assert all(e["time"] <= fourth.isoformat().replace("+00:00", "Z") for e in after["events"])
    filtered, _ = walk(deployment, "limit=2&environment=dev")
    assert [e["request_id"] for e in filtered] == [
        r.request_id for r in rows(deployment) if "dev" in (r.source_env, r.destination_env)
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("result=maybe", "result must be one of denied, failed, invalid, succeeded, got 'maybe'"),
        ("since=yesterday", "since must be an RFC 3339 time with an offset"),
        ("until=2025-03-01T12:00:00", "until must be an RFC 3339 time with an offset"),
        ("since=2025-02-30T12:00:00Z", "since is not a valid time"),
        (
            "since=2025-03-02T00:00:00Z&until=2025-03-01T00:00:00Z",
            "since (2025-03-02T00:00:00Z) must be before until (2025-03-01T00:00:00Z)",
        ),
        ("limit=0", "limit must be a whole number from 1 to 500, got '0'"),
        ("limit=501", "limit must be a whole number from 1 to 500, got '501'"),
        ("limit=many", "limit: Input should be a valid integer"),
        ("cursor=bogus", "cursor: cursor is not one this server gave out"),
        ("usr=alice", "unknown parameter 'usr': the parameters are user, environment, result"),
        ("result=denied&result=failed", "result given 2 times: give it once"),
        ("user=" + "x" * 300, "user is longer than 255 characters"),
        ("environment=" + "x" * 70, "environment is longer than 63 characters"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(
    deployment: WebDeployment, query: str, message: str
) -> None:
    token = deployment.tokens["olga"]
    answer = deployment.get(f"/api/audit?{query}", token)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] in ("bad_filter", "unknown_filter")
    assert error["message"].startswith(message), error["message"]
    if "cursor" not in query and "limit" not in query:
        download = deployment.get(f"/api/audit.csv?{query}", token)
        assert download.status_code == 400
        assert download.json()["error"]["message"].startswith(message)
    html = deployment.get(f"/audit?{query}", token)
    if query == "until=2025-03-01T12:00:00":
        # The page's form sends datetime-local values, which have no offset: UTC, it says.
        assert html.status_code == 200
        assert 'value="2025-03-01T12:00:00"' in html.text
        return
    assert html.status_code == 400
    assert html.headers["content-type"].startswith("text/html")
    assert "<h1>Bad request</h1>" in html.text


def test_only_readable_environments_are_shown(deployment: WebDeployment) -> None:
    everything = rows(deployment)
    hers = [r for r in everything if visible_to_alice(r)]
    # Hidden from alice: the prod promotions and her own denied attempt at prod, the sign-in
    # check (no environment), the promotion into qa (not an environment she may read).
    hidden = [r for r in everything if r not in hers]
    assert {r.destination_env for r in hidden} == {"prod", None, "qa"}
    body = api(deployment, user="alice")
    assert [e["request_id"] for e in body["events"]] == [r.request_id for r in hers]
    assert body["environments"] == ["ci", "dev", "staging"]
    shown, _ = walk(deployment, "limit=3", user="alice")
    assert [e["request_id"] for e in shown] == [r.request_id for r in hers]
    # Naming prod is refused in the words an unknown environment gets.
    for name in ("prod", "qa", "nowhere"):
        answer = deployment.get(f"/api/audit?environment={name}", deployment.tokens["alice"])
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == (
            f"environment {name!r} is not an environment you may read: ci, dev, staging"
        )
    lines = deployment.get("/api/audit.jsonl", deployment.tokens["alice"]).text.splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [r.request_id for r in hers]
    table = list(
        csv.DictReader(
            io.StringIO(deployment.get("/api/audit.csv", deployment.tokens["alice"]).text)
        )
    )
    assert [row["request_id"] for row in table] == [r.request_id for r in hers]
    # carl's group is not allowed in at all; no token is no answer.
    assert deployment.get("/api/audit", deployment.tokens["carl"]).status_code == 403
    assert deployment.get("/api/audit.csv", deployment.tokens["carl"]).status_code == 403
    anonymous = deployment.get("/api/audit")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert deployment.get("/api/audit.jsonl").status_code == 401
    assert deployment.get("/audit").status_code == 303


def test_downloads_stream_every_matching_row(deployment: WebDeployment) -> None:
    everything = rows(deployment)
    token = deployment.tokens["olga"]
    answer = deployment.get("/api/audit.csv", token)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="imgctl-audit-\d{8}T\d{6}Z\.csv"',
        answer.headers["content-disposition"],
    )
    assert answer.headers["x-imgctl-truncated"] == "false"
    assert answer.headers["x-content-type-options"] == "nosniff"
    table = list(csv.reader(io.StringIO(answer.text)))
    header, body = table[0], table[1:]
    assert header == list(everything[0].as_dict())
    assert [row[0] for row in body] == [r.request_id for r in everything]
    for row, record in zip(body, everything, strict=True):
        expected = record.as_dict()
        cells = dict(zip(header, row, strict=True))
        assert cells["time"] == expected["time"]
        assert cells["groups"] == json.dumps(expected["groups"])
        assert cells["signed"] == {True: "true", False: "false", None: ""}[record.signed]
        assert cells["digest"] == (record.digest or "")
    # The formula is text in a spreadsheet: a leading quote in the CSV, as it was in JSON.
    [formula] = [r for r in everything if r.reference == FORMULA]
    [cells] = [dict(zip(header, row, strict=True)) for row in body if row[0] == formula.request_id]
    assert cells["reference"] == "'" + FORMULA
    assert cells["result"] == "invalid"

    lines = deployment.get("/api/audit.jsonl", token)
    assert lines.headers["content-type"] == "application/x-ndjson; charset=utf-8"
    assert lines.headers["content-disposition"].endswith('.jsonl"')
    assert [json.loads(line) for line in lines.text.splitlines()] == [
        r.as_dict() for r in everything
    ]
    filtered = deployment.get("/api/audit.jsonl?environment=prod&result=succeeded", token)
    assert [json.loads(line)["request_id"] for line in filtered.text.splitlines()] == [
        r.request_id
        for r in everything
        if "prod" in (r.source_env, r.destination_env) and r.result == "succeeded"
    ]
    empty = deployment.get("/api/audit.csv?user=nobody", token)
    assert empty.text == ",".join(header) + "\r\n"
    # Paging is the page's business, not a download's.
    assert deployment.get("/api/audit.csv?limit=3", token).status_code == 400


def test_csv_cells_that_a_spreadsheet_would_run() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    for text in ("", "sha256:ab", "a=b", "'quoted", "1"):
        assert csv_cell(text) == text
    assert (csv_cell(None), csv_cell(True), csv_cell(False), csv_cell(42)) == (
        "",
        "true",
        "false",
        "42",
    )
    assert csv_cell(["-x", "y"]) == '["-x", "y"]'


# --------------------------------------------------------------------------- imgctl audit ls


def audit_ls(deployment: WebDeployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "audit", "ls", "--catalog-url", deployment.url, *args],
        capture_output=True,
        text=True,
        env=deployment.identity.env(**env),
        timeout=120,
    )


def test_cli_lists_with_the_same_filters(deployment: WebDeployment) -> None:
    everything = rows(deployment)
    token = deployment.tokens["olga"]
    result = audit_ls(deployment, "--token", token, "-o", "json")
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    # The API's page with machine output's camelCase keys (request_id is requestId).
    assert page["events"] == [camel_keys(r.as_dict()) for r in everything]
    check_document(page, ints=["limit"], times=["events.*.time"])
    assert page["events"][0]["requestId"] == everything[0].request_id
    assert "nextCursor" in page
    as_yaml = audit_ls(deployment, "--token", token, "-o", "yaml")
    assert as_yaml.returncode == 0, as_yaml.stderr
    assert yaml.safe_load(as_yaml.stdout) == page

    result = audit_ls(
        deployment,
        "-e",
        "prod",
        "--result",
        "succeeded",
        "--user",
        "olga@example.com",
        "-o",
        "json",
        IMGCTL_WEB_TOKEN=token,
    )
    assert result.returncode == 0, result.stderr
    assert [e["requestId"] for e in json.loads(result.stdout)["events"]] == [
        r.request_id for r in everything if r.destination_env == "prod" and r.result == "succeeded"
    ]
    middle = everything[6].time.isoformat()
    result = audit_ls(
        deployment,
        "--since",
        middle,
        "--until",
        everything[0].time.isoformat(),
        "-o",
        "json",
        IMGCTL_WEB_TOKEN=token,
    )
    assert [e["requestId"] for e in json.loads(result.stdout)["events"]] == [
        r.request_id for r in everything if everything[6].time <= r.time < everything[0].time
    ]

    # Text: one line per event, and the cursor of the next page on stderr.
    result = audit_ls(deployment, "--limit", "4", IMGCTL_WEB_TOKEN=token)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    for line, record in zip(lines, everything, strict=False):
        assert line.startswith(record.time.isoformat().replace("+00:00", "Z"))
        assert f"request {record.request_id}" in line
        assert record.result in line.split()
    denied = audit_ls(deployment, "--result", "denied", IMGCTL_WEB_TOKEN=token).stdout
    assert "alice@example.com" in denied
    assert "staging -> prod" in denied
    assert "PERMISSION_DENIED" in denied
    match = re.fullmatch(r"more: add --cursor (\S+)\n", result.stderr)
    assert match, result.stderr
    seen = [r.request_id for r in everything[:4]]
    cursor: str | None = match.group(1)
    while cursor:
        page_ = audit_ls(
            deployment, "--limit", "4", "--cursor", cursor, "-o", "json", IMGCTL_WEB_TOKEN=token
        )
        body = json.loads(page_.stdout)
        seen += [e["requestId"] for e in body["events"]]
        cursor = body["nextCursor"]
    assert seen == [r.request_id for r in everything]


def test_cli_signs_in_like_imgctl_token_and_reads_only_what_the_caller_may(
    deployment: WebDeployment,
) -> None:
    # No --token: the login flags get alice's token (SSH key in the agent, the issuer).
    result = audit_ls(
        deployment,
        "-u",
        "alice",
        "--dex-url",
        deployment.identity.idp.url,
        "--audience",
        AUDIENCE,
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert [e["requestId"] for e in json.loads(result.stdout)["events"]] == [
        r.request_id for r in rows(deployment) if visible_to_alice(r)
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("--result", "maybe", "--token", "@olga"),
            2,
            "result must be one of denied, failed, invalid, succeeded",
        ),
        (
            ("--since", "last week", "--token", "@olga"),
            2,
            "since must be an RFC 3339 time with an offset",
        ),
        (("--cursor", "bogus", "--token", "@olga"), 2, "cursor is not one this server gave out"),
        (
            ("-e", "prod", "--token", "@alice"),
            2,
            "environment 'prod' is not an environment you may read",
        ),
        (("--token", "not-a-token"), 3, "token rejected"),
        ((), 3, "no token was sent"),
        (("--token", "@carl"), 4, "none of the groups allowed"),
        (("--limit", "0"), 2, "0 is not in the range 1<=x<=500"),
    ],
)
def test_cli_errors_are_one_line_and_an_exit_code(
    deployment: WebDeployment, args: tuple[str, ...], code: int, message: str
) -> None:
    args = tuple(deployment.tokens[arg[1:]] if arg.startswith("@") else arg for arg in args)
    result = audit_ls(deployment, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_says_when_nothing_answers(deployment: WebDeployment) -> None:
    from ..support.registry import free_port

    result = subprocess.run(
        [IMGCTL, "audit", "ls", "--catalog-url", f"http://127.0.0.1:{free_port()}", "--token", "t"],
        capture_output=True,
        text=True,
        env=deployment.identity.env(),
        timeout=60,
    )
    assert result.returncode == 6
    assert "cannot reach http://127.0.0.1:" in result.stderr
    assert "--catalog-url URL (IMGCTL_CATALOG_URL)" in result.stderr


# --------------------------------------------------------------------------- the page


def login(page: Any, deployment: WebDeployment, user: str, next_path: str) -> None:
    """Sign the browser in through /login, as a person would."""
    page.goto(f"{deployment.url}/login?next={quote(next_path, safe='')}")
    page.get_by_label("Your token").fill(deployment.tokens[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_path}")


def page_rows(page: Any) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll("table.audit tbody tr")].map((row) => {
              const time = row.querySelector("time");
              return {
                request: row.dataset.requestId,
                datetime: time.getAttribute("datetime"),
                title: time.getAttribute("title"),
                shown: time.textContent.trim(),
                result: row.querySelector(".badge").textContent.trim(),
              };
            })"""
        )
    )


def test_page_filters_pages_and_downloads(deployment: WebDeployment, page: Any) -> None:
    everything = rows(deployment)
    login(page, deployment, "olga", "/audit")
    assert page.locator("h1").inner_text() == "Audit trail"
    shown = page_rows(page)
    assert [row["request"] for row in shown] == [r.request_id for r in everything]
    for row, record in zip(shown, everything, strict=True):
        exact = record.time.isoformat().replace("+00:00", "Z")
        assert row["datetime"] == row["title"] == exact
        assert row["shown"] in ("just now",) or row["shown"].endswith("ago")
        assert row["result"] == record.result
    # Accessible structure: a caption, column and row headers, labelled filters.
    assert page.locator("table.audit caption").count() == 1
    assert page.get_by_role("columnheader").count() == 7
    assert page.get_by_role("rowheader").count() == len(everything)
    for label in ("User", "Environment", "Result", "From (UTC)", "Before (UTC)"):
        assert page.get_by_label(label, exact=True).count() == 1

    # Filter: result denied, through the form.
    page.get_by_label("Result").select_option("denied")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"/audit\?.*result=denied"))
    assert [row["request"] for row in page_rows(page)] == [
        r.request_id for r in everything if r.result == "denied"
    ]
    assert page.get_by_label("Result").input_value() == "denied"
    # Time range through the datetime-local fields (UTC): from the 7th newest row's second.
    middle = everything[6].time.replace(microsecond=0)
    page.goto(f"{deployment.url}/audit")
    page.get_by_label("From (UTC)").fill(middle.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"/audit\?.*since="))
    assert [row["request"] for row in page_rows(page)] == [
        r.request_id for r in everything if r.time >= middle
    ]

    # Paging: three a page, the next page's link carries the cursor.
    page.goto(f"{deployment.url}/audit?limit=3&environment=dev")
    in_dev = [r.request_id for r in everything if "dev" in (r.source_env, r.destination_env)]
    seen = [row["request"] for row in page_rows(page)]
    assert len(seen) == 3
    while page.get_by_role("link", name="Older events →").count():
        page.get_by_role("link", name="Older events →").click()
        page.wait_for_load_state()
        query = parse_qs(urlsplit(page.url).query)
        assert query["environment"] == ["dev"]
        assert query["limit"] == ["3"]
        assert query["cursor"]
        seen += [row["request"] for row in page_rows(page)]
    assert seen == in_dev
    page.get_by_role("link", name="← Newest").click()
    page.wait_for_load_state()
    assert [row["request"] for row in page_rows(page)] == in_dev[:3]

    # The download links carry the filters, and the browser downloads the file.
    with page.expect_download() as caught:
        page.get_by_role("link", name="CSV").click()
    download = caught.value
    assert re.fullmatch(r"imgctl-audit-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    assert "environment=dev" in download.url
    with open(download.path(), encoding="utf-8") as file:
        table = list(csv.DictReader(file))
    assert [row["request_id"] for row in table] == in_dev
    with page.expect_download() as caught:
        page.get_by_role("link", name="JSON lines").click()
    with open(caught.value.path(), encoding="utf-8") as file:
        assert [json.loads(line)["request_id"] for line in file] == in_dev

    # The picture for docs/web.md: the scenario's own rows (before this module's extra ones).
    [check] = [r for r in everything if r.action == "auth_check"]
    page.goto(f"{deployment.url}/audit?limit=8&until={quote(check.time.isoformat())}")
    assert page_rows(page)[0]["request"] == everything[everything.index(check) + 1].request_id
    assert csp_violations(page) == []
    assert page.console_errors == []
    screenshot(page, "audit")


def test_page_shows_alice_only_her_environments(deployment: WebDeployment, page: Any) -> None:
    login(page, deployment, "alice", "/audit")
    assert [row["request"] for row in page_rows(page)] == [
        r.request_id for r in rows(deployment) if visible_to_alice(r)
    ]
    options = page.get_by_label("Environment").locator("option").all_inner_texts()
    assert options == ["Any", "ci", "dev", "staging"]
    assert "prod" not in page.locator("table.audit").inner_text()
    page.goto(f"{deployment.url}/audit?environment=prod")
    assert page.locator("h1").inner_text() == "Bad request"
    assert csp_violations(page) == []
