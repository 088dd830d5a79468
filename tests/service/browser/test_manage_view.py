"""Managing a style in the browser (staged: no worker): deleting a style whose round runs takes one click, and
the gallery says so."""

from __future__ import annotations

import pytest

from app.domain.models import Round
from app.infra.db import session_factory

from .chromium import DESKTOP, PHONE, shot
from .staging import running_style


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_style_whose_round_runs_is_deleted_in_one_click(staged, chromium, size):
    from playwright.sync_api import expect

    style_id, round_id = running_style(staged, step=4)
    context = chromium.new_context(viewport=DESKTOP) if size == "desktop" else chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{staged.url}/styles/{style_id}/delete")
        expect(page.locator("main")).to_contain_text("deleting the style stops it too")
        shot(page, f"36-delete-running-{size}")
        page.get_by_role("button", name="Delete the style for good").click()
        page.wait_for_url(f"{staged.url}/?notice=deleted", timeout=20_000)
        expect(page.locator("#gallery-notice")).to_contain_text("The style is deleted")
        expect(page.locator(f"#style-card-{style_id}")).to_have_count(0)
        with session_factory(staged.settings)() as session:
            assert session.get(Round, round_id) is None
        shot(page, f"37-deleted-{size}")
    finally:
        context.close()
