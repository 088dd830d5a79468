"""The REST API without a worker (a stub records what would be queued): validation, errors, auth, rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.domain import lifecycle, reaper
from app.domain.models import Round, utcnow
from app.infra.db import session_factory

from .conftest import decode_png, png_bytes
from .factories import finish_round, run_round

API = "/api/v1"


def create_style(client, data: bytes | None = None, filename: str = "my holiday.png", **form) -> dict:
    fields = {"content": "a house", "descriptor": "watercolor painting"} | form
    response = client.post(f"{API}/styles", data=fields,
                           files={"image": (filename, data if data is not None else png_bytes(), "image/png")})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_style_stores_a_png_named_by_id(stub_app):
    style = create_style(stub_app, png_bytes(fmt="JPEG"), filename="../../etc/passwd.jpg", steps="10", seed="3")
    assert style["settings"] == {"steps": 10, "seed": 3}
    assert style["base_model"] == "tiny" and style["adapter_kind"] == "styledrop" and style["adapter_url"] is None
    stored = stub_app.settings.storage_root / "styles" / str(style["id"]) / "reference.png"
    assert stored.is_file()
    assert decode_png(stored.read_bytes()).size == (64, 64)
    assert decode_png(stub_app.get(style["reference_url"]).content).size == (64, 64)
    assert [s["id"] for s in stub_app.get(f"{API}/styles").json()["items"]] == [style["id"]]
    assert stub_app.get(f"{API}/styles/{style['id']}").json()["descriptor"] == "watercolor painting"


@pytest.mark.parametrize("payload, status, words", [
    (b"just some text, not an image", 415, "not an image"),
    (b"%PDF-1.4 fake", 415, "not an image"),
    (b"", 400, "empty"),
])
def test_upload_checked_by_content_not_name(stub_app, payload, status, words):
    response = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"},
                             files={"image": ("looks-fine.png", payload, "image/png")})
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_upload_too_large_is_413(stub_app):
    big = b"\x89PNG" + b"0" * 250_000  # over this fixture's 200 kB limit
    response = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"},
                             files={"image": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_validation_errors_are_one_clear_message(stub_app):
    response = stub_app.post(f"{API}/styles", data={"content": "  ", "descriptor": "oil painting"},
                             files={"image": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 422 and "content is empty" in response.json()["detail"]
    response = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "x", "adapter": "dora"},
                             files={"image": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)
    assert "adapter" in response.json()["detail"]


@pytest.mark.parametrize("method, url", [
    ("get", "/styles/999"), ("delete", "/styles/999"), ("get", "/styles/999/adapter"),
    ("post", "/styles/999/rounds"), ("get", "/rounds/999"), ("post", "/rounds/999/cancel"),
    ("post", "/rounds/999/retry"), ("get", "/rounds/999/candidates"), ("post", "/rounds/999/auto-select"),
    ("get", "/candidates/999/image"), ("get", "/generations/999"), ("get", "/generations/999/images/0"),
])
def test_unknown_ids_are_404(stub_app, method, url):
    response = getattr(stub_app, method)(API + url)
    assert response.status_code == 404
    assert "999 does not exist" in response.json()["detail"]


def test_rating_and_selection_of_unknown_candidate_404(stub_app):
    assert stub_app.put(f"{API}/candidates/5/rating", json={"value": 1}).status_code == 404
    assert stub_app.put(f"{API}/candidates/5/selected", json={"selected": True}).status_code == 404


def test_a_round_takes_its_training_steps_as_train_steps_or_by_the_old_name_steps(stub_app):
    """`steps` meant training steps here and decoding steps in a generation request: a round's are now
    `train_steps` (beside `sample_steps`); `steps` is still accepted, documented as deprecated."""
    for body in ({"train_steps": 7}, {"steps": 7}, {"train_steps": 7, "steps": 7}):
        rnd = stub_app.post(f"{API}/styles/{create_style(stub_app)['id']}/rounds", json=body)
        assert rnd.status_code == 201, rnd.text
        assert rnd.json()["parameters"]["train"]["steps"] == rnd.json()["total_steps"] == 7
    both = stub_app.post(f"{API}/styles/{create_style(stub_app)['id']}/rounds", json={"train_steps": 7, "steps": 8})
    assert both.status_code == 422 and "old name of train_steps" in both.json()["detail"]
    for body in ({"train_steps": 20_001}, {"steps": 20_001}):  # the admin's limit, whichever name says it
        refused = stub_app.post(f"{API}/styles/{create_style(stub_app)['id']}/rounds", json=body)
        assert refused.status_code == 422 and "20001 training steps" in refused.json()["detail"]
    schema = stub_app.get("/openapi.json").json()["components"]["schemas"]["RoundCreate"]["properties"]
    assert "deprecated" not in schema["train_steps"] and schema["steps"]["deprecated"] is True


def test_round_rules(stub_app):
    style = create_style(stub_app)
    first = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"train_steps": 5})
    assert first.status_code == 201
    rnd = first.json()
    assert rnd["number"] == 1 and rnd["status"] == "queued" and rnd["actions"] == ["cancel"]
    assert rnd["parameters"]["adapter"] == {"kind": "styledrop", "rank": 4, "shared": True, "alpha": None}  # H=4 shared
    assert stub_app.dispatcher.rounds == [rnd["id"]]
    conflict = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={})
    assert conflict.status_code == 409 and "cancel it" in conflict.json()["detail"]
    assert stub_app.delete(f"{API}/styles/{style['id']}").status_code == 409
    # unknown fields and out-of-range settings are refused
    assert stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"stepz": 5}).status_code == 422
    assert stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"steps": 0}).status_code == 422
    # generation needs a finished round
    gen = stub_app.post(f"{API}/styles/{style['id']}/generations", json={"prompts": ["a cat"]})
    assert gen.status_code == 409 and "no finished round" in gen.json()["detail"]
    # cancelling a queued round is immediate; a second cancel conflicts; retry re-queues
    cancelled = stub_app.post(f"{API}/rounds/{rnd['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["actions"] == ["retry"]
    assert stub_app.post(f"{API}/rounds/{rnd['id']}/cancel").status_code == 409
    retried = stub_app.post(f"{API}/rounds/{rnd['id']}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    assert stub_app.dispatcher.rounds == [rnd["id"], rnd["id"]]


def _set_round(settings, round_id: int, **values) -> None:
    with session_factory(settings)() as session:
        session.execute(update(Round).where(Round.id == round_id).values(**values))
        session.commit()


def _reap(client) -> dict[str, list[int]]:
    """One pass of the reaper, as celery beat and `styledrop serve`'s timer run it."""
    return reaper.run(client.settings, client.dispatcher)


def _claim(settings, round_id: int, task_id: str) -> str:
    with session_factory(settings)() as session:
        return lifecycle.claim_round(session, settings, round_id, task_id)


def test_reaper_requeues_a_silent_round_and_fails_it_when_no_worker_takes_it(stub_app):
    settings, sent = stub_app.settings, stub_app.dispatcher.rounds
    style = create_style(stub_app)
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    run_round(settings, rnd["id"], step=40)
    old = utcnow() - timedelta(seconds=settings.heartbeat_stale_seconds + 5)
    _set_round(settings, rnd["id"], heartbeat_at=old, started_at=old)
    # reading a round never reaps it: the reaper runs from beat and serve's timer, not inside requests
    assert stub_app.get(f"{API}/rounds/{rnd['id']}").json()["status"] == "running"
    assert stub_app.get(f"{API}/styles/{style['id']}/rounds").json()["items"][0]["status"] == "running"
    # its worker went silent: back in the queue and sent again, to resume from its checkpoint
    assert _reap(stub_app)["requeued"] == [rnd["id"]]
    body = stub_app.get(f"{API}/rounds/{rnd['id']}").json()
    assert body["status"] == "queued" and body["actions"] == ["cancel"] and sent == [rnd["id"], rnd["id"]]
    (interruption,) = body["metrics"]["interruptions"]
    assert interruption["at_step"] == 40 and "no heartbeat" in interruption["reason"]

    # past the wait, but a worker is busy (it just wrote a heartbeat for another round): it keeps waiting
    other = stub_app.post(f"{API}/styles/{create_style(stub_app)['id']}/rounds", json={}).json()
    finish_round(settings, other["id"])
    _set_round(settings, other["id"], heartbeat_at=utcnow())
    waited = (utcnow() - timedelta(seconds=settings.requeue_wait_seconds + 5)).isoformat()
    _set_round(settings, rnd["id"], metrics=dict(body["metrics"], requeued_at=waited))
    assert not any(_reap(stub_app).values())
    assert stub_app.get(f"{API}/rounds/{rnd['id']}").json()["status"] == "queued"
    # no worker shows signs of life: failed, with a retry action that resumes it
    _set_round(settings, other["id"], heartbeat_at=old)
    assert _reap(stub_app)["failed"] == [rnd["id"]]
    body = stub_app.get(f"{API}/rounds/{rnd['id']}").json()
    assert body["status"] == "failed" and body["actions"] == ["retry"]
    assert "no worker took the round up again" in body["error"] and "retry" in body["error"]
    retried = stub_app.post(f"{API}/rounds/{rnd['id']}/retry").json()
    assert retried["status"] == "queued" and "requeued_at" not in retried["metrics"]
    assert not any(_reap(stub_app).values())  # it waits as a fresh job
    assert stub_app.get(f"{API}/rounds/{rnd['id']}").json()["status"] == "queued"

    # a silent round on its last attempt is not started again: it may be what kills its workers
    _set_round(settings, rnd["id"], attempts=settings.max_attempts - 1)
    run_round(settings, rnd["id"])
    _set_round(settings, rnd["id"], heartbeat_at=old)
    assert _reap(stub_app)["failed"] == [rnd["id"]]
    body = stub_app.get(f"{API}/rounds/{rnd['id']}").json()
    assert body["status"] == "failed" and f"attempt {settings.max_attempts} of" in body["error"]
    assert sent.count(rnd["id"]) == 3  # created, requeued once, retried


def test_attempts_guard_requeue_loops(stub_app):
    style = create_style(stub_app)
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    limit = stub_app.settings.max_attempts
    with session_factory(stub_app.settings)() as session:
        session.execute(update(Round).where(Round.id == rnd["id"]).values(attempts=limit))
        session.commit()
    assert _claim(stub_app.settings, rnd["id"], "t") == "gave up"
    body = stub_app.get(f"{API}/rounds/{rnd['id']}").json()
    assert body["status"] == "failed" and "Gave up after" in body["error"]
    retry = stub_app.post(f"{API}/rounds/{rnd['id']}/retry")
    assert retry.status_code == 409 and "already ran" in retry.json()["detail"]


def test_claim_is_idempotent(stub_app):
    style = create_style(stub_app)
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    assert _claim(stub_app.settings, rnd["id"], "a") == "claimed"
    assert _claim(stub_app.settings, rnd["id"], "b") == "skipped (running)"  # a duplicate message


def _finished_round_with_candidates(client, n: int = 4, style_scores=(0.6, 0.7, 0.65, 0.1)) -> tuple[dict, list[int]]:
    style = create_style(client)
    rnd = client.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    ids = finish_round(client.settings, rnd["id"], n, contents=[["a cat", "a dog"][i % 2] for i in range(n)],
                       text_scores=[0.1, 0.5, 0.9, 0.2][:n], style_scores=style_scores)
    return style, ids


def test_ratings_selection_and_round_two_parameters(stub_app):
    style, ids = _finished_round_with_candidates(stub_app)
    assert stub_app.put(f"{API}/candidates/{ids[0]}/rating", json={"value": 7}).status_code == 422
    assert stub_app.put(f"{API}/candidates/{ids[0]}/rating", json={"value": -1}).json()["my_rating"] == -1
    body = stub_app.put(f"{API}/candidates/{ids[0]}/rating", json={"value": 4}).json()  # replaces, unique per user
    assert body["ratings"] == [{"user": "local", "value": 4}] and body["rating_mean"] == 4
    none = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"feedback": "human"})
    assert none.status_code == 409 and "No candidate" in none.json()["detail"]
    assert stub_app.put(f"{API}/candidates/{ids[1]}/selected", json={"selected": True}).json()["selected"]
    assert stub_app.put(f"{API}/candidates/{ids[3]}/selected", json={"selected": True}).json()["selected_by"] == "human"
    assert not stub_app.put(f"{API}/candidates/{ids[3]}/selected", json={"selected": False}).json()["selected"]
    second = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={})
    assert second.status_code == 201, second.text
    params = second.json()["parameters"]
    assert second.json()["number"] == 2 and second.json()["feedback"] == "human"
    assert params["adapter"] == {"kind": "styledrop", "rank": 32, "shared": False, "alpha": None}
    assert [(t["content"], t.get("candidate_id")) for t in params["training_set"]] == [("a house", None),
                                                                                        ("a dog", ids[1])]
    assert params["sampling"]["adapter_guidance"] == 2.0 and params["adapter"]["rank"] == 32


def test_auto_select_applies_the_engine_clip_rule(stub_app):
    style, ids = _finished_round_with_candidates(stub_app)
    rnd_id = stub_app.get(f"{API}/styles/{style['id']}").json()["rounds"][0]["id"]
    body = stub_app.post(f"{API}/rounds/{rnd_id}/auto-select").json()
    # a cat: ids[0] text 0.1, ids[2] text 0.9 -> ids[2]; a dog: ids[1] text 0.5, ids[3] text 0.2 -> ids[1]
    assert [c["id"] for c in body["selected"]] == [ids[2], ids[1]]  # best text score first
    assert all(c["selected_by"] == "clip" and c["selection_rule"] == "guarded" for c in body["selected"])
    assert body["rule"] == "guarded" and body["method"].startswith("clip (guarded, our extension): top-1 per prompt")


def test_auto_select_takes_the_papers_rule_ours_or_the_random_baseline(stub_app):
    style, ids = _finished_round_with_candidates(stub_app, style_scores=(0.6, 0.1, 0.65, 0.7))
    rnd_id = stub_app.get(f"{API}/styles/{style['id']}").json()["rounds"][0]["id"]
    url = f"{API}/rounds/{rnd_id}/auto-select"
    paper = stub_app.post(url, json={"rule": "paper"}).json()
    assert paper["rule"] == "paper" and [c["id"] for c in paper["selected"]] == [ids[2], ids[1]]  # no style guard
    guarded = stub_app.post(url, json={"rule": "guarded"}).json()
    assert [c["id"] for c in guarded["selected"]] == [ids[2], ids[3]]  # ids[1] is in the lowest style quarter
    drawn = stub_app.post(url, json={"rule": "random", "seed": 4}).json()
    assert len(drawn["selected"]) == 2 and {c["content"] for c in drawn["selected"]} == {"a cat", "a dog"}
    assert [c["id"] for c in stub_app.post(url, json={"rule": "random", "seed": 4}).json()["selected"]] == \
        [c["id"] for c in drawn["selected"]]  # seeded: the same draw again
    listed = stub_app.get(f"{API}/rounds/{rnd_id}/candidates").json()
    listed = listed["items"] if isinstance(listed, dict) else listed
    assert {c["selection_rule"] for c in listed if c["selected"]} == {"random"}
    assert stub_app.post(url, json={"rule": "best"}).status_code == 422


def test_auto_select_guards_style_and_refuses_unscored_rounds(stub_app):
    style, ids = _finished_round_with_candidates(stub_app, style_scores=(0.6, 0.1, 0.65, 0.7))
    rnd_id = stub_app.get(f"{API}/styles/{style['id']}").json()["rounds"][0]["id"]
    body = stub_app.post(f"{API}/rounds/{rnd_id}/auto-select").json()
    assert [c["id"] for c in body["selected"]] == [ids[2], ids[3]]  # ids[1] fell below the style guard
    style, ids = _finished_round_with_candidates(stub_app, style_scores=(0.6, None, 0.65, 0.7))
    rnd_id = stub_app.get(f"{API}/styles/{style['id']}").json()["rounds"][0]["id"]
    refused = stub_app.post(f"{API}/rounds/{rnd_id}/auto-select")
    assert refused.status_code == 409 and "no CLIP scores" in refused.json()["detail"]


def test_generation_limits(stub_app):
    style, _ = _finished_round_with_candidates(stub_app)
    with session_factory(stub_app.settings)() as session:
        session.execute(update(Round).values(adapter_path="styles/x/adapter.safetensors"))
        session.commit()
    url = f"{API}/styles/{style['id']}/generations"
    too_many = stub_app.post(url, json={"prompts": ["a cat"] * 10, "num_images": 16})
    assert too_many.status_code == 422
    assert stub_app.post(url, json={"prompts": []}).status_code == 422
    for _ in range(stub_app.settings.max_pending_generations):
        assert stub_app.post(url, json={"prompts": ["a cat"]}).status_code == 202
    limited = stub_app.post(url, json={"prompts": ["a cat"]})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "30"
    assert "8 generation jobs queued or running; the limit is 8" in limited.json()["detail"]


def test_bearer_tokens(tmp_path):
    from fastapi.testclient import TestClient

    from app.infra.migrate import upgrade
    from app.main import create_app
    from app.security.accounts import create_token

    from .conftest import StubDispatcher, make_settings

    settings = make_settings(tmp_path / "data", auth="token")
    upgrade(settings)
    with session_factory(settings)() as session:
        token = create_token(session, "ada")
        stored = session.execute(__import__("sqlalchemy").text("select token_hash from api_tokens")).scalar()
    assert token not in stored  # only the hash is stored
    client = TestClient(create_app(settings, StubDispatcher()))
    anonymous = client.get(f"{API}/styles")
    assert anonymous.status_code == 401 and "Bearer" in anonymous.json()["detail"]
    assert client.get(f"{API}/styles", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get(f"{API}/styles", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json() == {"items": [], "next": None}


def test_openapi_documents_the_routes(stub_app):
    paths = stub_app.get("/openapi.json").json()["paths"]
    for path in ["/api/v1/styles", "/api/v1/styles/{style_id}", "/api/v1/styles/{style_id}/adapter",
                 "/api/v1/styles/{style_id}/rounds", "/api/v1/rounds/{round_id}", "/api/v1/rounds/{round_id}/cancel",
                 "/api/v1/rounds/{round_id}/retry", "/api/v1/rounds/{round_id}/candidates",
                 "/api/v1/candidates/{candidate_id}/image", "/api/v1/candidates/{candidate_id}/rating",
                 "/api/v1/candidates/{candidate_id}/selected", "/api/v1/rounds/{round_id}/auto-select",
                 "/api/v1/styles/{style_id}/generations", "/api/v1/generations/{generation_id}",
                 "/api/v1/generations/{generation_id}/images/{index}"]:
        assert path in paths, path


def test_delete_style_removes_rows_and_files(stub_app):
    style = create_style(stub_app)
    folder = stub_app.settings.storage_root / "styles" / str(style["id"])
    assert folder.is_dir()
    assert stub_app.delete(f"{API}/styles/{style['id']}").status_code == 204
    assert not folder.exists()
    assert stub_app.get(f"{API}/styles/{style['id']}").status_code == 404


def test_the_largest_seed_gives_candidate_seeds_every_database_stores(stub_app):
    """candidate_seed(2^31 - 1, k) is about 2^47: the candidates' seed column is 64-bit (PostgreSQL refused it)."""
    from app.domain.models import Candidate
    from styledrop.candidates import candidate_seed  # torch is only imported by the engine's sampling parts

    style = create_style(stub_app, seed=str(2**31 - 1))
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    assert rnd["parameters"]["candidates"]["seed"] == 2**31 - 1
    seed = candidate_seed(2**31 - 1, 3)
    with session_factory(stub_app.settings)() as session:
        session.add(Candidate(round_id=rnd["id"], content="a cat", prompt="A cat in sticker style", seed=seed,
                              image_path="x.png"))
        session.commit()
        assert session.query(Candidate).filter(Candidate.round_id == rnd["id"]).one().seed == seed > 2**31
