"""An integrator's whole flow through a client generated from the live `/openapi.json` with
openapi-python-client, against a real server (uvicorn), a real Celery worker, Redis and SQLite, in accounts mode
with an API token — and the webhooks of the jobs, received by a real HTTP server on 127.0.0.1
(allowed by the test's STYLEDROP_WEBHOOK_ALLOW): signed, retried after a failure, never following a redirect."""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app.domain import webhooks

from .conftest import FAST, ROOT, decode_png, make_settings, png_bytes
from .test_browser import _free_port, _wait_for_log

TERMINAL = ("succeeded", "failed", "cancelled")
WEBHOOK_ENV = {"STYLEDROP_WEBHOOK_ALLOW": "127.0.0.1/32", "STYLEDROP_WEBHOOK_BACKOFF_SECONDS": "0.2",
               "STYLEDROP_WEBHOOK_ATTEMPTS": "3", "STYLEDROP_AUTH": "accounts"}


class Receiver:
    """A webhook receiver: records every POST; /flaky fails its first call, /redirect answers 302."""

    def __init__(self):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    earlier = sum(1 for c in receiver.calls if c["path"] == self.path) - 1
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/target")
                elif self.path == "/flaky" and earlier == 0:
                    self.send_response(500)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["path"] == path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url):
    """uvicorn + a Celery worker in accounts mode, an API token, a webhook receiver, and the client package
    generated from the server's own /openapi.json."""
    if shutil.which("openapi-python-client", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openapi-python-client is missing (pip install -e '.[test]')")
        pytest.skip("openapi-python-client is missing (pip install -e '.[test]')")
    from app.infra.db import session_factory
    from app.infra.migrate import upgrade
    from app.security.accounts import create_token

    tmp = tmp_path_factory.mktemp("client")
    data = tmp / "data"
    settings = make_settings(data, redis_url=redis_url, auth="accounts")
    upgrade(settings)
    with session_factory(settings)() as session:
        token = create_token(session, "integrator")
    env = dict(os.environ, **FAST, **WEBHOOK_ENV, STYLEDROP_DATA=str(data), REDIS_URL=redis_url,
               PYTHONPATH=str(ROOT))
    env.pop("DATABASE_URL", None)
    procs, logs = [], []
    worker_log, web_log = tmp / "worker.log", tmp / "web.log"
    logs.append(open(worker_log, "w"))
    procs.append(subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q",
                                   "gpu,default", "-c", "1", "-P", "solo", "--loglevel", "INFO", "--without-gossip",
                                   "--without-mingle", "--without-heartbeat", "-n", "client@%h"],
                                  cwd=ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
    port = _free_port()
    logs.append(open(web_log, "w"))
    procs.append(subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
                                   str(port), "--log-level", "warning"], cwd=ROOT, env=env, stdout=logs[-1],
                                  stderr=subprocess.STDOUT))
    receiver = Receiver()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        import httpx

        while True:  # the web server answers
            assert procs[1].poll() is None, web_log.read_text()
            try:
                schema = httpx.get(f"{base}/openapi.json").json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, web_log.read_text()
                time.sleep(0.2)
        _wait_for_log(procs[0], worker_log, "ready.", 90, "worker")
        (tmp / "openapi.json").write_text(json.dumps(schema))
        generated = subprocess.run([str(Path(sys.executable).parent / "openapi-python-client"), "generate", "--path",
                                    str(tmp / "openapi.json"), "--meta", "none", "--output-path",
                                    str(tmp / "gen" / "styledrop_client")],
                                   capture_output=True, text=True, env=dict(os.environ, PATH=str(Path(sys.executable)
                                                                                                .parent)))
        assert generated.returncode == 0, generated.stdout + generated.stderr
        sys.path.insert(0, str(tmp / "gen"))
        try:
            client_pkg = importlib.import_module("styledrop_client")
            yield {"base": base, "token": token, "client": client_pkg, "receiver": receiver,
                   "logs": (worker_log, web_log), "settings": settings}
        finally:
            sys.path.remove(str(tmp / "gen"))
            for name in [m for m in sys.modules if m == "styledrop_client" or m.startswith("styledrop_client.")]:
                del sys.modules[name]
    finally:
        receiver.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


class _Tag:
    """`styles.create_style` -> the generated module styledrop_client.api.styles.create_style."""

    def __init__(self, tag: str):
        self.tag = tag

    def __getattr__(self, name: str):
        return importlib.import_module(f"styledrop_client.api.{self.tag}.{name}")


def _until(what: str, check, stack, timeout: float = 180.0):
    """Wait on progress (a condition), with a generous bound only so a broken run ends with the logs."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in stack["logs"])
            raise AssertionError(f"{what} did not happen\n{logs}")
        time.sleep(0.2)
    return value


def test_a_whole_flow_through_the_generated_client(stack):
    sd = stack["client"]
    styles, rounds, candidates, generations, hooks = (_Tag(tag) for tag in ("styles", "rounds", "candidates",
                                                                            "generations", "webhooks"))
    models = importlib.import_module("styledrop_client.models")
    from styledrop_client.types import File

    receiver = stack["receiver"]
    client = sd.AuthenticatedClient(base_url=stack["base"], token=stack["token"], raise_on_unexpected_status=True)
    anonymous = sd.Client(base_url=stack["base"])
    assert styles.list_styles.sync_detailed(client=anonymous).status_code == 401

    # A style with an image: the generated client sends the file as a file (format: binary).
    body = models.StyleUpload(image=File(payload=io.BytesIO(png_bytes()), file_name="ref.png", mime_type="image/png"),
                              content="a house", descriptor="watercolor painting")
    style = styles.create_style.sync(client=client, body=body, idempotency_key="style-1")
    assert isinstance(style, models.StyleOut), style
    body.image = File(payload=io.BytesIO(png_bytes()), file_name="ref.png", mime_type="image/png")
    again = styles.create_style.sync_detailed(client=client, body=body, idempotency_key="style-1")
    assert again.status_code == 201 and again.parsed.id == style.id  # a retried POST made no second style
    assert [s.id for s in styles.list_styles.sync(client=client).items] == [style.id]

    def wait_round(round_id: int):
        return _until(f"round {round_id} ending", lambda: (r := rounds.read_round.sync(round_id, client=client))
                      .status in TERMINAL and r, stack)

    # Round 1, with a webhook.
    first = rounds.start_round.sync(style.id, client=client,
                                           body=models.RoundCreate(callback_url=f"{receiver.url}/hook"))
    first = wait_round(first.id)
    assert first.status == "succeeded", first.error

    # Its candidates, a page at a time (limit 1: the `next` link carries the cursor).
    listed, page = [], candidates.list_candidates.sync(first.id, client=client, limit=1)
    while True:
        listed += page.items
        if not page.next_:
            break
        cursor = parse_qs(urlsplit(page.next_).query)["cursor"][0]
        page = candidates.list_candidates.sync(first.id, client=client, limit=1, cursor=cursor)
    assert len(listed) == 2 and len({c.id for c in listed}) == 2
    for candidate in listed:
        rated = candidates.rate_candidate.sync(candidate.id, client=client, body=models.RatingIn(value=4))
        assert rated.my_rating == 4
    chosen = candidates.select_candidate.sync(listed[0].id, client=client,
                                                         body=models.SelectedIn(selected=True))
    assert chosen.selected and chosen.selected_by == "human"

    # Round 2 from the selection; its receiver fails the first delivery (retried with backoff).
    second = rounds.start_round.sync(style.id, client=client,
                                            body=models.RoundCreate(callback_url=f"{receiver.url}/flaky"))
    second = wait_round(second.id)
    assert second.status == "succeeded" and second.number == 2, second.error

    # A generation whose receiver redirects: the redirect is never followed.
    made = generations.create_generation.sync(
        style.id, client=client, body=models.GenerationCreate(prompts=["a cat"], num_images=1, seed=1,
                                                               callback_url=f"{receiver.url}/redirect"))
    done = _until("the generation ending", lambda: (g := generations.read_generation.sync(
        made.id, client=client)).status in TERMINAL and g, stack)
    assert done.status == "succeeded", done.error
    listed_generations = generations.list_generations.sync(style.id, client=client)
    assert [g.id for g in listed_generations.items] == [made.id] and listed_generations.next_ is None
    image = generations.generation_image.sync_detailed(made.id, 0, client=client)
    assert image.status_code == 200 and decode_png(image.content).size[0] > 0
    adapter = styles.style_adapter.sync_detailed(style.id, client=client)
    header_length = int.from_bytes(adapter.content[:8], "little")  # a safetensors file: length, JSON header
    assert adapter.status_code == 200 and b'"__metadata__"' in adapter.content[8:8 + header_length]

    # A round cancelled while it runs (a long one): its webhook says so.
    chosen = candidates.select_candidate.sync(
        candidates.list_candidates.sync(second.id, client=client).items[0].id, client=client,
        body=models.SelectedIn(selected=True))
    third = rounds.start_round.sync(style.id, client=client,
                                           body=models.RoundCreate(steps=5000, callback_url=f"{receiver.url}/hook"))
    rounds.cancel_round.sync(third.id, client=client)
    assert wait_round(third.id).status == "cancelled"

    # The webhooks: each signed with the user's secret; /flaky retried until it answered 200; the redirect
    # was not followed (its 302 counts as a failure: tried `attempts` times, never at /target).
    secret = hooks.read_webhook_secret.sync(client=client).secret

    def events(path: str) -> list[dict]:
        out = []
        for call in receiver.at(path):
            assert webhooks.verify(secret, call["headers"], call["body"]), call
            out.append(json.loads(call["body"]))
        return out

    hook = _until("the round webhooks", lambda: len(events("/hook")) >= 2 and events("/hook"), stack)
    assert [(e["type"], e["data"]["id"]) for e in hook] == [("round.succeeded", first.id),
                                                            ("round.cancelled", third.id)]
    flaky = _until("the retried webhook", lambda: len(events("/flaky")) >= 2 and events("/flaky"), stack)
    assert [e["type"] for e in flaky] == ["round.succeeded"] * 2 and flaky[0]["id"] == flaky[1]["id"]
    redirected = _until("three tries of the redirecting receiver",
                        lambda: len(events("/redirect")) >= 3 and events("/redirect"), stack)
    assert {e["type"] for e in redirected} == {"generation.succeeded"}
    assert redirected[0]["data"]["images"] == [f"/api/v1/generations/{made.id}/images/0"]
    assert receiver.at("/target") == []


def test_a_generation_whose_worker_was_lost_fails_with_its_webhook(stack):
    """The reaper fails a generation that outlived the task time limit (its worker is gone) and, like a round's
    end, queues its webhook: the real worker delivers "generation.failed"."""
    from datetime import timedelta

    from app.domain import lifecycle, reaper
    from app.domain.models import Generation, User, utcnow
    from app.infra.db import session_factory
    from app.infra.task_queue import CeleryDispatcher

    sd, receiver, settings = stack["client"], stack["receiver"], stack["settings"]
    styles, generations = (_Tag(tag) for tag in ("styles", "generations"))
    models = importlib.import_module("styledrop_client.models")
    from styledrop_client.types import File

    client = sd.AuthenticatedClient(base_url=stack["base"], token=stack["token"], raise_on_unexpected_status=True)
    style = styles.create_style.sync(client=client, body=models.StyleUpload(
        image=File(payload=io.BytesIO(png_bytes()), file_name="ref.png", mime_type="image/png"),
        content="a boat", descriptor="ink wash"))
    with session_factory(settings)() as session:  # as a worker that died halfway would leave it
        user_id = session.query(User.id).filter(User.name == "integrator").scalar()
        lost_id = lifecycle.enqueue(session, Generation(
            style_id=style.id, user_id=user_id, request={"prompts": ["a cat"]}, callback_url=f"{receiver.url}/lost",
            created_at=utcnow() - timedelta(seconds=2 * settings.task_time_limit))).id
        assert lifecycle.claim(session, Generation, lost_id)  # a worker took it up, then died
    assert generations.read_generation.sync(lost_id, client=client).status == "running"  # reading never reaps
    assert reaper.run(settings, CeleryDispatcher(settings))["failed_generations"] == [lost_id]  # as beat does
    ended = generations.read_generation.sync(lost_id, client=client)
    assert ended.status == "failed" and "ask again" in ended.error
    secret = _Tag("webhooks").read_webhook_secret.sync(client=client).secret
    event = _until("the lost generation's webhook", lambda: receiver.at("/lost"), stack)[0]
    assert webhooks.verify(secret, event["headers"], event["body"])
    body = json.loads(event["body"])
    assert (body["type"], body["data"]["id"]) == ("generation.failed", lost_id)
