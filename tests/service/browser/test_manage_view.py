"""Managing a style in the browser (staged: no worker): deleting a style whose round runs cancels the round,
waits while it stops, deletes the style by itself and says so in the gallery."""

from __future__ import annotations

import pytest

from app.domain.models import Round
from app.infra.db import session_factory

from .chromium import DESKTOP, PHONE, shot
from .staging import running_style


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_cancel_and_delete_waits_for_the_round_then_deletes(staged, chromium, size):
    from playwright.sync_api import expect

    style_id, round_id = running_style(staged, step=4)
    context = chromium.new_context(viewport=DESKTOP) if size == "desktop" else chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{staged.url}/styles/{style_id}/delete")
        page.get_by_role("button", name="Cancel round 1 and delete the style").click()
        expect(page.locator("#delete-wait")).to_contain_text("Round 1 is stopping")
        shot(page, f"36-delete-stopping-{size}")
        with session_factory(staged.settings)() as session:  # the worker reads the cancel flag and stops
            rnd = session.get(Round, round_id)
            assert rnd.cancel_requested
            rnd.status = "cancelled"
            session.commit()
        page.wait_for_url(f"{staged.url}/?notice=deleted", timeout=20_000)
        expect(page.locator("#gallery-notice")).to_contain_text("The style is deleted")
        expect(page.locator(f"#style-card-{style_id}")).to_have_count(0)
        shot(page, f"37-deleted-{size}")
    finally:
        context.close()
