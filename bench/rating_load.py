"""Rating latency against a real server, as raters see it: an open loop at fixed offered rates.

Starts uvicorn (the real app, SQLite in a temporary data folder), creates finished rounds with candidates
for `--clients` users, then offers ratings (PUT /api/v1/candidates/{id}/rating) as Poisson arrivals at
each rate in `--rates`: requests are sent when they are due, whether or not earlier ones have been
answered (people do not wait for each other), and each latency is counted from when its request was due
(a late load generator shows up as latency rather than hiding it). Server and load generator run on
separate cores (`taskset`) when there are two or more. Per rate: a warm-up, then `--requests` measured
requests, `--repeats` times; prints p50/p95/p99 per rate and the saturation point, the highest rate whose
p99 stays under 100 ms.

    python bench/rating_load.py                      # local mode (the embedded single-user run)
    python bench/rating_load.py --auth accounts      # accounts, one API token per rater

`--closed` runs a closed loop instead (50 clients x 20 ratings at once, plus one double click each): it
measures throughput, not what a rater sees, and tests/service/test_concurrent_ratings.py uses it to check
that every rating is stored exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATES = (25, 50, 100, 150, 200)
P99_TARGET_MS = 100.0


@dataclass
class Fixture:
    base_url: str
    tokens: list[str]  # per client; empty strings in local mode (no Authorization header)
    candidate_ids: list[list[int]]  # per client: the candidates of that client's own style
    data_dir: Path
    server: subprocess.Popen
    port: int = 0
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


def prepare(data_dir: Path, clients: int, candidates: int, auth: str = "token",
            database_url: str | None = None) -> tuple[list[str], list[list[int]]]:
    """A migrated database where each of `clients` users (with a token) owns one style whose finished
    round has `candidates` candidates to rate. In local mode every style is the local user's."""
    from app.domain.models import Candidate, Round, Style
    from app.infra.db import session_factory
    from app.infra.migrate import upgrade
    from app.security.accounts import create_token, get_or_create_user
    from app.settings import Settings

    settings = Settings(data_dir=data_dir, model="tiny", database_url=database_url)
    upgrade(settings)
    tokens, ids = [], []
    with session_factory(settings)() as session:
        for i in range(clients):
            name = "local" if auth == "local" else f"user{i}"
            tokens.append("" if auth == "local" else create_token(session, name, "load"))
            style = Style(user_id=get_or_create_user(session, name).id, reference_path="", content="a house",
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


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def start(clients: int, candidates: int, data_dir: Path | None = None, auth: str = "token",
          env: dict[str, str] | None = None, server_core: int | None = None,
          database_url: str | None = None) -> Fixture:
    """A uvicorn server (pinned to `server_core` with taskset, if given) on a prepared database (SQLite under
    data_dir, or `database_url`)."""
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="styledrop-load-")) / "data"
    tokens, ids = prepare(data_dir, clients, candidates, auth, database_url)
    port = _free_port()
    env = dict(os.environ, STYLEDROP_DATA=str(data_dir), STYLEDROP_AUTH=auth, STYLEDROP_MODEL="tiny",
               PYTHONPATH=str(ROOT), **(env or {}))
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "--no-access-log", "--timeout-keep-alive", "60"]
    if server_core is not None:
        command = ["taskset", "-c", str(server_core), *command]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
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
    return Fixture(base, tokens, ids, data_dir, server, port, database_url)


def value_for(client: int, candidate: int) -> int:
    return 1 if (client + candidate) % 3 else -1


# ---- closed loop: the exactly-once check ---------------------------------------------------------------------

async def run_load(fixture: Fixture, ratings: int, timeout: float = 120.0) -> tuple[list[float], list[int]]:
    """Every client rates `ratings` candidates of its own style, the first one twice at once (a double
    click), all clients at the same time. Returns the latency of every request and the status codes."""
    import httpx

    latencies: list[float] = []
    statuses: list[int] = []

    async def one(client: httpx.AsyncClient, token: str, cid: int, value: int) -> None:
        started = time.perf_counter()
        response = await client.put(f"{fixture.base_url}/api/v1/candidates/{cid}/rating", json={"value": value},
                                    headers={"Authorization": f"Bearer {token}"} if token else {})
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


# ---- open loop -------------------------------------------------------------------------------------------------

class Connections:
    """Keep-alive HTTP/1.1 connections to the server, opened as needed and reused when idle. A few lines of
    asyncio instead of an HTTP client library: the load generator must cost far less than the server."""

    def __init__(self, port: int):
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def put(self, path: str, body: bytes, token: str) -> int:
        if self.idle:
            try:  # an idle connection the server has closed meanwhile: try again on a new one
                return await self._put(*self.idle.pop(), path, body, token)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
        return await self._put(*await asyncio.open_connection("127.0.0.1", self.port), path, body, token)

    async def _put(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes,
                   token: str) -> int:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        writer.write((f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{auth}"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        if b"connection: close" in head.lower():
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status


@dataclass
class Result:
    rate: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    lateness_ms: list[float] = field(default_factory=list)  # how late the generator sent (its own overload)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def offer(fixture: Fixture, rate: float, warmup: int, measured: int, seed: int) -> Result:
    """Poisson arrivals at `rate` per second: `warmup` requests, then `measured` ones whose latency counts."""
    rng = random.Random(seed)
    connections = Connections(fixture.port)
    result = Result(rate)
    tasks = []

    async def one(due: float, index: int) -> None:
        client = rng.randrange(len(fixture.tokens))
        cid = rng.choice(fixture.candidate_ids[client])
        body = json.dumps({"value": rng.choice((-1, 1))}).encode()
        if index >= warmup:
            result.lateness_ms.append(1000 * (time.perf_counter() - due))
        status = await connections.put(f"/api/v1/candidates/{cid}/rating", body, fixture.tokens[client])
        if index >= warmup:
            result.latencies_ms.append(1000 * (time.perf_counter() - due))
            result.statuses[status] = result.statuses.get(status, 0) + 1

    due = time.perf_counter() + 0.05
    for index in range(warmup + measured):
        due += rng.expovariate(rate)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, index)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    for _, writer in connections.idle:
        writer.close()
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): what the server spent, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def open_loop(args: argparse.Namespace) -> None:
    available = cores()
    pinned = len(available) >= 2
    server_core = available[0] if pinned else None
    if pinned:  # the load generator takes the other cores
        os.sched_setaffinity(0, available[1:])
    fixture = start(args.clients, args.candidates, auth=args.auth, server_core=server_core)
    print(f"open loop, {args.auth} mode: server on core {server_core if pinned else 'any (1 core)'}, "
          f"load generator on {available[1:] if pinned else 'the same core'}; {args.clients} raters, "
          f"{args.warmup} warm-up + {args.requests} measured requests per rate, {args.repeats} repeats; "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    try:
        for rate in args.rates:
            runs = []
            cpu_before = cpu_seconds(fixture.server.pid)
            for repeat in range(args.repeats):
                runs.append(asyncio.run(offer(fixture, rate, args.warmup, args.requests, seed=1000 * repeat + rate)))
            cpu_ms = 1000 * (cpu_seconds(fixture.server.pid) - cpu_before) / (args.repeats * (args.warmup + args.requests))
            rows.append(runs)
            p99s = [r.p(0.99) for r in runs]
            merged = [x for r in runs for x in r.latencies_ms]
            statuses = sorted({s for r in runs for s in r.statuses})
            print(f"{rate:>5} req/s: p50 {percentile(merged, 0.5):7.1f}  p95 {percentile(merged, 0.95):7.1f}  "
                  f"p99 {percentile(merged, 0.99):7.1f} ms (p99 per repeat: "
                  f"{', '.join(f'{p:.1f}' for p in p99s)}; generator late p99 "
                  f"{max(percentile(r.lateness_ms, 0.99) for r in runs):.1f} ms); server CPU {cpu_ms:.2f} ms/request; "
                  f"statuses {statuses}; "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        fixture.stop()
    # The saturation point: the highest rate whose p99 stayed under the target in every repeat.
    ok = [runs[0].rate for runs in rows if all(r.p(0.99) < P99_TARGET_MS for r in runs)]
    print(f"saturation point (highest rate with p99 < {P99_TARGET_MS:.0f} ms in every repeat): "
          f"{f'{max(ok):g} req/s' if ok else f'below {args.rates[0]} req/s'}")


def closed_loop(args: argparse.Namespace) -> None:
    fixture = start(args.clients, args.ratings, auth=args.auth)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--auth", choices=("local", "accounts"), default="local",
                        help="local: the embedded run (no token); accounts: one user and API token per rater")
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per rate and repeat")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=64, help="candidates per rater's round")
    parser.add_argument("--closed", action="store_true", help="a closed loop instead (exactly-once check)")
    parser.add_argument("--ratings", type=int, default=20, help="closed loop: ratings per client")
    args = parser.parse_args()
    if args.auth == "accounts":
        args.auth = "token"  # the server's alias: accounts, programs with API tokens
    (closed_loop if args.closed else open_loop)(args)


if __name__ == "__main__":
    main()
