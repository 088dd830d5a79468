"""Headless Debian Chromium driven by Playwright (never `playwright install`): where it is, how it starts, and
the screenshots the browser tests leave in test-artifacts/pages/ (git ignores it) for a person to look at.
Without /usr/bin/chromium the browser tests fail under CI=true and are skipped elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "pages"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def require_browser() -> None:
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is missing (install it with scripts/system-deps: apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"The browser test cannot run: {missing}.")
        pytest.skip(f"browser test skipped locally: {missing}")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def shot(page, name: str, full_page: bool = True) -> None:
    """A screenshot for a person to look at (test-artifacts/pages/NAME.png), from the top of the page (the sticky
    header stays on top of a full-page picture)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def watch_errors(page) -> list[str]:
    """Script errors and anything the Content-Security-Policy blocked, as the page runs."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return errors
