"""What every page shares: static files served from here (no CDN, no inline script), HTML errors for page URLs and JSON
for the API, the offline API docs.

FastAPI's TestClient, no worker, no browser: rounds are brought to "running" or "succeeded" by
writing the database as the worker would (tests/service/factories.py)."""

from __future__ import annotations

import re

from ..factories import finish_round
from .helpers import ROOT, create_style, latest_round


def test_static_files_scripts_and_no_cdn(stub_app):
    script = stub_app.get("/static/grid.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for needle in ('"ArrowRight"', '"ArrowLeft"', '"j"', '"k"', '"u"', '"+"', '"d"', '"-"', '"s"', '" "',
                   "htmx:afterSwap", "localStorage", "showModal"):
        assert needle in script.text, needle
    htmx = stub_app.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and htmx.text.startswith("/*! htmx.org 2.") and "0BSD" in htmx.text[:200]
    assert stub_app.get("/static/htmx.LICENSE").status_code == 200
    assert stub_app.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert stub_app.get("/static/upload.js").status_code == 200
    assert stub_app.get("/static/../app/main.py").status_code == 404
    assert stub_app.get("/static/nope.js").status_code == 404
    style_id = create_style(stub_app)
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    for url in ("/", "/styles/new", f"/styles/{style_id}", f"/styles/{style_id}/playground",
                f"/styles/{style_id}/compare", "/jobs", f"/styles/{style_id}/edit"):
        page = stub_app.get(url).text
        assert not re.search(r'(src|href)="(https?:)?//', page), url  # everything is served from here
        assert '<script src="/static/htmx.min.js' in page
    for path in list((ROOT / "templates").iterdir()) + list((ROOT / "static").glob("*.js")):
        if path.name != "htmx.min.js":
            assert not re.search(r"(src|href)=[\"']?(https?:)?//", path.read_text()), path


def test_unknown_ids_answer_404_pages(stub_app):
    for url in ("/styles/999", "/styles/999/playground", "/rounds/999/panel", "/generations/999/panel"):
        response = stub_app.get(url)
        assert response.status_code == 404 and "does not exist" in response.text
        assert response.headers["content-type"].startswith("text/html")


def test_page_urls_get_html_errors_and_api_urls_json(stub_app):
    for url, status in (("/styles/abc", 422), ("/no/such/page", 404), ("/rounds/abc/panel", 422)):
        response = stub_app.get(url)
        assert response.status_code == status and response.headers["content-type"].startswith("text/html"), url
        assert "<h1>" in response.text
    for url, status in (("/api/v1/styles/abc", 422), ("/api/v1/no/such/thing", 404)):
        response = stub_app.get(url)
        assert response.status_code == status and isinstance(response.json()["detail"], str), url


def test_api_docs_are_served_offline(stub_app):
    page = stub_app.get("/docs")
    assert page.status_code == 200 and '<div id="swagger-ui">' in page.text
    assert "cdn" not in page.text.lower() and "<script>" not in page.text  # local files, no inline script
    for path in re.findall(r'(?:src|href)="(/static/[^"?]+)', page.text):
        assert stub_app.get(path).status_code == 200, path
    assert "Apache License" in stub_app.get("/static/swagger-ui/swagger-ui.LICENSE").text
    assert stub_app.get("/redoc").status_code == 404
