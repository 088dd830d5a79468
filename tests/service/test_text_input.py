"""Issue 29, finding 6: control characters in text. On PostgreSQL a NUL in a log-in name (no log-in needed), a
token name, a style name or a callback URL was a 500, sent without the security headers; elsewhere some control
characters were stored as they came, and others (U+001F) silently became spaces. Now every text field of the
API and the pages answers 422 and stores nothing, on SQLite and PostgreSQL; tab and line breaks stay what they
are in a text area (whitespace)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.domain.models import ApiToken, Evaluation, Generation, Round, Style, User
from app.infra.db import session_factory
from app.infra.migrate import upgrade
from app.main import create_app

from .conftest import StubDispatcher, csrf_token, make_settings, png_bytes, stub_client
from .factories import finish_round
from .test_api import API, create_style

# NUL; a C0 control; U+001F, which str.split() takes for whitespace; DEL; a C1 control (CSI).
CONTROLS = ["\x00", "\x01", "\x1f", "\x7f", "\x9b"]


def _count(client, model) -> int:
    with session_factory(client.settings)() as session:
        return session.scalar(select(func.count()).select_from(model))


def _secure(response) -> None:
    assert "script-src 'self'" in response.headers["content-security-policy"], response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


# ---- the API: every text field of every request body ---------------------------------------------------------

def _api_cases(style_id: int) -> dict[tuple[str, str], tuple[str, str, dict]]:
    """(operation id, field) -> (path, "json" or "form", a valid body that the field's value is put into)."""
    rounds, generations = f"{API}/styles/{style_id}/rounds", f"{API}/styles/{style_id}/generations"
    style = {"content": "a house", "descriptor": "ink wash"}
    return {
        ("create_style", "content"): (f"{API}/styles", "form", style),
        ("create_style", "descriptor"): (f"{API}/styles", "form", style),
        ("create_style", "base_model"): (f"{API}/styles", "form", style),
        ("create_style", "name"): (f"{API}/styles", "form", style),
        ("create_style", "contents"): (f"{API}/styles", "form", style),
        ("create_style", "sample_prompts"): (f"{API}/styles", "form", style),
        ("update_style", "name"): (f"{API}/styles/{style_id}", "patch", {}),
        ("update_style", "descriptor"): (f"{API}/styles/{style_id}", "patch", {}),
        ("start_round", "prompts"): (rounds, "json", {"prompts": ["a cat"]}),
        ("start_round", "callback_url"): (rounds, "json", {"prompts": ["a cat"]}),
        ("start_round", "sample_prompts"): (rounds, "json", {"prompts": ["a cat"]}),
        ("create_generation", "prompts"): (generations, "json", {"prompts": ["a cat"]}),
        ("create_generation", "descriptor"): (generations, "json", {"prompts": ["a cat"]}),
        ("create_generation", "callback_url"): (generations, "json", {"prompts": ["a cat"]}),
        ("start_evaluation", "prompts"): (f"{API}/styles/{style_id}/evaluations", "json", {"limit": 1}),
    }


LISTS = {"prompts", "sample_prompts", "contents"}  # the fields that take a list of texts


def _text_fields(document: dict) -> set[tuple[str, str]]:
    """(operation id, field) of every free-text field of every request body (strings and lists of strings,
    not files and not fixed choices)."""
    schemas = document["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        if "$ref" not in schema and "anyOf" in schema:  # an optional body: the model or null
            schema = next((o for o in schema["anyOf"] if "$ref" in o), schema)
        return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema

    def free_text(schema: dict) -> bool:
        options = [schemas[o["$ref"].rsplit("/", 1)[1]] if "$ref" in o else o for o in schema.get("anyOf", [schema])]
        for option in options:
            if option.get("type") == "array":  # a list of strings; a tuple of numbers has prefixItems instead
                option = resolve(option.get("items", {}))
            if option.get("type") == "string" and "enum" not in option and "const" not in option \
                    and option.get("format") != "binary":
                return True
        return False

    found = set()
    for item in document["paths"].values():
        for op in item.values():
            for content in op.get("requestBody", {}).get("content", {}).values():
                for name, prop in resolve(content["schema"]).get("properties", {}).items():
                    if free_text(prop):
                        found.add((op["operationId"], name))
    return found


def test_every_api_text_field_refuses_control_characters(tmp_path, db):
    with stub_client(tmp_path / "data", db, webhook_allow="hooks.example") as client:
        style = create_style(client)
        finish_round(client.settings, client.post(f"{API}/styles/{style['id']}/rounds").json()["id"])
        cases = _api_cases(style["id"])
        # Every free-text field the API documents is tried here: a new one must be added (and checked).
        assert _text_fields(client.get("/openapi.json").json()) == set(cases)
        before = {model: _count(client, model) for model in (Style, Round, Generation, Evaluation)}
        for (operation, field), (path, kind, valid) in cases.items():
            for char in CONTROLS:
                value = {"callback_url": f"https://hooks.example/a{char}b", "base_model": f"tiny{char}"}.get(
                    field, f"a {char}cat")
                body = dict(valid) | {field: [value] if field in LISTS else value}
                if kind == "form":
                    response = client.post(path, data=body, files={"image": ("a.png", png_bytes(), "image/png")})
                elif kind == "patch":
                    response = client.patch(path, json=body)
                else:
                    response = client.post(path, json=body)
                assert response.status_code == 422, (operation, field, repr(char), response.status_code,
                                                     response.text[:300])
                assert field in response.json()["detail"], (operation, field, response.json())
                _secure(response)
        assert {model: _count(client, model) for model in before} == before  # nothing stored
        assert client.dispatcher.generations == [] and client.dispatcher.evaluations == []


def test_tabs_and_line_breaks_are_whitespace_not_refused(stub_app):
    style = create_style(stub_app, content="a\thouse", descriptor="ink\r\nwash")
    assert (style["content"], style["descriptor"]) == ("a house", "ink wash")
    started = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"prompts": ["a\tcat\n"]})
    assert started.status_code == 201, started.text
    assert started.json()["parameters"]["candidates"]["prompts"] == ["a cat"]


# ---- the pages ----------------------------------------------------------------------------------------------------

def test_every_page_text_field_refuses_control_characters(tmp_path, db):
    """The local user's pages: a token's name, a new style, a style's name and descriptor, the playground."""
    with stub_client(tmp_path / "data", db) as client:
        style = create_style(client)
        finish_round(client.settings, client.post(f"{API}/styles/{style['id']}/rounds").json()["id"])
        new_style = {"content": "a house", "descriptor": "ink wash", "base_model": "tiny", "adapter": "styledrop",
                     "steps": "10", "seed": "0"}
        forms = [
            ("/settings/tokens", {"name": "laptop"}, ["name"], False),
            ("/styles/new", new_style, ["content", "descriptor"], True),
            (f"/styles/{style['id']}/edit", {"name": "Ink", "descriptor": "ink wash"}, ["name", "descriptor"], False),
            (f"/styles/{style['id']}/playground", {"prompts": "a cat\na dog", "descriptor": "ink", "num_images": "1",
                                                   "seed": "0"}, ["prompts", "descriptor"], False),
        ]
        before = {model: _count(client, model) for model in (ApiToken, Style, Round, Generation)}
        for path, valid, fields, image in forms:
            for field in fields:
                for char in CONTROLS:
                    files = {"image": ("a.png", png_bytes(), "image/png")} if image else None
                    response = client.post(path, data=valid | {field: f"a {char}cat"}, files=files,
                                           follow_redirects=False)
                    assert response.status_code == 422, (path, field, repr(char), response.status_code,
                                                         response.text[-500:])
                    assert "control character" in response.text, (path, field)
                    _secure(response)
        assert {model: _count(client, model) for model in before} == before
        with session_factory(client.settings)() as session:
            # a rename with a control character is refused every time; a clean one sent beside a refused
            # descriptor is kept (the edit page saves what can be saved)
            assert session.get(Style, style["id"]).name in (None, "Ink")


@pytest.fixture
def accounts(tmp_path, db):
    with db.fresh() as url:
        settings = make_settings(tmp_path / "data", auth="accounts", database_url=url)
        upgrade(settings)
        yield TestClient(create_app(settings, StubDispatcher())), settings


def test_log_in_and_sign_up_refuse_control_characters_without_a_log_in(accounts):
    """No log-in needed to reach these: on PostgreSQL a NUL in the log-in name was a 500 (the name is looked up,
    and counted by the throttle)."""
    client, settings = accounts
    for char in CONTROLS:
        for path, fields in (("/login", {"name": "ann", "password": "correct horse battery"}),
                             ("/signup", {"name": "ann", "password": "correct horse battery",
                                          "confirm": "correct horse battery"})):
            for field in fields:
                token = csrf_token(client.get(path).text)
                response = client.post(path, data=fields | {field: f"ann{char}x", "csrf_token": token},
                                       follow_redirects=False)
                assert response.status_code == 422, (path, field, repr(char), response.status_code)
                assert "control character" in response.text
                _secure(response)
    with session_factory(settings)() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
