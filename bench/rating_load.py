"""API latency under many people rating at once: N clients x M ratings against a real server.

Starts uvicorn (the real app, SQLite in a temporary data folder, token auth), creates one finished round
with candidates and one user + API token per client, then every client PUTs its ratings concurrently
(asyncio + httpx, bounded in count and time, loopback only). Prints p50/p95/p99/max latency and the rate.

    python bench/rating_load.py --clients 50 --ratings 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Fixture:
    base_url: str
    tokens: list[str]
    candidate_ids: list[list[int]]  # per client: the candidates of that client's own style
    data_dir: Path
    server: subprocess.Popen
    database_url: str | None = None  # None: SQLite under data_dir

    def stop(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.server.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(data_dir: Path, clients: int, candidates: int,
            database_url: str | None = None) -> tuple[list[str], list[list[int]]]:
    """A migrated database where each of `clients` users (with a token) owns one style whose finished
    round has `candidates` candidates to rate."""
    from app.auth import create_token, get_or_create_user
    from app.db import session_factory
    from app.migrate import upgrade
    from app.models import Candidate, Round, Style
    from app.settings import Settings

    settings = Settings(data_dir=data_dir, model="tiny", database_url=database_url)
    upgrade(settings)
    tokens, ids = [], []
    with session_factory(settings)() as session:
        for i in range(clients):
            tokens.append(create_token(session, f"user{i}", "load"))
            style = Style(user_id=get_or_create_user(session, f"user{i}").id, reference_path="", content="a house",
                          descriptor="sticker", base_model="tiny", adapter_kind="styledrop", settings={})
            session.add(style)
            session.flush()
            rnd = Round(style_id=style.id, number=1, status="succeeded", parameters={}, total_steps=1)
            session.add(rnd)
            session.flush()
            mine = []
            for j in range(candidates):
                c = Candidate(round_id=rnd.id, content="a cat", prompt="A cat in sticker style", seed=j,
                              image_path=f"styles/{style.id}/rounds/1/candidates/{j:04d}.png")
                session.add(c)
                session.flush()
                mine.append(c.id)
            ids.append(mine)
        session.commit()
    return tokens, ids


def start(clients: int, candidates: int, data_dir: Path | None = None, database_url: str | None = None) -> Fixture:
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="styledrop-load-")) / "data"
    tokens, ids = prepare(data_dir, clients, candidates, database_url)
    port = _free_port()
    env = dict(os.environ, STYLEDROP_DATA=str(data_dir), STYLEDROP_AUTH="token", STYLEDROP_MODEL="tiny",
               PYTHONPATH=str(ROOT))
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
                               "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.2)
    return Fixture(base, tokens, ids, data_dir, server, database_url)


def value_for(client: int, candidate: int) -> int:
    return 1 if (client + candidate) % 3 else -1


async def run_load(fixture: Fixture, ratings: int, timeout: float = 120.0) -> tuple[list[float], list[int]]:
    """Every client rates `ratings` candidates of its own style, the first one twice at once (a double
    click), all clients at the same time. Returns the latency of every request and the status codes."""
    import httpx

    latencies: list[float] = []
    statuses: list[int] = []

    async def one(client: httpx.AsyncClient, token: str, cid: int, value: int) -> None:
        started = time.perf_counter()
        response = await client.put(f"{fixture.base_url}/api/v1/candidates/{cid}/rating", json={"value": value},
                                    headers={"Authorization": f"Bearer {token}"})
        latencies.append(time.perf_counter() - started)
        statuses.append(response.status_code)

    async def person(index: int, token: str) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            targets = fixture.candidate_ids[index][:ratings]
            first = targets[0]
            await asyncio.gather(one(client, token, first, value_for(index, 0)),
                                 one(client, token, first, value_for(index, 0)))
            for position, cid in enumerate(targets[1:], start=1):
                await one(client, token, cid, value_for(index, position))

    await asyncio.wait_for(asyncio.gather(*(person(i, t) for i, t in enumerate(fixture.tokens))), timeout)
    return latencies, statuses


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--ratings", type=int, default=20)
    args = parser.parse_args()
    fixture = start(args.clients, args.ratings)
    try:
        started = time.perf_counter()
        latencies, statuses = asyncio.run(run_load(fixture, args.ratings))
        elapsed = time.perf_counter() - started
    finally:
        fixture.stop()
    ms = [1000 * x for x in latencies]
    print(f"{args.clients} clients x {args.ratings} ratings (+1 double click each): {len(ms)} requests in "
          f"{elapsed:.1f} s ({len(ms) / elapsed:.0f} req/s); statuses {sorted(set(statuses))}")
    print(f"latency ms: p50 {percentile(ms, 0.5):.1f}  p95 {percentile(ms, 0.95):.1f}  "
          f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}  mean {statistics.fmean(ms):.1f}")


if __name__ == "__main__":
    main()
