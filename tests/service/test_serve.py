"""`styledrop serve`: one command starts migrations, an embedded Redis, a worker and the API; SIGINT stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from app.infra.embedded_redis import free_port

from .conftest import FAST, png_bytes

ROOT = Path(__file__).resolve().parents[2]


def _redis_servers(folder: Path) -> set[int]:
    """Live redis-servers working in `folder` (other test runs on this machine start their own)."""
    found = set()
    for p in psutil.process_iter(["name", "status"]):
        if (p.info["name"] or "").startswith("redis-server") and p.info["status"] != psutil.STATUS_ZOMBIE:
            try:
                if Path(p.cwd()).is_relative_to(folder):
                    found.add(p.pid)
            except (psutil.Error, OSError):
                pass
    return found


def test_serve_starts_answers_and_stops_on_sigint(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "STYLEDROP_DATA")}
    env.update(FAST, PYTHONPATH=str(ROOT))
    before = _redis_servers(tmp_path)
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "styledrop", "serve", "--port", str(port), "--data",
                                    str(tmp_path / "data")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        started = next(line for line in log_path.read_text().splitlines() if line.startswith("StyleDrop Studio: http"))
        address = started.split()[2]
        assert address == f"http://127.0.0.1:{port}/", started  # the pages, not /api/v1 (which answers 404)
        assert "<html" in httpx.get(address, follow_redirects=True).text.lower()
        assert (tmp_path / "data" / "styledrop.db").is_file()  # migrated SQLite under the data folder
        children = psutil.Process(process.pid).children(recursive=True)
        assert any("celery" in " ".join(c.cmdline()) for c in children), [c.cmdline() for c in children]

        # the embedded worker really works: a tiny round through the served API
        style = httpx.post(f"{base}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": "flat cartoon illustration"}).json()
        rnd = httpx.post(f"{base}/styles/{style['id']}/rounds",
                         json={"steps": 5, "prompts": ["a cat"], "candidates_per_prompt": 1, "sample_steps": 2}).json()
        body = _until_ended(f"{base}/rounds/{rnd['id']}", log_path)
        assert body["status"] == "succeeded", body

        # the worker is killed (as by the OOM killer) mid-training: it is restarted and the round resumes
        # from its last checkpoint on its own
        other = httpx.post(f"{base}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": "oil painting"}).json()
        long = httpx.post(f"{base}/styles/{other['id']}/rounds",
                          json={"steps": 5000, "checkpoint_every": 20, "prompts": ["a cat"]}).json()
        _until_step(f"{base}/rounds/{long['id']}", 30, log_path)  # past the checkpoint at step 20
        worker = next(c for c in psutil.Process(process.pid).children() if "celery" in " ".join(c.cmdline()))
        worker.kill()
        deadline = time.monotonic() + 120
        while not ((body := httpx.get(f"{base}/rounds/{long['id']}").json())["status"] == "running"
                   and body["attempts"] == 2 and "started_at_step" in body["metrics"]
                   and body["metrics"].get("interruptions")):
            assert body["status"] in ("running", "queued"), body
            assert time.monotonic() < deadline, (body, log_path.read_text()[-3000:])
            time.sleep(0.2)
        assert body["metrics"]["started_at_step"] >= 20  # resumed from a checkpoint, not from step 0
        assert body["metrics"]["interruptions"][0]["at_step"] >= 20
        assert worker.pid not in [c.pid for c in psutil.Process(process.pid).children()]  # a new worker runs it
        assert httpx.post(f"{base}/rounds/{long['id']}/cancel").status_code == 202
        children = psutil.Process(process.pid).children(recursive=True)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"serve did not stop on SIGINT:\n{log_path.read_text()[-3000:]}")
    assert code == 0, log_path.read_text()[-3000:]
    assert "stopped." in log_path.read_text()
    assert all(not c.is_running() for c in children)  # the worker is gone
    time.sleep(0.5)
    assert _redis_servers(tmp_path) - before == set()  # and so is the embedded Redis
    try:
        httpx.get(f"{base}/health", timeout=2)
        raise AssertionError("the API still answers after SIGINT")
    except httpx.HTTPError:
        pass


def _until_step(url: str, step: int, log_path: Path, stall: float = 90) -> None:
    """Wait on progress, not on the clock: fail only when the round's step stops moving for `stall` s."""
    deadline, seen = time.monotonic() + stall, None
    while (now := httpx.get(url).json()["step"]) < step:
        if now != seen:
            deadline, seen = time.monotonic() + stall, now
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.2)


def _until_ended(url: str, log_path: Path, stall: float = 90) -> dict:
    """The round once it has ended. Waits on progress, not on the clock: fails only when its status, phase
    and step all stay the same for `stall` s (a fixed deadline failed under a neighbour's CPU load)."""
    deadline, seen = time.monotonic() + stall, None
    while (body := httpx.get(url).json())["status"] in ("queued", "running"):
        if (now := (body["status"], body["phase"], body["step"])) != seen:
            deadline, seen = time.monotonic() + stall, now
        assert time.monotonic() < deadline, (body, log_path.read_text()[-3000:])
        time.sleep(0.3)
    return body


def _start_serve(tmp_path: Path, port: int, log_name: str) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "STYLEDROP_DATA")}
    env.update(FAST, PYTHONPATH=str(ROOT))
    log_path = tmp_path / log_name
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "styledrop", "serve", "--port", str(port), "--data",
                                    str(tmp_path / "data")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log_path.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return process, log_path
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.3)


def test_a_crashed_server_loses_nothing_and_resumes_training_on_restart(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    process, log_path = _start_serve(tmp_path, port, "first.log")
    family = []
    try:
        style = httpx.post(f"{base}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": "oil painting"}).json()
        rnd = httpx.post(f"{base}/styles/{style['id']}/rounds",
                         json={"steps": 5000, "checkpoint_every": 20, "prompts": ["a cat"]}).json()
        _until_step(f"{base}/rounds/{rnd['id']}", 30, log_path)
        family = [process.pid] + [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
    finally:
        for pid in family or [process.pid]:  # a crash: everything dies at once, nothing is shut down cleanly
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        process.wait(30)

    process, log_path = _start_serve(tmp_path, port, "second.log")
    try:
        assert httpx.get(f"{base}/styles/{style['id']}").json()["descriptor"] == "oil painting"
        deadline = time.monotonic() + 120
        while not ((body := httpx.get(f"{base}/rounds/{rnd['id']}").json())["status"] == "running"
                   and "started_at_step" in body["metrics"]):
            assert body["status"] in ("running", "queued"), body
            assert time.monotonic() < deadline, (body, log_path.read_text()[-3000:])
            time.sleep(0.2)
        assert body["attempts"] == 2 and body["metrics"]["interruptions"][0]["at_step"] >= 20
        assert body["metrics"]["started_at_step"] >= 20  # resumed from its checkpoint, not from step 0
        assert httpx.post(f"{base}/rounds/{rnd['id']}/cancel").status_code == 202
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, log_path.read_text()[-3000:]


def test_stopping_serve_mid_training_queues_the_round_and_the_next_start_resumes_it(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    process, log_path = _start_serve(tmp_path, port, "first.log")
    try:
        style = httpx.post(f"{base}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": "oil painting"}).json()
        rnd = httpx.post(f"{base}/styles/{style['id']}/rounds",
                         json={"steps": 300, "checkpoint_every": 20, "prompts": ["a cat"]}).json()
        _until_step(f"{base}/rounds/{rnd['id']}", 30, log_path)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(60) == 0, log_path.read_text()[-3000:]

    # not cancelled: back in the queue, with a checkpoint written as training stopped
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'styledrop.db'}")
    with engine.connect() as connection:
        status, cancel, attempts, error = connection.execute(text(
            "SELECT status, cancel_requested, attempts, error FROM rounds WHERE id = :id"), {"id": rnd["id"]}).one()
    engine.dispose()
    assert (status, bool(cancel), attempts, error) == ("queued", False, 0, None), log_path.read_text()[-3000:]
    checkpoints = sorted((tmp_path / "data" / "files" / "styles" / str(style["id"]) / "rounds" / "1" / "attempts" /
                          "1" / "checkpoints").glob("step-*.pt"))  # attempt 1's own folder (app.domain.fencing)
    stopped_at = int(checkpoints[-1].stem.removeprefix("step-"))
    assert stopped_at >= 30  # written on the stop, not only the periodic ones (20, 40, ...)

    process, log_path = _start_serve(tmp_path, port, "second.log")
    try:
        body = _until_ended(f"{base}/rounds/{rnd['id']}", log_path)
        assert body["status"] == "succeeded", (body, log_path.read_text()[-3000:])
        assert body["metrics"]["resumed_from"] == stopped_at and body["attempts"] == 1
        assert body["metrics"]["interruptions"][0]["reason"] == "the worker shut down"
        assert len(httpx.get(f"{base}/rounds/{rnd['id']}/candidates").json()["items"]) == 1  # the duplicate message did nothing
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, log_path.read_text()[-3000:]
