"""One image's story (/story/REPO, /api/images/REPO/history) and the watches (/watches,
/api/watches) in Chromium, against a real imgctl server filled by real promotions.

The server is tests/support/webdeploy.py's (docker-registry with ci, dev, staging and prod, the
built-in issuer, a signing key, a policy keeping prod for ops@example.com), started with a
watches file: ``web`` watches ci/shop/web (three semver tags), ``cli`` watches ci/tools/cli and
auto-promotes it to dev, ``release`` (suspended) would auto-promote staging to prod. On top of
the deployment's own promotions this module causes a denied attempt (carl, whose group is not
allowed) and a failed one (a tag that is not there). Pages are checked against the audit rows
read from the server's database and against ``imgctl scan status -o json``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from imgctl.store import AuditRecord, AuditStore

from ..conftest import IMGCTL
from ..support import browser as browsers
from ..support.browser import csp_violations, screenshot
from ..support.deployment import (
    AUDIENCE,
    ENGINEERING,
    OPS,
    grpc_call,
    promote_request,
    stop_process,
    wait_http,
)
from ..support.registry import Registry, free_port
from ..support.webdeploy import WebDeployment, run_async, start_web_deployment

browser, page = browsers.browser, browsers.page  # this module's Chromium (module-scoped)

REPOSITORY = "shop/web"
HISTORY = "/api/images/{repository}/history"


@dataclass
class Story:
    """The deployment, and the request ids of the attempts this module caused."""

    d: WebDeployment
    denied: str
    failed: str


def watches_file(path: Path, host: str) -> Path:
    path.write_text(
        f"""
serviceIdentity:
  subject: imgctl-scanner
  email: scanner@example.com
  groups: ["{ENGINEERING}", "{OPS}"]
watches:
  - name: web
    image: {host}/ci/shop/web
    interval: 1h
    policy: {{semver: {{range: ">=1.0.0"}}}}
  - name: cli
    image: {host}/ci/tools/cli
    interval: 1h
    policy: {{semver: {{range: ">=0.1.0"}}}}
    autoPromote: {{from: ci, to: dev}}
  - name: release
    image: {host}/staging/shop/web
    interval: 1h
    suspend: true
    policy: {{semver: {{range: ">=1.0.0"}}}}
    autoPromote: {{from: staging, to: prod}}
"""
    )
    return path


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("web-story")
    watches = watches_file(root / "watches.yaml", registry.host)
    with contextlib.ExitStack() as cleanup:
        d = start_web_deployment(root, registry, cleanup, "--watches", str(watches))

        def attempt(user: str, ref: str, source: str, destination: str) -> tuple[str, str]:
            status, _, request_id, _ = run_async(
                lambda: grpc_call(
                    d.grpc,
                    "Promote",
                    promote_request(ref, destination, source),
                    token=d.tokens[user],
                )
            )
            return status.name, request_id

        status, denied = attempt("carl", f"{REPOSITORY}:1.0.0", "ci", "dev")
        assert status == "PERMISSION_DENIED"
        status, failed = attempt("olga", f"{REPOSITORY}:0.0.1-missing", "ci", "dev")
        assert status == "NOT_FOUND"
        yield Story(d, denied, failed)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def tab(page: Any) -> Any:
    """The browser fixtures' page (a fresh context): tests name it tab."""
    return page


def audit_rows(d: WebDeployment) -> list[AuditRecord]:
    """Every audit row of the server's database, newest first (read by the test itself)."""

    async def read() -> list[AuditRecord]:
        async with await AuditStore.open(d.database) as store:
            return await store.recent(10_000)

    return run_async(read)


def repository_of(reference: str) -> str:
    """REPO of REPO[:TAG][@DIGEST], taken apart here independently of the server's query."""
    name = reference.partition("@")[0]
    head, slash, last = name.rpartition("/")
    return head + slash + last.partition(":")[0]


def story_rows(d: WebDeployment, repository: str, readable: set[str] | None = None) -> list[Any]:
    rows = [
        r
        for r in audit_rows(d)
        if r.action == "promote"
        and r.kind in (None, "image")
        and repository_of(r.reference or "") == repository
    ]
    if readable is not None:
        rows = [
            r
            for r in rows
            if all(e is None or e in readable for e in (r.source_env, r.destination_env))
        ]
    return rows


def tag_of(reference: str) -> str:
    last = reference.partition("@")[0].rsplit("/", 1)[-1]
    return last.partition(":")[2]


def login(tab: Any, d: WebDeployment, user: str, next_path: str) -> None:
    tab.goto(f"{d.url}/login?next={urllib.request.quote(next_path, safe='')}")
    tab.get_by_label("Your token").fill(d.tokens[user])
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(f"{d.url}{next_path}")


def get(d: WebDeployment, path: str, user: str | None = "olga") -> tuple[int, Any]:
    request = urllib.request.Request(d.url + path)
    if user is not None:
        request.add_header("Authorization", f"Bearer {d.tokens[user]}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def fetch_as(d: WebDeployment, path: str, accept: str, user: str | None) -> tuple[int, str, str]:
    """(status, Content-Type, body) of GET ``path`` asking for ``accept``."""
    request = urllib.request.Request(d.url + path, headers={"Accept": accept})
    if user is not None:
        request.add_header("Authorization", f"Bearer {d.tokens[user]}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def _without_relative_times(page: str) -> str:
    """``page`` with the text of every ``<time>`` element (its datetime attribute stays) cut."""
    cut, count = re.subn(r"(<time [^>]*>)[^<]*(</time>)", r"\1\2", page)
    assert count > 0, "the story page shows no <time> element"
    return cut


def check_images_path(d: WebDeployment, user: str | None) -> None:
    """/images/REPO: the story page for a browser, the catalog API's answer for anyone else."""
    status, kind, body = fetch_as(d, f"/images/{REPOSITORY}", "text/html,*/*;q=0.8", user)
    assert status == 200, body[:300]
    assert kind.startswith("text/html")
    assert f"<h1>The story of <code>{REPOSITORY}</code></h1>" in body
    _, _, story = fetch_as(d, f"/story/{REPOSITORY}", "text/html", user)
    # Two fetches seconds apart may say "12 s ago" and "13 s ago": compare all but that text.
    assert _without_relative_times(body) == _without_relative_times(story)
    for accept in ("application/json", "*/*"):
        status, kind, body = fetch_as(d, f"/images/{REPOSITORY}", accept, user)
        assert kind.startswith("application/json"), (accept, status, body[:300])
        assert "<html" not in body


def response_schema(d: WebDeployment, path: str, status: int) -> dict[str, Any]:
    """The OpenAPI document's schema of ``path``'s GET answer ``status``, resolvable."""
    document = get(d, "/openapi.json", None)[1]
    answer = document["paths"][path]["get"]["responses"][str(status)]
    return answer["content"]["application/json"]["schema"] | {"components": document["components"]}


def timeline(tab: Any) -> list[dict[str, str]]:
    """The timeline table's rows as text, read from the page."""
    return tab.eval_on_selector_all(
        "table.timeline tbody tr",
        """rows => rows.map(row => {
            const cells = row.querySelectorAll('td');
            return {
                request: row.dataset.requestId,
                time: cells[0].querySelector('time').getAttribute('datetime'),
                result: cells[1].querySelector('.result').textContent.trim(),
                error: (cells[1].querySelector('.event-error') || {textContent: ''})
                    .textContent.trim(),
                who: cells[2].textContent.trim().split('\\n')[0].trim(),
                route: cells[3].textContent.trim(),
                tag: cells[4].textContent.trim(),
                digest: (cells[5].querySelector('code') || {title: ''}).title,
                signing: cells[6].textContent.replace(/\\s+/g, ' ').trim(),
                shown: cells[7].textContent.trim(),
            };
        })""",
    )


def signing_text(record: AuditRecord) -> str:
    words = []
    if record.signed is not None:
        words.append("signed" if record.signed else "not signed")
    if record.attested is not None:
        words.append("attested" if record.attested else "not attested")
    return " ".join(words) or "—"


def rfc3339(record: AuditRecord) -> str:
    return record.time.isoformat().replace("+00:00", "Z")


def check_timeline(tab: Any, expected: list[AuditRecord]) -> None:
    shown = timeline(tab)
    assert [row["request"] for row in shown] == [r.request_id for r in expected]
    for row, record in zip(shown, expected, strict=True):
        assert row["shown"] == record.request_id
        assert row["time"] == rfc3339(record)
        assert row["result"] == record.result
        assert row["who"] == (record.email or record.subject or "unknown")
        assert row["route"] == f"{record.source_env} → {record.destination_env}"
        assert row["tag"] == (tag_of(record.reference or "") or "—")
        assert row["digest"] == (record.digest or "")
        assert row["signing"] == signing_text(record)
        if record.error:
            assert row["error"] == f"{record.error_code}: {record.error}"
        else:
            assert row["error"] == ""


# --------------------------------------------------------------------------- the story


def test_timeline_is_the_audit_trail_of_the_repository(story: Story, tab: Any) -> None:
    d = story.d
    login(tab, d, "olga", f"/story/{REPOSITORY}")
    expected = story_rows(d, REPOSITORY)
    results = {r.request_id: r.result for r in expected}
    # What the timeline must show besides the promotions: both attempts this module caused and
    # the deployment's own (alice into prod: denied; a tag not in ci: failed).
    assert results[story.denied] == "denied"
    assert results[story.failed] == "failed"
    assert sorted(set(results.values())) == ["denied", "failed", "succeeded"]
    assert len(expected) >= 10
    check_timeline(tab, expected)
    assert any(r.signed and r.attested for r in expected)  # the server signs: badges shown
    assert tab.get_by_role("heading", level=1).inner_text() == f"The story of {REPOSITORY}"
    assert csp_violations(tab) == []
    assert tab.console_errors == []
    screenshot(tab, "story")


def test_each_digest_gets_the_command_to_its_next_environment(story: Story, tab: Any) -> None:
    d = story.d
    login(tab, d, "olga", f"/story/{REPOSITORY}")
    steps = tab.eval_on_selector_all(
        "table.digests tbody tr",
        """rows => rows.map(row => ({
            digest: row.dataset.digest,
            command: (row.querySelector('input.command-text') || {value: null}).value,
            button: (row.querySelector('button[data-copy]') || {dataset: {copy: null}})
                .dataset.copy,
            next: row.querySelector('.next-step').textContent.replace(/\\s+/g, ' ').trim(),
        }))""",
    )
    by_digest = {step["digest"]: step for step in steps}
    # Where each scenario digest went (the deployment promoted along ci -> dev -> staging -> prod)
    reached: dict[str, list[str]] = {}
    for record in story_rows(d, REPOSITORY):
        if record.result == "succeeded" and record.digest:
            reached.setdefault(record.digest, []).append(record.destination_env or "")
    pipeline = ["ci", "dev", "staging", "prod"]
    assert set(by_digest) == set(reached)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        digest = d.digests[f"{REPOSITORY}:{version}"]
        last = max(reached[digest], key=pipeline.index)
        step = by_digest[digest]
        if last == "prod":
            assert step["command"] is None
            assert step["next"] == "in the last environment"
            continue
        following = pipeline[pipeline.index(last) + 1]
        command = (
            f"imgctl promote {REPOSITORY}:{version}@{digest} --source {last} -d {following} "
            f"-s {d.grpc}"
        )
        assert step["command"] == command
        assert step["button"] == command


def test_copy_button_by_keyboard_puts_the_exact_command_in_the_clipboard(
    story: Story, tab: Any
) -> None:
    d = story.d
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=d.url)
    login(tab, d, "olga", f"/story/{REPOSITORY}")
    digest = d.digests[f"{REPOSITORY}:1.1.0"]
    row = tab.locator(f'table.digests tr[data-digest="{digest}"]')
    command = row.locator("input.command-text").input_value()
    assert command.startswith(
        f"imgctl promote {REPOSITORY}:1.1.0@{digest} --source staging -d prod"
    )

    # Tab from the start of the page reaches every copy button, each after its command field.
    tab.locator("body").focus()
    reached: list[str] = []
    for _ in range(80):
        tab.keyboard.press("Tab")
        reached.append(
            tab.evaluate(
                "() => { const e = document.activeElement;"
                " return e.tagName + ':' + (e.dataset.copy || e.id || e.textContent.trim()); }"
            )
        )
    assert reached[0] == "A:Skip to content"
    buttons = tab.eval_on_selector_all("button[data-copy]", "bs => bs.map(b => b.dataset.copy)")
    assert buttons
    for text in buttons:
        assert f"BUTTON:{text}" in reached
        assert reached.index(f"BUTTON:{text}") > 0

    # The button of the 1.1.0 row: focused from its field with Tab, pressed with Enter.
    row.locator("input.command-text").focus()
    tab.keyboard.press("Tab")
    button = row.locator("button[data-copy]")
    assert button.evaluate("b => b === document.activeElement")
    assert button.evaluate("b => getComputedStyle(b).outlineStyle") != "none"
    tab.keyboard.press("Enter")
    tab.wait_for_function("() => document.activeElement.textContent === 'Copied'")
    assert tab.evaluate("() => navigator.clipboard.readText()") == command

    # The command is exact: run as it stands (as olga, who may promote to prod), it promotes
    # that digest to prod, and the page then says it is in the last environment.
    env = d.identity.env(
        DEX_URL=d.identity.idp.url, IMGCTL_AUDIENCE=AUDIENCE, KUBECTL_SSH_USER="olga"
    )
    words = shlex.split(command)
    assert words[0] == "imgctl"
    result = subprocess.run(
        [IMGCTL, *words[1:]], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    newest = story_rows(d, REPOSITORY)[0]
    assert (newest.result, newest.digest, newest.destination_env) == ("succeeded", digest, "prod")
    tab.reload()
    assert row.locator(".next-step").inner_text().strip() == "in the last environment"


def test_images_path_is_the_story_for_a_browser_and_the_catalog_api_for_clients(
    story: Story,
) -> None:
    check_images_path(story.d, "olga")
    # The release matrix names each repository with a link to its story.
    _, _, releases = fetch_as(story.d, "/", "text/html", "olga")
    assert f'<a href="/images/{REPOSITORY}" title="The story of {REPOSITORY}">' in releases


def test_a_reader_sees_only_environments_they_may_read(story: Story, tab: Any) -> None:
    d = story.d
    # alice may promote into ci, dev and staging (prod needs ops): prod is not hers to read.
    login(tab, d, "alice", f"/story/{REPOSITORY}")
    readable = {"ci", "dev", "staging"}
    expected = story_rows(d, REPOSITORY, readable)
    assert len(expected) < len(story_rows(d, REPOSITORY))
    check_timeline(tab, expected)
    assert "prod" not in tab.locator("main").inner_text()
    status, body = get(d, f"/api/images/{REPOSITORY}/history", "alice")
    assert status == 200
    assert body["environments"] == ["ci", "dev", "staging"]
    assert [e["request_id"] for e in body["events"]] == [r.request_id for r in expected]
    for step in body["digests"]:  # nothing to promote into prod, which alice may not see
        assert "prod" not in step["environments"]
        assert step["next_environment"] in (None, "dev", "staging")
    # carl's group is not allowed in at all: nothing.
    assert get(d, f"/api/images/{REPOSITORY}/history", "carl")[0] == 403


def test_history_api(story: Story) -> None:
    d = story.d
    status, body = get(d, f"/api/images/{REPOSITORY}/history")
    assert status == 200
    jsonschema.validate(body, response_schema(d, HISTORY, 200))
    expected = story_rows(d, REPOSITORY)
    assert body["repository"] == REPOSITORY
    assert body["environments"] == ["ci", "dev", "staging", "prod"]
    assert body["next_cursor"] is None
    assert len(body["events"]) == len(expected)
    for event, record in zip(body["events"], expected, strict=True):
        assert event["request_id"] == record.request_id
        assert event["time"] == rfc3339(record)
        assert event["result"] == record.result
        assert event["user"] == (record.email or record.subject)
        assert event["source"] == record.source_env
        assert event["destination"] == record.destination_env
        assert event["reference"] == record.reference
        tag = tag_of(record.reference or "")
        assert event["tags"] == ([tag] if tag else [])
        assert event["digest"] == record.digest
        assert (event["signed"], event["attested"]) == (record.signed, record.attested)
        assert (event["error_code"], event["error"]) == (record.error_code, record.error)

    # Paged by cursor: two at a time, every event once, in the same order.
    seen: list[str] = []
    cursor = ""
    while True:
        status, page_body = get(d, f"/api/images/{REPOSITORY}/history?limit=2{cursor}")
        assert status == 200
        jsonschema.validate(page_body, response_schema(d, HISTORY, 200))
        assert len(page_body["events"]) <= 2
        seen += [e["request_id"] for e in page_body["events"]]
        if page_body["next_cursor"] is None:
            break
        cursor = f"&cursor={page_body['next_cursor']}"
    assert seen == [r.request_id for r in expected]

    # The watch's auto-promotion is in tools/cli's story, named as such.
    status, cli = get(d, "/api/images/tools/cli/history")
    assert status == 200
    assert "cli" in {e["auto_promotion"] for e in cli["events"]}
    assert {e["user"] for e in cli["events"] if e["auto_promotion"]} == {"scanner@example.com"}

    # Errors: unknown, not a repository name, bad cursor, bad limit, no token.
    for path, code, word in (
        ("/api/images/shop/nothing/history", 404, "not_found"),
        ("/api/images/Shop/Web/history", 400, "bad_repository"),
        (f"/api/images/{REPOSITORY}/history?cursor=bm90LWEtY3Vyc29y", 400, "bad_cursor"),
        (f"/api/images/{REPOSITORY}/history?limit=0", 400, "bad_filter"),
        (f"/api/images/{REPOSITORY}/history?limit=many", 400, "bad_filter"),
    ):
        status, body = get(d, path)
        assert (status, body["error"]["code"]) == (code, word), path
        jsonschema.validate(body, response_schema(d, HISTORY, code))
    assert get(d, f"/api/images/{REPOSITORY}/history", None)[0] == 401


def test_unknown_repository_is_a_404_page(story: Story, tab: Any) -> None:
    d = story.d
    login(tab, d, "olga", "/")
    answer = tab.goto(f"{d.url}/story/shop/nothing")
    assert answer is not None
    assert answer.status == 404
    assert tab.get_by_role("heading", level=1).inner_text() == "Unknown repository"
    assert "shop/nothing" in tab.locator(".error-message").inner_text()


# --------------------------------------------------------------------------- the watches


def scan_status_json(d: WebDeployment) -> dict[str, Any]:
    result = subprocess.run(
        [IMGCTL, "scan", "status", "--catalog-url", d.url, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=d.env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_scanned(d: WebDeployment) -> dict[str, Any]:
    """The watches once web and cli were scanned and cli auto-promoted (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        status, body = get(d, "/api/watches")
        assert status == 200, body
        watches = {w["name"]: w for w in body["watches"]}
        if (
            watches["web"]["lastScanResult"]
            and watches["cli"]["lastScanResult"]
            and watches["cli"]["autoPromote"]["lastPromotedTag"]
        ):
            return body
        assert time.monotonic() < deadline, f"not scanned: {body}\n{d.log.read_text()}"
        time.sleep(0.2)


def test_watches_page_is_scan_status(story: Story, tab: Any) -> None:
    d = story.d
    wait_scanned(d)
    cli_json = scan_status_json(d)
    status, api = get(d, "/api/watches")
    assert status == 200
    jsonschema.validate(api, response_schema(d, "/api/watches", 200))
    assert api == cli_json  # olga reads every environment: the same document
    watches = {w["name"]: w for w in api["watches"]}
    assert list(watches) == ["web", "cli", "release"]
    assert watches["web"]["policy"]["latestTag"] == "1.2.0"
    assert watches["web"]["policy"]["latestDigest"] == d.digests[f"{REPOSITORY}:1.2.0"]
    assert watches["cli"]["autoPromote"]["lastPromotedTag"] == "0.1.0"
    assert watches["cli"]["autoPromote"]["lastPromotedDigest"] == d.digests["tools/cli:0.1.0"]

    login(tab, d, "olga", "/watches")
    rows = tab.eval_on_selector_all(
        "table.watches tbody tr",
        """rows => rows.map(row => ({
            name: row.dataset.watch,
            ready: row.querySelector('.ready').textContent.trim(),
            reason: (row.querySelector('.reason') || {textContent: ''}).textContent.trim(),
            message: (row.querySelector('.message') || {textContent: ''}).textContent.trim(),
            scanned: (row.querySelector('.last-scan time') || {dateTime: ''}).dateTime,
            tags: (row.querySelector('.last-scan .hint') || {textContent: ''}).textContent.trim(),
            latest: (row.querySelector('.latest-tag') || {textContent: ''}).textContent.trim(),
            promoted: (row.querySelector('.promoted-tag') || {textContent: ''}).textContent.trim(),
            story: (row.querySelector('a.story-link') || {href: ''}).href,
        }))""",
    )
    assert [row["name"] for row in rows] == list(watches)
    for row in rows:
        status_json = watches[row["name"]]
        ready = status_json["conditions"][0]
        assert row["ready"] == ("Suspended" if status_json["suspend"] else ready["status"])
        assert row["reason"] == ready["reason"]
        assert row["message"] == ready["message"]
        scan = status_json["lastScanResult"]
        assert row["scanned"] == (scan["scanTime"] if scan else "")
        if scan:
            count = scan["tagCount"]
            assert row["tags"] == (f"{count} tags" if count != 1 else "1 tag")
        assert row["latest"] == (status_json["policy"]["latestTag"] or "")
    by_name = {row["name"]: row for row in rows}
    assert by_name["web"]["ready"] == "True"
    assert by_name["web"]["latest"] == "1.2.0"
    assert by_name["cli"]["promoted"] == "0.1.0"
    assert "promoted 0.1.0 to dev" in by_name["cli"]["message"]
    assert by_name["cli"]["story"] == f"{d.url}/story/tools/cli"
    assert by_name["web"]["story"] == f"{d.url}/story/{REPOSITORY}"
    assert by_name["release"]["story"] == f"{d.url}/story/{REPOSITORY}"
    assert by_name["release"]["ready"] == "Suspended"
    assert csp_violations(tab) == []
    assert tab.console_errors == []
    screenshot(tab, "watches")

    # From a watch to its repository's story, by keyboard.
    tab.locator('tr[data-watch="cli"] a.story-link').focus()
    tab.keyboard.press("Enter")
    tab.wait_for_url(f"{d.url}/story/tools/cli")
    assert "auto-promotion of watch cli" in tab.locator("table.timeline").inner_text()


def test_watches_a_reader_may_not_read_are_left_out(story: Story, tab: Any) -> None:
    d = story.d
    wait_scanned(d)
    # release auto-promotes into prod, which alice may not read.
    status, body = get(d, "/api/watches", "alice")
    assert status == 200
    assert [w["name"] for w in body["watches"]] == ["web", "cli"]
    login(tab, d, "alice", "/watches")
    names = tab.eval_on_selector_all("table.watches tbody tr", "rs => rs.map(r => r.dataset.watch)")
    assert names == ["web", "cli"]
    assert "1 more in environments you may not read" in tab.locator("#watches-summary").inner_text()
    assert "prod" not in tab.locator("main").inner_text()
    assert get(d, "/api/watches", "carl")[0] == 403
    assert get(d, "/api/watches", None)[0] == 401


# --------------------------------------------------------------------------- other processes


def test_catalog_serve_shows_what_the_server_saved(story: Story) -> None:
    """imgctl catalog serve on the server's database: the saved watch states and the story."""
    d = story.d
    server = {w["name"]: w for w in wait_scanned(d)["watches"]}
    address = f"127.0.0.1:{free_port()}"
    log = d.root / "catalog-serve.log"
    process = subprocess.Popen(
        [
            IMGCTL,
            "catalog",
            "serve",
            "--http-address",
            address,
            "--database-url",
            d.database,
            "--public-pages",
        ],
        env=d.env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://{address}/health/ping", process, log)
        catalog = WebDeployment(**{**d.__dict__, "http_address": address})
        status, body = get(catalog, "/api/watches", None)
        assert status == 200, body
        jsonschema.validate(body, response_schema(catalog, "/api/watches", 200))
        assert "watchesFile" not in body  # no watches file here: the states the server saved
        saved = {w["name"]: w for w in body["watches"]}
        assert {"web", "cli"} <= set(saved) <= set(server)
        for name in ("web", "cli"):
            mine, theirs = saved[name], server[name]
            assert mine["canonicalImageName"] == theirs["canonicalImageName"]
            assert mine["conditions"] == theirs["conditions"]
            assert mine["lastScanResult"] == theirs["lastScanResult"]
            for key in ("latestTag", "latestDigest", "latestImage"):
                assert mine["policy"][key] == theirs["policy"][key]
        for key in ("lastPromotedTag", "lastPromotedDigest"):
            assert saved["cli"]["autoPromote"][key] == server["cli"]["autoPromote"][key]

        status, history = get(catalog, f"/api/images/{REPOSITORY}/history", None)
        assert status == 200, history
        check_images_path(catalog, None)
        _, theirs = get(d, f"/api/images/{REPOSITORY}/history")
        assert history["events"] == theirs["events"]
        assert history["environments"] == ["ci", "dev", "staging", "prod"]
        # No gRPC address is known here: the commands name no server (-s).
        commands = [s["command"] for s in history["digests"] if s["command"]]
        assert commands
        assert commands == [
            c.rsplit(" -s ", 1)[0]
            for c in (s["command"] for s in theirs["digests"] if s["command"])
        ]
    finally:
        stop_process(process)


def test_a_server_without_watches_says_how_to_add_them() -> None:
    """A server without --watches: /api/watches is a 404 saying what to do, the page says it."""
    import httpx
    from fastapi import FastAPI

    from imgctl.web import CatalogTokenAccess, WebContext, create_web_router

    app = FastAPI()
    app.include_router(
        create_web_router(WebContext(scanner=lambda: None), CatalogTokenAccess(None, public=True))
    )

    async def ask(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pages") as client:
            return await client.get(path)

    # In a thread: the browser fixtures of this module hold this thread's event loop.
    answer = run_async(lambda: ask("/api/watches"))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "no_watches"
    assert "--watches FILE" in answer.json()["error"]["message"]
    page_answer = run_async(lambda: ask("/watches"))
    assert page_answer.status_code == 200
    assert "This server watches no repositories" in page_answer.text
