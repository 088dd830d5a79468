"""Issue 29, finding 2, through `styledrop serve` (app/runner.py) as a user runs it: webhook deliveries have a
worker of their own, and the job worker's restart budget recovers.

Deliveries ran on the solo-pool worker that trains everyone's jobs: a receiver that holds its answer held
another job for as long as it liked. After its sixth death (ever) the supervisor stopped restarting the worker
for good, while the API kept answering 202/201 to jobs that would never run. Now a held delivery does not
hold training; a worker that dies too often rests, the API says so meanwhile (503 with Retry-After on new jobs,
/api/v1/health "degraded"), and it starts again with a whole budget."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import httpx
import psutil

from app.infra.embedded_redis import free_port

from .conftest import png_bytes
from .test_serve import _start_serve, _stop_serve, _until_ended

WINDOW = 45  # seconds: the job worker may be restarted once within it (STYLEDROP_WORKER_RESTART_*)


class HoldingReceiver:
    """A webhook receiver on 127.0.0.1 that takes the request and keeps the connection open, answering
    nothing, until released."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.holding, self.release = threading.Event(), threading.Event()
        self.closed_by_peer = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.holding.set()
            conn.settimeout(0.5)
            while not self.release.is_set():
                try:
                    if conn.recv(1) == b"":
                        self.closed_by_peer = True
                        return
                except TimeoutError:
                    continue

    def stop(self) -> None:
        self.release.set()
        self.listener.close()


def _children(process: subprocess.Popen, app: str) -> list[psutil.Process]:
    return [c for c in psutil.Process(process.pid).children()
            if f"-A {app} " in " ".join(c.cmdline()) + " " and c.is_running()]


def _wait(what: str, done, log_path, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while not (value := done()):
        assert time.monotonic() < deadline, f"{what}:\n{log_path.read_text()[-4000:]}"
        time.sleep(0.2)
    return value


def _new_round(base: str, descriptor: str, **body) -> httpx.Response:
    style = httpx.post(f"{base}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                       data={"content": "a house", "descriptor": descriptor}, timeout=60).json()
    return httpx.post(f"{base}/styles/{style['id']}/rounds", json={"steps": 4, "prompts": ["a cat"],
                                                                  "candidates_per_prompt": 1, **body}, timeout=60)


def test_serve_delivers_webhooks_beside_training_and_its_worker_recovers(tmp_path):
    port = free_port()
    process, log_path = _start_serve(
        tmp_path, port, "serve.log", STYLEDROP_WEBHOOK_ALLOW="127.0.0.1/32",
        STYLEDROP_WEBHOOK_TIMEOUT_SECONDS="600",  # the receiver, not the deadline, decides here
        STYLEDROP_WORKER_RESTART_LIMIT="1", STYLEDROP_WORKER_RESTART_WINDOW_SECONDS=str(WINDOW))
    base = f"http://127.0.0.1:{port}/api/v1"
    receiver = HoldingReceiver()
    try:
        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{base}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("both workers", lambda: _children(process, "worker.celery_app") and _children(process, "worker.webhooks"),
              log_path)

        # A round whose webhook goes to a receiver that holds the delivery, then another job: it trains and
        # ends while that delivery is still held (it waited behind it when both shared the only worker).
        first = _new_round(base, "ink wash", callback_url=receiver.url)
        assert first.status_code == 201, first.text
        assert _until_ended(f"{base}/rounds/{first.json()['id']}", log_path)["status"] == "succeeded"
        _wait("the held delivery", receiver.holding.is_set, log_path)
        second = _new_round(base, "oil painting")
        assert _until_ended(f"{base}/rounds/{second.json()['id']}", log_path)["status"] == "succeeded"
        assert not receiver.release.is_set() and not receiver.closed_by_peer  # still held all along
        receiver.stop()

        # The job worker dies twice within the window (limit 1): it rests; new jobs get 503, health "degraded".
        for _ in range(2):
            worker = _wait("the job worker", lambda: _children(process, "worker.celery_app"), log_path)[0]
            worker.send_signal(signal.SIGKILL)
            worker.wait(60)
        degraded = _wait("health degraded", lambda: (r := httpx.get(f"{base}/health", timeout=5)).status_code == 503
                         and r, log_path, timeout=60)
        assert degraded.json()["status"] == "degraded" and "resting" in degraded.json()["detail"]
        refused = _new_round(base, "line drawing")
        assert refused.status_code == 503 and 1 <= int(refused.headers["retry-after"]) <= WINDOW, refused.text
        assert "No worker can run new jobs" in refused.json()["detail"]
        assert httpx.get(f"{base}/styles/{refused.request.url.path.split('/')[-2]}/rounds").json()["items"] == []
        assert not _children(process, "worker.celery_app")  # resting: no worker process
        assert _children(process, "worker.webhooks")  # the other worker is not touched

        # After its rest the worker starts again, with a whole budget: jobs are taken and run.
        _wait("the worker back", healthy, log_path, timeout=WINDOW + 120)
        third = _new_round(base, "sticker")
        assert third.status_code == 201, third.text
        assert _until_ended(f"{base}/rounds/{third.json()['id']}", log_path)["status"] == "succeeded"
    finally:
        receiver.stop()
        code = _stop_serve(process, log_path, timeout=90)
    assert code == 0, log_path.read_text()[-3000:]
