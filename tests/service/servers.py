"""The processes some service tests start beside the test: uvicorn serving the app, a Celery worker. A free port,
and waiting on a process's log for the line that says it is ready (progress, not a deadline tuned to a quiet
machine: the time limit only catches a process that never gets there)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_log(proc: subprocess.Popen, log: Path, needle: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while needle not in log.read_text():
        assert proc.poll() is None, f"the {what} died:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"the {what} did not start:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process writing to `log`, ended (terminate, then kill after 30 s) when the block ends."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def web_args(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "info"]


def worker_args(name: str) -> list[str]:
    """A Celery worker for both queues, one job at a time (solo pool)."""
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "gpu,default", "-c", "1", "-P",
            "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n",
            f"{name}@%h"]


WEB_READY, WORKER_READY = "Application startup complete", "ready."
