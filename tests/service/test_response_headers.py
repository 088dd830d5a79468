"""Issue 29, findings 6 and 7, the headers: every response carries the security headers, 500s included; the
API docs (and any path under /docs or /redoc, a 404 included) get the same script policy as the pages; pages
and JSON made for one user are never stored by caches; errors say nothing of what a host resolves to."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.infra.migrate import upgrade
from app.main import create_app

from .conftest import StubDispatcher, make_settings
from .test_api import API, create_style


def _policies(response) -> dict[str, str]:
    csp = response.headers["content-security-policy"]
    return dict(part.strip().split(" ", 1) for part in csp.split(";"))


@pytest.mark.parametrize("path", ["/docs", "/docs/", "/docsx", "/docs/oauth2-redirect", "/redoc", "/redocx",
                                  "/docs/../static/docs.js"])
def test_docs_paths_get_a_script_policy(stub_app, path):
    """/docs* and /redoc* (404s like /docsx included) were sent a CSP without script-src: an injected script
    on any of them would have run."""
    response = stub_app.get(path, follow_redirects=False)
    policies = _policies(response)
    assert policies["script-src"] == "'self'" and policies["object-src"] == "'none'", (path, policies)
    assert policies["frame-ancestors"] == "'none'" and response.headers["x-frame-options"] == "DENY"


def test_an_unhandled_error_is_a_500_with_the_security_headers_and_no_details(tmp_path):
    """A 500 came from Starlette's outermost error handler, outside our middleware: no security headers. Now
    the headers middleware answers it, for the API (JSON) and the pages (HTML), without the exception's words."""
    settings = make_settings(tmp_path / "data")
    upgrade(settings)
    app = create_app(settings, StubDispatcher())

    def boom() -> None:
        raise RuntimeError(f"secret detail at {tmp_path}/db")

    app.add_api_route(f"{API}/boom", boom)
    app.add_api_route("/boom", boom)
    client = TestClient(app, raise_server_exceptions=False)
    for path, media in ((f"{API}/boom", "application/json"), ("/boom", "text/html")):
        response = client.get(path)
        assert response.status_code == 500 and response.headers["content-type"].startswith(media), path
        assert _policies(response)["script-src"] == "'self'"
        assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "secret detail" not in response.text and str(tmp_path) not in response.text
        assert "went wrong on the server" in response.text
    with pytest.raises(RuntimeError):  # still raised on: servers log it, tests see it
        TestClient(app).get(f"{API}/boom")


def test_every_error_carries_the_security_headers(stub_app):
    too_big = b"\0" * (stub_app.settings.max_upload_bytes + 2 * 1024 * 1024)
    answers = [stub_app.post(f"{API}/styles", content=too_big, headers={"Content-Type": "application/octet-stream"}),
               stub_app.get(f"{API}/styles/999"), stub_app.get("/styles/999"), stub_app.get(f"{API}/styles/abc"),
               stub_app.delete(f"{API}/health"), stub_app.post(f"{API}/styles", data={"content": "x"}),
               stub_app.get(f"{API}/styles", headers={"Authorization": "Basic x"})]
    assert [a.status_code for a in answers] == [413, 404, 404, 422, 405, 422, 401]
    for answer in answers:
        assert _policies(answer)["script-src"] == "'self'", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_secrets_and_settings_are_never_stored_by_caches(stub_app):
    """/webhooks/secret (GET and POST) and /settings (the webhook secret, API tokens) had no Cache-Control: a
    shared or back-button cache could keep them. Pages and JSON are no-store unless they say otherwise; static
    files keep their own policy."""
    for response in (stub_app.get(f"{API}/webhooks/secret"), stub_app.post(f"{API}/webhooks/secret"),
                     stub_app.get("/settings"), stub_app.get(f"{API}/styles"), stub_app.get("/")):
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store", response.request.url
    assert "no-store" not in stub_app.get("/static/app.css").headers["cache-control"]


def test_a_refused_callback_url_does_not_say_what_its_host_resolves_to(stub_app):
    """The 422 named the addresses a host resolved to ("resolves to ... (127.0.0.1, ::1)"): anyone could map
    the server's view of DNS with it. It says why, not what; the resolver's own error text is left out too."""
    style = create_style(stub_app)
    for url, words in [("http://localhost:9/hook", "private, loopback"), ("http://no-such-host.invalid/", "resolve"),
                       ("http://127.0.0.2/hook", "private, loopback")]:
        refused = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"callback_url": url})
        detail = refused.json()["detail"]
        assert refused.status_code == 422 and words in detail, (url, detail)
        for revealed in ("127.0.0.1", "::1", "Errno", "Name or service", "not known", "("):
            assert revealed not in detail, (url, detail)


def test_a_job_the_broker_refused_says_so_without_the_brokers_address(stub_app):
    """The 503 and the failed job's error carried the broker's own message: its host and port, or its socket's
    path on the server (redis+socket://...), and with compose what a name resolved to."""
    from app.domain.models import Evaluation, Generation, Round
    from app.infra.db import session_factory

    from .factories import finish_round

    leak = "Error 111 connecting to unix socket: /srv/secret/run/redis.sock (10.20.30.40:6379). Connection refused."

    class Unreachable:
        def train_round(self, round_id):
            raise ConnectionError(leak)

        generate = evaluate = train_round

    style = create_style(stub_app)
    finish_round(stub_app.settings, stub_app.post(f"{API}/styles/{style['id']}/rounds").json()["id"])
    fresh = create_style(stub_app)
    stub_app.app.state.dispatcher = lambda: Unreachable()
    answers = [stub_app.post(f"{API}/styles/{fresh['id']}/rounds", json={}),
               stub_app.post(f"{API}/styles/{style['id']}/generations", json={"prompts": ["a cat"]}),
               stub_app.post(f"{API}/styles/{style['id']}/evaluations", json={"limit": 1})]
    for answer in answers:
        assert answer.status_code == 503 and "not reachable" in answer.json()["detail"], answer.text
        assert "/srv" not in answer.text and "10.20" not in answer.text and "Error 111" not in answer.text
    with session_factory(stub_app.settings)() as session:
        errors = [row.error for model in (Round, Generation, Evaluation) for row in session.query(model)
                  if row.status == "failed"]
    assert len(errors) == 3 and not [e for e in errors if "/srv" in e or "10.20" in e], errors
