"""The new-style page's "Try an example" in the browser (staged server, nothing is trained): choosing an example
fills the fields and shows its picture; the style is made from the example's file, with no upload; choosing a
world base model swaps the examples for the world's and shows its build panel."""

from __future__ import annotations

import io
import re

from PIL import Image

from ..conftest import ROOT
from .chromium import DESKTOP, shot, watch_errors


def test_choosing_an_example_fills_the_form_and_makes_the_style_from_it(staged, chromium):
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(f"{staged.url}/styles/new")
        page.get_by_alt_text("flat cartoon illustration: a house").click()  # the picture is the choice
        expect(page.locator('input[name="example"][value="house"]')).to_be_checked()
        expect(page.locator("#content")).to_have_value("a house")
        expect(page.locator("#descriptor")).to_have_value("flat cartoon illustration")
        expect(page.locator("#name")).to_have_value("Flat cartoon illustration")
        expect(page.locator("#preview")).to_be_visible()
        assert page.locator("#preview").evaluate("img => img.naturalWidth") == Image.open(
            ROOT / "examples" / "house.png").width
        shot(page, "40-new-style-example-chosen")

        # a world base model: its held-out styles to choose from (htmx), and its build panel above the form
        page.locator("#base_model").select_option("shapes")
        dusk = page.get_by_alt_text("dusk striped on black: a house")
        expect(dusk).to_be_visible()
        expect(page.get_by_alt_text("flat cartoon illustration: a house")).to_have_count(0)
        expect(page.locator("#world-build")).to_be_visible()
        expect(page.locator('input[name="example"][value=""]')).to_be_checked()  # the house is no longer chosen
        expect(page.locator("#preview")).to_be_hidden()
        dusk.click()
        expect(page.locator("#descriptor")).to_have_value("dusk striped on black")
        expect(page.locator("#preview")).to_be_visible()
        shot(page, "41-new-style-world-examples")

        # back to tiny, the house again, and the style is made from the example's file (no upload)
        page.locator("#base_model").select_option("tiny")
        page.get_by_alt_text("flat cartoon illustration: a house").click()
        page.get_by_role("button", name="Create style and start round 1").click()
        expect(page).to_have_url(re.compile(r"/styles/\d+"))
        style_id = int(page.url.split("/styles/")[1].split("?")[0].split("#")[0])
        style = staged.get(f"/api/v1/styles/{style_id}").json()
        assert (style["name"], style["descriptor"], style["content"]) == ("Flat cartoon illustration",
                                                                          "flat cartoon illustration", "a house")
        stored = Image.open(io.BytesIO(staged.get(f"/api/v1/styles/{style_id}/reference").content))
        assert stored.size == Image.open(ROOT / "examples" / "house.png").size
        assert not errors, errors
    finally:
        context.close()
