"""Log-in throttling: guessing passwords gets slower with every wrong one, per account *at an address* and per
address, so that nobody can lock another person out.

Two counts per attempt: the account name at the client's address ("pair") and the client's address alone
("address"). The first few attempts of each are free (typos); after that every further attempt must wait a
delay that doubles with each failure, up to a cap, and is answered 429 with Retry-After (before any password
hashing, so a flood costs the server little). A right password clears its pair's count. Counting by account
name alone (as before) let anyone lock a user out with ten wrong guesses, and keep them out with one guess per
period; now the user's right password from their own address still logs in (OWASP: lockouts are a denial of
service; throttle the guesser, not the account).

An attempt is *counted before its password is checked* (a compare-and-set on the count it read: `claim`), and
given back to the address if it was right: the free attempts then hold under concurrency (37 log-ins sent at
once were all hashed where 30 were free, when the count was raised after hashing).

The counts live in the database (`login_failures`), so several web processes count the same guesses and a
restart forgets nothing; counts without an attempt for an hour (or the cap, if longer) are dropped. Client
addresses are the socket's, unless a trusted proxy is configured (STYLEDROP_FORWARDED_ALLOW_IPS, app/main.py).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from ..domain.models import LoginFailure, as_utc, utcnow
from ..infra.db import dialect_insert

FIRST_WAIT_SECONDS = 30.0
FORGET_AFTER_SECONDS = 3600.0
KEY_CHARS = 300  # the column's width: longer keys are cut (they are counted all the same)
CLAIM_TRIES = 200  # compare-and-set rounds before giving up (each round lets at least one rival through)

Key = tuple[str, str]


class LoginThrottle:
    def __init__(self, free_per_account: int = 10, free_per_address: int = 30, max_wait: float = 900.0,
                 clock: Callable[[], datetime] = utcnow):
        self.free = {"pair": free_per_account, "address": free_per_address}
        self.max_wait, self.clock = max_wait, clock

    def _delay(self, kind: str, seen: tuple[int, datetime] | None, now: datetime) -> float:
        if seen is None or seen[0] < self.free[kind]:
            return 0.0
        wait = min(FIRST_WAIT_SECONDS * 2 ** min(seen[0] - self.free[kind], 30), self.max_wait)
        return max(0.0, (as_utc(seen[1]) + timedelta(seconds=wait) - now).total_seconds())

    def claim(self, session: Session, name: str, address: str) -> int:
        """Count this attempt as a failure before its password is checked; returns 0 (go ahead, counted) or the
        seconds it must still wait (not counted). Two attempts at once never take the same free slot: each
        count moves from what was read to one more only if nobody moved it meanwhile, else it reads again."""
        keys = sorted(_keys(name, address))  # one order: two claims never wait on each other's row locks
        for _ in range(CLAIM_TRIES):
            now = self.clock()
            seen = {(kind, key): (failures, last_at) for kind, key, failures, last_at in session.execute(
                select(LoginFailure.kind, LoginFailure.key, LoginFailure.failures, LoginFailure.last_at)
                .where(tuple_(LoginFailure.kind, LoginFailure.key).in_(keys)))}
            wait = max(self._delay(kind, seen.get((kind, key)), now) for kind, key in keys)
            if wait > 0:
                session.rollback()
                return math.ceil(wait)
            if all(self._count(session, key, seen.get(key), now) for key in keys):
                cutoff = now - timedelta(seconds=max(FORGET_AFTER_SECONDS, self.max_wait))
                session.execute(delete(LoginFailure).where(LoginFailure.last_at < cutoff))
                session.commit()
                return 0
            session.rollback()  # another attempt counted first: read again
        return math.ceil(FIRST_WAIT_SECONDS)

    @staticmethod
    def _count(session: Session, key: Key, seen: tuple[int, datetime] | None, now: datetime) -> bool:
        kind, value = key
        if seen is None:
            statement = dialect_insert(session, LoginFailure).values(kind=kind, key=value, failures=1, last_at=now)
            inserted = statement.on_conflict_do_nothing(index_elements=["kind", "key"]).returning(LoginFailure.kind)
            return session.execute(inserted).first() is not None  # (rowcount is -1 for this on psycopg)
        return session.execute(
            update(LoginFailure).where(LoginFailure.kind == kind, LoginFailure.key == value,
                                       LoginFailure.failures == seen[0])
            .values(failures=seen[0] + 1, last_at=now)).rowcount == 1

    def succeeded(self, session: Session, name: str, address: str) -> None:
        """The password was right: its pair starts afresh, and the address gets its claimed attempt back (people
        behind one address who log in do not use up its free attempts)."""
        (_, pair), (_, place) = _keys(name, address)
        session.execute(delete(LoginFailure).where(LoginFailure.kind == "pair", LoginFailure.key == pair))
        session.execute(update(LoginFailure).where(LoginFailure.kind == "address", LoginFailure.key == place,
                                                   LoginFailure.failures > 0)
                        .values(failures=LoginFailure.failures - 1))
        session.commit()


def _keys(name: str, address: str) -> tuple[Key, Key]:
    """The two counts an attempt touches, as stored: (kind, key cut to the column's width). The address comes
    first in the pair's key: it holds no space, so the key cannot be read two ways."""
    return ("pair", f"{address} {name}"[:KEY_CHARS]), ("address", address[:KEY_CHARS])
