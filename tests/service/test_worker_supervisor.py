"""Issue 29, finding 2, the supervisor: `styledrop serve` restarts its workers within a budget that recovers
(app/runner.py: RestartBudget, WorkerSupervisor), and while the job worker rests the API says so (503 on new
jobs, /api/v1/health "degraded"). The supervisor runs real child processes here (small Python programs that
die or stay up as told); tests/service/test_serve_workers.py does it with the real workers through serve."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.domain.models import Round, Style
from app.infra.db import session_factory
from app.infra.migrate import upgrade
from app.main import create_app
from app.runner import RestartBudget, Workers, WorkerSupervisor

from .conftest import StubDispatcher, browser_session, make_settings, png_bytes
from .test_api import API, create_style


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_that_dies_now_and_then_is_always_restarted():
    """The old counter never went down: the sixth death in a week stopped the worker for good."""
    clock = Clock()
    budget = RestartBudget(limit=5, window=600, clock=clock)
    for _ in range(50):  # one death every 700 s, forever
        clock.now += 700
        assert budget.died()


def test_a_worker_that_dies_over_and_over_rests_then_has_a_whole_budget():
    clock = Clock()
    budget = RestartBudget(limit=2, window=600, clock=clock)
    for step in (0, 10):  # two deaths within the window: restarted each time
        clock.now += step
        assert budget.died()
    clock.now += 10
    assert not budget.died()  # the third within 600 s: rest ...
    assert budget.rest_until() == 1020 + 600  # ... until the last death has left the window
    clock.now = 1620
    for step in (0, 10):  # the budget is whole again
        clock.now += step
        assert budget.died()
    clock.now += 10
    assert not budget.died()


def _program(tmp_path: Path, dies: int) -> list[str]:
    """A child that exits with code 3 on its first `dies` runs and then stays up (counts runs in a file)."""
    counter = tmp_path / "runs"
    code = (f"import pathlib, sys, time; p = pathlib.Path({str(counter)!r}); n = int(p.read_text() or 0) "
            f"if p.exists() else 0; p.write_text(str(n + 1)); "
            f"sys.exit(3) if n < {dies} else time.sleep(3600)")
    return [sys.executable, "-c", code]


def _wait(what: str, done, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (value := done()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return value


def test_the_supervisor_rests_a_crashing_worker_and_starts_it_again(tmp_path):
    deaths, given_up = [], []
    supervisor = WorkerSupervisor("worker", _program(tmp_path, dies=3), RestartBudget(limit=2, window=3.0),
                                  on_death=lambda code: deaths.append(code) or [],
                                  on_give_up=lambda code: given_up.append(code) or [], poll_seconds=0.05)
    try:
        down = _wait("resting", supervisor.down)
        assert deaths == [3, 3] and given_up == [3]  # two restarts, then the budget is spent
        assert "died 3 times within 3 s" in down[0] and 1 <= down[1] <= 3
        assert supervisor.process is None
        _wait("started again after the rest", lambda: supervisor.down() is None and supervisor.process is not None)
        time.sleep(0.5)  # the fourth run stays up
        assert supervisor.process.poll() is None and (tmp_path / "runs").read_text() == "4"
    finally:
        supervisor.stop()
    assert supervisor.process.poll() is not None  # stopped with serve


def test_while_the_job_worker_rests_new_jobs_get_503_and_health_is_degraded(tmp_path):
    settings = make_settings(tmp_path / "data")
    upgrade(settings)
    (tmp_path / "jobs").mkdir()
    jobs = WorkerSupervisor("worker", _program(tmp_path / "jobs", dies=2), RestartBudget(limit=1, window=4.0),
                            poll_seconds=0.05)
    hooks = WorkerSupervisor("webhook worker", _program(tmp_path, dies=0), RestartBudget(1, 60), poll_seconds=0.05)
    dispatcher = StubDispatcher()
    client = TestClient(create_app(settings, dispatcher, Workers(jobs, hooks)))
    browser_session(client)
    try:
        style = create_style(client)  # no job: always taken
        _wait("resting", jobs.down)
        health = client.get(f"{API}/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded", health.text
        assert "The worker died 2 times" in health.json()["detail"]
        for answer in (client.post(f"{API}/styles/{style['id']}/rounds", json={}),
                       client.post(f"{API}/styles/{style['id']}/generations", json={"prompts": ["a cat"]}),
                       client.post(f"{API}/styles/{style['id']}/evaluations", json={})):
            assert answer.status_code == 503, answer.text
            assert 1 <= int(answer.headers["retry-after"]) <= 4
            assert answer.json()["detail"].startswith("No worker can run new jobs now")
        page = client.post(f"/styles/{style['id']}/rounds", data={}, follow_redirects=False)
        assert page.status_code == 503 and "No worker can run new jobs" in page.text
        with session_factory(settings)() as session:
            assert session.scalar(select(func.count()).select_from(Round)) == 0  # nothing stored, nothing sent
        assert dispatcher.rounds == [] and dispatcher.generations == [] and dispatcher.evaluations == []
        created = client.post("/styles/new", data={"content": "a boat", "descriptor": "ink", "base_model": "tiny",
                                                   "adapter": "styledrop", "steps": "10", "seed": "0"},
                              files={"image": ("a.png", png_bytes(), "image/png")}, follow_redirects=False)
        assert created.status_code == 303 and created.headers["location"].endswith("?notice=workers-down")
        assert "no worker can run jobs now" in client.get(created.headers["location"]).text

        _wait("started again", lambda: jobs.down() is None)
        assert client.get(f"{API}/health").json() == {"status": "ok"}
        assert client.post(f"{API}/styles/{style['id']}/rounds", json={}).status_code == 201
        with session_factory(settings)() as session:
            assert session.scalar(select(func.count()).select_from(Style)) == 2
    finally:
        jobs.stop()
        hooks.stop()
