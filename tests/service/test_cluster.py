"""docker-compose.yml's topology as processes (scripts/topology.py, as `scripts/cluster` runs it): PostgreSQL,
one Redis, the migrations, two web processes, two Celery workers and beat, each with its compose command and
environment; the tiny model, accounts with API tokens.

One story, every step waiting on progress in the database or the logs: two users' rounds train at the same
time on different workers; one worker is SIGKILLed mid-training and beat's reaper hands its round to the other
worker, which resumes it from the checkpoint; ratings go through both web processes and are stored once each;
a web process is killed and the other keeps serving; nothing is lost or duplicated.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from . import postgres
from .conftest import FAST, png_bytes

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from topology import Cluster  # noqa: E402

STALE = 6  # seconds without a heartbeat before the reaper takes a running round back (heartbeats: 1 s)
ROUND = {"checkpoint_every": 20, "prompts": ["a cat", "a dog"], "candidates_per_prompt": 2, "sample_steps": 2}
ALICE_STEPS = 80
TIMEOUT = 300  # the most any one wait may take; a stuck step fails with the logs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: scripts/system-deps installs it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "STYLEDROP_DATA")}
    environ.update(FAST, STYLEDROP_MODEL="tiny", STYLEDROP_HEARTBEAT_STALE_SECONDS=str(STALE),
                   STYLEDROP_REAP_INTERVAL_SECONDS="2")
    with Cluster(tmp_path_factory.mktemp("cluster"), web=2, workers=2, environ=environ) as c:
        yield c


def _logs(c: Cluster) -> str:
    return "\n".join(f"--- {p.name}\n{p.text()[-2500:]}" for p in c.processes.values())


def _wait(c: Cluster, what: str, done, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while not (value := done()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s\n{_logs(c)}"
        time.sleep(0.2)
    return value


def _session(c: Cluster):
    from app.infra.db import session_factory
    from app.settings import Settings

    return session_factory(Settings(data_dir=c.data, database_url=c.database_url))()


def _row(c: Cluster, round_id: int):
    """The round as stored (read from the database: the API's GET would itself reap a silent round, and this
    test wants beat's reaper to do it)."""
    from app.domain.models import Round

    with _session(c) as session:
        return session.get(Round, round_id)


def _api(c: Cluster, web: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{c.processes[web].url}/api/v1", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def _start_round(api: httpx.Client, steps: int, descriptor: str) -> int:
    style = api.post("/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                     data={"content": "a house", "descriptor": descriptor})
    assert style.status_code == 201, style.text
    rnd = api.post(f"/styles/{style.json()['id']}/rounds", json=dict(ROUND, steps=steps))
    assert rnd.status_code == 201, rnd.text
    return rnd.json()["id"]


def _worker_of(c: Cluster, task_id: str) -> str | None:
    for name, process in c.processes.items():
        if name.startswith("worker") and f"[{task_id}] received" in process.text():
            return name
    return None


def test_the_compose_topology_as_processes(cluster):
    c = cluster
    from app.domain.models import Candidate, Rating, Round

    alice_token = c.run("web", "python", "-m", "app.admin", "token", "alice").strip()
    bob_token = c.run("web", "python", "-m", "app.admin", "token", "bob").strip()
    alice1, alice2, bob2 = _api(c, "web1", alice_token), _api(c, "web2", alice_token), _api(c, "web2", bob_token)

    # 1. Two users' rounds, sent through different web processes, train at the same time on different workers.
    alice_round = _start_round(alice1, steps=ALICE_STEPS, descriptor="oil painting")
    bob_round = _start_round(bob2, steps=20_000, descriptor="ink drawing")
    _wait(c, "both rounds training at once",
          lambda: all(r.status == "running" and r.step >= 1 for r in (_row(c, alice_round), _row(c, bob_round))))
    alice_task, bob_task = _row(c, alice_round).celery_task_id, _row(c, bob_round).celery_task_id
    alice_worker = _wait(c, "alice's worker", lambda: _worker_of(c, alice_task))
    bob_worker = _wait(c, "bob's worker", lambda: _worker_of(c, bob_task))
    assert alice_worker != bob_worker

    # 2. Bob cancels (his worker is free again); Alice's worker is SIGKILLed past her checkpoint at step 20.
    assert bob2.post(f"/rounds/{bob_round}/cancel").status_code == 202
    _wait(c, "bob's round cancelled", lambda: _row(c, bob_round).status == "cancelled")
    _wait(c, "alice past her first checkpoint", lambda: _row(c, alice_round).step >= 30)
    c.kill(alice_worker)  # SIGKILL, as the OOM killer does

    # 3. Beat's reaper finds the silent round and puts it back in the queue; the other worker resumes it.
    survivor = c.processes[bob_worker]
    _wait(c, "beat's reaper requeues alice's round", lambda: f"'requeued': [{alice_round}]" in survivor.text())
    assert "Sending due task reap-stale-rounds" in c.processes["beat"].text()
    _wait(c, "alice's round finished", lambda: _row(c, alice_round).status in ("succeeded", "failed", "cancelled"))
    done = _row(c, alice_round)
    assert done.status == "succeeded", f"{done.error}\n{_logs(c)}"
    assert _worker_of(c, done.celery_task_id) == bob_worker  # the resent task ran on the surviving worker
    assert done.attempts == 2 and done.step == ALICE_STEPS
    (interruption,) = done.metrics["interruptions"]
    assert interruption["at_step"] >= 30 and "no heartbeat" in interruption["reason"]
    assert done.metrics["resumed_from"] >= 20 and done.metrics["started_at_step"] >= 20  # not from step 0

    # 4. Ratings through both web processes at once, each candidate rated on both: stored once each.
    candidates = alice1.get(f"/rounds/{alice_round}/candidates").json()["items"]
    assert len(candidates) == 4 and len({m["id"] for m in candidates}) == 4
    assert alice2.get(f"/rounds/{alice_round}/candidates").json()["items"] == candidates
    wanted = {m["id"]: 1 if i % 2 else -1 for i, m in enumerate(candidates)}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda job: job[0].put(f"/candidates/{job[1]}/rating",
                                                        json={"value": wanted[job[1]]}).status_code,
                                 [(api, cid) for cid in wanted for api in (alice1, alice2, alice1, alice2)]))
    assert set(statuses) == {200}
    assert bob2.put(f"/candidates/{candidates[0]['id']}/rating", json={"value": 1}).status_code == 404
    with _session(c) as session:
        stored = session.execute(select(Rating.candidate_id, Rating.value)
                                 .where(Rating.candidate_id.in_(list(wanted)))).all()
    assert sorted(stored) == sorted(wanted.items())

    # A short measurement for the README: ratings per second through the two web processes (not asserted).
    started, count = time.perf_counter(), 200
    with ThreadPoolExecutor(16) as pool:
        measured = list(pool.map(lambda i: (alice1, alice2)[i % 2].put(
            f"/candidates/{candidates[i % 4]['id']}/rating", json={"value": 1 if i % 3 else -1}).status_code,
            range(count)))
    elapsed = time.perf_counter() - started
    assert set(measured) == {200}
    print(f"\n{count} ratings through 2 web processes on PostgreSQL: {count / elapsed:.0f} ratings/s")

    # 5. A web process is killed; the other keeps serving reads and writes.
    c.kill("web1")
    with pytest.raises(httpx.TransportError):
        alice1.get("/health")
    assert alice2.get("/health").status_code == 200
    assert alice2.get(f"/rounds/{alice_round}").json()["status"] == "succeeded"
    assert alice2.put(f"/candidates/{candidates[0]['id']}/rating", json={"value": 1}).json()["my_rating"] == 1

    # 6. Nothing lost, nothing duplicated; the survivors still run.
    with _session(c) as session:
        assert session.scalar(select(func.count()).select_from(Round)) == 2
        assert session.scalar(select(func.count()).select_from(Candidate).where(Candidate.round_id == alice_round)) == 4
        assert session.scalar(select(func.count()).select_from(Candidate).where(Candidate.round_id == bob_round)) == 0
        assert session.scalar(select(func.count()).select_from(Rating)) == 4
    assert _row(c, bob_round).status == "cancelled"
    assert all(c.processes[name].alive() for name in ("web2", bob_worker, "beat", "redis")), _logs(c)
