"""Accounts and the API docs in a real browser: sign up, log in and out, API tokens made and revoked on the
settings page; Swagger UI drawn from static/ with no network at all. And the browser tests' own rule: no
Chromium fails under CI and skips elsewhere."""

from __future__ import annotations

import pytest

from . import chromium


def test_a_missing_browser_fails_under_ci_and_skips_locally(monkeypatch):
    monkeypatch.setattr(chromium, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="scripts/system-deps"):
        chromium.require_browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="skipped locally"):
        chromium.require_browser()


def test_sign_up_tokens_and_log_out_in_the_browser(served_accounts):
    """A team server: the pages send a visitor to log in, sign-up logs in, the settings page makes an API
    token that works and revokes it, and log-out ends the session."""
    from playwright.sync_api import expect, sync_playwright

    base = served_accounts
    chromium.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = chromium.launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        blocked: list[str] = []  # the Content-Security-Policy must not block anything of ours
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        try:
            page.goto(base + "/styles/new")
            expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
            page.get_by_role("link", name="Create an account").click()
            page.get_by_label("Name").fill("alice")
            page.get_by_label("Password", exact=True).fill("short")
            page.get_by_label("Password again").fill("short")
            page.get_by_role("button", name="Create account").click()
            expect(page.locator("#password-error")).to_contain_text("at least 10")
            page.get_by_label("Password", exact=True).fill("correct horse battery")
            page.get_by_label("Password again").fill("correct horse battery")
            page.get_by_role("button", name="Create account").click()
            expect(page.get_by_role("heading", name="Styles", exact=True)).to_be_visible()
            cookie = next(c for c in page.context.cookies() if c["name"] == "styledrop_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

            page.get_by_role("link", name="alice").click()
            page.get_by_label("New token's name").fill("my script")
            page.get_by_role("button", name="Create token").click()
            token = page.locator("#new-token-value").inner_text()
            page.screenshot(path=str(chromium.ARTIFACTS / "11-settings-token.png"), full_page=True)
            outside = p.request.new_context()  # a program: the token, no cookie
            assert outside.get(base + "/api/v1/styles", headers={"Authorization": f"Bearer {token}"}).ok
            page.get_by_role("button", name="Revoke token my script").click()
            expect(page.locator("#no-tokens")).to_be_visible()
            assert outside.get(base + "/api/v1/styles", headers={"Authorization": f"Bearer {token}"}).status == 401

            page.get_by_role("button", name="Log out").click()
            expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
            page.goto(base + "/settings")
            expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
            page.get_by_label("Name").fill("alice")
            page.get_by_label("Password").fill("correct horse battery")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()  # back where it was
            assert not blocked, blocked
        except Exception:
            page.screenshot(path=str(chromium.ARTIFACTS / "accounts-failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def test_api_docs_render_offline_in_the_browser(served_accounts):
    """Swagger UI from static/ draws the API's operations with no network at all (Chromium is offline)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = chromium.launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append("console: " + msg.text) if msg.type == "error" else None)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served_accounts)
                   else route.abort())  # nothing from outside: a CDN would fail here
        try:
            page.goto(served_accounts + "/docs")
            try:
                expect(page.locator(".swagger-ui .info .title")).to_contain_text("StyleDrop Studio", timeout=20_000)
            except AssertionError:
                page.screenshot(path=str(chromium.ARTIFACTS / "12-api-docs-failure.png"))
                raise AssertionError(f"Swagger UI did not draw the API: {errors} {page.content()[:3000]}") from None
            expect(page.locator(".opblock").first).to_be_visible()
            page.screenshot(path=str(chromium.ARTIFACTS / "12-api-docs.png"))
            assert not errors, errors
        finally:
            browser.close()
