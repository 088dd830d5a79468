"""The API as clients meet it, without a worker: the OpenAPI document generators read, paging,
idempotency keys, and the checks of webhook destinations and signatures."""

from __future__ import annotations

import re
import time

from fastapi.routing import APIRoute
from sqlalchemy import func, select

from app.domain import lifecycle, webhooks
from app.domain.lifecycle import JobStatus
from app.domain.models import IdempotencyKey, Round, Style
from app.infra.db import session_factory

from .conftest import png_bytes, stub_client
from .test_api import API, create_style

# ---- the OpenAPI document -----------------------------------------------------------------------------------


def _resolve(schema: dict, document: dict) -> dict:
    for option in schema.get("anyOf", [schema]):
        if "$ref" in option:
            return document["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
    return schema


def test_operation_ids_are_the_unique_route_names(stub_app):
    """Every operation id is its route's own name (`create_style`, `rate_candidate`), unique across the API,
    and every operation keeps a tag: generated clients read `styles.create_style`."""
    document = stub_app.get("/openapi.json").json()
    ops = {(path, method.upper()): op for path, item in document["paths"].items() for method, op in item.items()}
    ids = [op["operationId"] for op in ops.values()]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    from app.api.evaluations import router as evaluations
    from app.api.routes import router as api

    names = {(route.path, method): route.name for route in api.routes + evaluations.routes
             if isinstance(route, APIRoute) and route.include_in_schema for method in route.methods}
    assert set(names) == set(ops)  # the document is these two routers, nothing else
    for key, op in ops.items():
        assert op["operationId"] == names[key] and op["tags"], (key, op["operationId"])
    assert ops[("/api/v1/styles", "POST")]["operationId"] == "create_style"
    assert ops[("/api/v1/candidates/{candidate_id}/rating", "PUT")]["operationId"] == "rate_candidate"
    assert ops[("/api/v1/rounds/{round_id}/cancel", "POST")]["operationId"] == "cancel_round"
    assert ops[("/api/v1/styles/{style_id}/evaluations", "GET")]["operationId"] == "list_evaluations"


def test_openapi_names_file_fields_and_examples(stub_app):
    document = stub_app.get("/openapi.json").json()
    create = document["paths"]["/api/v1/styles"]["post"]
    ref = create["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    assert ref == "#/components/schemas/StyleUpload"  # a named body, not Body_create_style_api_v1_styles_post
    assert not [name for name in document["components"]["schemas"] if name.startswith("Body_")]
    upload = document["components"]["schemas"]["StyleUpload"]
    assert {"content", "descriptor", "adapter", "steps", "learning_rate", "rank", "seed"} <= set(upload["properties"])
    image = upload["properties"]["image"]
    assert image["format"] == "binary" and image["type"] == "string"  # generators send it as a file
    for path, ops in document["paths"].items():  # every request body documents an example
        for method, op in ops.items():
            if "requestBody" not in op:
                continue
            (content,) = op["requestBody"]["content"].values()
            body = _resolve(content["schema"], document)
            assert body.get("examples"), (method, path)


# ---- paging -------------------------------------------------------------------------------------------------


def test_lists_come_in_pages_with_a_next_link(stub_app):
    made = [create_style(stub_app, content=f"a house {i}")["id"] for i in range(5)]
    seen, url, pages = [], f"{API}/styles?limit=2", 0
    while url:
        page = stub_app.get(url)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [s["id"] for s in body["items"]]
        url, pages = body["next"], pages + 1
        if url and pages == 1:  # a style added between two pages neither shifts nor repeats the next one
            made.append(create_style(stub_app, content="added meanwhile")["id"])
    assert seen == made and pages == 3
    assert stub_app.get(f"{API}/styles").json()["next"] is None  # the default limit holds them all
    bad = stub_app.get(f"{API}/styles?cursor=not-ours")
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]
    assert stub_app.get(f"{API}/styles?limit=0").status_code == 422
    assert stub_app.get(f"{API}/styles?limit=100000").status_code == 422
    rounds = stub_app.get(f"{API}/styles/{made[0]}/rounds?limit=1").json()
    assert rounds == {"items": [], "next": None}
    assert stub_app.get(f"{API}/styles/{made[0]}/generations").json() == {"items": [], "next": None}


def test_candidates_come_in_pages(stub_app):
    from app.domain.models import Candidate

    style = create_style(stub_app)
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    with session_factory(stub_app.settings)() as session:
        session.add_all([Candidate(round_id=rnd["id"], content=f"c{i}", prompt=f"A c{i}", seed=i, image_path="x.png")
                         for i in range(3)])
        session.commit()
    first = stub_app.get(f"{API}/rounds/{rnd['id']}/candidates?limit=2").json()
    second = stub_app.get(first["next"]).json()
    assert [c["content"] for c in first["items"] + second["items"]] == ["c0", "c1", "c2"]
    assert second["next"] is None


# ---- idempotency keys ---------------------------------------------------------------------------------------


def _count(client, model) -> int:
    with session_factory(client.settings)() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_repeated_create_with_the_same_key_returns_the_first_answer(stub_app):
    image = png_bytes()
    fields = {"content": "a house", "descriptor": "watercolor painting"}

    def post(key: str, **extra):
        return stub_app.post(f"{API}/styles", data=fields | extra, files={"image": ("a.png", image, "image/png")},
                             headers={"Idempotency-Key": key})

    first, again = post("k-1"), post("k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert _count(stub_app, Style) == 1
    other = post("k-1", descriptor="oil painting")  # same key, another request
    assert other.status_code == 409 and "different request" in other.json()["detail"]
    assert _count(stub_app, Style) == 1
    assert post("k-2").json()["id"] != first.json()["id"]  # a new key is a new style

    # A refused request frees its key: the corrected retry with it goes through.
    refused = stub_app.post(f"{API}/styles", data=fields, files={"image": ("a.png", b"not an image", "image/png")},
                            headers={"Idempotency-Key": "k-3"})
    assert refused.status_code == 415
    assert post("k-3").status_code == 201

    # Rounds: the retried POST does not start a second round (which would be a 409 anyway: one active round).
    style_id = first.json()["id"]
    started = stub_app.post(f"{API}/styles/{style_id}/rounds", json={"steps": 5}, headers={"Idempotency-Key": "r"})
    repeat = stub_app.post(f"{API}/styles/{style_id}/rounds", json={"steps": 5}, headers={"Idempotency-Key": "r"})
    assert started.status_code == repeat.status_code == 201 and repeat.json()["id"] == started.json()["id"]
    assert stub_app.dispatcher.rounds == [started.json()["id"]]
    assert stub_app.post(f"{API}/styles/{style_id}/rounds", json={"steps": 6},
                         headers={"Idempotency-Key": "r"}).status_code == 409
    assert stub_app.post(f"{API}/styles/{style_id}/rounds", json={},
                         headers={"Idempotency-Key": " "}).status_code == 422
    assert _count(stub_app, IdempotencyKey) == 4  # k-1, k-2, k-3, r


def test_a_key_whose_first_request_never_answered(stub_app):
    """A reservation without an answer is "in progress" (409), until it is old enough to have been abandoned
    by a process that died; then a repeat takes it over."""
    from datetime import timedelta

    from sqlalchemy import update

    from app.api.idempotency import ABANDONED
    from app.domain.models import utcnow

    def post():
        return stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "ink"},
                             files={"image": ("a.png", png_bytes(), "image/png")}, headers={"Idempotency-Key": "k"})

    first = post()
    assert first.status_code == 201

    def unanswered(age: timedelta) -> None:  # as if the first request's process had died before answering
        with session_factory(stub_app.settings)() as session:
            session.execute(update(IdempotencyKey).values(response_status=None, response_body=None,
                                                          created_at=utcnow() - age))
            session.commit()

    unanswered(timedelta(0))
    busy = post()
    assert busy.status_code == 409 and "still being handled" in busy.json()["detail"]
    unanswered(ABANDONED + timedelta(seconds=1))
    taken = post()
    assert taken.status_code == 201 and "Idempotent-Replayed" not in taken.headers
    replayed = post()
    assert replayed.json()["id"] == taken.json()["id"] and replayed.headers["Idempotent-Replayed"] == "true"


def test_keys_belong_to_their_user(tmp_path, db):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.security.accounts import create_token

    from .conftest import StubDispatcher

    with stub_client(tmp_path / "data", db, auth="accounts") as client:
        with session_factory(client.settings)() as session:
            tokens = [create_token(session, name) for name in ("ada", "bob")]
        app = TestClient(create_app(client.settings, StubDispatcher()))
        made = []
        for token in tokens:
            response = app.post(f"{API}/styles", data={"content": "a house", "descriptor": "ink"},
                                files={"image": ("a.png", png_bytes(), "image/png")},
                                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "same"})
            assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
            made.append(response.json()["id"])
        assert made[0] != made[1]


# ---- webhooks: destinations and signatures ------------------------------------------------------------------


def test_callback_urls_to_private_networks_need_the_allow_list(tmp_path, db):
    with stub_client(tmp_path / "closed", db) as client:
        style = create_style(client)
        for url, words in [("http://127.0.0.1:9/hook", "private, loopback"), ("http://10.1.2.3/hook", "private"),
                           ("http://[::1]/hook", "loopback"), ("ftp://example.com/x", "not an http"),
                           ("http://user:pw@example.com/", "password"), ("http://no-such-host.invalid/", "resolve")]:
            refused = client.post(f"{API}/styles/{style['id']}/rounds", json={"callback_url": url})
            assert refused.status_code == 422 and words in refused.json()["detail"], (url, refused.text)
        assert _count(client, Round) == 0 and client.dispatcher.rounds == []  # nothing stored, nothing queued
    with stub_client(tmp_path / "open", db, webhook_allow="127.0.0.1/32, hooks.example") as client:
        style = create_style(client)
        started = client.post(f"{API}/styles/{style['id']}/rounds", json={"callback_url": "http://127.0.0.1:9/h"})
        assert started.status_code == 201, started.text
        with session_factory(client.settings)() as session:
            assert session.get(Round, started.json()["id"]).callback_url == "http://127.0.0.1:9/h"
        # With an allow-list, only what it names: a public host it does not name is refused too.
        client.post(f"{API}/rounds/{started.json()['id']}/cancel")
        refused = client.post(f"{API}/styles/{style['id']}/rounds", json={"callback_url": "http://93.184.216.34/"})
        assert refused.status_code == 422 and "allow-list" in refused.json()["detail"]


def test_a_delivery_connects_to_the_address_its_check_approved(stub_app, monkeypatch):
    """DNS rebinding: a name may answer a public address to the check and a private one to the connection.
    The delivery connects to the checked address itself (the Host header keeps the name), never looking the
    name up again. Here the name is known to the check alone — `_resolve`, the webhooks' one DNS lookup,
    answers for it as a rebinding server would have answered the check — so only a pinned delivery arrives."""
    import ipaddress
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from app.domain.models import User

    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append({"host": self.headers["Host"], "body": self.rfile.read(int(self.headers["Content-Length"]))})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real = webhooks._resolve
    # Two answers, the first with nothing listening (the receiver listens on 127.0.0.1 only): the next is tried.
    checked = [ipaddress.ip_address("::1"), ipaddress.ip_address("127.0.0.1")]
    monkeypatch.setattr(webhooks, "_resolve", lambda host, p: checked if host == "hooks.rebind.test" else real(host, p))
    settings = stub_app.settings.model_copy(update={"webhook_allow": "hooks.rebind.test"})
    try:
        with session_factory(settings)() as session:
            user_id = session.query(User.id).first()[0]
            url = f"http://hooks.rebind.test:{port}/hook"
            assert webhooks.deliver(settings, session, user_id, url, '{"type": "round.succeeded"}') == "delivered"
    finally:
        server.shutdown()
    assert seen == [{"host": f"hooks.rebind.test:{port}", "body": b'{"type": "round.succeeded"}'}]
    assert webhooks.pinned("https://hooks.example/h?x=1", ipaddress.ip_address("2001:db8::1")) == (
        "https://[2001:db8::1]/h?x=1", "hooks.example", {"sni_hostname": "hooks.example"})


def test_webhook_signatures():
    body, secret = b'{"type": "round.succeeded"}', "whsec_test"
    now = int(time.time())
    headers = {webhooks.TIMESTAMP: str(now), webhooks.SIGNATURE: webhooks.sign(secret, now, body)}
    assert webhooks.verify(secret, headers, body)
    assert not webhooks.verify(secret, headers, body + b" ")  # tampered body
    assert not webhooks.verify("whsec_other", headers, body)
    old = now - 3600
    assert not webhooks.verify(secret, {webhooks.TIMESTAMP: str(old), webhooks.SIGNATURE: webhooks.sign(secret, old, body)},
                               body)  # a replay of an old event
    assert webhooks.backoff_seconds(type("S", (), {"webhook_backoff_seconds": 10.0})(), 3) == 40.0


def test_webhook_secret_is_per_user_and_rotates(stub_app):
    first = stub_app.get(f"{API}/webhooks/secret").json()["secret"]
    assert first.startswith("whsec_") and stub_app.get(f"{API}/webhooks/secret").json()["secret"] == first
    rotated = stub_app.post(f"{API}/webhooks/secret").json()["secret"]
    assert rotated != first and stub_app.get(f"{API}/webhooks/secret").json()["secret"] == rotated
    assert f'id="webhook-secret">{rotated}<' in stub_app.get("/settings").text  # shown on the settings page


def test_evaluations_are_idempotent_and_come_in_pages(stub_app):
    from app.domain.models import Evaluation

    from .factories import finish_round

    style = create_style(stub_app)
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"steps": 5}).json()
    finish_round(stub_app.settings, rnd["id"])
    url = f"{API}/styles/{style['id']}/evaluations"
    first = stub_app.post(url, json={}, headers={"Idempotency-Key": "e-1"})
    again = stub_app.post(url, json={}, headers={"Idempotency-Key": "e-1"})
    assert first.status_code == again.status_code == 202, first.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert stub_app.dispatcher.evaluations == [first.json()["id"]]  # queued once
    with session_factory(stub_app.settings)() as session:  # as the worker: it ended, so another may start
        assert lifecycle.claim(session, Evaluation, first.json()["id"])
        assert lifecycle.finish(session, Evaluation, first.json()["id"], JobStatus.failed, error="it failed")
    second = stub_app.post(url, json={}, headers={"Idempotency-Key": "e-2"})
    assert second.status_code == 202, second.text
    page = stub_app.get(f"{url}?limit=1").json()
    assert [e["id"] for e in page["items"]] == [first.json()["id"]] and page["next"]
    last = stub_app.get(page["next"]).json()
    assert [e["id"] for e in last["items"]] == [second.json()["id"]] and last["next"] is None


def test_the_styles_gallery_and_the_playground_come_in_pages(stub_app):
    from app.domain.models import Generation
    from app.pages import playground, styles

    made = [create_style(stub_app, content=f"a house {i}")["id"] for i in range(styles.STYLES_PER_PAGE + 2)]
    first = stub_app.get("/").text
    assert f'href="/styles/{made[-1]}"' in first and f'href="/styles/{made[1]}"' not in first  # newest first
    older = re.search(r'id="older" href="([^"]+)"', first).group(1)
    second = stub_app.get(older).text
    assert f'href="/styles/{made[0]}"' in second and f'href="/styles/{made[1]}"' in second
    assert f'href="/styles/{made[2]}"' not in second and 'id="older"' not in second
    with session_factory(stub_app.settings)() as session:
        for i in range(playground.GENERATIONS_PER_PAGE + 1):  # queued, taken up and failed, as a worker does
            generation = lifecycle.enqueue(session, Generation(style_id=made[0], request={"prompts": [f"p{i}"]}))
            assert lifecycle.claim(session, Generation, generation.id)
            assert lifecycle.finish(session, Generation, generation.id, JobStatus.failed, error="it failed")
    playground = stub_app.get(f"/styles/{made[0]}/playground").text
    older = re.search(r'id="older" href="([^"]+)"', playground).group(1)
    assert stub_app.get(older).status_code == 200 and 'id="older"' not in stub_app.get(older).text
