"""`styledrop serve`: the whole product on one machine with one command.

Runs the migrations on SQLite under the data folder (or DATABASE_URL), starts an embedded Redis (unless
REDIS_URL is set), one Celery worker as a child process (both queues, one job at a time), the reaper on a
timer (there is no celery beat here), and the API with uvicorn. Ctrl-C or SIGTERM stops all of it: the
worker gets SIGTERM, so a running round stops at its next step, writes a checkpoint and goes back to the queue
(it resumes by itself on the next start; a user's cancel is another thing), then Redis stops.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def worker_command(loglevel: str = "INFO") -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", "gpu,default",
            "--concurrency", "1", "--pool", "solo", "--loglevel", loglevel, "--hostname", "embedded@%h",
            "--without-gossip", "--without-mingle"]


def start_worker() -> subprocess.Popen:
    """The worker in its own session (Ctrl-C reaches serve, which stops it warmly), killed by the kernel if
    serve dies without stopping it (app.infra.children): an orphan would train a round the next serve's worker
    resumes. Call from the main thread or the supervisor thread (a parent-death signal follows the thread)."""
    from .infra.children import die_with_parent

    return subprocess.Popen(worker_command(), env=dict(os.environ), start_new_session=True,
                            preexec_fn=die_with_parent(signal.SIGKILL))


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # Celery: warm shutdown (the current task is already stopping)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class WorkerSupervisor:
    """Runs the embedded worker and restarts it if it dies (killed for memory, a crash). As the only worker,
    its death means the rounds it ran stopped: they go back to the queue and are sent to the restarted
    worker, which resumes their training from the last checkpoint (the attempts limit still ends a round
    that kills its worker every time). If the worker cannot be restarted any more, they are marked failed
    at once, with a retry action, instead of staying "running" until their heartbeat goes stale."""

    def __init__(self, sessions, exclusive: bool, resend: Callable[[int], object],  # noqa: ANN001
                 restart_limit: int = 5):
        import threading

        self.sessions, self.exclusive, self.restart_limit, self.restarts = sessions, exclusive, restart_limit, 0
        self.resend = resend
        self.process = start_worker()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            code = self.process.poll()
            if code is None or self._stop.is_set():
                continue
            # With an outside Redis other workers may share the queue: their reaper, not us, handles rounds.
            if self.restarts >= self.restart_limit:
                message = (f"The worker process died (exit code {code}; killed for memory?) while this ran; "
                           "retry resumes from the last checkpoint.")
                failed = fail_running_rounds(self.sessions, message) if self.exclusive else []
                print(f"StyleDrop Studio: the worker died (exit code {code}) {self.restarts + 1} times; not "
                      f"restarting it again; rounds {failed} marked failed.", file=sys.stderr, flush=True)
                return
            requeued = requeue_running_rounds(self.sessions, code) if self.exclusive else []
            self.restarts += 1
            print(f"StyleDrop Studio: the worker died (exit code {code}); restarting it; rounds {requeued} resume "
                  "from their last checkpoint.", file=sys.stderr, flush=True)
            self.process = start_worker()
            for round_id in requeued:
                self.resend(round_id)

    def stop(self) -> None:
        # The worker first, its supervisor thread after: a worker the thread restarted gets its parent-death
        # signal when that thread ends.
        self._stop.set()
        stop_process(self.process)
        self._thread.join(timeout=5)


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


def serve(host: str = "127.0.0.1", port: int | None = None, data: str | None = None) -> int:
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
    worker = WorkerSupervisor(sessions, exclusive=embedded, resend=dispatcher.train_round)
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
        app = create_app(settings, dispatcher)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="off"))
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
        worker.stop()
        if redis is not None:
            redis.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
        print("StyleDrop Studio: stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `styledrop-serve` console script (and `python -m app.runner`); `styledrop serve` execs it."""
    import argparse

    parser = argparse.ArgumentParser(prog="styledrop-serve", description="Start the web API, one worker, SQLite "
                                     "and an embedded Redis; Ctrl-C stops.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default $STYLEDROP_PORT or 8000")
    parser.add_argument("--data", default=None, help="data folder (default $STYLEDROP_DATA or ./data)")
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.data)


if __name__ == "__main__":
    sys.exit(main())
