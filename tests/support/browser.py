"""A real browser for the web pages' tests: Debian's Chromium, driven by Playwright.

Nothing here downloads a browser: Chromium is Debian's package (``apt-get install chromium``,
which scripts/test.sh does) and Playwright is told where it is (``executable_path``). Use the
fixtures by binding them in a test module::

    from ..support import browser as browsers
    from ..support.browser import csp_violations, screenshot

    browser, page = browsers.browser, browsers.page

``page`` is a fresh browser context (no cookies) with a desktop viewport that records every
Content-Security-Policy violation (:func:`csp_violations`) and console error. :func:`screenshot`
saves the page at the desktop (1280x800) and phone (390x844) sizes under docs/images/web/,
which docs/web.md shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

CHROMIUM: Final = Path("/usr/bin/chromium")
SCREENSHOTS: Final = Path(__file__).resolve().parents[2] / "docs" / "images" / "web"
DESKTOP: Final = {"width": 1280, "height": 800}
PHONE: Final = {"width": 390, "height": 844}

# Runs before any script of the page (CDP, so the page's CSP does not apply to it): it keeps
# the securitypolicyviolation events a page would otherwise only log.
_RECORD_VIOLATIONS: Final = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push({
    directive: event.violatedDirective, blocked: event.blockedURI, sample: event.sample,
  });
});
"""

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module (``--no-sandbox`` when running as root).

    Module-scoped: each module that imports the fixture has its own definition, and two
    Playwright instances cannot live in one thread at once (each holds the thread's event
    loop; so ``asyncio.run`` there fails too: see webdeploy.run_async).
    """
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium: apt-get install chromium"
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context (no cookies), desktop-sized, recording CSP violations.

    ``page.console_errors`` lists the console's error messages (a CSP refusal is one).
    """
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(_RECORD_VIOLATIONS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    tab.console_errors = errors
    try:
        yield tab
    finally:
        context.close()


def csp_violations(page: Any) -> list[dict[str, str]]:
    """The Content-Security-Policy violations the page has reported so far."""
    return list(page.evaluate("window.__cspViolations || []"))


def screenshot(page: Any, name: str) -> list[Path]:
    """Save ``page`` as docs/images/web/NAME-desktop.png and NAME-phone.png; the paths."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or DESKTOP
    saved = []
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        path = SCREENSHOTS / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=False)
        saved.append(path)
    page.set_viewport_size(before)
    return saved
