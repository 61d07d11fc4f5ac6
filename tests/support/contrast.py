"""WCAG 2.x contrast: relative luminance of sRGB colours and their ratio (1:1 to 21:1).

The formula of WCAG 2.2's definitions "relative luminance" and "contrast ratio"; written here,
in the tests, so that the pages' colours are checked against it rather than trusted.
"""

from __future__ import annotations

import re

__all__ = ["blend", "contrast_ratio", "parse_colour", "parse_css_colour", "relative_luminance"]

_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_RGB = re.compile(r"rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)")

RGBA = tuple[float, float, float, float]


def parse_colour(text: str) -> tuple[int, int, int]:
    """``#rgb`` or ``#rrggbb`` as (r, g, b) in 0..255."""
    match = _HEX.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a hex colour: {text!r}")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def relative_luminance(colour: str) -> float:
    """WCAG's relative luminance: 0 for black, 1 for white."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in parse_colour(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str, background: str) -> float:
    """(L1 + 0.05) / (L2 + 0.05), the lighter colour's luminance over the darker's."""
    a, b = relative_luminance(foreground), relative_luminance(background)
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)


def parse_css_colour(text: str) -> RGBA:
    """A computed CSS colour (``rgb()``, ``rgba()``, ``#hex``, ``transparent``) as RGBA."""
    text = text.strip().lower()
    if text in ("transparent", "none", ""):
        return (0.0, 0.0, 0.0, 0.0)
    if text.startswith("#"):
        r, g, b = parse_colour(text)
        return (float(r), float(g), float(b), 1.0)
    match = _RGB.fullmatch(text)
    if not match:
        raise ValueError(f"not a CSS colour this parser knows: {text!r}")
    alpha = match.group(4)
    a = 1.0 if alpha is None else float(alpha[:-1]) / 100 if alpha.endswith("%") else float(alpha)
    return (float(match.group(1)), float(match.group(2)), float(match.group(3)), a)


def blend(layers: list[RGBA]) -> str:
    """The colour seen through ``layers`` (innermost first) over a white canvas, as #rrggbb."""
    r, g, b = 255.0, 255.0, 255.0
    for lr, lg, lb, alpha in reversed(layers):
        r, g, b = (
            alpha * lr + (1 - alpha) * r,
            alpha * lg + (1 - alpha) * g,
            alpha * lb + (1 - alpha) * b,
        )
    return "#{:02x}{:02x}{:02x}".format(*(round(c) for c in (r, g, b)))
