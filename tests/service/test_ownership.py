"""Ownership: a second user can neither read, change nor learn of another user's work — every API route
that takes an id answers 404 exactly as for an id that does not exist."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.domain import lifecycle
from app.domain.lifecycle import JobStatus
from app.domain.models import ApiToken, Evaluation, Generation, Round, User
from app.infra.db import session_factory
from app.security.accounts import create_token

from .conftest import png_bytes
from .factories import finish_round

API = "/api/v1"


def _headers(client, name: str) -> dict[str, str]:
    with session_factory(client.settings)() as session:
        return {"Authorization": f"Bearer {create_token(session, name, 'test')}"}


def _alices_world(client, alice: dict[str, str]) -> dict[str, int]:
    style = client.post(f"{API}/styles", headers=alice, files={"image": ("r.png", png_bytes(), "image/png")},
                        data={"content": "a house", "descriptor": "sticker"}).json()
    rnd = client.post(f"{API}/styles/{style['id']}/rounds", headers=alice, json={}).json()
    (candidate_id,) = finish_round(client.settings, rnd["id"], candidates=1, contents=["a cat"],
                                   text_scores=[0.3], style_scores=[0.6])
    with session_factory(client.settings)() as session:
        evaluation = lifecycle.enqueue(session, Evaluation(style_id=style["id"], request={"prompts": ["a wolf"]}))
        token = lifecycle.claim(session, Evaluation, evaluation.id)
        assert lifecycle.finish(session, Evaluation, evaluation.id, token, JobStatus.succeeded)
        ids = {"style_id": style["id"], "round_id": rnd["id"], "candidate_id": candidate_id,
               "evaluation_id": evaluation.id}
    generation = client.post(f"{API}/styles/{style['id']}/generations", headers=alice,
                             json={"prompts": ["a cat"]}).json()
    ids.update(generation_id=generation["id"], index=0)
    return ids


BODIES = {"/rating": {"value": 1}, "/selected": {"selected": True}, "/generations": {"prompts": ["a dog"]},
          "/rounds": {}}


# Server-wide things with a name or id that no user owns: the example references and the world base models (one
# build serves everyone). Their routes are checked here to be only these, so an owned id cannot hide among them.
SHARED = {"example_id", "name"}
SHARED_ROUTES = {f"{API}/examples/{{example_id}}/image", f"{API}/worlds/{{name}}", f"{API}/worlds/{{name}}/build",
                 "/worlds/{name}/panel", "/worlds/{name}/build"}


def _shared(path: str) -> bool:
    return bool(SHARED & set(re.findall(r"\{(\w+)\}", path)))


def _body(path: str) -> dict | None:
    return next((body for suffix, body in BODIES.items() if path.endswith(suffix)), None)


def test_every_route_with_an_id_answers_404_to_another_user(stub_app):
    alice, bob = _headers(stub_app, "alice"), _headers(stub_app, "bob")
    ids = _alices_world(stub_app, alice)
    walked = 0
    for path, operations in stub_app.get("/openapi.json").json()["paths"].items():  # every documented route
        if not path.startswith(API) or "{" not in path:
            continue
        if _shared(path):
            assert path in SHARED_ROUTES, path
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)
        for method in sorted(m.upper() for m in operations):
            response = stub_app.request(method, url, headers=bob, json=_body(path))
            assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
            assert "does not exist" in response.json()["detail"], f"{method} {path}"
            walked += 1
    assert walked >= 20  # styles, rounds, candidates, generations and their files and actions
    assert stub_app.get(f"{API}/styles", headers=bob).json() == {"items": [], "next": None}
    # and Alice's work is untouched by Bob's attempts
    assert stub_app.get(f"{API}/styles/{ids['style_id']}", headers=alice).status_code == 200
    candidate = stub_app.get(f"{API}/candidates/{ids['candidate_id']}", headers=alice).json()
    assert candidate["ratings"] == [] and candidate["selected"] is False
    with session_factory(stub_app.settings)() as session:
        assert session.get(Round, ids["round_id"]).status == "succeeded"
        assert session.query(Generation).count() == 1


def test_every_page_with_an_id_answers_404_to_another_user(stub_app):
    from app.pages import routers

    alice, bob = _headers(stub_app, "alice"), _headers(stub_app, "bob")
    ids = _alices_world(stub_app, alice)
    with session_factory(stub_app.settings)() as session:  # Alice's API token: Bob cannot revoke it
        ids["token_id"] = session.scalar(select(ApiToken.id).join(User).where(User.name == "alice"))
    walked = 0
    for route in (route for router in routers for route in router.routes):
        if "{" not in route.path or route.path.startswith("/static"):
            continue
        if _shared(route.path):
            assert route.path in SHARED_ROUTES, route.path
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), route.path)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            response = stub_app.request(method, url, headers=bob, data={"value": "1", "prompts": "a dog"})
            assert response.status_code == 404, f"{method} {route.path}: {response.status_code}"
            walked += 1
    assert walked >= 13
    assert stub_app.get(f"{API}/styles", headers=alice).status_code == 200  # her token still works
    gallery = stub_app.get("/", headers=bob).text
    assert f"/styles/{ids['style_id']}" not in gallery
    assert f"/styles/{ids['style_id']}" in stub_app.get("/", headers=alice).text
