"""The pages' stylesheet keeps WCAG AA contrast: its colour pairs, by the WCAG formula."""

from __future__ import annotations

import importlib.resources
import re

import pytest

from ..support.contrast import contrast_ratio

CSS = importlib.resources.files("imgctl.web").joinpath("static", "web.css").read_text()


def variables() -> dict[str, str]:
    """The custom properties of :root (name without the dashes -> #hex)."""
    root = re.search(r":root\s*\{(.*?)\}", CSS, re.S)
    assert root, "web.css has no :root block"
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})\s*;", root.group(1)))


def rule(selector: str) -> dict[str, str]:
    """The declarations of the rule for ``selector`` (exactly that selector)."""
    match = re.search(rf"(?:^|\}}|\n){re.escape(selector)}\s*\{{(.*?)\}}", CSS, re.S)
    assert match, f"web.css has no rule {selector}"
    return dict(
        (name.strip(), value.strip())
        for name, value in re.findall(r"([a-z-]+)\s*:\s*([^;]+);", match.group(1))
    )


def colour(value: str, palette: dict[str, str]) -> str:
    """A declaration's colour: #hex, or var(--name) looked up in the palette."""
    named = re.fullmatch(r"var\(--([a-z-]+)\)", value)
    return palette[named.group(1)] if named else value


PAIRS = (
    # (text, background, where)
    ("fg", "bg", "body text"),
    ("muted", "bg", "hints, summaries, footer"),
    ("muted", "panel", "filter labels on the filter panel"),
    ("fg", "panel", "table headers"),
    ("accent", "bg", "links"),
    ("accent", "panel", "links on panels"),
    ("ok-fg", "ok-bg", "signed/attested badges"),
    ("warn-fg", "warn-bg", "drift marks"),
    ("bad-fg", "bad-bg", "error messages, failed badges"),
)


@pytest.mark.parametrize(("text", "background", "where"), PAIRS)
def test_palette_pairs_reach_aa(text: str, background: str, where: str) -> None:
    palette = variables()
    assert len(palette) >= 13  # every colour of :root was read
    ratio = contrast_ratio(palette[text], palette[background])
    assert ratio >= 4.5, f"{where}: --{text} on --{background} is {ratio:.2f}:1"


def test_header_and_buttons_reach_aa() -> None:
    palette = variables()
    header = rule(".site-header")
    assert contrast_ratio(colour(header["color"], palette), header["background"]) >= 4.5
    button = rule("button, .button")
    ratio = contrast_ratio(colour(button["color"], palette), colour(button["background"], palette))
    assert ratio >= 4.5, ratio
    skip = rule(".skip-link")
    assert (
        contrast_ratio(colour(skip["color"], palette), colour(skip["background"], palette)) >= 4.5
    )
    # The focus ring against the header, where the navigation's links are, and against the
    # page and its panels, where every other control is (1.4.11: 3:1).
    assert contrast_ratio(palette["focus"], header["background"]) >= 3.0
    for background in ("bg", "panel", "ok-bg", "warn-bg", "bad-bg"):
        ratio = contrast_ratio(palette["focus"], palette[background])
        assert ratio >= 3.0, f"focus ring on --{background}: {ratio:.2f}:1"
