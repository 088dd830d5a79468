"""A running round as the browser draws it (staged: no worker): every progress bar measured in px, at desktop and
phone width, on the style page, the jobs page and the gallery card; progress text whole, not cut."""

from __future__ import annotations

import pytest

from .chromium import DESKTOP, PHONE, shot
from .staging import rect, running_style


def _bar_ratio(locator) -> tuple[float, float]:
    """(bar width in px, bar width / its track's width) of a progress element."""
    return locator.evaluate("""el => {
        const bar = el.querySelector('.bar');
        const track = el.getBoundingClientRect().width, width = bar.getBoundingClientRect().width;
        return [width, track ? width / track : 0];
    }""")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_progress_bar_draws_its_share_in_px(staged, chromium, size):
    from playwright.sync_api import expect

    style_id, round_id = running_style(staged, step=4)  # training, step 4 of 10
    context = chromium.new_context(viewport=DESKTOP) if size == "desktop" else chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        training = page.locator('.phase[data-phase="training"] .progress')
        expect(training).to_have_attribute("aria-valuenow", "40")
        width, ratio = _bar_ratio(training)
        assert width > 10 and abs(ratio - 0.4) < 0.03, (width, ratio)  # 40% of its track, in px
        width, ratio = _bar_ratio(page.locator('.phase[data-phase="candidates"] .progress'))
        assert width == 0, width  # drawing has not begun
        width, _ = _bar_ratio(page.locator(f"#round-{round_id} .progress-block > .progress"))
        assert width > 0, width  # the whole round's bar
        shot(page, f"20-round-running-{size}")

        page.goto(f"{staged.url}/jobs")
        width, ratio = _bar_ratio(page.locator(f"#job-round-{round_id} .progress"))
        assert width > 0 and 0 < ratio < 1, (width, ratio)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= page.viewport_size["width"], wide  # the table scrolls in its box, the page does not
        shot(page, f"21-jobs-{size}")

        page.goto(f"{staged.url}/")
        width, ratio = _bar_ratio(page.locator(f"#style-card-{style_id} .progress"))
        assert width > 0 and 0 < ratio < 1, (width, ratio)
    finally:
        context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_progress_text_is_whole_at_every_width(staged, chromium, size):
    """"training 1 min 15 s + drawing 64 images" and "step 4 of 10" are read in full, never cut with an ellipsis."""
    from playwright.sync_api import expect

    style_id, round_id = running_style(staged, step=4)
    context = chromium.new_context(viewport=DESKTOP) if size == "desktop" else chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        expect(page.locator(f"#round-{round_id} .eta")).to_contain_text("drawing 64 images")
        texts = page.locator(f"#round-{round_id} .phase-detail, #round-{round_id} .stats dd")
        cut = texts.evaluate_all("els => els.filter(el => el.scrollWidth > el.clientWidth + 1)"
                                 ".map(el => el.textContent.trim())")
        assert not cut, f"cut at {size} width: {cut}"
        box = rect(page.locator(f"#round-{round_id} .eta"))
        assert box["right"] <= page.viewport_size["width"], box
    finally:
        context.close()
