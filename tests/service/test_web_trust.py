"""The web tier against attacks, each as a client would try it: a chunked body past the upload limit before
log-in, pages without security headers, password guessing at full speed, a password of spaces. Real
uvicorn for the streamed body, the real app everywhere else."""

from __future__ import annotations

import re
import select
import socket

import pytest
from fastapi.testclient import TestClient

from app.domain.models import User
from app.infra.db import session_factory
from app.infra.migrate import upgrade
from app.main import create_app

from .conftest import ROOT, StubDispatcher, csrf_token, make_settings

PASSWORD = "correct horse battery"
MB = 1024 * 1024


# ---- the body limit while streaming ---------------------------------------------------------------------------

def test_a_chunked_300_mb_body_to_login_is_cut_off_at_the_limit(tmp_path):
    """The limit read only Content-Length: 300 MB chunked to /login, not logged in, was written to disk in
    full, then refused with 403. Now the server answers 413 once the body passes the limit and stops
    reading: we could push only a little more than the limit (socket buffers) before the answer came."""
    from bench.rating_load import start

    limit = 2 * MB
    fixture = start(1, 1, tmp_path, auth="accounts", env={"STYLEDROP_MAX_UPLOAD_BYTES": str(limit)})
    sent, answer = 0, b""
    try:
        with socket.create_connection(("127.0.0.1", fixture.port), timeout=60) as sock:
            boundary = "x" * 20
            sock.sendall((f"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                          f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())
            head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                    f"Content-Type: image/png\r\n\r\n").encode()
            chunk = b"\0" * (256 * 1024)
            pieces = [head] + [chunk] * (300 * 4)  # 300 MB
            for piece in pieces:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                try:
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(piece)
            sock.settimeout(60)
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
    finally:
        fixture.stop()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 300 * MB and sent < limit + 32 * MB, sent  # cut off near the limit, not read to the end


def test_a_declared_length_over_the_limit_is_413_before_the_body(stub_app):
    big = b"\0" * (stub_app.settings.max_upload_bytes + 2 * MB)
    response = stub_app.post("/api/v1/styles", content=big, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


# ---- security headers -------------------------------------------------------------------------------------------

@pytest.fixture
def team(tmp_path):
    settings = make_settings(tmp_path / "data", auth="accounts")
    upgrade(settings)
    app = create_app(settings, StubDispatcher())

    def browser() -> TestClient:
        return TestClient(app)

    browser.settings = settings
    return browser


@pytest.mark.parametrize("path", ["/login", "/signup", "/", "/api/v1/health", "/static/app.css", "/nowhere"])
def test_every_response_carries_the_security_headers(team, path):
    response = team().get(path, follow_redirects=False)
    csp = response.headers["content-security-policy"]
    policies = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert "'unsafe-inline'" not in policies["script-src"] and "'unsafe-eval'" not in policies["script-src"]
    assert policies["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"


def test_templates_hold_no_inline_script():
    """The CSP allows scripts from our own files only: an inline <script> or on* handler would not run."""
    for template in (ROOT / "templates").glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"{template.name}: inline script {tag}"
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", text), f"{template.name}: a script with a body"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{template.name}: an inline event handler"
        assert "javascript:" not in text and "hx-on" not in text


# ---- passwords ----------------------------------------------------------------------------------------------------

def sign_up(client, name: str, password: str = PASSWORD):
    token = csrf_token(client.get("/signup").text)
    return client.post("/signup", data={"name": name, "password": password, "confirm": password,
                                        "csrf_token": token}, follow_redirects=False)


def log_in(client, name: str, password: str):
    token = csrf_token(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token},
                       follow_redirects=False)


@pytest.mark.parametrize("password", [" " * 10, "\t" * 12, " \n " * 5])
def test_a_password_of_spaces_is_refused(team, password):
    response = sign_up(team(), "ann", password)
    assert response.status_code == 400 and "blank or only spaces" in response.text
    with session_factory(team.settings)() as session:
        assert session.query(User).count() == 0


def test_forty_one_wrong_passwords_are_throttled_with_retry_after(team):
    """40 wrong passwords, then the right one, were all answered at full speed. Now after the first ten
    wrong ones each attempt on the account waits (429, Retry-After), the right password included."""
    assert sign_up(team(), "ann").status_code == 303
    attacker = team()
    statuses = [log_in(attacker, "ann", f"guess number {i}").status_code for i in range(41)]
    assert statuses[:10] == [400] * 10
    assert set(statuses[10:]) == {429}
    refused = log_in(attacker, "ANN ", PASSWORD)  # the same account, however the name is written
    assert refused.status_code == 429 and "Too many wrong passwords" in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= team.settings.login_max_wait_seconds
    assert log_in(team(), "bob", "not bob's password").status_code == 400  # other accounts are not locked


def test_every_web_process_counts_the_same_wrong_passwords(tmp_path, db):
    """Two apps on one database, as two web processes behind a balancer: guesses spread over both are counted
    together (each counted its own before, so N processes gave N times the guesses), and a restarted process
    still remembers them. The counts live in the database (app/security/throttle.py), SQLite or PostgreSQL."""
    with db.fresh() as url:
        settings = make_settings(tmp_path / "data", auth="accounts", database_url=url)
        upgrade(settings)
        first, second = (TestClient(create_app(settings, StubDispatcher())) for _ in range(2))
        assert sign_up(first, "ann").status_code == 303
        statuses = [log_in(first if i % 2 else second, "ann", f"guess {i}").status_code for i in range(12)]
        assert statuses[:10] == [400] * 10 and set(statuses[10:]) == {429}
        restarted = TestClient(create_app(settings, StubDispatcher()))
        refused = log_in(restarted, "ann", PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_one_address_guessing_many_accounts_is_throttled(tmp_path):
    settings = make_settings(tmp_path / "data", auth="accounts", login_free_attempts_per_address=5)
    upgrade(settings)
    client = TestClient(create_app(settings, StubDispatcher()))
    statuses = [log_in(client, f"user{i}", "wrong password").status_code for i in range(8)]
    assert statuses[:5] == [400] * 5 and set(statuses[5:]) == {429}
