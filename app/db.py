"""Database engine and sessions. SQLite by default (a file under the data folder), PostgreSQL by URL."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from .settings import Settings

# FastAPI runs sync endpoints and dependency teardown on a 40-thread pool. With fewer pooled connections
# than threads, requests holding threads wait for connections whose release waits for a thread: a deadlock
# until the pool timeout (seen with 50 clients rating at once). Keep more connections than threads.
POOL = {"pool_size": 45, "max_overflow": 15}


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **POOL)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            # WAL lets the API read while the worker writes progress; wait instead of failing on a lock.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

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
