"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, a free port, stopped after.

Uses Debian's `postgresql` package (scripts/system-deps installs it in CI). As root, the server runs as the
`postgres` system user, since PostgreSQL refuses to run as root.

One server serves a whole test run (`Server`); each test module or test gets its own database, copied from a
migrated template (`CREATE DATABASE ... TEMPLATE`, far quicker than running the migrations again) and dropped
after, so tests never see each other's rows.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from typing import Iterator


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def available() -> bool:
    return _bin_dir() is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A PostgreSQL server in a temporary folder, trusting local connections (it listens on 127.0.0.1 only).

    max_connections is raised: every app engine keeps a pool of up to 60 connections (app/infra/db.py), and a test
    run holds several engines (the test's, its worker's, its web processes') at once."""

    def __init__(self, max_connections: int = 500) -> None:
        bin_dir = _bin_dir()
        assert bin_dir, "PostgreSQL is not installed (apt-get install postgresql)"
        self.bin_dir = bin_dir
        self.folder = tempfile.mkdtemp(prefix="styledrop-pg-")
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data, self.port = os.path.join(self.folder, "data"), _free_port()
        self._names = itertools.count(1)
        try:
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
            # fsync off: a test database need not survive a power cut, and the suite writes a lot.
            self._run("pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.folder, "log"), "-o",
                      f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                      f"-c max_connections={max_connections} -c fsync=off -c synchronous_commit=off "
                      f"-c full_page_writes=off", "start")
        except BaseException:
            self.stop()
            raise

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.as_user + [f"{self.bin_dir}/{program}", *args], check=True, capture_output=True,
                              timeout=120)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str) -> None:
        """Run one statement (CREATE/DROP DATABASE cannot run in a transaction: psql's autocommit)."""
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-q", "-c", statement)

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """A new database (a copy of `template` if given); returns its name."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: ends connections left open

    def stop(self) -> None:
        subprocess.run(self.as_user + [f"{self.bin_dir}/pg_ctl", "-D", self.data, "-m", "fast", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def temporary_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of an empty database on a fresh local server."""
    server = Server()
    try:
        yield server.url(server.create_database("styledrop"))
    finally:
        server.stop()
