"""Charts drawn on the server as SVG: no script, no style attribute, no library, no network.

Each chart is an ``<svg role="img">`` named by its ``<title>`` and described by its ``<desc>``
(``aria-labelledby``), so a screen reader announces one image with a sentence saying what it
shows; the page puts the same numbers in a table beside it. Colours and sizes are SVG
presentation attributes, which a Content-Security-Policy without ``'unsafe-inline'`` allows
(``style`` attributes it would block). The ``viewBox`` lets a chart shrink to a phone's width.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

__all__ = [
    "AXIS",
    "BAR",
    "GRID",
    "TEXT",
    "BarChart",
    "duration",
    "histogram_svg",
    "nice_ceiling",
    "per_day_svg",
]

SVG_NS: Final = "http://www.w3.org/2000/svg"
# On the page's white: text 12.6:1, bars 6.6:1 and the axis 4.5:1 (WCAG 1.4.3 and 1.4.11 ask
# 4.5:1 for text, 3:1 for the parts of a graphic); the grid is decoration. Checked by a test.
TEXT: Final = "#333333"
BAR: Final = "#1f5f9e"
AXIS: Final = "#767676"
GRID: Final = "#dddddd"
FONT: Final = "system-ui, sans-serif"


@dataclass(frozen=True, slots=True)
class BarChart:
    """The geometry every chart here shares (user units of the viewBox)."""

    width: int = 720
    height: int = 160
    left: int = 44
    right: int = 8
    top: int = 10
    bottom: int = 26

    @property
    def plot_width(self) -> float:
        """Width of the area the bars fill."""
        return float(self.width - self.left - self.right)

    @property
    def plot_height(self) -> float:
        """Height of the area the bars fill: a bar of the scale's top value is this tall."""
        return float(self.height - self.top - self.bottom)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at or above ``value`` (1 for nothing)."""
    if value <= 1:
        return 1
    magnitude = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def duration(seconds: float | None) -> str:
    """A lead time as people say it: '45 s', '12 min', '3 h 5 min', '2 d 4 h' ('—' for None)."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, _ = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _svg(chart: BarChart, ident: str, title: str, desc: str) -> ET.Element:
    svg = ET.Element(
        "svg",
        {
            # An attribute rather than ElementTree's namespaces: no prefix, no global registry.
            "xmlns": SVG_NS,
            "viewBox": f"0 0 {chart.width} {chart.height}",
            "role": "img",
            "aria-labelledby": f"{ident}-title {ident}-desc",
            "id": ident,
            "class": "chart",
            "font-family": FONT,
            "font-size": "11",
            "preserveAspectRatio": "xMidYMid meet",
        },
    )
    _sub(svg, "title", {"id": f"{ident}-title"}, title)
    _sub(svg, "desc", {"id": f"{ident}-desc"}, desc)
    # The page's background, so the contrast the colours were chosen for holds anywhere.
    _sub(
        svg,
        "rect",
        {
            "x": "0",
            "y": "0",
            "width": str(chart.width),
            "height": str(chart.height),
            "fill": "#ffffff",
        },
    )
    return svg


def _sub(
    parent: ET.Element, tag: str, attributes: dict[str, str], text: str | None = None
) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _y_axis(svg: ET.Element, chart: BarChart, top: int) -> None:
    """Grid lines and labels at 0, half and the top of the scale; the axis line itself."""
    base = chart.top + chart.plot_height
    for value in sorted({0, top} | ({top // 2} if top % 2 == 0 else set())):
        y = base - chart.plot_height * value / top
        if value:
            _sub(
                svg,
                "line",
                {
                    "x1": str(chart.left),
                    "x2": str(chart.width - chart.right),
                    "y1": _num(y),
                    "y2": _num(y),
                    "stroke": GRID,
                    "stroke-width": "1",
                },
            )
        _sub(
            svg,
            "text",
            {"x": str(chart.left - 6), "y": _num(y + 4), "text-anchor": "end", "fill": TEXT},
            str(value),
        )
    _sub(
        svg,
        "line",
        {
            "x1": str(chart.left),
            "x2": str(chart.width - chart.right),
            "y1": _num(base),
            "y2": _num(base),
            "stroke": AXIS,
            "stroke-width": "1",
        },
    )


def per_day_svg(
    days: Sequence[date],
    counts: Sequence[int],
    *,
    ident: str,
    environment: str,
    top: int | None = None,
    chart: BarChart | None = None,
) -> str:
    """One environment's successful promotions per day as a bar chart: one bar a day.

    Bar heights are proportional to the counts on a scale from 0 to ``top`` (default: the
    :func:`nice_ceiling` of the largest count; give the same ``top`` to several charts to compare
    them). Each bar has its own ``<title>`` (day and count) for a pointer hovering over it.
    """
    if len(days) != len(counts) or not days:
        raise ValueError("per_day_svg needs one count per day, and at least one day")
    chart = chart or BarChart()
    top = top or nice_ceiling(max(counts))
    if top < max(counts):
        raise ValueError(f"the scale's top {top} is below the largest count {max(counts)}")
    total = sum(counts)
    busiest = max(range(len(counts)), key=lambda i: counts[i])
    span = f"{days[0].isoformat()} to {days[-1].isoformat()}"
    desc = (
        f"Bar chart, one bar per day from {span}: {total} successful promotion"
        f"{'' if total == 1 else 's'} into {environment}"
    )
    desc += (
        f", most on {days[busiest].isoformat()} ({counts[busiest]}); the scale goes to {top}."
        if total
        else "."
    )
    svg = _svg(chart, ident, f"Promotions into {environment} per day", desc)
    _y_axis(svg, chart, top)
    step = chart.plot_width / len(days)
    gap = step * 0.2 if step >= 4 else 0.0
    base = chart.top + chart.plot_height
    bars = _sub(svg, "g", {"class": "bars", "fill": BAR})
    for index, (day, count) in enumerate(zip(days, counts, strict=True)):
        height = chart.plot_height * count / top
        bar = _sub(
            bars,
            "rect",
            {
                "class": "bar",
                "x": _num(chart.left + index * step + gap / 2),
                "y": _num(base - height),
                "width": _num(step - gap),
                "height": _num(height),
                "data-count": str(count),
                "data-day": day.isoformat(),
            },
        )
        _sub(bar, "title", {}, f"{day.isoformat()}: {count}")
    # Dates under the first and last bars, and under the first of each month between them
    # when there is room for them.
    labels = {0: days[0].isoformat(), len(days) - 1: days[-1].isoformat()}
    if len(days) > 14:
        for index, day in enumerate(days[1:-1], start=1):
            if day.day == 1 and min(index, len(days) - 1 - index) * step > 70:
                labels[index] = day.strftime("%b")
    for index, label in labels.items():
        if index == 0:
            anchor, x = "start", float(chart.left)
        elif index == len(days) - 1:
            anchor, x = "end", chart.left + len(days) * step
        else:
            anchor, x = "middle", chart.left + (index + 0.5) * step
        _sub(
            svg,
            "text",
            {"x": _num(x), "y": _num(base + 16), "text-anchor": anchor, "fill": TEXT},
            label,
        )
    return _serialise(svg)


def histogram_svg(
    buckets: Sequence[tuple[str, int]],
    *,
    ident: str,
    title: str,
    desc: str,
    chart: BarChart | None = None,
) -> str:
    """A bar per (label, count) of ``buckets``, labelled under it and its count above it."""
    if not buckets:
        raise ValueError("histogram_svg needs at least one bucket")
    chart = chart or BarChart(height=180, bottom=30, top=18)
    counts = [count for _, count in buckets]
    top = nice_ceiling(max(counts))
    svg = _svg(chart, ident, title, desc)
    _y_axis(svg, chart, top)
    step = chart.plot_width / len(buckets)
    base = chart.top + chart.plot_height
    bars = _sub(svg, "g", {"class": "bars", "fill": BAR})
    for index, (label, count) in enumerate(buckets):
        height = chart.plot_height * count / top
        x = chart.left + index * step + step * 0.15
        bar = _sub(
            bars,
            "rect",
            {
                "class": "bar",
                "x": _num(x),
                "y": _num(base - height),
                "width": _num(step * 0.7),
                "height": _num(height),
                "data-count": str(count),
            },
        )
        _sub(bar, "title", {}, f"{label}: {count}")
        middle = chart.left + (index + 0.5) * step
        _sub(
            svg,
            "text",
            {"x": _num(middle), "y": _num(base + 16), "text-anchor": "middle", "fill": TEXT},
            label,
        )
        _sub(
            svg,
            "text",
            {
                "x": _num(middle),
                "y": _num(base - height - 4),
                "text-anchor": "middle",
                "fill": TEXT,
            },
            str(count),
        )
    return _serialise(svg)


def _serialise(svg: ET.Element) -> str:
    return ET.tostring(svg, encoding="unicode", short_empty_elements=True)
