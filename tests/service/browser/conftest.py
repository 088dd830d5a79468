"""The servers the browser tests drive: the app under uvicorn on 127.0.0.1 (a real process, a fresh migrated SQLite
database), with a real Celery worker and Redis (`served`), with accounts on (`served_accounts`), or staged
(`staged`): no worker, the database brought to each state by writing it as the worker would
(tests/service/factories.py), so that what the page draws at a given step can be looked at and measured."""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any, Iterator

import pytest

from ..conftest import FAST, ROOT, make_settings, stub_client
from ..servers import WEB_READY, WORKER_READY, free_port, started, wait_for_log, web_args, worker_args
from .chromium import launch, require_browser
from .staging import STAGED_SETTINGS

# 2 prompts x 2 candidates, a few training steps, sample images at steps 0, 4, 8 and 12.
BROWSER_ENV = FAST | {"STYLEDROP_CANDIDATES_PER_PROMPT": "2", "STYLEDROP_CANDIDATE_PROMPTS": "2",
                      "STYLEDROP_TRAIN_STEPS": "12", "STYLEDROP_SAMPLE_EVERY": "4"}


def _env(data, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra, STYLEDROP_DATA=str(data), PYTHONPATH=str(ROOT))
    env.pop("DATABASE_URL", None)
    return env


@pytest.fixture
def served(tmp_path, redis_url) -> Iterator[dict[str, Any]]:
    """The app under uvicorn and a Celery worker, on a fresh migrated SQLite database."""
    require_browser()
    from app.infra.migrate import upgrade

    data = tmp_path / "data"
    upgrade(make_settings(data, redis_url=redis_url, candidates_per_prompt=2, train_steps=12))
    env = _env(data, **BROWSER_ENV, REDIS_URL=redis_url)
    port = free_port()
    worker_log, web_log = tmp_path / "worker.log", tmp_path / "web.log"
    with started(worker_args("browser"), env, worker_log) as worker, started(web_args(port), env, web_log) as web:
        wait_for_log(web, web_log, WEB_READY, 60, "web server")
        wait_for_log(worker, worker_log, WORKER_READY, 90, "worker")
        yield {"url": f"http://127.0.0.1:{port}", "data": data, "worker_log": worker_log, "web_log": web_log,
               "tmp": tmp_path}


@pytest.fixture
def served_accounts(tmp_path) -> Iterator[str]:
    """The app under uvicorn with accounts on (no worker: these tests train nothing). Yields the base URL."""
    require_browser()
    from app.infra.migrate import upgrade

    data = tmp_path / "data"
    upgrade(make_settings(data))
    port, web_log = free_port(), tmp_path / "web.log"
    with started(web_args(port), _env(data, **FAST, STYLEDROP_AUTH="accounts"), web_log) as web:
        wait_for_log(web, web_log, WEB_READY, 60, "web server")
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Iterator[Any]:
    """The app under uvicorn with no worker and no job queue, and a TestClient of the same app on the same
    database (a stub dispatcher records what would be queued): a test makes styles through the client's pages,
    brings their rounds to a state with the factories (client.settings) and looks at them in Chromium at
    client.url. Heartbeats never go stale here: a staged running round stays running while it is looked at."""
    require_browser()
    tmp = tmp_path_factory.mktemp("staged")
    data = tmp / "data"
    overrides = {"heartbeat_stale_seconds": 86400.0, "max_upload_bytes": 2_000_000, **STAGED_SETTINGS}
    with stub_client(data, **overrides) as client, ExitStack() as stack:
        env = _env(data, **FAST, REDIS_URL="redis://127.0.0.1:9/0",  # nothing listens: no job runs
                   STYLEDROP_HEARTBEAT_STALE_SECONDS="86400", STYLEDROP_MAX_UPLOAD_BYTES="2000000")
        port, web_log = free_port(), tmp / "web.log"
        web = stack.enter_context(started(web_args(port), env, web_log))
        wait_for_log(web, web_log, WEB_READY, 60, "web server")
        client.url, client.web_log = f"http://127.0.0.1:{port}", web_log
        yield client


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for a module's tests (each test opens its own context: its own cookies)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            yield browser
        finally:
            browser.close()
