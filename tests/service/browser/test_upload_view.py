"""The new-style form's upload in the browser (staged server, nothing is trained): a chosen file is checked by
its content at once, not at submit; every chosen file is shown by name; too many are refused at once."""

from __future__ import annotations

import io

import pytest

from ..conftest import reference_image
from .chromium import DESKTOP, PHONE, shot, watch_errors


def _png(name: str, size: int = 64) -> dict:
    buffer = io.BytesIO()
    reference_image(size).save(buffer, "PNG")
    return {"name": name, "mimeType": "image/png", "buffer": buffer.getvalue()}


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_upload_says_what_is_wrong_before_submit_and_shows_every_file(staged, chromium, size):
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=DESKTOP) if size == "desktop" else chromium.new_context(**PHONE)
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(f"{staged.url}/styles/new")
        field = page.get_by_label("Reference image")
        # a text file renamed .png: the browser calls it image/png; its bytes say otherwise
        field.set_input_files([{"name": "notes.png", "mimeType": "image/png", "buffer": b"shopping list: eggs\n"}])
        error = page.locator("#image-client-error")
        expect(error).to_contain_text("notes.png is not a PNG, JPEG or WebP image")
        expect(page.locator("#preview")).to_be_hidden()  # no broken picture
        expect(page.locator("#dropzone")).to_have_class("dropzone invalid")
        page.get_by_role("button", name="Create style and start round 1").click()  # refused here, nothing sent
        expect(page).to_have_url(f"{staged.url}/styles/new")
        expect(error).to_be_focused()

        # five pictures for a style that takes four: all five named, and the limit said
        field.set_input_files([_png(f"painting-{i}.png") for i in range(1, 6)])
        chosen = page.locator("#chosen-files li")
        expect(chosen).to_have_count(5)
        expect(chosen).to_have_text([f"painting-{i}.png" for i in range(1, 6)], use_inner_text=True)
        expect(error).to_contain_text("5 images chosen; a style takes at most 4")
        shot(page, f"30-upload-too-many-{size}")

        # two good ones: both named, the first previewed, no error
        field.set_input_files([_png("painting-1.png"), _png("painting-2.png", 96)])
        expect(chosen).to_have_count(2)
        expect(error).to_have_count(0)
        expect(page.locator("#preview")).to_be_visible()
        assert page.locator("#preview").evaluate("img => img.naturalWidth") == 64
        expect(page.locator("#drop-hint")).to_contain_text("2 images")
        shot(page, f"31-upload-two-{size}")
        assert not errors, errors
    finally:
        context.close()
