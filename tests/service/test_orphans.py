"""`styledrop serve` killed with SIGKILL takes its worker and Redis with it, and a worker that still runs a
round another worker has taken up is fenced off (else the round is trained twice at once: its steps jump back
and forth and the adapter is rewritten after the candidates were drawn from another one). Real processes:
serve, its worker and embedded Redis, and a Celery worker started beside it as an orphan would be; SQLite;
the tiny model.

The timeouts below only stop a hung test; every wait is for progress (a step, a status, a log line)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from app.infra.embedded_redis import free_port

from .conftest import FAST, png_bytes
from .test_serve import ROOT, _start_serve

PATIENCE = 300  # seconds; only a hung run gets near it, on a loaded machine too


def _until(condition, what: str, logs=lambda: "") -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{logs()}"
        time.sleep(0.2)


def _children(pid: int) -> dict[str, psutil.Process]:
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        line = " ".join(child.cmdline())
        found["worker" if "celery" in line else "redis" if "redis-server" in line else str(child.pid)] = child
    return found


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_serve_takes_its_worker_and_redis_with_it_and_a_stale_worker_is_fenced_off(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    serve, log_path = _start_serve(tmp_path, port, "first.log")
    orphan = None
    try:
        _until(lambda: {"worker", "redis"} <= set(_children(serve.pid)), "serve started no worker or Redis",
               log_path.read_text)
        children = _children(serve.pid)
        redis_url = children["worker"].environ()["REDIS_URL"]

        def style(descriptor: str) -> int:
            return httpx.post(f"{base}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                              data={"content": "a house", "descriptor": descriptor}).json()["id"]

        # serve's worker is kept busy, so the round under test goes to a worker started beside serve: the one
        # that will be left behind (an orphan, as serve's own worker would be without parent-death signals)
        busy = httpx.post(f"{base}/styles/{style('ink drawing')}/rounds", json={"steps": 5000}).json()
        _until(lambda: httpx.get(f"{base}/rounds/{busy['id']}").json()["status"] == "running", "not running")
        orphan_log = tmp_path / "orphan.log"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(FAST, PYTHONPATH=str(ROOT), STYLEDROP_DATA=str(tmp_path / "data"), REDIS_URL=redis_url)
        with open(orphan_log, "w") as log:
            orphan = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q",
                                       "gpu,default", "-c", "1", "-P", "solo", "--without-gossip", "--without-mingle",
                                       "--loglevel", "INFO", "-n", "orphan@%h"], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        _until(lambda: " ready." in orphan_log.read_text(), "the orphan worker did not start", orphan_log.read_text)
        rnd = httpx.post(f"{base}/styles/{style('oil painting')}/rounds",
                         json={"steps": 120, "checkpoint_every": 20, "prompts": ["a cat"],
                               "candidates_per_prompt": 1, "sample_steps": 2}).json()
        url = f"{base}/rounds/{rnd['id']}"
        _until(lambda: httpx.get(url).json()["step"] >= 30, "the round did not pass step 30", orphan_log.read_text)
        assert "train_round" in orphan_log.read_text()  # the orphan trains it
        assert httpx.post(f"{base}/rounds/{busy['id']}/cancel").status_code == 202
        _until(lambda: httpx.get(f"{base}/rounds/{busy['id']}").json()["status"] == "cancelled", "not cancelled")

        os.kill(orphan.pid, signal.SIGSTOP)  # frozen mid-training (a long pause), woken up after the restart
        os.kill(serve.pid, signal.SIGKILL)  # serve crashes: it stops nothing itself
        serve.wait(30)
        # the kernel ends serve's worker (SIGKILL) and Redis (SIGTERM) for it
        _until(lambda: _gone(children["worker"]) and _gone(children["redis"]), "serve's children outlived it")

        serve, log_path = _start_serve(tmp_path, port, "second.log")
        _until(lambda: (b := httpx.get(url).json())["attempts"] == 2 and "started_at_step" in b["metrics"],
               "the restarted serve did not resume the round", log_path.read_text)
        os.kill(orphan.pid, signal.SIGCONT)  # the stale worker wakes up and goes on writing ... refused

        steps, body = [], httpx.get(url).json()
        while body["status"] in ("queued", "running"):
            assert body["attempts"] == 2, body  # no one else claims it
            steps.append(body["step"])
            time.sleep(0.2)
            body = httpx.get(url).json()
        assert body["status"] == "succeeded", (body, log_path.read_text()[-3000:], orphan_log.read_text()[-3000:])
        assert steps == sorted(steps), steps  # one trainer: the steps only go up
        assert body["step"] == 120 and body["metrics"]["started_at_step"] >= 20
        _until(lambda: "is no longer the current attempt" in orphan_log.read_text(), "the orphan was not refused",
               orphan_log.read_text)
        _until(lambda: "'stale'" in orphan_log.read_text(), "the orphan did not stop", orphan_log.read_text)
        assert orphan.poll() is None  # alive on purpose, idle

        stored = httpx.get(f"{url}/adapter").content
        assert hashlib.sha256(stored).hexdigest() == body["metrics"]["candidates_adapter_sha256"]
        assert len(httpx.get(f"{url}/candidates").json()["items"]) == 1
        assert httpx.get(f"{url}/adapter").content == stored  # the orphan, stopped, rewrote nothing
    finally:
        if orphan is not None:
            os.kill(orphan.pid, signal.SIGCONT)
            orphan.kill()
            orphan.wait(30)
        if serve.poll() is None:
            serve.send_signal(signal.SIGINT)
            serve.wait(60)
