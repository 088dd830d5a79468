"""`styledrop serve`: the whole product on one machine with one command.

Runs the migrations on SQLite under the data folder (or DATABASE_URL), starts an embedded Redis (unless
REDIS_URL is set), one Celery worker as a child process (both job queues, one job at a time), a second one
for webhook deliveries (worker/webhooks.py), the reaper on a timer (there is no celery beat here), and the API
with uvicorn. Each worker is restarted when it dies, within a restart budget that recovers (RestartBudget);
while the job worker rests, the API refuses new jobs (503) and /api/v1/health says "degraded". Ctrl-C or
SIGTERM stops all of it: the workers get SIGTERM, so a running round stops at its next step, writes a
checkpoint and goes back to the queue (it resumes by itself on the next start; a user's cancel is another
thing), then Redis stops.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def worker_command(loglevel: str = "INFO") -> list[str]:
    """The worker that trains and samples: both job queues, one job at a time in the worker process itself."""
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", "gpu,default",
            "--concurrency", "1", "--pool", "solo", "--loglevel", loglevel, "--hostname", "embedded@%h",
            "--without-gossip", "--without-mingle"]


def webhook_worker_command(loglevel: str = "INFO") -> list[str]:
    """The webhook deliveries' worker (worker/webhooks.py): compose's `webhooks` service runs the same."""
    return [sys.executable, "-m", "celery", "-A", "worker.webhooks", "worker", "--queues", "webhooks",
            "--concurrency", "2", "--pool", "prefork", "--loglevel", loglevel, "--hostname",
            "embedded-webhooks@%h", "--without-gossip", "--without-mingle"]


def start_worker(command: list[str] | None = None) -> subprocess.Popen:
    """A worker in its own session (Ctrl-C reaches serve, which stops it warmly), killed by the kernel if
    serve dies without stopping it (app.infra.children): an orphan would train a round the next serve's worker
    resumes. Call from the main thread or the supervisor thread (a parent-death signal follows the thread)."""
    from .infra.children import die_with_parent

    return subprocess.Popen(command or worker_command(), env=dict(os.environ), start_new_session=True,
                            preexec_fn=die_with_parent(signal.SIGKILL))


def stop_process(process: subprocess.Popen | None, timeout: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # Celery: warm shutdown (the current task is already stopping)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its pool's processes too (its own session)
        except ProcessLookupError:
            pass
        process.wait(5)


class RestartBudget:
    """At most `limit` restarts within any `window` seconds (systemd's StartLimitBurst/IntervalSec): deaths
    older than the window are forgotten, so a worker that dies now and then (once a day, killed for memory by
    a large round) is restarted every time, while one that dies over and over is given a rest of `window`
    seconds, after which the budget is whole again. The old counter never went down: the sixth death in a
    week stopped the worker for good."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self.deaths: list[float] = []

    def died(self) -> bool:
        """Record a death; True while the budget allows a restart now."""
        now = self.clock()
        self.deaths = [t for t in self.deaths if now - t < self.window] + [now]
        return len(self.deaths) <= self.limit

    def rest_until(self) -> float:
        """When the budget is whole again: the last death has left the window."""
        return self.deaths[-1] + self.window if self.deaths else self.clock()


class WorkerSupervisor:
    """Runs a worker process and restarts it if it dies (killed for memory, a crash), within a restart budget
    (RestartBudget). When the budget is spent the worker rests until it recovers, then starts again; meanwhile
    `down()` says why and until when, which the API answers new jobs with (503, and /health "degraded").

    `on_death(code)` runs before a restart and returns what to send again afterwards (`resend` each); the
    embedded job worker is the only one, so the rounds it ran go back to the queue and resume from their
    last checkpoint on the restarted worker (the attempts limit still ends a round that kills its worker
    every time). `on_give_up(code)` runs when the budget is spent: those rounds are marked failed at once,
    with a retry action, instead of staying "running" until their heartbeat goes stale."""

    def __init__(self, name: str, command: list[str], budget: RestartBudget,
                 on_death: Callable[[int], list[int]] = lambda code: [],
                 on_give_up: Callable[[int], list[int]] = lambda code: [],
                 resend: Callable[[int], object] = lambda ident: None, poll_seconds: float = 1.0):
        import threading

        self.name, self.command, self.budget, self.poll_seconds = name, command, budget, poll_seconds
        self.on_death, self.on_give_up, self.resend = on_death, on_give_up, resend
        self.resting_until: float | None = None
        self.process: subprocess.Popen | None = start_worker(command)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"{name}-supervisor", daemon=True)
        self._thread.start()

    def down(self) -> tuple[str, int] | None:
        """(why no worker runs, seconds until it starts again), or None while it runs."""
        until = self.resting_until
        if until is None:
            return None
        wait = max(1, math.ceil(until - self.budget.clock()))
        return (f"The {self.name} died {len(self.budget.deaths)} times within {self.budget.window:g} s and is "
                f"resting; it starts again in {wait} s.", wait)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            if self.resting_until is not None:
                if self.budget.clock() >= self.resting_until and not self._stop.is_set():
                    print(f"StyleDrop Studio: starting the {self.name} again after its rest.", file=sys.stderr,
                          flush=True)
                    self.process = start_worker(self.command)
                    self.resting_until = None
                continue
            code = self.process.poll() if self.process is not None else None
            if code is None or self._stop.is_set():
                continue
            if not self.budget.died():
                failed = self.on_give_up(code)
                self.process, self.resting_until = None, self.budget.rest_until()
                print(f"StyleDrop Studio: the {self.name} died (exit code {code}) {len(self.budget.deaths)} times "
                      f"within {self.budget.window:g} s; resting {self.resting_until - self.budget.clock():.0f} s "
                      f"before starting it again; rounds {failed} marked failed.", file=sys.stderr, flush=True)
                continue
            again = self.on_death(code)
            print(f"StyleDrop Studio: the {self.name} died (exit code {code}); restarting it; rounds {again} resume "
                  "from their last checkpoint.", file=sys.stderr, flush=True)
            self.process = start_worker(self.command)
            for ident in again:
                self.resend(ident)

    def stop(self) -> None:
        # The worker first, its supervisor thread after: a worker the thread restarted gets its parent-death
        # signal when that thread ends.
        self._stop.set()
        stop_process(self.process)
        self._thread.join(timeout=5)


class Workers:
    """What the API asks of the embedded workers (app.main.create_app's `workers`): is the job worker
    down, why, and for how long."""

    def __init__(self, jobs: WorkerSupervisor, deliveries: WorkerSupervisor, exclusive: bool = True):
        self.jobs, self.deliveries, self.exclusive = jobs, deliveries, exclusive

    def jobs_down(self) -> tuple[str, int] | None:
        """With an outside Redis other workers may take the jobs: then ours resting refuses nothing."""
        return self.jobs.down() if self.exclusive else None

    def problems(self) -> list[str]:
        return [down[0] for down in (self.jobs.down(), self.deliveries.down()) if down is not None]

    def stop(self) -> None:
        self.jobs.stop()
        self.deliveries.stop()


def requeue_running_rounds(sessions, exit_code: int | None) -> list[int]:  # noqa: ANN001
    """Put the rounds a dead worker was running back in the queue, noting why; its generations and evaluations
    fail (app.domain.lifecycle.requeue_running)."""
    from .domain import lifecycle

    reason = "the server stopped without shutting down" if exit_code is None else \
        f"the worker process died (exit code {exit_code})"
    with sessions() as session:
        return lifecycle.requeue_running(session, reason, exit_code)


def fail_running_rounds(sessions, error: str) -> list[int]:  # noqa: ANN001
    from .domain import lifecycle

    with sessions() as session:
        return lifecycle.fail_running(session, error)


class ReaperTimer:
    """The reaper on serve's own timer (app.domain.reaper.run every reap_interval_seconds): the embedded run
    has no celery beat, and the reaper never runs inside a request."""

    def __init__(self, settings, dispatcher, interval: float | None = None):  # noqa: ANN001
        import threading

        self.settings, self.dispatcher = settings, dispatcher
        self.interval = settings.reap_interval_seconds if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from .domain import reaper

        while not self._stop.wait(self.interval):
            try:
                reaped = reaper.run(self.settings, self.dispatcher)
                if any(reaped.values()):
                    logging.getLogger(__name__).warning("the reaper ended or requeued jobs: %s", reaped)
            except Exception:  # noqa: BLE001  a busy database: the next tick tries again
                logging.getLogger(__name__).exception("the reaper failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class PortTaken(Exception):
    """The address to serve on cannot be bound; its message is one line that says what to do."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a just-closed port is free
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """The pages' socket, bound before anything else starts: a taken port is said in one line, with the flag that
    chooses another, before any address is printed or any process started; uvicorn then serves on this very
    socket, so nothing can take the port in between."""
    try:
        return _bind(host, port)
    except socket.gaierror as exc:
        raise PortTaken(f"StyleDrop Studio: cannot serve on host {host!r} ({exc.strerror}); choose another with "
                        "--host (e.g. --host 127.0.0.1).") from None
    except OSError as exc:
        suggestion = next((p for p in range(port + 1, port + 20) if _free(host, p)), None)
        other = suggestion or port + 1
        raise PortTaken(f"StyleDrop Studio: port {port} on {host} is not available ({exc.strerror}: another server "
                        f"is using it?); choose another with --port, e.g. `./scripts/run serve --port {other}` or "
                        f"`styledrop serve --port {other}`.") from None


def _free(host: str, port: int) -> bool:
    try:
        _bind(host, port).close()
    except OSError:
        return False
    return True


def serve(host: str = "127.0.0.1", port: int | None = None, data: str | None = None,
          forwarded_allow_ips: str | None = None) -> int:
    import uvicorn
    from sqlalchemy import select

    from .domain.lifecycle import JobStatus, wait_afresh
    from .domain.models import Evaluation, Generation, Round
    from .infra.db import session_factory
    from .infra.migrate import upgrade
    from .settings import Settings

    port = Settings().port if port is None else port
    try:
        listener = listening_socket(host, port)
    except PortTaken as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if data:
        os.environ["STYLEDROP_DATA"] = data
    # Absolute from here on, for this process, the worker child and Redis alike: a relative data folder is the
    # caller's, whatever folder each of them later runs in.
    os.environ["STYLEDROP_DATA"] = str(Path(Settings().data_dir).expanduser().resolve())
    if forwarded_allow_ips is not None:
        os.environ["STYLEDROP_FORWARDED_ALLOW_IPS"] = forwarded_allow_ips
    settings = Settings()
    upgrade(settings)
    sessions = session_factory(settings)

    redis = None
    embedded = not settings.redis_url
    if embedded:
        from .infra.embedded_redis import EmbeddedRedis

        redis = EmbeddedRedis(Path(settings.data_dir) / "redis")
        os.environ["REDIS_URL"] = redis.url
        settings = Settings()
        # This process's worker is the only one: a round still "running" lost its worker when the server last
        # went down (a crash, a power cut). Queue it again: it is sent below and resumes from its checkpoint.
        requeue_running_rounds(sessions, None)

    stopping = {"signal": None}

    def _on_signal(signum, _frame) -> None:  # noqa: ANN001
        stopping["signal"] = signum

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    # With an outside Redis other workers may share the queue: then the reaper, not us, requeues their rounds.
    from .infra.task_queue import CeleryDispatcher

    dispatcher = CeleryDispatcher(settings)
    message = "The worker process died (exit code {code}; killed for memory?) while this ran; retry resumes from " \
              "the last checkpoint."

    def budget() -> RestartBudget:
        return RestartBudget(settings.worker_restart_limit, settings.worker_restart_window_seconds)

    workers = Workers(
        WorkerSupervisor("worker", worker_command(), budget(), resend=dispatcher.train_round,
                         on_death=lambda code: requeue_running_rounds(sessions, code) if embedded else [],
                         on_give_up=lambda code: fail_running_rounds(sessions, message.format(code=code))
                         if embedded else []),
        WorkerSupervisor("webhook worker", webhook_worker_command(), budget()), exclusive=embedded)
    reaper = ReaperTimer(settings, dispatcher)  # there is no celery beat here
    try:
        from .main import create_app

        with sessions() as session:  # jobs queued before a restart: send again (a duplicate does nothing)
            wait_afresh(session)  # the worker starting now is the one they waited for
            for round_id in session.scalars(select(Round.id).where(Round.status == JobStatus.queued.value)):
                dispatcher.train_round(round_id)
            for gen_id in session.scalars(select(Generation.id).where(Generation.status == JobStatus.queued.value)):
                dispatcher.generate(gen_id)
            for ev_id in session.scalars(select(Evaluation.id).where(Evaluation.status == JobStatus.queued.value)):
                dispatcher.evaluate(ev_id)
        app = create_app(settings, dispatcher, workers)
        server = uvicorn.Server(server_config(app, host, port))
        url = f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{port}"
        # The pages' address first: it is what a person opens (/api/v1 itself answers 404).
        print(f"StyleDrop Studio: {url}/  (API: {url}/api/v1, docs: {url}/docs; data: {settings.data_dir}; "
              f"model: {settings.model}; Ctrl-C stops)", flush=True)
        if stopping["signal"] is None:
            server.run(sockets=[listener])
    finally:
        # The worker's warm shutdown (SIGTERM) stops a running round at its next step with a checkpoint and
        # puts it back in the queue (worker.tasks): the next start resumes it. Not a cancel: nothing to retry.
        print("StyleDrop Studio: stopping ...", flush=True)
        reaper.stop()
        workers.stop()
        if redis is not None:
            redis.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
        print("StyleDrop Studio: stopped.", flush=True)
    return 0


def server_config(app, host: str, port: int):  # noqa: ANN001, ANN201
    """uvicorn's settings for serve. uvicorn's own proxy handling is off: it trusts X-Forwarded-For from
    127.0.0.1 unless told otherwise, so any local process (or a proxy we were not told of) could choose the
    client address the log-in throttle counts. The app applies the proxies it is told to trust
    (STYLEDROP_FORWARDED_ALLOW_IPS, `--forwarded-allow-ips`: app/main.py)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="off", proxy_headers=False)


def main(argv: list[str] | None = None) -> int:
    """The `styledrop-serve` console script (and `python -m app.runner`); `styledrop serve` execs it."""
    import argparse

    parser = argparse.ArgumentParser(prog="styledrop-serve", description="Start the web API, one worker, SQLite "
                                     "and an embedded Redis; Ctrl-C stops.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default $STYLEDROP_PORT or 8000")
    parser.add_argument("--data", default=None, help="data folder (default $STYLEDROP_DATA or ./data)")
    parser.add_argument("--forwarded-allow-ips", default=None, metavar="ADDRESSES",
                        help="proxies trusted to say the client's address (X-Forwarded-For) and scheme: "
                             "comma-separated addresses or networks, '*' for any (default "
                             "$STYLEDROP_FORWARDED_ALLOW_IPS, else none: the connection's own address counts)")
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.data, args.forwarded_allow_ips)


if __name__ == "__main__":
    sys.exit(main())
