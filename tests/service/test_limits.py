"""Hostile input: limits on text length, prompts and images per request, and jobs per user.

Real parts: a migrated SQLite database and the FastAPI app through TestClient; only the job queue is the stub
dispatcher, which records what would have been queued. Every refusal is a 4xx with a message, and nothing is
stored when a request is refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app.domain.models import Generation, Round, Style
from app.infra.db import session_factory

from .conftest import StubDispatcher, make_settings, png_bytes, stub_client
from .factories import finish_generation, finish_round, run_round
from .test_api import create_style
from .test_pages import FORM

API = "/api/v1"
LONG = "a " + "very " * 60 + "long house"  # 312 characters, 63 words


@pytest.fixture
def limited(tmp_path, db):
    """The stub app with small job limits: 3 jobs per user, 2 of them generations (on each database)."""
    with stub_client(tmp_path / "data", db, max_active_jobs=3, max_pending_generations=2) as client:
        yield client


def _count(client, model) -> int:
    with session_factory(client.settings)() as session:
        return session.scalar(select(func.count(model.id)))


def _set_round(client, round_id: int, **values) -> None:
    with session_factory(client.settings)() as session:
        session.execute(update(Round).where(Round.id == round_id).values(**values))
        session.commit()


def _finished_style(client) -> int:
    """A style whose round 1 has succeeded with an adapter (as the worker leaves it), so it can generate."""
    style = create_style(client)
    rnd = client.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    finish_round(client.settings, rnd["id"], candidates=0)
    return style["id"]


# ---- text -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, words", [
    ({"content": LONG}, "The content is 312 characters long; the limit is 300 (CLIP's text encoder reads only 77"),
    ({"descriptor": "x" * 301}, "The descriptor is 301 characters long; the limit is 300"),
    ({"descriptor": " \t\n "}, "The descriptor is empty"),
    ({"content": "a " * 70 + "house"}, "The content has 71 words; the limit is 60"),
    ({"content": "a \x00house"}, "The content contains control characters"),
    ({"base_model": "m" * 501}, "base_model is 501 characters long; the limit is 500"),
])
def test_style_text_limits(stub_app, fields, words):
    response = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"} | fields,
                             files={"image": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 422 and words in response.json()["detail"]
    assert _count(stub_app, Style) == 0 and not (stub_app.settings.storage_root / "styles").exists()


def test_a_prompt_at_the_limit_is_accepted(stub_app):
    style = create_style(stub_app, content="a " + "b" * 298)  # exactly 300 characters
    assert len(style["content"]) == 300


@pytest.mark.parametrize("body, words", [
    ({"prompts": ["a cat", "   "]}, "Prompt 2 (prompts[1]) is empty"),
    ({"prompts": ["a cat", LONG]}, "Prompt 2 (prompts[1]) is 312 characters long; the limit is 300"),
    ({"prompts": ["a cat"] * 65}, "prompts has 65 prompts; one request may have at most 64"),
    ({"candidate_prompts": 65}, "candidate_prompts is 65; one request may have at most 64 prompts"),
    ({"prompts": ["a cat"] * 60, "candidates_per_prompt": 5},
     "60 prompts x 5 candidates per prompt is 300 images; one round may draw at most 256"),
    ({"steps": 20_001}, "20001 training steps is more than the 20000 allowed"),
])
def test_round_request_limits(stub_app, body, words):
    style = create_style(stub_app)
    response = stub_app.post(f"{API}/styles/{style['id']}/rounds", json=body)
    assert response.status_code == 422 and words in response.json()["detail"]
    assert _count(stub_app, Round) == 0 and stub_app.dispatcher.rounds == []


def test_lone_surrogates_and_control_characters_are_422_not_500(stub_app):
    style = create_style(stub_app)
    for raw in (b'{"prompts": ["a \\ud800 cat"]}', b'{"prompts": ["a \\u0000 cat"]}'):
        response = stub_app.post(f"{API}/styles/{style['id']}/rounds", content=raw,
                                 headers={"content-type": "application/json"})
        assert response.status_code == 422 and "control characters" in response.json()["detail"]
    assert _count(stub_app, Round) == 0


def test_prompts_are_stored_cleaned(stub_app):
    style = create_style(stub_app)
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"prompts": ["  a   red\tbarn "]}).json()
    assert rnd["parameters"]["candidates"]["prompts"] == ["a red barn"]


@pytest.mark.parametrize("body, words", [
    ({"prompts": [LONG]}, "Prompt 1 (prompts[0]) is 312 characters long"),
    ({"prompts": ["a cat", ""]}, "Prompt 2 (prompts[1]) is empty"),
    ({"prompts": ["a cat"] * 65}, "at most 64"),
    ({"prompts": ["a cat"] * 5, "num_images": 16}, "5 prompts x 16 images is more than the 64 images"),
])
def test_generation_request_limits(stub_app, body, words):
    style_id = _finished_style(stub_app)
    response = stub_app.post(f"{API}/styles/{style_id}/generations", json=body)
    assert response.status_code == 422 and words in response.json()["detail"]
    assert _count(stub_app, Generation) == 0 and stub_app.dispatcher.generations == []


# ---- jobs per user ----------------------------------------------------------------------------------------------

def test_active_jobs_per_user_across_styles(limited):
    styles = [create_style(limited)["id"] for _ in range(4)]
    rounds = [limited.post(f"{API}/styles/{s}/rounds", json={}).json()["id"] for s in styles[:3]]
    run_round(limited.settings, rounds[0])  # a worker took it up
    _set_round(limited, rounds[0], eta_seconds=42.2)
    run_round(limited.settings, rounds[1])  # a worker took it up
    _set_round(limited, rounds[1], eta_seconds=900.0)

    refused = limited.post(f"{API}/styles/{styles[3]}/rounds", json={})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "43"  # the soonest ETA of a running round, rounded up
    detail = refused.json()["detail"]
    assert "You have 3 jobs queued or running (3 rounds, 0 generations); the limit is 3 per user" in detail
    assert "Try again in about 43 s" in detail
    assert _count(limited, Round) == 3 and len(limited.dispatcher.rounds) == 3  # nothing stored or queued

    # The per-style rule still answers first: the style is busy (409), whatever the user's count.
    assert limited.post(f"{API}/styles/{styles[0]}/rounds", json={}).status_code == 409

    # A slot frees up: the next round starts; a retry is a job too and is counted.
    assert limited.post(f"{API}/rounds/{rounds[2]}/cancel").json()["status"] == "cancelled"
    assert limited.post(f"{API}/styles/{styles[3]}/rounds", json={}).status_code == 201
    retry = limited.post(f"{API}/rounds/{rounds[2]}/retry")
    assert retry.status_code == 429 and retry.headers["retry-after"] == "43"
    assert limited.get(f"{API}/rounds/{rounds[2]}").json()["status"] == "cancelled"  # unchanged


def test_retry_after_defaults_to_30_s_without_an_eta(limited):
    styles = [create_style(limited)["id"] for _ in range(4)]
    for style_id in styles[:3]:
        assert limited.post(f"{API}/styles/{style_id}/rounds", json={}).status_code == 201
    refused = limited.post(f"{API}/styles/{styles[3]}/rounds", json={})  # all queued: no ETA yet
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert "about 30 s" in refused.json()["detail"]


def test_generations_count_toward_both_limits(limited):
    style_id = _finished_style(limited)
    url = f"{API}/styles/{style_id}/generations"
    assert [limited.post(url, json={"prompts": ["a cat"]}).status_code for _ in range(2)] == [202, 202]
    refused = limited.post(url, json={"prompts": ["a cat"]})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert "You have 2 generation jobs queued or running; the limit is 2 per user" in refused.json()["detail"]
    assert _count(limited, Generation) == 2

    # 2 generations + 1 round = 3 jobs: the next round of another style is refused too.
    other = create_style(limited)["id"]
    assert limited.post(f"{API}/styles/{other}/rounds", json={}).status_code == 201
    third = create_style(limited)["id"]
    refused = limited.post(f"{API}/styles/{third}/rounds", json={})
    assert refused.status_code == 429 and "(1 round, 2 generations)" in refused.json()["detail"]

    # A finished generation frees its slot.
    finish_generation(limited.settings, style_id, min(limited.dispatcher.generations), 1)
    assert limited.post(url, json={"prompts": ["a cat"]}).status_code == 202


def test_jobs_are_counted_per_user(tmp_path, database_url):
    """Another user's jobs do not count against you."""
    from app.infra.migrate import upgrade
    from app.main import create_app
    from app.security.accounts import create_token

    settings = make_settings(tmp_path / "data", auth="token", max_active_jobs=1, database_url=database_url)
    upgrade(settings)
    with session_factory(settings)() as session:
        ada, bob = create_token(session, "ada"), create_token(session, "bob")
    client = TestClient(create_app(settings, StubDispatcher()))
    for token in (ada, bob):
        headers = {"Authorization": f"Bearer {token}"}
        style = client.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"},
                            files={"image": ("a.png", png_bytes(), "image/png")}, headers=headers).json()
        assert client.post(f"{API}/styles/{style['id']}/rounds", json={}, headers=headers).status_code == 201
    style = client.post(f"{API}/styles", data={"content": "a cat", "descriptor": "oil painting"},
                        files={"image": ("a.png", png_bytes(), "image/png")}, headers=headers).json()
    assert client.post(f"{API}/styles/{style['id']}/rounds", json={}, headers=headers).status_code == 429


def test_openapi_documents_the_refusals(stub_app):
    paths = stub_app.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/styles/{style_id}/rounds", "/api/v1/styles/{style_id}/generations",
                 "/api/v1/rounds/{round_id}/retry"):
        responses = paths[path]["post"]["responses"]
        assert "Retry-After" in responses["429"]["headers"], path
        assert responses["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert "STYLEDROP_MAX_PROMPT_CHARS" in paths["/api/v1/styles"]["post"]["responses"]["422"]["description"]


# ---- the pages: the same rules, the message in the page ---------------------------------------------------------

def test_new_style_page_text_limit_and_job_limit(limited):
    long = limited.post("/styles/new", data=FORM | {"content": LONG},
                        files={"image": ("ref.png", png_bytes(), "image/png")})
    assert long.status_code == 422 and long.headers["content-type"].startswith("text/html")
    assert "What the image shows is 312 characters long; the limit is 300" in long.text
    assert 'maxlength="300"' in long.text

    for _ in range(3):
        limited.post("/styles/new", data=FORM, files={"image": ("ref.png", png_bytes(), "image/png")})
    assert len(limited.dispatcher.rounds) == 3
    refused = limited.post("/styles/new", data=FORM, files={"image": ("ref.png", png_bytes(), "image/png")})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert refused.headers["content-type"].startswith("text/html")
    assert "You have 3 jobs queued or running" in refused.text and 'value="a house"' in refused.text
    assert _count(limited, Style) == 3 and len(limited.dispatcher.rounds) == 3  # no style without its round


def test_next_round_and_retry_pages_show_the_job_limit(limited):
    styles = [create_style(limited)["id"] for _ in range(4)]
    rounds = [limited.post(f"{API}/styles/{s}/rounds", json={}).json()["id"] for s in styles[:3]]
    run_round(limited.settings, rounds[0])  # a worker took it up
    _set_round(limited, rounds[0], eta_seconds=125.0)

    refused = limited.post(f"/styles/{styles[3]}/rounds", data={}, follow_redirects=False)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "125"
    assert refused.headers["content-type"].startswith("text/html")
    assert "the limit is 3 per user. Try again in about 2 min" in refused.text
    assert _count(limited, Round) == 3

    limited.post(f"{API}/rounds/{rounds[2]}/cancel")
    limited.post(f"{API}/styles/{styles[3]}/rounds", json={})
    panel = limited.post(f"/rounds/{rounds[2]}/retry", headers={"HX-Request": "true"})
    assert panel.status_code == 200 and "You have 3 jobs queued or running" in panel.text  # htmx swaps 2xx only
    assert panel.headers["retry-after"] == "125"
    plain = limited.post(f"/rounds/{rounds[2]}/retry")
    assert plain.status_code == 429 and "You have 3 jobs" in plain.text


def test_playground_limits(limited):
    style_id = _finished_style(limited)
    url = f"/styles/{style_id}/playground"
    too_long = limited.post(url, data={"prompts": f"a cat\n{LONG}", "num_images": "1", "seed": "0"})
    assert too_long.status_code == 422 and "Prompt 2 (prompts[1]) is 312 characters long" in too_long.text
    too_many = limited.post(url, data={"prompts": "\n".join(["a cat"] * 65), "num_images": "1", "seed": "0"})
    assert too_many.status_code == 422 and "one request may have at most 64" in too_many.text
    assert _count(limited, Generation) == 0

    for _ in range(2):
        assert limited.post(url, data={"prompts": "a cat", "num_images": "1", "seed": "0"},
                            follow_redirects=False).status_code == 303
    refused = limited.post(url, data={"prompts": "a cat", "num_images": "1", "seed": "0"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert "2 generation jobs queued or running" in refused.text and 'role="alert"' in refused.text
    assert _count(limited, Generation) == 2

