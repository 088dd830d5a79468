"""Database engine and sessions. SQLite by default (a file under the data folder), PostgreSQL by URL.

SQLite runs in WAL mode with synchronous=NORMAL: readers never wait for the writer, and a commit costs no
fsync (the WAL is synced at checkpoints). What that trades: after a power loss (not a crash of the process)
the last commits may be missing; the database is never corrupted. Writes are serialised inside the process
(one writer at a time, see OneWriter): SQLite allows one writer anyway, and a process lock hands the turn
over at once, where SQLite's own busy handler makes waiting writers sleep in steps of up to 100 ms (the
tail of the rating latency under load). Several web processes should use PostgreSQL.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from ..settings import Settings

# FastAPI runs sync endpoints and dependency teardown on a 40-thread pool. With fewer pooled connections
# than threads, requests holding threads wait for connections whose release waits for a thread: a deadlock
# until the pool timeout (seen with 50 clients rating at once). Keep more connections than threads.
POOL = {"pool_size": 45, "max_overflow": 15}
BUSY_SECONDS = 30.0  # how long a writer waits for its turn (the process lock, then SQLite's busy timeout)
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


class OneWriter:
    """One write transaction at a time per SQLite engine in this process.

    A connection takes the lock at its first writing statement (where pysqlite opens the transaction) and
    gives it back when the transaction ends: commit, rollback, or the pool's reset when a connection is
    returned. Waiting longer than BUSY_SECONDS goes ahead anyway, so SQLite's own lock still decides:
    never worse than without the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders: set[int] = set()  # ids of the raw sqlite3 connections holding the lock

    def before_execute(self, conn: Any, statement: str) -> None:
        raw = id(conn.connection.dbapi_connection)
        if raw in self.holders or not statement.lstrip()[:6].upper().startswith(WRITES):
            return
        if self.lock.acquire(timeout=BUSY_SECONDS):
            self.holders.add(raw)

    def end(self, dbapi_connection: Any) -> None:
        raw = id(getattr(dbapi_connection, "dbapi_connection", dbapi_connection))
        if raw in self.holders:
            self.holders.discard(raw)
            self.lock.release()

    def install(self, engine: Engine) -> None:
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                self.end(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            finally:
                self.end(dbapi_connection)

        dialect.do_commit, dialect.do_rollback = do_commit, do_rollback  # after the commit, not before it

        @event.listens_for(engine, "before_cursor_execute")
        def _turn(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
            self.before_execute(conn, statement)

        @event.listens_for(engine, "close")
        def _closed(dbapi_connection, _record) -> None:  # noqa: ANN001
            self.end(dbapi_connection)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_SECONDS}, **POOL)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            # WAL lets the API read while the worker writes progress; wait instead of failing on a lock.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # see the module docstring for what this trades
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        OneWriter().install(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **POOL)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def engine_for(settings: Settings) -> Engine:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _engine_for(settings.sqlalchemy_url)


def session_factory(settings: Settings) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(settings), expire_on_commit=False)


def dialect_insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL both do): upserts in one atomic
    statement, whichever process runs them."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
