"""Rating a full round-1 pool (16 prompts x 4) in the browser, staged (no worker): the grid flows across the
width with each image's prompt on it, one key per image; CLIP's picks and the shortcut help answer where the
eye is; the enlarged view closes on its backdrop and rates on a phone without scrolling; a skip link reaches
the grid; the sort order is remembered."""

from __future__ import annotations

import re

from .chromium import DESKTOP, PHONE, shot, watch_errors
from .staging import CONTENTS, PER_PROMPT, finished_style, header_bottom, in_viewport, rect

TOPS = "els => els.map(el => Math.round(el.getBoundingClientRect().top + window.scrollY))"


def test_the_grid_flows_several_prompts_per_row_with_one_key_per_image(staged, chromium):
    from playwright.sync_api import expect

    style_id, round_id, ids = finished_style(staged)
    page = chromium.new_page(viewport=DESKTOP)
    errors = watch_errors(page)
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        cards = page.locator(f"#grid-{round_id} .card")
        expect(cards).to_have_count(len(ids))
        tops = cards.evaluate_all(TOPS)
        per_row = tops.count(tops[0])
        assert per_row >= 5, f"{per_row} images in the first row at 1440 px"
        assert len(set(tops)) <= -(-len(ids) // 5), f"{len(set(tops))} rows for {len(ids)} images"
        first_row = cards.evaluate_all("els => els.map(el => el.dataset.content)")[:per_row]
        assert len(set(first_row)) >= 2, first_row  # prompts share a row
        expect(cards.locator(".card-prompt")).to_have_count(len(ids))  # each image says its prompt
        expect(cards.nth(PER_PROMPT).locator(".card-prompt")).to_have_text(CONTENTS[1])
        used = page.locator(f"#grid-{round_id} .cards").evaluate(
            "el => { const r = el.getBoundingClientRect(); const cs = [...el.querySelectorAll('.card')]; "
            "return Math.max(...cs.map(c => c.getBoundingClientRect().right)) - r.left; }")
        assert used >= 0.9 * rect(page.locator(f"#grid-{round_id} .cards"))["width"], used
        shot(page, "22-grid-desktop")

        # one key per image, across prompts: j j j j goes from the first prompt's images into the second's
        cards.nth(0).focus()
        for _ in range(PER_PROMPT):
            page.keyboard.press("j")
        expect(cards.nth(PER_PROMPT)).to_be_focused()
        page.keyboard.press("u")  # thumbs up, and on to the next image
        expect(cards.nth(PER_PROMPT + 1)).to_be_focused()
        expect(cards.nth(PER_PROMPT).locator('[data-action="up"]')).to_have_attribute("aria-pressed", "true")
        page.keyboard.press("ArrowDown")  # the image below, in the next row
        expect(cards.nth(PER_PROMPT + 1 + per_row)).to_be_focused()
        assert not errors, errors
    finally:
        page.close()


def test_clips_picks_and_the_shortcut_help_answer_where_the_eye_is(staged, chromium):
    from playwright.sync_api import expect

    style_id, round_id, ids = finished_style(staged)
    page = chromium.new_page(viewport=DESKTOP)
    errors = watch_errors(page)
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        notice = page.locator(f"#grid-{round_id} .grid-notice")

        def assert_seen(locator, what: str) -> None:
            expect(locator).to_be_visible()
            box = rect(locator)
            assert in_viewport(page, box, below=header_bottom(page)), f"{what} is off-screen: {box}"

        # from the top of the page
        page.get_by_role("button", name="Add CLIP's picks").click()
        expect(notice).to_contain_text(re.compile(r"CLIP added \d+ picks"))
        assert_seen(notice, "the notice, clicked from the top")
        assert_seen(notice.get_by_role("button", name="Undo"), "Undo")
        shot(page, "23-clip-notice-top", full_page=False)
        notice.get_by_role("button", name="Undo").click()
        expect(notice).to_contain_text("Undone")
        assert_seen(notice, "the Undo notice")

        # from the middle of the grid
        page.locator(f"#cand-{ids[len(ids) // 2]}").scroll_into_view_if_needed()
        page.mouse.wheel(0, 300)
        page.get_by_role("button", name="Add CLIP's picks").click()
        expect(notice).to_contain_text(re.compile(r"CLIP added \d+ picks"))
        assert_seen(notice, "the notice, clicked mid-grid")
        shot(page, "24-clip-notice-mid-grid", full_page=False)

        # the shortcut help, asked for mid-grid
        page.locator(f"#cand-{ids[len(ids) // 2]}").focus()
        page.keyboard.press("?")
        help_box = page.locator("#shortcuts")
        assert_seen(help_box, "the shortcut help")
        shot(page, "25-shortcuts-mid-grid", full_page=False)
        page.keyboard.press("?")
        expect(help_box).to_be_hidden()
        assert not errors, errors
    finally:
        page.close()


def test_the_enlarged_view_closes_on_its_backdrop(staged, chromium):
    from playwright.sync_api import expect

    style_id, round_id, ids = finished_style(staged)
    page = chromium.new_page(viewport=DESKTOP)
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        page.locator(f"#cand-{ids[5]} .thumb-img").click()
        viewer = page.locator("#viewer")
        expect(viewer).to_be_visible()
        shot(page, "26-enlarged-desktop", full_page=False)
        box = rect(viewer)
        page.mouse.click(box["left"] + 10, box["top"] + 10)  # inside the view: stays open
        expect(viewer).to_be_visible()
        page.mouse.click(8, DESKTOP["height"] - 8)  # the backdrop
        expect(viewer).to_be_hidden()
        expect(page.locator(f"#cand-{ids[5]}")).to_be_focused()
    finally:
        page.close()


def test_a_phone_rates_in_the_enlarged_view_without_scrolling(staged, chromium):
    from playwright.sync_api import expect

    style_id, round_id, ids = finished_style(staged)
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        page.locator(f"#cand-{ids[0]} .thumb-img").tap()
        viewer = page.locator("#viewer")
        expect(viewer).to_be_visible()
        for action in ("prev", "up", "down", "select", "next", "close"):
            button = viewer.locator(f'[data-viewer="{action}"]')
            assert in_viewport(page, rect(button)), f"{action} is below the fold: {rect(button)}"
            assert rect(button)["height"] >= 44, action  # a touch target
        image = rect(page.locator("#viewer-img"))
        assert image["height"] >= 300 and in_viewport(page, image), image
        shot(page, "27-enlarged-phone", full_page=False)
        viewer.locator('[data-viewer="up"]').tap()
        expect(viewer.locator("#viewer-title")).to_have_text(f"Image 2 of {len(ids)}")
        expect(page.locator(f"#cand-{ids[0]} [data-action='up']")).to_have_attribute("aria-pressed", "true")
        viewer.locator('[data-viewer="close"]').tap()
        expect(viewer).to_be_hidden()

        # mid-grid, what stays on screen (the header, the selection bar) leaves the images most of it
        page.locator(f"#cand-{ids[len(ids) // 2]}").scroll_into_view_if_needed()
        bar = page.locator(f"#selbar-{round_id}").evaluate(
            "el => { const r = el.getBoundingClientRect(); return Math.max(0, Math.min(r.bottom, innerHeight)"
            " - Math.max(r.top, 0)); }")
        chrome = header_bottom(page) + bar
        assert bar <= 72, f"the selection bar is {bar} px tall: more than one row"
        assert chrome <= 80, f"header and selection bar take {chrome} of {PHONE['viewport']['height']} px"
        shot(page, "28-grid-phone", full_page=False)
    finally:
        context.close()


def test_a_skip_link_reaches_the_grid_and_the_sort_is_remembered(staged, chromium):
    from playwright.sync_api import expect

    style_id, round_id, ids = finished_style(staged)
    page = chromium.new_page(viewport=DESKTOP)
    try:
        page.goto(f"{staged.url}/styles/{style_id}")
        for presses, key in enumerate(("Tab", "Tab", "Enter"), start=1):
            page.keyboard.press(key)
            if page.evaluate("document.activeElement.classList.contains('card')"):
                break
        assert page.evaluate("document.activeElement.classList.contains('card')"), \
            f"no image has the focus after {presses} keys: {page.evaluate('document.activeElement.outerHTML')[:200]}"
        page.keyboard.press("u")  # and rating starts at once
        expect(page.locator(f"#cand-{ids[0]} [data-action='up']")).to_have_attribute("aria-pressed", "true")

        page.get_by_role("link", name="CLIP style score").click()
        expect(page.get_by_role("link", name="CLIP style score")).to_have_attribute("aria-current", "true")
        page.goto(f"{staged.url}/styles/{style_id}")  # no ?sort=: the last one chosen
        expect(page.get_by_role("link", name="CLIP style score")).to_have_attribute("aria-current", "true")
        page.goto(f"{staged.url}/styles/{style_id}?sort=prompt")
        expect(page.get_by_role("link", name="Prompt", exact=True)).to_have_attribute("aria-current", "true")
    finally:
        page.close()
