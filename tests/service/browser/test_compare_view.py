"""Rounds compared in the browser, staged (no worker): the evaluation chart inside its box with labels of a
readable size at desktop and phone width; the compare page a page a person can read: a prompt filter, pages of
rows, the reference beside each row and a compact mode."""

from __future__ import annotations

import pytest

from .chromium import ARTIFACTS, DESKTOP, PHONE, shot, watch_errors
from .staging import CONTENTS, PER_PROMPT, SVG_BOXES, compared_style, evaluated_style, outside


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
        page.locator("#evaluation").screenshot(path=str(ARTIFACTS / f"29-evaluation-{size}.png"))
    finally:
        context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_rounds_chart_keeps_every_label(staged, chromium, size):
    """Negative text scores 0.00002 apart (an untrained model's) need labels like "-0.116397": none is cut."""
    style_id = compared_style(staged, text_scores=(-0.116373, -0.116397))
    context = chromium.new_context(viewport=DESKTOP) if size == "desktop" else chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        chart = page.locator("#summary svg.chart")
        chart.scroll_into_view_if_needed()
        boxes = chart.evaluate(SVG_BOXES)
        assert "-0.116397" in {t["text"] for t in boxes["texts"]} or any(
            t["text"].startswith("-0.1163") for t in boxes["texts"]), boxes["texts"]
        clipped = [t for t in boxes["texts"] if outside(t, boxes["svg"])]
        assert not clipped, f"labels outside the chart at {size} width: {clipped}"
        page.locator("#summary").screenshot(path=str(ARTIFACTS / f"35-summary-{size}.png"))
    finally:
        context.close()


def test_the_compare_page_reads_by_prompt_by_page_and_compact(staged, chromium):
    from playwright.sync_api import expect

    style_id = compared_style(staged)
    page = chromium.new_page(viewport=DESKTOP)
    errors = watch_errors(page)
    try:
        page.goto(f"{staged.url}/styles/{style_id}/compare")
        rows = page.locator(".side-by-side tbody tr")
        expect(rows).to_have_count(12)
        expect(rows.first.locator(".ref-cell img")).to_be_visible()  # the reference beside the row
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height <= 5000, f"the compare page is {height} px tall"
        shot(page, "32-compare-desktop")
        page.get_by_label("Prompt").select_option(label=f"{CONTENTS[3]} ({PER_PROMPT})")
        page.get_by_role("button", name="Show").click()
        expect(rows).to_have_count(PER_PROMPT)
        expect(rows.locator("th")).to_contain_text([CONTENTS[3]] * PER_PROMPT)
        page.locator("#view-toggle").click()  # compact, keeping the prompt
        expect(page.locator(".side-by-side.compact")).to_have_count(1)
        expect(rows).to_have_count(PER_PROMPT)
        tall = rows.evaluate_all("els => Math.max(...els.map(el => el.getBoundingClientRect().height))")
        assert tall <= 130, tall
        page.goto(f"{staged.url}/styles/{style_id}/compare?view=compact")
        expect(rows).to_have_count(48)
        shot(page, "33-compare-compact-desktop")
        page.get_by_role("link", name="Next →").click()
        expect(rows).to_have_count(16)  # rows 49 to 64
        assert not errors, errors
    finally:
        page.close()
    phone = chromium.new_context(**PHONE)
    try:
        mobile = phone.new_page()
        mobile.goto(f"{staged.url}/styles/{style_id}/compare")
        width = mobile.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["viewport"]["width"], f"the page is {width}px wide on a 390px phone"
        table = mobile.locator(".table-scroll").evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert table[0] <= table[1] + 1, f"the rows scroll sideways on a phone: {table}"
        shot(mobile, "34-compare-phone")
    finally:
        phone.close()
