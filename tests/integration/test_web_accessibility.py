"""Accessibility of every page, in Chromium against a real server (issue 20, "Accessibility").

No axe-core: Debian does not package it and the tests fetch nothing. These checks stand in for
its main rules, run on each page of the header's navigation plus the story, login and error
pages, signed in and at a desktop and a phone width:

- the document: a language, a title, unique ids, no positive tabindex;
- headings: exactly one h1, no level skipped on the way down;
- landmarks: one banner, one main, one contentinfo, navigation with a name;
- names: every control, link and image in the accessibility tree (Chromium's own, through
  Playwright's ARIA snapshot) has an accessible name; every <img> an alt; every <svg> is
  role=img with a name or hidden from assistive technology;
- keyboard: Tab reaches every visible control, in document order, and the skip link first;
- contrast: every visible piece of text against its actual background (computed styles,
  translucent backgrounds blended), by the WCAG formula: 4.5:1, 3:1 for large text; bars of a
  chart 3:1 against the page;
- reflow at 390 px: the page does not scroll sideways (a wide table scrolls in its own box).

Each check returns what it found wrong, so a failure lists every problem of the page at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import pytest

from imgctl.web._render import NAV_LINKS

from ..support.browser import PHONE, SCREENSHOTS, browser, csp_violations, page  # noqa: F401
from ..support.contrast import blend, contrast_ratio, parse_css_colour
from ..support.webdeploy import WebDeployment, web_deployment  # noqa: F401

DOCS: Final = Path(__file__).resolve().parents[2] / "docs" / "web.md"
# Pages besides the navigation's: one image's story, and an error page (a bad filter).
EXTRA_PAGES: Final = ("/story/shop/web", "/charts?days=0")
NAMED_ROLES: Final = (
    "button",
    "checkbox",
    "combobox",
    "img",
    "link",
    "listbox",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "tab",
    "textbox",
)

# Runs in the page: what the document-level checks need, as plain data.
_DOCUMENT = """() => {
  const visible = (el) => {
    if (!(el instanceof Element)) return false;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") return false;
    return el.getClientRects().length > 0;
  };
  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
    .filter(visible).map((h) => [Number(h.tagName[1]), h.textContent.trim()]);
  const svgs = [...document.querySelectorAll("svg")].filter((svg) => !svg.closest("svg svg"))
    .map((svg) => ({
      role: svg.getAttribute("role"),
      hidden: svg.getAttribute("aria-hidden"),
      labelledby: svg.getAttribute("aria-labelledby"),
      label: svg.getAttribute("aria-label"),
      title: svg.querySelector(":scope > title")?.textContent || "",
    }));
  return {
    lang: document.documentElement.lang,
    title: document.title,
    ids,
    headings,
    svgs,
    imgs: [...document.querySelectorAll("img")].map((img) => img.getAttribute("alt")),
    positiveTabindex: [...document.querySelectorAll("[tabindex]")]
      .filter((el) => Number(el.getAttribute("tabindex")) > 0)
      .map((el) => el.outerHTML.slice(0, 80)),
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  };
}"""

# Every control Tab should reach, numbered in document order (data-a11y-tab).
_FOCUSABLE = """() => {
  const selector = 'a[href], button, input:not([type="hidden"]), select, textarea, summary, '
    + '[tabindex]:not([tabindex="-1"])';
  const shown = (el) => {
    if (el.disabled || el.closest("[inert]")) return false;
    const details = el.closest("details:not([open])");
    if (details && !(el.tagName === "SUMMARY" && el.parentElement === details)) return false;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") return false;
    return el.getClientRects().length > 0 || el.classList.contains("skip-link");
  };
  const found = [...document.querySelectorAll(selector)].filter(shown);
  found.forEach((el, index) => el.setAttribute("data-a11y-tab", String(index)));
  return found.map((el) => el.outerHTML.slice(0, 100));
}"""

# Every visible text with its colour, the backgrounds behind it (innermost first) and its size.
_TEXTS = """() => {
  const out = [];
  const svgFill = (svg) => svg.querySelector(":scope > rect")?.getAttribute("fill") || "";
  const backgrounds = (el) => {
    const stack = [];
    for (let node = el; node && node instanceof Element; node = node.parentElement) {
      if (node instanceof SVGElement && !(node instanceof SVGSVGElement)) continue;
      const bg = getComputedStyle(node).backgroundColor;
      stack.push(bg);
    }
    return stack;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.textContent.trim()) continue;
    seen.add(el);
    if (el.closest("title, desc, script, style, option")) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    const rects = el.getClientRects();
    if (!rects.length || rects[0].width === 0) continue;
    if (el.closest(".visually-hidden")) continue;
    // Off-screen until focused (the skip link): checked as it looks when focused.
    const svg = el instanceof SVGElement;
    out.push({
      text: node.textContent.trim().slice(0, 40),
      tag: el.tagName.toLowerCase(),
      colour: svg ? style.fill : style.color,
      backgrounds: backgrounds(svg ? el.closest("svg") : el),
      svgBackground: svg ? svgFill(el.closest("svg")) : "",
      size: parseFloat(style.fontSize),
      weight: Number(style.fontWeight) || 400,
    });
  }
  for (const bar of document.querySelectorAll("svg rect.bar")) {
    const svg = bar.closest("svg");
    out.push({
      text: "(chart bar)", tag: "rect", colour: getComputedStyle(bar).fill,
      backgrounds: backgrounds(svg), svgBackground: svgFill(svg),
      size: 0, weight: 0,
    });
  }
  return out;
}"""


def page_paths() -> list[str]:
    """The navigation's pages, then the others."""
    return [href for href, _ in NAV_LINKS] + list(EXTRA_PAGES)


def login(page: Any, deployment: WebDeployment, user: str) -> None:  # noqa: F811
    page.goto(f"{deployment.url}/login")
    page.get_by_label(re.compile("Your token")).fill(deployment.tokens[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def document_problems(page: Any) -> list[str]:  # noqa: F811
    """Language, title, ids, headings, landmarks, images, tabindex."""
    facts = page.evaluate(_DOCUMENT)
    problems = []
    if not facts["lang"]:
        problems.append("<html> has no lang")
    if not facts["title"].strip():
        problems.append("no <title>")
    duplicates = sorted({i for i in facts["ids"] if facts["ids"].count(i) > 1})
    if duplicates:
        problems.append(f"duplicate ids {duplicates}")
    levels = [level for level, _ in facts["headings"]]
    if levels.count(1) != 1:
        problems.append(f"{levels.count(1)} h1 (one wanted): {facts['headings']}")
    for (before, _), (level, text) in zip(facts["headings"], facts["headings"][1:], strict=False):
        if level > before + 1:
            problems.append(f"heading level skipped: h{before} then h{level} {text!r}")
    for role, wanted in (("banner", 1), ("main", 1), ("contentinfo", 1)):
        count = page.get_by_role(role).count()
        if count != wanted:
            problems.append(f"{count} {role} landmarks ({wanted} wanted)")
    navigations = page.get_by_role("navigation")
    if navigations.count() < 1:
        problems.append("no navigation landmark")
    for index in range(navigations.count()):
        if not (navigations.nth(index).get_attribute("aria-label") or "").strip():
            problems.append(f"navigation {index} has no aria-label")
    for alt in facts["imgs"]:
        if alt is None:
            problems.append("an <img> without alt")
    for svg in facts["svgs"]:
        if svg["hidden"] == "true":
            continue
        named = svg["label"] or (svg["labelledby"] and svg["title"])
        if svg["role"] != "img" or not named:
            problems.append(f"an <svg> neither hidden nor a named role=img: {svg}")
    if facts["positiveTabindex"]:
        problems.append(f"positive tabindex: {facts['positiveTabindex']}")
    return problems


_ARIA_LINE = re.compile(r"^\s*- (?P<role>[a-z]+)(?: (?P<name>\"(?:[^\"\\]|\\.)*\"|/.*?/))?")


def name_problems(page: Any) -> list[str]:  # noqa: F811
    """Every control, link and image in Chromium's accessibility tree has a name."""
    problems = []
    for line in page.locator("body").aria_snapshot().splitlines():
        match = _ARIA_LINE.match(line)
        if not match or match.group("role") not in NAMED_ROLES:
            continue
        name = match.group("name")
        if not name or name in ('""', "//"):
            problems.append(f"no accessible name: {line.strip()}")
    return problems


def keyboard_problems(page: Any) -> list[str]:  # noqa: F811
    """Tab from the top reaches every visible control once, in document order."""
    controls = page.evaluate(_FOCUSABLE)
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    page.locator("body").focus()
    reached: list[int] = []
    # A date or time field takes one Tab per part (day, month, year...): room for those.
    for _ in range(4 * len(controls) + 10):
        page.keyboard.press("Tab")
        index = page.evaluate("() => document.activeElement?.getAttribute('data-a11y-tab') ?? null")
        if index is None:
            continue
        if reached and int(index) == reached[0]:
            break
        reached.append(int(index))
    problems = []
    missing = sorted(set(range(len(controls))) - set(reached))
    if missing:
        problems.append(f"Tab never reaches {[controls[i] for i in missing]}")
    if reached != sorted(reached):
        problems.append(f"Tab order is not the document's: {reached}")
    if controls and (not reached or "skip-link" not in controls[reached[0]]):
        problems.append("the first Tab does not land on the skip link")
    return problems


def contrast_problems(page: Any) -> list[str]:  # noqa: F811
    """Text 4.5:1 (large 3:1), chart bars 3:1, each against what is actually behind it."""
    problems = []
    for item in page.evaluate(_TEXTS):
        stack = item["backgrounds"]
        if item["svgBackground"]:
            stack = [item["svgBackground"], *stack]
        background = blend([parse_css_colour(c) for c in stack])
        colour = blend([parse_css_colour(item["colour"]), parse_css_colour(background)])
        ratio = contrast_ratio(colour, background)
        large = item["size"] >= 24 or (item["size"] >= 18.66 and item["weight"] >= 700)
        wanted = 3.0 if item["tag"] == "rect" or large else 4.5
        if ratio < wanted:
            problems.append(
                f"{item['tag']} {item['text']!r}: {colour} on {background} is "
                f"{ratio:.2f}:1 (< {wanted})"
            )
    return problems


def reflow_problems(page: Any) -> list[str]:  # noqa: F811
    """At a phone's width nothing makes the page itself scroll sideways."""
    facts = page.evaluate(_DOCUMENT)
    if facts["scrollWidth"] > facts["clientWidth"] + 1:
        return [f"the page is {facts['scrollWidth']} px wide at {facts['clientWidth']} px"]
    return []


@pytest.mark.parametrize("path", page_paths())
def test_page_is_accessible(web_deployment: WebDeployment, page: Any, path: str) -> None:  # noqa: F811
    login(page, web_deployment, "olga")
    answer = page.goto(f"{web_deployment.url}{path}")
    assert answer is not None
    assert answer.status == (400 if "days=0" in path else 200), path
    page.wait_for_load_state()
    problems = document_problems(page) + name_problems(page) + keyboard_problems(page)
    problems += contrast_problems(page)
    # The skip link, as it looks when it has the focus.
    page.locator(".skip-link").focus()
    problems += [p for p in contrast_problems(page) if "Skip to content" in p]
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(50)
    problems += reflow_problems(page) + contrast_problems(page)
    assert problems == [], "\n".join([path, *dict.fromkeys(problems)])
    assert csp_violations(page) == []


def test_login_and_signed_out_pages_are_accessible(
    web_deployment: WebDeployment,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    page.goto(f"{web_deployment.url}/login")
    problems = document_problems(page) + name_problems(page) + keyboard_problems(page)
    problems += contrast_problems(page)
    page.get_by_label(re.compile("Your token")).fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    problems += contrast_problems(page) + name_problems(page)
    # The error is announced and tied to the field it is about.
    assert page.get_by_role("alert").count() == 1
    described = page.get_by_label(re.compile("Your token")).get_attribute("aria-describedby")
    assert described
    assert page.locator(f"#{described}").inner_text() == page.get_by_role("alert").inner_text()
    assert problems == [], "\n".join(dict.fromkeys(problems))


def test_every_page_has_screenshots_in_the_docs() -> None:
    """docs/web.md shows each page at both widths, from files the browser tests wrote."""
    text = DOCS.read_text()
    embedded = set(re.findall(r"\]\((images/web/[a-z0-9-]+\.png)\)", text))
    names = {m.split("/")[-1].rsplit("-", 1)[0] for m in embedded}
    for name in names:
        for width in ("desktop", "phone"):
            assert f"images/web/{name}-{width}.png" in embedded, (name, width)
            assert (SCREENSHOTS / f"{name}-{width}.png").stat().st_size > 1000
    assert {"releases", "audit", "watches", "story", "charts", "login"} <= names, names


def test_the_checks_find_what_is_wrong(web_deployment: WebDeployment, page: Any) -> None:  # noqa: F811
    """Each check reports a fault put into a real page (so a pass above means something)."""
    login(page, web_deployment, "olga")
    page.goto(f"{web_deployment.url}/charts")
    assert document_problems(page) + name_problems(page) + contrast_problems(page) == []
    page.evaluate(
        """() => {
      const main = document.querySelector("main");
      main.insertAdjacentHTML("beforeend", `
        <h1>Second</h1><h4>Skipped</h4>
        <input id="bare" type="text">
        <svg viewBox="0 0 10 10"><rect width="10" height="10"/></svg>
        <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
        <p class="pale">pale text</p>
        <button tabindex="2">Jump</button>
        <div id="bare"></div>`);
      main.querySelector(".pale").setAttribute("data-x", "1");
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(".pale { color: #aaaaaa; } .wide { width: 2000px; }");
      document.adoptedStyleSheets = [sheet];
      main.insertAdjacentHTML("beforeend", '<div class="wide">wide</div>');
    }"""
    )
    found = "\n".join(document_problems(page) + name_problems(page) + contrast_problems(page))
    assert "2 h1" in found
    assert "heading level skipped: h1 then h4" in found
    assert "duplicate ids ['bare']" in found
    assert "an <svg> neither hidden nor a named role=img" in found
    assert "an <img> without alt" in found
    assert "positive tabindex" in found
    assert "no accessible name: - textbox" in found
    assert "'pale text': #aaaaaa on #ffffff is 2.32:1 (< 4.5)" in found
    assert reflow_problems(page) != []
