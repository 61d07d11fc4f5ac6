"""Who may read the web pages, and how they are protected: login, rights, headers, CSP.

Against a real imgctl server (tests/support/webdeploy.py: OIDC tokens from the built-in issuer,
a policy that keeps prod for ops@example.com, OIDC_ALLOWED_GROUPS=engineering), the same
database served with --public-pages, and imgctl catalog serve with and without a tokens file.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import IMGCTL
from ..support import browser as browsers
from ..support import webdeploy
from ..support.browser import csp_violations, screenshot
from ..support.deployment import start_server, stop_process, wait_http
from ..support.registry import free_port
from ..support.webdeploy import WebDeployment

browser, page, web_deployment = browsers.browser, browsers.page, webdeploy.web_deployment

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
COOKIE = "__Host-imgctl-session"


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def sign_in(page: Any, deployment: WebDeployment, token: str, next_path: str = "/") -> None:
    page.goto(f"{deployment.url}/login?next={next_path}")
    page.get_by_label(re.compile("token", re.IGNORECASE)).fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def check_headers(answer: httpx.Response, *, static: bool = False) -> None:
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    if static:
        assert answer.headers["cache-control"].startswith("public")
    else:
        assert answer.headers["cache-control"] == "no-store"


def test_login_sets_the_cookie_as_it_should(web_deployment: WebDeployment, page: Any) -> None:
    deployment = web_deployment
    page.goto(deployment.url + "/")
    # Not signed in: the page sends the browser to the login form, remembering where it was.
    assert page.url == f"{deployment.url}/login?next=%2F"
    assert page.locator("h1").inner_text() == "Sign in"
    screenshot(page, "login")
    token = deployment.tokens["alice"]
    sign_in(page, deployment, token)
    assert page.url == f"{deployment.url}/"
    assert page.get_by_text("Signed in as alice@example.com").is_visible()
    [cookie] = page.context.cookies()
    assert cookie["name"] == COOKIE
    assert cookie["value"] == token
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert (cookie["path"], cookie["domain"]) == ("/", "127.0.0.1")
    # It lives as long as the token, no longer.
    assert abs(cookie["expires"] - claims(token)["exp"]) <= 5
    # Script cannot read it.
    assert page.evaluate("document.cookie") == ""
    assert csp_violations(page) == []

    # The raw answer, as a client sees it.
    answer = httpx.post(
        deployment.url + "/login",
        data={"token": token, "next": "/?name=web"},
        headers={"Origin": deployment.url, "Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/?name=web"
    set_cookie = answer.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}={token};")
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert attributes == {"httponly", "max-age", "path", "samesite", "secure"}
    assert "SameSite=strict" in set_cookie
    max_age = int(re.search(r"Max-Age=(\d+)", set_cookie).group(1))  # type: ignore[union-attr]
    assert 0 < claims(token)["exp"] - time.time() - max_age <= 5
    check_headers(answer)

    # Sign out: the cookie goes, and the pages ask for a token again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert page.context.cookies() == []
    page.goto(deployment.url + "/")
    assert "/login" in page.url


def test_the_login_form_is_taken_only_from_this_server(web_deployment: WebDeployment) -> None:
    deployment = web_deployment
    form = {"token": deployment.tokens["alice"], "next": "/"}
    for headers in (
        {},  # no Origin, no Sec-Fetch-Site: not a browser form of ours
        {"Origin": "https://evil.example"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Origin": deployment.url, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        answer = httpx.post(deployment.url + "/login", data=form, headers=headers)
        assert answer.status_code == 403, headers
        assert "set-cookie" not in answer.headers
        check_headers(answer)
        out = httpx.post(
            deployment.url + "/logout", headers=headers, cookies={COOKIE: form["token"]}
        )
        assert out.status_code == 403
    # GET cannot sign in or out.
    assert httpx.get(deployment.url + "/logout").status_code == 405
    # Where to go afterwards is a path of this server, never another site.
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = httpx.post(
            deployment.url + "/login",
            data={**form, "next": target},
            headers={"Origin": deployment.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert answer.headers["location"] == "/"


def test_without_rights_nothing_is_shown(web_deployment: WebDeployment, page: Any) -> None:
    deployment = web_deployment
    # No token: 401 for the API, the login form for a page; nothing of the catalog in either.
    for path in ("/api/releases", "/api/releases?environment=prod"):
        answer = deployment.get(path)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="imgctl pages"'
        assert answer.json()["error"]["code"] == "unauthorized"
        check_headers(answer)
    answer = deployment.get("/?name=web")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2F%3Fname%3Dweb"
    check_headers(answer)
    # A token that does not verify (tampered signature), or an expired one.
    token = deployment.tokens["alice"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answer = deployment.get("/api/releases", tampered)
    assert answer.status_code == 401
    assert "token rejected" in answer.json()["error"]["message"]
    # carl's token is valid but his group is not allowed in: 403, nothing shown.
    carl = deployment.tokens["carl"]
    answer = deployment.get("/api/releases", carl)
    assert answer.status_code == 403
    assert "shop" not in answer.text
    assert deployment.get("/", carl).status_code == 403
    sign_in(page, deployment, carl)
    assert page.locator("#login-error").is_visible()
    assert "group" in page.locator("#login-error").inner_text()
    assert page.context.cookies() == []
    assert "shop/web" not in page.content()
    # A cookie that proves nothing any more is dropped on the way to the login form.
    page.context.add_cookies(
        [
            {
                "name": COOKIE,
                "value": tampered,
                "domain": "127.0.0.1",
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "Strict",
            }
        ]
    )
    page.goto(deployment.url + "/")
    assert "/login" in page.url
    assert page.context.cookies() == []


def test_a_caller_reads_only_the_environments_the_policy_gives(
    web_deployment: WebDeployment, page: Any
) -> None:
    deployment = web_deployment
    # alice (engineering) may promote anywhere but prod (policy: prod needs ops).
    alice = deployment.get_json("/api/releases", deployment.tokens["alice"])
    assert alice["environments"] == ["dev", "staging"]
    assert alice["pipeline"] == ["ci", "dev", "staging"]
    assert all(set(row["cells"]) == {"dev", "staging"} for row in alice["rows"])
    assert "/prod/" not in json.dumps(alice)
    assert "olga@example.com" not in json.dumps(alice)  # she only promoted to prod
    answer = deployment.get("/api/releases?environment=prod", deployment.tokens["alice"])
    assert answer.status_code == 400
    # The same answer as for an environment that does not exist: prod is not even named.
    assert answer.json()["error"]["message"] == (
        "no environment 'prod' here: environments are ci, dev, staging"
    )
    olga = deployment.get_json("/api/releases", deployment.tokens["olga"])
    assert olga["environments"] == ["dev", "staging", "prod"]

    sign_in(page, deployment, deployment.tokens["alice"])
    headers = [text.strip() for text in page.locator("table.matrix thead th").all_inner_texts()]
    assert headers[0].startswith("Repository")
    assert headers[1:] == ["dev", "staging"]
    options = page.get_by_label("Environment").locator("option").all_inner_texts()
    assert [o.strip() for o in options] == ["All", "ci", "dev", "staging"]
    assert "prod" not in page.locator("main").inner_text()


def test_security_headers_on_every_answer(web_deployment: WebDeployment) -> None:
    deployment = web_deployment
    token = deployment.tokens["olga"]
    for path, status in (
        ("/", 200),
        ("/?sort=nope", 400),
        ("/api/releases", 200),
        ("/api/releases?page=x", 400),
        ("/login", 200),
        ("/login?next=/audit", 200),
        ("/favicon.ico", 204),
    ):
        answer = deployment.get(path, token)
        assert answer.status_code == status, path
        check_headers(answer, static=path == "/favicon.ico")
    for name in ("web.css", "web.js"):
        answer = deployment.get(f"/static/{name}")
        assert answer.status_code == 200
        check_headers(answer, static=True)
    assert deployment.get("/static/../app.py").status_code == 404
    assert deployment.get("/static/other.js").status_code == 404


def test_no_page_runs_inline_script_and_the_csp_refuses_it(
    web_deployment: WebDeployment, page: Any
) -> None:
    deployment = web_deployment
    sign_in(page, deployment, deployment.tokens["olga"])
    # Every page of the header's navigation, whichever modules registered them.
    nav = [a.get_attribute("href") for a in page.get_by_role("navigation").locator("a").all()]
    assert nav[0] == "/"
    for path in (*nav, "/?environment=prod&sort=drift", "/login", "/?sort=nope"):
        page.goto(deployment.url + path)
        html = page.content()
        # Scripts only by src, no event-handler or style attributes (style-src 'self' too).
        for script in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in script, script
        assert all(not body.strip() for body in re.findall(r"<script\b[^>]*>(.*?)</script>", html))
        assert not re.search(r"\son[a-z]+\s*=", html)
        assert not re.search(r"\sstyle\s*=", html)
        assert csp_violations(page) == [], path
        # (The 400 page's own status is a console error; nothing else may be.)
        expected = [e for e in page.console_errors if "status of 400" in e and "nope" in path]
        assert page.console_errors == expected, path
        page.console_errors.clear()
    # The policy is in force: script the page would run inline is refused and reported.
    page.goto(deployment.url + "/")
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__ran = true";
          document.body.appendChild(script);
        }"""
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__ran === undefined")
    [violation] = csp_violations(page)
    assert violation["directive"].startswith("script-src")
    assert violation["blocked"] == "inline"


@pytest.fixture(scope="module")
def public_server(web_deployment: WebDeployment) -> Iterator[str]:
    """The same server and database, with --public-pages."""
    deployment = web_deployment
    process, _, http_address, _ = start_server(deployment.root, deployment.env, "--public-pages")
    try:
        yield f"http://{http_address}"
    finally:
        stop_process(process)


def test_public_pages_need_no_token(public_server: str, page: Any) -> None:
    answer = httpx.get(public_server + "/api/releases")
    assert answer.status_code == 200
    assert answer.json()["environments"] == ["dev", "staging", "prod"]
    check_headers(answer)
    page.goto(public_server + "/")
    assert page.url == public_server + "/"
    assert page.get_by_text("Public pages").is_visible()
    assert page.get_by_role("button", name="Sign out").count() == 0
    page.goto(public_server + "/login")
    assert "no sign-in is needed" in page.locator("main").inner_text()


def start_catalog(root: Path, database: str, *flags: str, env: dict[str, str]) -> tuple[Any, str]:
    address = f"127.0.0.1:{free_port()}"
    log = root / f"catalog-{address.rsplit(':', 1)[1]}.log"
    process = subprocess.Popen(
        [IMGCTL, "catalog", "serve", "--http-address", address, "--database-url", database, *flags],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://{address}/health/ping", process, log)
    return process, f"http://{address}"


def test_catalog_serve_pages_need_its_tokens_or_public_pages(
    web_deployment: WebDeployment, tmp_path: Path
) -> None:
    deployment = web_deployment
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n  - name: release-board\n    token: s3cret-catalog-token\n"
        "    description: the board\n    is_disabled: false\n"
    )
    env = {k: v for k, v in deployment.env.items() if not k.startswith("OIDC_")}
    env.pop("IMGCTL_POLICY_FILE")
    env.pop("IMGCTL_SIGN_KEY")
    started = []
    try:
        # No tokens file, no --public-pages: no page for anybody, saying how to turn them on.
        process, url = start_catalog(tmp_path, deployment.database, env=env)
        started.append(process)
        answer = httpx.get(url + "/api/releases", headers={"Authorization": "Bearer x"})
        assert answer.status_code == 403
        assert "--public-pages" in answer.json()["error"]["message"]
        assert httpx.get(url + "/").status_code == 403
        # With a tokens file: its tokens read everything; others nothing.
        process, url = start_catalog(
            tmp_path, deployment.database, "--tokens-file", str(tokens), env=env
        )
        started.append(process)
        assert httpx.get(url + "/api/releases").status_code == 401
        bad = httpx.get(url + "/api/releases", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        answer = httpx.get(
            url + "/api/releases", headers={"Authorization": "Bearer s3cret-catalog-token"}
        )
        assert answer.status_code == 200
        body = answer.json()
        # IMGCTL_REGISTRY_* are set here too: repositories are named without their registry.
        assert body["environments"] == ["dev", "staging", "prod"]
        assert [row["repository"] for row in body["rows"]] == ["shop/api", "shop/web", "tools/cli"]
        check_headers(answer)
        login = httpx.post(
            url + "/login",
            data={"token": "s3cret-catalog-token", "next": "/"},
            headers={"Origin": url, "Sec-Fetch-Site": "same-origin"},
        )
        assert login.status_code == 303
        assert "Max-Age=28800" in login.headers["set-cookie"]
        # With --public-pages (the variable here): anyone.
        process, url = start_catalog(
            tmp_path, deployment.database, env=env | {"IMGCTL_PUBLIC_PAGES": "true"}
        )
        started.append(process)
        assert httpx.get(url + "/api/releases").json()["total"] == 3
    finally:
        for process in started:
            stop_process(process)
