"""The server-side SVG charts, parsed back with xml.etree: names, bars, heights, no inline style."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from imgctl.web._svg import (
    AXIS,
    BAR,
    TEXT,
    BarChart,
    duration,
    histogram_svg,
    nice_ceiling,
    per_day_svg,
)

from ..support.contrast import contrast_ratio

NS = "{http://www.w3.org/2000/svg}"
DAYS = [date(2024, 5, 1) + timedelta(days=i) for i in range(7)]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{NS}rect") if r.get("class") == "bar"]


def check_named(root: ET.Element, ident: str) -> tuple[str, str]:
    """role=img, labelled by its own <title> and <desc>; returns their texts."""
    assert root.get("role") == "img"
    assert root.get("id") == ident
    assert root.get("aria-labelledby") == f"{ident}-title {ident}-desc"
    title = root.find(f"{NS}title")
    desc = root.find(f"{NS}desc")
    assert title is not None
    assert desc is not None
    assert title.get("id") == f"{ident}-title"
    assert desc.get("id") == f"{ident}-desc"
    assert title.text
    assert desc.text
    return title.text, desc.text


def check_csp_safe(root: ET.Element) -> None:
    """Nothing a Content-Security-Policy without 'unsafe-inline' would block or run."""
    for element in root.iter():
        assert "style" not in element.attrib, element.attrib
        assert element.tag not in (f"{NS}script", f"{NS}style", f"{NS}foreignObject")
        assert not any(name.lower().startswith("on") for name in element.attrib)
        assert not any("href" in name for name in element.attrib)


def test_per_day_bars_one_a_day_heights_proportional() -> None:
    counts = [0, 3, 1, 7, 0, 2, 4]
    root = parse(per_day_svg(DAYS, counts, ident="c-prod", environment="prod"))
    title, desc = check_named(root, "c-prod")
    assert title == "Promotions into prod per day"
    assert desc == (
        "Bar chart, one bar per day from 2024-05-01 to 2024-05-07: 17 successful promotions "
        "into prod, most on 2024-05-04 (7); the scale goes to 10."
    )
    check_csp_safe(root)
    found = bars(root)
    assert len(found) == len(DAYS)
    heights = [float(b.get("height", "nan")) for b in found]
    plot = BarChart().plot_height
    # The scale's top is nice_ceiling(7) = 10: a count of c is c/10 of the plot's height.
    assert heights == pytest.approx([plot * c / 10 for c in counts])
    assert [int(b.get("data-count", "-1")) for b in found] == counts
    assert [b.get("data-day") for b in found] == [d.isoformat() for d in DAYS]
    # Every bar stands on the same base line, left to right without overlapping.
    bottoms = {round(float(b.get("y", "nan")) + float(b.get("height", "nan")), 6) for b in found}
    assert len(bottoms) == 1
    xs = [float(b.get("x", "nan")) for b in found]
    widths = [float(b.get("width", "nan")) for b in found]
    assert xs == sorted(xs)
    assert all(x + w <= nxt + 1e-9 for x, w, nxt in zip(xs, widths, xs[1:], strict=False))
    assert all(w > 0 for w in widths)
    # A pointer on a bar gets its day and count.
    tips = [b.find(f"{NS}title") for b in found]
    assert [t.text for t in tips if t is not None][3] == "2024-05-04: 7"
    labels = [t.text for t in root.iter(f"{NS}text")]
    assert "2024-05-01" in labels
    assert "2024-05-07" in labels
    assert {"0", "5", "10"} <= set(labels)


def test_charts_with_one_scale_compare_and_a_year_fits() -> None:
    year = [date(2023, 5, 18) + timedelta(days=i) for i in range(366)]
    counts = [i % 5 for i in range(366)]
    root = parse(per_day_svg(year, counts, ident="y", environment="dev", top=20))
    found = bars(root)
    assert len(found) == 366
    plot = BarChart().plot_height
    assert [float(b.get("height", "nan")) for b in found] == pytest.approx(
        [plot * c / 20 for c in counts]
    )
    assert max(float(b.get("x", "0")) + float(b.get("width", "0")) for b in found) <= (
        BarChart().width - BarChart().right + 1e-6
    )
    # The first of each month is labelled between the ends when there is room.
    labels = [t.text for t in root.iter(f"{NS}text")]
    assert "Jul" in labels
    assert "2023-05-18" in labels
    assert "2024-05-17" in labels
    with pytest.raises(ValueError, match="below the largest count"):
        per_day_svg(DAYS, [1, 2, 3, 4, 5, 6, 30], ident="x", environment="dev", top=20)
    with pytest.raises(ValueError, match="one count per day"):
        per_day_svg(DAYS, [1], ident="x", environment="dev")


def test_nothing_promoted_draws_flat_bars_and_says_so() -> None:
    root = parse(per_day_svg(DAYS, [0] * 7, ident="z", environment="int"))
    _, desc = check_named(root, "z")
    assert desc.endswith("0 successful promotions into int.")
    assert [float(b.get("height", "nan")) for b in bars(root)] == [0.0] * 7


def test_names_are_escaped_not_markup() -> None:
    name = 'qa"<script>alert(1)</script>&'
    svg = per_day_svg(DAYS, [1] * 7, ident="e", environment=name)
    assert "<script>" not in svg
    root = parse(svg)
    title, _ = check_named(root, "e")
    assert title == f"Promotions into {name} per day"
    check_csp_safe(root)


def test_histogram_bars_labels_and_counts() -> None:
    buckets = [("≤ 1 h", 4), ("≤ 6 h", 0), ("≤ 1 d", 9), ("> 1 d", 1)]
    root = parse(histogram_svg(buckets, ident="lead", title="Lead time", desc="how long"))
    assert check_named(root, "lead") == ("Lead time", "how long")
    check_csp_safe(root)
    found = bars(root)
    assert len(found) == 4
    chart = BarChart(height=180, bottom=30, top=18)
    assert [float(b.get("height", "nan")) for b in found] == pytest.approx(
        [chart.plot_height * c / 10 for _, c in buckets]
    )
    texts = [t.text for t in root.iter(f"{NS}text")]
    for label, count in buckets:
        assert label in texts
        assert str(count) in texts
    with pytest.raises(ValueError, match="at least one bucket"):
        histogram_svg([], ident="x", title="t", desc="d")


def test_nice_ceiling_and_duration() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 2, 3, 7, 10, 11, 21, 51, 99, 101, 4000)] == [
        1,
        1,
        2,
        5,
        10,
        10,
        20,
        50,
        100,
        100,
        200,
        5000,
    ]
    assert duration(None) == "—"
    assert duration(0) == "0 s"
    assert duration(59.4) == "59 s"
    assert duration(60) == "1 min"
    assert duration(3600) == "1 h"
    assert duration(3600 + 5 * 60) == "1 h 5 min"
    assert duration(86400) == "1 d"
    assert duration(2 * 86400 + 4 * 3600 + 59) == "2 d 4 h"


def test_chart_colours_meet_wcag_contrast_on_white() -> None:
    assert contrast_ratio(TEXT, "#ffffff") >= 4.5  # text (1.4.3)
    assert contrast_ratio(AXIS, "#ffffff") >= 4.5  # the axis line, also a reading aid
    assert contrast_ratio(BAR, "#ffffff") >= 4.5  # well above the 3:1 of 1.4.11


def test_the_contrast_formula_itself() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#fff", "#ffffff") == pytest.approx(1.0)
    # The usual pair at the threshold: #767676 passes 4.5:1 on white, #777777 does not.
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#ffffff", "#767676") == contrast_ratio("#767676", "#ffffff")
    with pytest.raises(ValueError, match="not a hex colour"):
        contrast_ratio("red", "#ffffff")
