"""A world base model on the service (issue 24, item 5): the examples a new style may start from, a world that is
not built said and refused up front, its build as a worker job with progress.

The stub-app tests run the app on a fresh SQLite database with no worker (the dispatcher records what it would
queue); the world cache folder is the test's own (STYLEDROP_WORLD_DIR), so nothing here is built and nothing
touches the user's cache. The job test runs a real Celery worker on a real Redis: it resumes the micro world's
build from the copy the session's build left at a transformer checkpoint (tests/conftest.py), and waits on
the progress the worker reports, never on a deadline."""

from __future__ import annotations

import io
import json
import os
import shutil
import time

import pytest
from PIL import Image

from .conftest import FAST, ROOT, browser_session, make_settings, png_bytes, stub_client
from .servers import WORKER_READY, started, wait_for_log, worker_args

ROOT_EXAMPLES = ROOT / "examples"
WORLD_MODELS = "shapes,tiny,shapes-micro"


@pytest.fixture
def worlds_dir(tmp_path, monkeypatch):
    folder = tmp_path / "worlds"
    monkeypatch.setenv("STYLEDROP_WORLD_DIR", str(folder))
    return folder


@pytest.fixture
def shapes_app(tmp_path, worlds_dir):
    """The server default `STYLEDROP_MODEL=shapes` on a machine where it is not built."""
    with stub_client(tmp_path / "data", model="shapes", base_models=WORLD_MODELS) as client:
        yield client


def style_count(client) -> int:
    return len(client.get("/api/v1/styles").json()["items"])


# ---- examples ---------------------------------------------------------------------------------------------

def test_examples_suit_the_base_model(shapes_app):
    shapes = shapes_app.get("/api/v1/examples", params={"base_model": "shapes"}).json()
    assert {e["id"] for e in shapes} == {f"shapes-{p.stem}" for p in (ROOT_EXAMPLES / "shapes").glob("*.png")}
    dusk = next(e for e in shapes if e["id"] == "shapes-dusk-striped-on-black--house")
    assert (dusk["descriptor"], dusk["content"]) == ("dusk striped on black", "a house")
    tiny = shapes_app.get("/api/v1/examples", params={"base_model": "tiny"}).json()
    assert [(e["id"], e["descriptor"], e["content"]) for e in tiny] == [("house", "flat cartoon illustration",
                                                                          "a house")]
    assert shapes_app.get("/api/v1/examples").json() == shapes  # the server's default model: shapes
    image = shapes_app.get(dusk["image_url"])
    assert image.status_code == 200
    assert image.content == (ROOT_EXAMPLES / "shapes" / "dusk-striped-on-black--house.png").read_bytes()
    for bad in ("..%2Fpyproject.toml", "shapes%2F..%2F..%2Fpyproject.toml", "%2e%2e", "nope", "house.png"):
        assert shapes_app.get(f"/api/v1/examples/{bad}/image").status_code == 404, bad


def test_the_new_style_page_offers_the_examples_and_creates_a_style_from_one(tmp_path):
    with stub_client(tmp_path / "data") as client:  # tiny, the tests' default model: the quick start's house
        page = client.get("/styles/new").text
        assert 'name="example" value="house"' in page and 'src="/api/v1/examples/house/image"' in page
        assert "shapes-" not in page.split('id="examples"')[1].split("</fieldset>")[0]
        # choosing another base model swaps the examples (htmx): a world's references
        choices = client.get("/styles/new/choices", params={"base_model": "shapes"}).text
        assert 'value="shapes-dusk-striped-on-black--house"' in choices and 'value="house"' not in choices
        # without JavaScript: the chosen example fills the fields left empty, its file is the reference
        response = client.post("/styles/new", data={"example": "house", "base_model": "tiny", "content": "",
                                                    "descriptor": ""}, follow_redirects=False)
        assert response.status_code == 303, response.text
        style = client.get(f"/api/v1/styles/{response.headers['location'].rsplit('/', 1)[1]}").json()
        assert (style["descriptor"], style["content"]) == ("flat cartoon illustration", "a house")
        stored = Image.open(io.BytesIO(client.get(f"/api/v1/styles/{style['id']}/reference").content))
        assert stored.size == Image.open(ROOT_EXAMPLES / "house.png").size
        assert client.dispatcher.rounds  # round 1 queued, as with an upload
        # an example the page did not list (another base model's, or a path) is refused, the fields kept
        for bad in ("shapes-dusk-striped-on-black--house", "../pyproject.toml", "house.png"):
            refused = client.post("/styles/new", data={"example": bad, "base_model": "tiny", "content": "a cat",
                                                       "descriptor": "oil painting"})
            assert refused.status_code == 422 and "Choose one of the examples shown" in refused.text
            assert 'value="a cat"' in refused.text


# ---- a world not built here -------------------------------------------------------------------------------

def test_an_unbuilt_world_is_said_and_refused_up_front(shapes_app):
    world = shapes_app.get("/api/v1/worlds/shapes").json()
    assert (world["state"], world["built"], world["build_minutes"]) == ("not built", False, 30)
    assert shapes_app.get("/api/v1/worlds/amused").status_code == 404
    page = shapes_app.get("/styles/new").text
    assert "is not built on this server" in page and "Build the shapes world (about 30 min)" in page
    # the API refuses the style before storing anything
    refused = shapes_app.post("/api/v1/styles", data={"content": "a house", "descriptor": "dusk striped on black",
                                                      "base_model": "shapes"},
                              files={"image": ("ref.png", png_bytes(), "image/png")})
    assert refused.status_code == 409 and "POST /api/v1/worlds/shapes/build" in refused.json()["detail"]
    # the page too, keeping what was given: the fields and the chosen example
    form = {"example": "shapes-dusk-striped-on-black--house", "base_model": "shapes", "content": "a house",
            "descriptor": "dusk striped on black", "name": "My dusk", "steps": "77"}
    page = shapes_app.post("/styles/new", data=form)
    assert page.status_code == 409 and "not built on this server yet" in page.text
    for kept in ('value="My dusk"', 'value="77"'):
        assert kept in page.text, kept
    assert 'value="shapes-dusk-striped-on-black--house" data-name="Dusk striped on black" data-descriptor=' \
           '"dusk striped on black" data-content="a house" data-image="/api/v1/examples/shapes-dusk-striped-on-' \
           'black--house/image" checked' in page.text
    assert style_count(shapes_app) == 0 and not shapes_app.dispatcher.rounds


def test_a_round_on_an_unbuilt_world_is_refused_before_it_is_queued(shapes_app):
    from sqlalchemy import update

    from app.domain.models import Style
    from app.infra.db import session_factory

    created = shapes_app.post("/api/v1/styles", data={"content": "a house", "descriptor": "oil painting",
                                                      "base_model": "tiny"},
                              files={"image": ("ref.png", png_bytes(), "image/png")}).json()
    with session_factory(shapes_app.settings)() as session:  # its world went away (a new machine, a cleared cache)
        session.execute(update(Style).where(Style.id == created["id"]).values(base_model="shapes"))
        session.commit()
    refused = shapes_app.post(f"/api/v1/styles/{created['id']}/rounds", json={})
    assert refused.status_code == 409 and "not built on this server" in refused.json()["detail"]
    assert shapes_app.get(f"/api/v1/styles/{created['id']}/rounds").json()["items"] == []
    assert not shapes_app.dispatcher.rounds


def test_one_build_at_a_time_and_what_a_stopped_or_failed_build_says(shapes_app, worlds_dir):
    from app.domain import worlds
    from worker.worlds import build_lock

    first = shapes_app.post("/api/v1/worlds/shapes/build")
    assert first.status_code == 202 and first.json()["state"] == "queued"
    again = shapes_app.post("/api/v1/worlds/shapes/build")  # shows the queued one, queues nothing more
    assert again.status_code == 202 and again.json()["state"] == "queued"
    assert shapes_app.dispatcher.worlds == ["shapes"]
    jobs = shapes_app.get("/jobs").text  # the server-wide build, listed above the user's own jobs
    assert "world</a> is being built on this server" in jobs and "waiting for a worker" in jobs
    panel = shapes_app.post("/worlds/shapes/build", headers={"HX-Request": "true"}).text  # the page's button
    assert "Queued: waiting for a worker" in panel and 'hx-trigger="every 2s"' in panel
    assert shapes_app.dispatcher.worlds == ["shapes"]
    # without JavaScript the button posts a plain form and comes back to the new-style page on that world
    plain = shapes_app.post("/worlds/shapes/build", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/styles/new?base_model=shapes"
    # a running build, as a worker reports it (holding the build lock): stage, step, time left; the panel polls
    worlds.write_record("shapes", {"state": "running", "heartbeat_at": time.time(), "stage": "clip",
                                   "stage_index": 2, "stages": 4, "step": 120, "total": 1200, "eta_seconds": 90})
    with build_lock("shapes") as mine:
        assert mine
        running = shapes_app.get("/api/v1/worlds/shapes").json()
        assert (running["state"], running["percent"], running["eta_seconds"]) == ("running", 10, 90)
        panel = shapes_app.get("/worlds/shapes/panel").text
        assert "Stage 2 of 4" in panel and "step 120 of 1200" in panel and "about 2 min left in this stage" in panel
        assert 'hx-trigger="every 2s"' in panel and 'aria-valuenow="10"' in panel and "Build the" not in panel
        assert shapes_app.post("/api/v1/worlds/shapes/build").json()["state"] == "running"  # no second build
        assert shapes_app.dispatcher.worlds == ["shapes"]
    # its worker died: the lock went with it, so the build reads as stopped at once, heartbeat fresh or not
    assert shapes_app.get("/api/v1/worlds/shapes").json()["state"] == "stopped"
    # a heartbeat gone stale says the same (what the page then offers: go on from the checkpoints)
    long_ago = time.time() - shapes_app.settings.heartbeat_stale_seconds - 1
    worlds.write_record("shapes", {"state": "running", "heartbeat_at": long_ago, "stage": "transformer",
                                   "stage_index": 3, "stages": 4, "step": 700, "total": 2400})
    world = shapes_app.get("/api/v1/worlds/shapes").json()
    assert world["state"] == "stopped" and "worker building it stopped" in world["note"]
    page = shapes_app.get("/styles/new").text
    assert "The build stopped" in page and "step 700 of 2400" in page and "Go on building the shapes world" in page
    assert shapes_app.post("/api/v1/worlds/shapes/build").json()["state"] == "queued"
    assert shapes_app.dispatcher.worlds == ["shapes", "shapes"]
    # a failed build says why
    worlds.write_record("shapes", {"state": "failed", "error": "RuntimeError: out of memory"})
    assert shapes_app.get("/api/v1/worlds/shapes").json()["error"] == "RuntimeError: out of memory"
    assert "The build failed:</strong> RuntimeError: out of memory" in shapes_app.get("/worlds/shapes/panel").text


# ---- the build, run by a real worker ----------------------------------------------------------------------

@pytest.mark.slow
def test_a_worker_builds_the_world_with_progress_and_the_result_loads(tmp_path, redis_url, micro_world_midway,
                                                                      monkeypatch):
    from app.infra.migrate import upgrade

    worlds_dir = tmp_path / "worlds"
    shutil.copytree(micro_world_midway, worlds_dir / "shapes-micro")  # an interrupted build: resumes there
    monkeypatch.setenv("STYLEDROP_WORLD_DIR", str(worlds_dir))
    data = tmp_path / "data"
    upgrade(make_settings(data, redis_url=redis_url))
    env = dict(os.environ, **FAST, STYLEDROP_DATA=str(data), REDIS_URL=redis_url, PYTHONPATH=str(ROOT),
               STYLEDROP_WORLD_DIR=str(worlds_dir), STYLEDROP_BASE_MODELS=WORLD_MODELS)
    env.pop("DATABASE_URL", None)
    log = tmp_path / "worker.log"
    settings = make_settings(data, redis_url=redis_url, base_models=WORLD_MODELS, model="shapes-micro")
    from fastapi.testclient import TestClient

    from app.main import create_app

    with started(worker_args("world"), env, log) as worker, TestClient(create_app(settings)) as client:
        browser_session(client)
        wait_for_log(worker, log, WORKER_READY, 90, "worker")
        before = client.get("/api/v1/worlds/shapes-micro").json()
        assert before["state"] == "stopped" and "not finished" in before["note"]  # found as the build left it
        assert client.post("/api/v1/worlds/shapes-micro/build").status_code == 202  # Celery, to the worker
        seen = []
        while True:  # on progress: the worker's reports, until the build ends (or the worker dies)
            world = client.get("/api/v1/worlds/shapes-micro").json()
            seen.append((world["state"], world["stage"], world["step"], world["total"]))
            if world["state"] in ("built", "failed"):
                break
            assert worker.poll() is None, f"the worker died:\n{log.read_text()[-4000:]}"
            time.sleep(0.1)
        assert world["state"] == "built", (world, log.read_text()[-4000:])
        status = worlds_dir / "shapes-micro" / "build-status.json"
        while json.loads(status.read_text())["state"] == "running":  # the job ends just after the manifest says so
            assert worker.poll() is None, f"the worker died:\n{log.read_text()[-4000:]}"
            time.sleep(0.1)
        assert json.loads(status.read_text())["state"] == "succeeded"
        manifest = json.loads((worlds_dir / "shapes-micro" / "world.json").read_text())
        resumed = manifest["stages"]["transformer"]["resumed_from"]
        assert manifest["complete"] and resumed > 0  # the worker went on from the copied checkpoint
        steps = [step for state, stage, step, total in seen if state == "running" and stage == "transformer"
                 and total and total > 1]  # (a stage's start is announced as step 0 of 1)
        assert steps and steps == sorted(steps) and resumed < steps[0] and len(set(steps)) >= 2, seen
        # the result loads as a base model, and a style on it is no longer refused
        from styledrop.models import load_components

        assert load_components("shapes-micro").source == "shapes-micro"
        created = client.post("/api/v1/styles", data={"content": "a house", "descriptor": "dusk striped on black",
                                                      "base_model": "shapes-micro"},
                              files={"image": ("ref.png", (ROOT / "examples/shapes/dusk-striped-on-black--house.png")
                                               .read_bytes(), "image/png")})
        assert created.status_code == 201, created.text
