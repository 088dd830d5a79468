"""The job side of trust: what a style's deletion does to its jobs and files, evaluations under the same
limits as every other job, and rounds started at once. Real databases (SQLite and PostgreSQL), the real app."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import delete, insert

from app.domain import lifecycle
from app.domain.lifecycle import JobStatus
from app.domain.models import Evaluation, Generation, Style, User
from app.infra.db import session_factory
from app.infra.migrate import upgrade

from .conftest import make_settings
from .test_api import API, create_style


@pytest.fixture
def sessions(tmp_path, database_url):
    settings = make_settings(tmp_path / "data", database_url=database_url)
    upgrade(settings)
    return session_factory(settings)


@pytest.mark.parametrize("model", [Generation, Evaluation])
def test_a_worker_ends_only_the_job_it_claimed_not_a_row_found_by_its_id(sessions, model):
    """Worker 1 claims job N; the job goes (its style deleted) and a row with the same id takes its place (a
    database that reused the id, a restored backup) and worker 2 claims it. Worker 1's end, found by id
    alone, used to write its images, scores or error into the new job; it is refused by its claim's token."""
    with sessions() as session:
        user = User(name="ann")
        session.add(user)
        session.flush()
        styles = [Style(user_id=user.id, reference_path="", content="a house", descriptor="sticker",
                        base_model="tiny", adapter_kind="styledrop", settings={}) for _ in range(2)]
        session.add_all(styles)
        session.commit()
        job = lifecycle.enqueue(session, model(style_id=styles[0].id, user_id=user.id, request={"prompts": ["a"]}))
        ident = job.id
        stale = lifecycle.claim(session, model, ident)
        assert stale
        session.execute(delete(model).where(model.id == ident))
        session.execute(insert(model).values(id=ident, style_id=styles[1].id, user_id=user.id, status="queued",
                                             request={"prompts": ["b"]}))
        session.commit()
        current = lifecycle.claim(session, model, ident)
        assert current and current != stale
        assert not lifecycle.finish(session, model, ident, stale, JobStatus.failed, error="worker 1's error")
        session.expire_all()
        row = session.get(model, ident)
        assert (row.status, row.error, row.style_id) == ("running", None, styles[1].id)
        assert lifecycle.finish(session, model, ident, current, JobStatus.succeeded)
        session.expire_all()
        assert session.get(model, ident).status == "succeeded"


def test_rounds_started_at_once_on_one_style_give_one_201_and_409s(stub_app):
    """The next round's number used to be read before the user's lock: of six requests at once, five lost the
    insert to the unique (style, number) and answered 500."""
    style = create_style(stub_app)
    start = threading.Barrier(6)

    def post() -> int:
        start.wait()
        try:
            return stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"train_steps": 5}).status_code
        except Exception:  # noqa: BLE001  the test client raises what the server did not answer
            return 500

    for _ in range(3):
        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(lambda _: post(), range(6)))
        assert statuses == [201, 409, 409, 409, 409, 409], statuses
        rounds = stub_app.get(f"{API}/styles/{style['id']}/rounds").json()["items"]
        queued = [r for r in rounds if r["status"] == "queued"]
        assert len(queued) == 1
        assert stub_app.post(f"{API}/rounds/{queued[0]['id']}/cancel").status_code == 202


# ---- evaluations: counted, bounded, cancellable, their errors without server paths ---------------------------

def _finished_style(client) -> dict:
    from .factories import finish_round

    style = create_style(client)
    rnd = client.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    finish_round(client.settings, rnd["id"], candidates=1)
    return style


def test_evaluations_count_against_the_job_limit(tmp_path, db):
    from .conftest import stub_client

    with stub_client(tmp_path / "data", db, max_active_jobs=1) as client:
        styles = [_finished_style(client) for _ in range(2)]
        first = client.post(f"{API}/styles/{styles[0]['id']}/evaluations", json={"limit": 2, "per_prompt": 1})
        assert first.status_code == 202, first.text
        for refused in (client.post(f"{API}/styles/{styles[1]['id']}/evaluations", json={"limit": 2}),
                        client.post(f"{API}/styles/{create_style(client)['id']}/rounds", json={}),
                        client.post(f"{API}/styles/{styles[1]['id']}/generations", json={"prompts": ["a cat"]})):
            assert refused.status_code == 429, refused.text
            assert "1 evaluation" in refused.json()["detail"] and refused.headers["Retry-After"]
        assert client.dispatcher.evaluations == [first.json()["id"]]


def test_an_evaluation_is_bounded_in_images(tmp_path, db):
    from .conftest import stub_client

    with stub_client(tmp_path / "data", db, max_evaluation_images=8) as client:
        style = _finished_style(client)
        url = f"{API}/styles/{style['id']}/evaluations"
        too_many = client.post(url, json={"limit": 3, "per_prompt": 2})  # 3 x 2 x (1 round + the base) = 12
        assert too_many.status_code == 422 and "12 images" in too_many.json()["detail"]
        assert client.post(url, json={"limit": 2, "per_prompt": 2}).status_code == 202  # 8


def test_an_evaluation_can_be_cancelled_queued_or_running(stub_app):
    style = _finished_style(stub_app)
    url = f"{API}/styles/{style['id']}/evaluations"
    queued = stub_app.post(url, json={"limit": 2}).json()
    cancelled = stub_app.post(f"{API}/evaluations/{queued['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert stub_app.post(f"{API}/evaluations/{queued['id']}/cancel").status_code == 409
    running = stub_app.post(url, json={"limit": 2}).json()  # the style is free again
    with session_factory(stub_app.settings)() as session:  # as the worker: it took the job up
        token = lifecycle.claim(session, Evaluation, running["id"])
        assert not lifecycle.stopped(session, Evaluation, running["id"], token)
    assert stub_app.post(f"{API}/evaluations/{running['id']}/cancel").json()["status"] == "cancelled"
    with session_factory(stub_app.settings)() as session:  # the worker stops, and its end is refused
        assert lifecycle.stopped(session, Evaluation, running["id"], token)
        assert not lifecycle.finish(session, Evaluation, running["id"], token, JobStatus.succeeded, result={})
    assert stub_app.get(f"{API}/evaluations/{running['id']}").json()["status"] == "cancelled"


def test_the_engine_stops_an_evaluation_before_the_next_model():
    from styledrop.evaluation import EvaluationStopped, evaluate_adapter_files

    asked = []
    with pytest.raises(EvaluationStopped):
        evaluate_adapter_files([(1, "unused.safetensors")], None, None, object(), ["a cat"],
                               should_stop=lambda: asked.append(1) or True)
    assert asked == [1]


def test_a_failed_evaluation_keeps_no_server_path(tmp_path):
    """The real worker function on a real database: the reference image is gone, and the error the user sees
    names no path of the server's."""
    from worker.evaluations import run_evaluation

    from .conftest import stub_client

    with stub_client(tmp_path / "data") as client:
        style = _finished_style(client)
        evaluation = client.post(f"{API}/styles/{style['id']}/evaluations", json={"limit": 1, "per_prompt": 1})
        for reference in (client.settings.storage_root / "styles" / str(style["id"])).glob("reference*"):
            reference.unlink()
        assert run_evaluation(client.settings, evaluation.json()["id"]) == "failed"
        error = client.get(f"{API}/evaluations/{evaluation.json()['id']}").json()["error"]
    assert error and str(tmp_path) not in error and "/styles/" not in error, error


# ---- deleting a style: its jobs of every kind stop, its files go, its quota comes back ---------------------

def test_deleting_a_style_stops_its_jobs_of_every_kind_and_gives_its_quota_back(tmp_path, db):
    """Deleting a style used to be refused while a round ran and left its generations and evaluations running,
    writing into rows found by id and into files nobody counted."""
    from app.domain.fencing import remove_if_deleted
    from app.domain.lifecycle import StaleAttempt
    from app.infra import storage

    from .conftest import stub_client
    from .factories import attempt_of

    with stub_client(tmp_path / "data", db, max_active_jobs=3) as client:
        style = _finished_style(client)
        rnd = client.post(f"{API}/styles/{style['id']}/rounds", json={"feedback": "clip"}).json()
        generation = client.post(f"{API}/styles/{style['id']}/generations", json={"prompts": ["a cat"]}).json()
        evaluation = client.post(f"{API}/styles/{style['id']}/evaluations", json={"limit": 1}).json()
        assert client.post(f"{API}/styles/{create_style(client)['id']}/rounds", json={}).status_code == 429
        attempt = attempt_of(client.settings, rnd["id"])  # as the workers: each job taken up
        attempt.prepare()
        with session_factory(client.settings)() as session:
            tokens = {model: lifecycle.claim(session, model, ident) for model, ident in
                      ((Generation, generation["id"]), (Evaluation, evaluation["id"]))}
        folder = client.settings.storage_root / storage.style_dir(style["id"])
        assert folder.is_dir()

        assert client.delete(f"{API}/styles/{style['id']}").status_code == 204
        assert not folder.exists()
        for url in (f"styles/{style['id']}", f"rounds/{rnd['id']}", f"generations/{generation['id']}",
                    f"evaluations/{evaluation['id']}"):
            assert client.get(f"{API}/{url}").status_code == 404, url
        # the quota came back at once: three jobs may start again
        other = _finished_style(client)
        assert client.post(f"{API}/styles/{other['id']}/generations", json={"prompts": ["a cat"]}).status_code == 202

        # the workers still running them are fenced: the round's next write stops it, the evaluation stops
        # before its next model, the generation's end is refused; what they wrote since goes
        with pytest.raises(StaleAttempt):
            attempt.beat()
        with session_factory(client.settings)() as session:
            assert lifecycle.stopped(session, Evaluation, evaluation["id"], tokens[Evaluation])
            assert not lifecycle.finish(session, Generation, generation["id"], tokens[Generation],
                                        JobStatus.succeeded, image_paths=["late.png"])
        late = client.settings.storage_root / storage.generation_path(style["id"], generation["id"], 0)
        late.parent.mkdir(parents=True)
        late.write_bytes(b"written after the deletion")
        assert remove_if_deleted(client.settings, style["id"])
        assert not folder.exists()
        assert not remove_if_deleted(client.settings, other["id"])  # a style that exists keeps its files
        assert (client.settings.storage_root / storage.style_dir(other["id"])).is_dir()
