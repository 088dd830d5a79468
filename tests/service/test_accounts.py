"""Accounts: sign-up and log-in with argon2 hashes, session cookies, CSRF on every form post, personal API
tokens made and revoked on the settings page, the admin's public read-only styles, and the embedded run's
automatic local user. Real SQLite, the real app, no mocks."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from sqlalchemy import select, update

from app.domain.models import ApiToken, Candidate, Round, Style, User, WebSession
from app.infra.db import session_factory

from .conftest import ROOT, StubDispatcher, csrf_token, make_settings, png_bytes
from .factories import finish_round

API = "/api/v1"
PASSWORD = "correct horse battery"


@pytest.fixture
def team(tmp_path):
    """The app as a team runs it: accounts on, people must log in."""
    from fastapi.testclient import TestClient

    from app.infra.migrate import upgrade
    from app.main import create_app

    settings = make_settings(tmp_path / "data", auth="accounts")
    upgrade(settings)
    app = create_app(settings, StubDispatcher())

    def browser(https: bool = False) -> TestClient:
        client = TestClient(app, base_url="https://testserver" if https else "http://testserver")
        client.settings = settings
        return client

    browser.settings = settings
    yield browser


def sign_up(client, name: str, password: str = PASSWORD):
    token = csrf_token(client.get("/signup").text)
    return client.post("/signup", data={"name": name, "password": password, "confirm": password,
                                        "csrf_token": token}, follow_redirects=False)


def log_in(client, name: str, password: str = PASSWORD, next: str = "/"):
    token = csrf_token(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token, "next": next},
                       follow_redirects=False)


def test_pages_ask_anonymous_visitors_to_log_in(team):
    client = team()
    home = client.get("/styles/new?x=1", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/login?next=%2Fstyles%2Fnew%3Fx%3D1"
    fragment = client.get("/rounds/1/panel", headers={"HX-Request": "true"}, follow_redirects=False)
    assert fragment.headers["HX-Redirect"].startswith("/login?next=")  # htmx loads the log-in page whole
    assert client.get(f"{API}/styles").status_code == 401
    page = client.get("/login")
    assert page.status_code == 200 and 'name="password"' in page.text and 'href="/signup"' in page.text


def test_sign_up_stores_an_argon2_hash_and_logs_in_with_a_fresh_secure_cookie(team):
    client = team(https=True)
    client.get("/signup")
    anonymous_cookie = client.cookies.get("styledrop_session")
    response = sign_up(client, "Alice")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" in cookie
    assert client.cookies.get("styledrop_session") != anonymous_cookie  # no session fixation
    with session_factory(team.settings)() as session:
        user = session.scalar(select(User).where(User.name == "alice"))  # names are case-insensitive
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
        stored = session.scalars(select(WebSession.token_hash)).all()
        assert client.cookies.get("styledrop_session") not in stored  # only hashes of cookies are kept
    home = client.get("/")
    assert home.status_code == 200 and "alice" in home.text and 'action="/logout"' in home.text
    plain = team()  # over http the cookie is not marked Secure
    assert "Secure" not in sign_up(plain, "bob").headers["set-cookie"]


def test_sign_up_errors_are_shown_next_to_the_fields(team):
    client = team()
    sign_up(client, "alice")
    cases = [({"name": "al"}, "name", "3 to 40"), ({"name": "ALICE"}, "name", "taken"),
             ({"name": "carol", "password": "short"}, "password", "at least 10"),
             ({"name": "carol", "confirm": "something else"}, "confirm", "differ")]
    for fields, field, message in cases:
        other = team()
        token = csrf_token(other.get("/signup").text)
        data = {"name": "x", "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token} | fields
        if "password" in fields and "confirm" not in fields:
            data["confirm"] = fields["password"]
        response = other.post("/signup", data=data)
        assert response.status_code == 400, fields
        assert f'id="{field}-error"' in response.text and message in response.text, fields
    with session_factory(team.settings)() as session:
        assert session.scalars(select(User.name)).all() == ["alice"]


def test_log_in_log_out_and_safe_redirects(team):
    sign_up(team(), "alice")
    client = team()
    wrong = log_in(client, "alice", "not the password at all")
    unknown = log_in(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong name or password." in wrong.text and "Wrong name or password." in unknown.text  # no hint
    assert log_in(client, "alice", next="//evil.example/x").headers["location"] == "/"
    assert log_in(team(), "alice", next="https://evil.example/").headers["location"] == "/"
    assert log_in(team(), "alice", next="/styles/new").headers["location"] == "/styles/new"
    assert client.get("/", follow_redirects=False).status_code == 200
    old_cookie = client.cookies.get("styledrop_session")
    token = csrf_token(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303
    replay = team()
    replay.cookies.set("styledrop_session", old_cookie)
    assert replay.get("/", follow_redirects=False).status_code == 303  # the logged-out session is gone


def test_every_form_post_needs_the_csrf_token(team):
    """Walk every page route that changes something: with the session cookie but without the token (as
    another site's form would send it) each answers 403 and changes nothing."""
    from app.pages import routers

    client = team()
    sign_up(client, "alice")
    good = csrf_token(client.get("/").text)
    walked = 0
    for route in (route for router in routers for route in router.routes):
        for method in sorted(route.methods - {"GET", "HEAD", "OPTIONS"}):
            url = re.sub(r"\{\w+\}", "1", route.path)
            for data in ({"name": "x", "value": "1"}, {"csrf_token": "forged", "name": "x"}):
                response = client.request(method, url, data=data, follow_redirects=False)
                assert response.status_code == 403, f"{method} {route.path}: {response.status_code}"
                assert "Reload the page" in response.text
            walked += 1
    assert walked >= 10
    assert client.get("/", follow_redirects=False).status_code == 200  # still logged in (logout refused)
    with session_factory(team.settings)() as session:
        assert session.query(ApiToken).count() == 0 and session.query(Style).count() == 0
    # the cookie alone cannot write through the API either; the page's token in the header can
    assert client.post(f"{API}/styles/1/rounds", json={}).status_code == 403
    assert client.post(f"{API}/styles/1/rounds", json={}, headers={"X-CSRF-Token": good}).status_code == 404


def test_api_tokens_are_made_shown_once_and_revoked_on_the_settings_page(team):
    client = team()
    sign_up(client, "alice")
    page = client.get("/settings")
    assert "No tokens yet" in page.text
    empty = client.post("/settings/tokens", data={"name": " ", "csrf_token": csrf_token(page.text)})
    assert empty.status_code == 400 and 'id="token-error"' in empty.text
    made = client.post("/settings/tokens", data={"name": "laptop", "csrf_token": csrf_token(page.text)})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    token = re.search(r'id="new-token-value">(sds_[\w-]+)<', made.text).group(1)
    with session_factory(team.settings)() as session:
        row = session.scalar(select(ApiToken))
        assert row.name == "laptop" and row.token_hash != token and len(row.token_hash) == 64
    program = team()  # no cookie: the token alone
    assert program.get(f"{API}/styles", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = client.get("/settings").text
    assert "laptop" in listed and token not in listed  # shown once
    revoke = re.search(r'action="(/settings/tokens/\d+/revoke)"', listed).group(1)
    assert client.post(revoke, data={"csrf_token": csrf_token(listed)}, follow_redirects=False).status_code == 303
    refused = program.get(f"{API}/styles", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert client.post(revoke, data={"csrf_token": csrf_token(listed)}).status_code == 404


def test_closed_sign_up_and_the_admin_user_command(tmp_path):
    from fastapi.testclient import TestClient

    from app.infra.migrate import upgrade
    from app.main import create_app

    settings = make_settings(tmp_path / "data", auth="accounts", signup="closed")
    upgrade(settings)
    client = TestClient(create_app(settings, StubDispatcher()))
    assert client.get("/signup").status_code == 404
    assert 'href="/signup"' not in client.get("/login").text
    env = {"STYLEDROP_DATA": str(settings.data_dir), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    made = subprocess.run([sys.executable, "-m", "app.admin", "user", "dana", "--password-stdin"], cwd=ROOT,
                          input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    weak = subprocess.run([sys.executable, "-m", "app.admin", "user", "erin", "--password-stdin"], cwd=ROOT,
                          input="short\n", capture_output=True, text=True, env=env, timeout=120)
    assert weak.returncode == 2 and "at least 10" in weak.stderr
    assert log_in(client, "dana").headers["location"] == "/"


def _alice_with_a_finished_round(team) -> tuple[object, dict[str, int]]:
    alice = team()
    sign_up(alice, "alice")
    token = csrf_token(alice.get("/").text)
    style = alice.post(f"{API}/styles", headers={"X-CSRF-Token": token},
                       files={"image": ("r.png", png_bytes(), "image/png")},
                       data={"content": "a house", "descriptor": "sticker"}).json()
    rnd = alice.post(f"{API}/styles/{style['id']}/rounds", headers={"X-CSRF-Token": token}, json={}).json()
    (candidate,) = finish_round(team.settings, rnd["id"], candidates=1, contents=["a cat"])
    return alice, {"style": style["id"], "round": rnd["id"], "candidate": candidate}


def test_public_styles_are_readable_by_everyone_and_changeable_by_their_owner_only(team):
    alice, ids = _alice_with_a_finished_round(team)
    bob = team()
    sign_up(bob, "bob")
    bob_token = csrf_token(bob.get("/").text)
    headers = {"X-CSRF-Token": bob_token}
    assert bob.get(f"{API}/styles/{ids['style']}").status_code == 404  # the setting is off: nothing leaks
    team.settings.public_styles = True  # the admin turns it on (STYLEDROP_PUBLIC_STYLES=true)
    try:
        listed = bob.get(f"{API}/styles").json()["items"]
        assert [(s["id"], s["editable"]) for s in listed] == [(ids["style"], False)]
        for url in (f"/styles/{ids['style']}", f"/styles/{ids['style']}/reference", f"/styles/{ids['style']}/rounds",
                    f"/rounds/{ids['round']}", f"/rounds/{ids['round']}/candidates", f"/candidates/{ids['candidate']}",
                    f"/candidates/{ids['candidate']}/image"):
            assert bob.get(API + url).status_code == 200, url
        writes = [("PUT", f"/candidates/{ids['candidate']}/rating", {"value": 1}),
                  ("PUT", f"/candidates/{ids['candidate']}/selected", {"selected": True}),
                  ("POST", f"/styles/{ids['style']}/rounds", {}), ("POST", f"/rounds/{ids['round']}/retry", None),
                  ("POST", f"/styles/{ids['style']}/generations", {"prompts": ["a dog"]}),
                  ("DELETE", f"/styles/{ids['style']}", None)]
        for method, url, body in writes:
            assert bob.request(method, API + url, json=body, headers=headers).status_code == 404, url
        page = bob.get(f"/styles/{ids['style']}")
        assert page.status_code == 200 and 'id="read-only"' in page.text
        assert "Thumbs up" not in page.text and "/playground" not in page.text and "Retry" not in page.text
        assert "Shared by others" in bob.get("/").text
        assert bob.post(f"/candidates/{ids['candidate']}/rating", data={"value": "1"}, headers=headers).status_code == 404
        own = alice.get(f"/styles/{ids['style']}").text
        assert 'id="read-only"' not in own and "Thumbs up" in own
    finally:
        team.settings.public_styles = False
    with session_factory(team.settings)() as session:
        candidate = session.get(Candidate, ids["candidate"])
        assert candidate.ratings == [] and candidate.selection is None
        assert session.query(Round).count() == 1 and session.query(Style).count() == 1


def test_embedded_run_logs_the_local_user_in_and_refuses_cross_site_writes(stub_app):
    page = stub_app.get("/settings")
    assert page.status_code == 200 and "single-user" in page.text and "STYLEDROP_AUTH=local" in page.text
    assert 'action="/logout"' not in page.text
    assert stub_app.get("/login", follow_redirects=False).headers["location"] == "/"
    from fastapi.testclient import TestClient

    script = TestClient(stub_app.app)  # a local script: no cookie, no token needed
    made = script.post(f"{API}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                       data={"content": "a house", "descriptor": "sticker"})
    assert made.status_code == 201
    other_site = script.post(f"{API}/styles/{made.json()['id']}/rounds", json={},
                             headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert other_site.status_code == 403 and "another web site" in other_site.json()["detail"]


def test_expired_sessions_are_purged_when_someone_logs_in(team):
    from datetime import timedelta

    from app.domain.models import utcnow

    assert sign_up(team(), "ann").status_code == 303
    with session_factory(team.settings)() as session:
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert sign_up(team(), "bob").status_code == 303  # a new log-in: the expired session goes, the new one stays
    with session_factory(team.settings)() as session:
        assert session.query(WebSession).count() == 1


def test_cookieless_visitors_write_no_session_rows_and_can_still_log_in(team):
    """A cookieless GET writes no session row (else crawlers grow the table): the log-in form's CSRF token is a
    cookie of its own, and a session row is written when someone logs in."""
    for path in ("/login", "/signup", "/", "/styles/new"):
        for _ in range(3):
            team().get(path)
    with session_factory(team.settings)() as session:
        assert session.query(WebSession).count() == 0
    assert sign_up(team(), "ann").status_code == 303
    client = team()
    assert log_in(client, "ann").status_code == 303
    assert client.get("/settings").status_code == 200
    with session_factory(team.settings)() as session:
        assert session.query(WebSession).count() == 2  # ann's two log-ins
    forged = team()
    forged.get("/login")  # a token of its own, but another visitor's value in the form: refused
    other = csrf_token(team().get("/login").text)
    refused = forged.post("/login", data={"name": "ann", "password": PASSWORD, "csrf_token": other},
                          follow_redirects=False)
    assert refused.status_code == 403
