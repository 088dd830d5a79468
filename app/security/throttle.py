"""Log-in throttling: guessing passwords gets slower with every wrong one, per account and per address.

Each account name and each client address counts its wrong passwords. The first few are free (typos);
after that every further attempt must wait a delay that doubles with each failure, up to a cap, and is
answered 429 with Retry-After (before any password hashing, so a flood costs the server little). A right
password clears its account's count. The counts live in the database (`login_failures`), so several web
processes count the same guesses and a restart forgets nothing; counts without a failure for an hour (or
the cap, if longer) are dropped.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from ..domain.models import LoginFailure, as_utc, utcnow
from ..infra.db import dialect_insert

FIRST_WAIT_SECONDS = 30.0
FORGET_AFTER_SECONDS = 3600.0
KEY_CHARS = 300  # the column's width: longer names and addresses are cut (they are counted all the same)


class LoginThrottle:
    def __init__(self, free_per_account: int = 10, free_per_address: int = 30, max_wait: float = 900.0,
                 clock: Callable[[], datetime] = utcnow):
        self.free = {"account": free_per_account, "address": free_per_address}
        self.max_wait, self.clock = max_wait, clock

    def _delay(self, kind: str, row: LoginFailure | None, now: datetime) -> float:
        if row is None or row.failures < self.free[kind]:
            return 0.0
        wait = min(FIRST_WAIT_SECONDS * 2 ** min(row.failures - self.free[kind], 30), self.max_wait)
        return max(0.0, (as_utc(row.last_at) + timedelta(seconds=wait) - now).total_seconds())

    def retry_after(self, session: Session, name: str, address: str) -> int:
        """Seconds this attempt must still wait (0: go ahead)."""
        keys = _keys(name, address)
        rows = {(r.kind, r.key): r for r in session.scalars(
            select(LoginFailure).where(tuple_(LoginFailure.kind, LoginFailure.key).in_(keys)))}
        now = self.clock()
        return math.ceil(max(self._delay(kind, rows.get((kind, key)), now) for kind, key in keys))

    def failed(self, session: Session, name: str, address: str) -> None:
        now = self.clock()
        for kind, key in _keys(name, address):
            statement = dialect_insert(session, LoginFailure).values(kind=kind, key=key, failures=1, last_at=now)
            session.execute(statement.on_conflict_do_update(
                index_elements=["kind", "key"],
                set_={"failures": LoginFailure.failures + 1, "last_at": now}))
        cutoff = now - timedelta(seconds=max(FORGET_AFTER_SECONDS, self.max_wait))
        session.execute(delete(LoginFailure).where(LoginFailure.last_at < cutoff))
        session.commit()

    def succeeded(self, session: Session, name: str) -> None:
        session.execute(delete(LoginFailure).where(LoginFailure.kind == "account",
                                                   LoginFailure.key == name[:KEY_CHARS]))
        session.commit()


def _keys(name: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two counts an attempt touches, as stored: (kind, key cut to the column's width)."""
    return ("account", name[:KEY_CHARS]), ("address", address[:KEY_CHARS])
