"""Issue 29, finding 3 (and the throttle's part of 7): the log-in throttle cannot be turned against a user.

Ten wrong passwords for `victim01` made the victim's right password get 429, doubling to 900 s, from anywhere;
one guess per period kept the account locked. Now the counts are per account *at an address* and per address,
so the owner logs in from their own address whatever a guesser does elsewhere. Addresses are the socket's
unless a trusted proxy is configured: X-Forwarded-For from 127.0.0.1 was believed (114 attempts with a rotating
value, no 429), by `styledrop serve` and by the compose file's web command alike. And the free attempts hold
under concurrency: 37 log-ins sent at once were all hashed where 30 were free."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from app.infra.migrate import upgrade
from app.main import create_app

from .conftest import ROOT, StubDispatcher, csrf_token, make_settings

PASSWORD = "correct horse battery"
VICTIM, GUESSER, ELSEWHERE = ("198.51.100.9", 50000), ("203.0.113.7", 50000), ("203.0.113.8", 50000)


@pytest.fixture
def team(tmp_path, db):
    """An app in accounts mode on the test's database; `team(address, **settings)` is a browser at an address."""
    with db.fresh() as url:
        apps = {}

        def browser(address=VICTIM, **overrides) -> TestClient:
            key = tuple(sorted(overrides.items()))
            if key not in apps:
                settings = make_settings(tmp_path / "data", auth="accounts", database_url=url, **overrides)
                upgrade(settings)
                apps[key] = create_app(settings, StubDispatcher())
            return TestClient(apps[key], client=address)

        yield browser


def sign_up(client, name: str, password: str = PASSWORD):
    token = csrf_token(client.get("/signup").text)
    return client.post("/signup", data={"name": name, "password": password, "confirm": password,
                                        "csrf_token": token}, follow_redirects=False)


def log_in(client, name: str, password: str, token: str | None = None):
    token = token or csrf_token(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token},
                       follow_redirects=False)


def test_a_guesser_cannot_lock_the_owner_out(team):
    assert sign_up(team(VICTIM), "victim01").status_code == 303
    guesser = team(GUESSER)
    statuses = [log_in(guesser, "victim01", f"guess number {i}").status_code for i in range(15)]
    assert statuses == [400] * 10 + [429] * 5  # the guesser is throttled on that account ...
    assert log_in(guesser, "VICTIM01 ", PASSWORD).status_code == 429  # ... even with the right password
    owner = log_in(team(VICTIM), "victim01", PASSWORD)  # the owner, from their own address, logs in
    assert owner.status_code == 303 and owner.headers["location"] == "/"
    assert log_in(team(ELSEWHERE), "victim01", "another guess").status_code == 400  # another address: its own count


def test_one_address_is_throttled_across_accounts(team):
    statuses = [log_in(team(GUESSER, login_free_attempts_per_address=5), f"user{i}", "wrong password").status_code
                for i in range(8)]
    assert statuses == [400] * 5 + [429] * 3
    assert log_in(team(ELSEWHERE, login_free_attempts_per_address=5), "user1", "wrong").status_code == 400


def test_right_passwords_do_not_use_up_an_address(team):
    """Attempts are counted before the password is checked; a right one gives its address the attempt back
    (an office behind one address logs in all day)."""
    assert sign_up(team(VICTIM, login_free_attempts_per_address=3), "ann01").status_code == 303
    for _ in range(6):
        assert log_in(team(VICTIM, login_free_attempts_per_address=3), "ann01", PASSWORD).status_code == 303
    assert log_in(team(VICTIM, login_free_attempts_per_address=3), "bob01", "wrong").status_code == 400


@pytest.mark.parametrize("scope", ["address", "account"])
def test_the_free_attempts_hold_under_concurrency(team, scope):
    """Eight wrong log-ins sent at once where three are free: three are hashed (400), five refused before any
    hashing (429). The count was read before hashing and raised after it, so all eight were hashed."""
    free = {"login_free_attempts_per_address": 3, "login_free_attempts": 100} if scope == "address" else \
        {"login_free_attempts_per_address": 100, "login_free_attempts": 3}
    clients = [team(GUESSER, **free) for _ in range(8)]
    tokens = [csrf_token(c.get("/login").text) for c in clients]
    start = threading.Barrier(len(clients))

    def attempt(i: int) -> int:
        start.wait()
        return log_in(clients[i], f"user{i}" if scope == "address" else "victim01", "wrong password",
                      tokens[i]).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = sorted(pool.map(attempt, range(len(clients))))
    assert statuses == [400] * 3 + [429] * 5, statuses


# ---- client addresses on the servers we ship ------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rotating_attempts(base: str, count: int, forwarded=lambda i: f"10.9.{i // 250}.{i % 250 + 1}") -> list[int]:
    """`count` wrong log-ins from this process (127.0.0.1), each claiming another client in X-Forwarded-For."""
    statuses = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for i in range(count):
            token = csrf_token(client.get("/login").text)
            statuses.append(client.post("/login", data={"name": f"user{i}", "password": "wrong password",
                                                        "csrf_token": token},
                                        headers={"X-Forwarded-For": forwarded(i)}).status_code)
    return statuses


def _wait_until_up(base: str, process: subprocess.Popen | None = None, log=None) -> None:
    deadline = time.monotonic() + 120
    while True:
        if process is not None:
            assert process.poll() is None, log.read_text() if log else process.returncode
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text() if log else "the server did not start"
        time.sleep(0.2)


def test_the_compose_web_command_counts_the_socket_address(tmp_path):
    """docker-compose.yml's web command (the Dockerfile's CMD: tests/service/test_compose.py), run as
    scripts/cluster runs it, with the compose environment: X-Forwarded-For from 127.0.0.1 is not believed."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import topology

    settings = make_settings(tmp_path / "data", auth="accounts", login_free_attempts_per_address=3)
    upgrade(settings)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(topology.service_environment("web", topology.compose_spec(), {}))
    env.pop("DATABASE_URL")  # SQLite under the data folder instead of the compose file's PostgreSQL
    env.update(STYLEDROP_DATA=str(tmp_path / "data"), STYLEDROP_MODEL="tiny", PYTHONPATH=str(ROOT),
               STYLEDROP_LOGIN_FREE_ATTEMPTS_PER_ADDRESS="3", REDIS_URL="redis://127.0.0.1:9/0")
    log = tmp_path / "web.log"
    with open(log, "w") as out:
        server = subprocess.Popen(topology.Cluster(tmp_path).web_command(port), cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", server, log)
        assert _rotating_attempts(f"http://127.0.0.1:{port}", 6) == [400] * 3 + [429] * 3
    finally:
        server.terminate()
        server.wait(30)


class _Served:
    """The app under uvicorn with serve's own server settings (app.runner.server_config), in a thread."""

    def __init__(self, tmp_path, **overrides):
        import uvicorn

        from app.runner import server_config

        settings = make_settings(tmp_path / "data", auth="accounts", **overrides)
        upgrade(settings)
        self.port = _free_port()
        self.server = uvicorn.Server(server_config(create_app(settings, StubDispatcher()), "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        base = f"http://127.0.0.1:{self.port}"
        _wait_until_up(base)
        return base

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def test_serve_counts_the_socket_address_unless_a_proxy_is_trusted(tmp_path):
    with _Served(tmp_path / "plain", login_free_attempts_per_address=3) as base:
        assert _rotating_attempts(base, 6) == [400] * 3 + [429] * 3
    # `--forwarded-allow-ips 127.0.0.1` (STYLEDROP_FORWARDED_ALLOW_IPS): behind that proxy each forwarded client
    # counts for itself, and one client is throttled whatever the proxy's own address.
    with _Served(tmp_path / "proxied", login_free_attempts_per_address=3, forwarded_allow_ips="127.0.0.1") as base:
        assert _rotating_attempts(base, 6) == [400] * 6
        assert _rotating_attempts(base, 5, forwarded=lambda i: "192.0.2.44") == [400] * 3 + [429] * 2
        # The proxy's own address is not trusted blindly either: the right-most untrusted hop is the client.
        assert _rotating_attempts(base, 4, forwarded=lambda i: f"192.0.2.{i}, 192.0.2.45")[-1] == 429


def test_serve_takes_forwarded_allow_ips_on_its_command_line(monkeypatch):
    """`styledrop serve --forwarded-allow-ips ...` hands it to the launcher (app.runner), which passes it on."""
    import app.runner as runner
    from styledrop import cli

    launched = []
    monkeypatch.setattr(os, "execv", lambda program, command: launched.append(command))
    cli.main(["serve", "--port", "8123", "--forwarded-allow-ips", "10.0.0.1,10.0.0.2"])
    assert launched and launched[0][-2:] == ["--forwarded-allow-ips", "10.0.0.1,10.0.0.2"]
    seen = {}
    monkeypatch.setattr(runner, "serve", lambda host, port, data, forwarded: seen.update(forwarded=forwarded) or 0)
    assert runner.main(launched[0][3:]) == 0  # the launcher's own arguments (after python -m app.runner)
    assert seen == {"forwarded": "10.0.0.1,10.0.0.2"}
