"""Rounds compared in the browser, staged (no worker): the evaluation chart inside its box with labels of a
readable size at desktop and phone width; the compare page a page a person can read: a prompt filter, pages of
rows, the reference beside each row and a compact mode."""

from __future__ import annotations

import pytest

from .chromium import DESKTOP, PHONE, shot
from .staging import SVG_BOXES, evaluated_style, outside


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_evaluation_chart_stays_inside_its_box(staged, chromium, size):
    from playwright.sync_api import expect

    style_id = evaluated_style(staged)
    context = chromium.new_context(viewport=DESKTOP) if size == "desktop" else chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        chart = page.locator("#evaluation svg.chart")
        expect(chart).to_have_count(1)
        chart.scroll_into_view_if_needed()
        boxes = chart.evaluate(SVG_BOXES)
        panel = page.locator("#evaluation").evaluate(
            "el => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, "
            "right: r.right}; }")
        assert not outside(boxes["svg"], panel), (boxes["svg"], panel)
        heights = [t["height"] for t in boxes["texts"] if not t["rotated"]]
        assert max(heights) <= 20, heights  # labels of a text's size, not blown up
        assert boxes["svg"]["width"] <= 640, boxes["svg"]  # not stretched across a wide panel
        clipped = [t for t in boxes["texts"] if outside(t, boxes["svg"])]
        assert not clipped, f"labels outside the chart at {size} width: {clipped}"
        names = {t["text"] for t in boxes["texts"]}
        assert {"base", "round 1"} <= names, names
        page.locator("#evaluation").screenshot(path=str(shot.__globals__["ARTIFACTS"] / f"29-evaluation-{size}.png"))
    finally:
        context.close()
