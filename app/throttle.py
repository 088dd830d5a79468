"""Log-in throttling: guessing passwords gets slower with every wrong one, per account and per address.

Each account name and each client address counts its wrong passwords. The first few are free (typos);
after that every further attempt must wait a delay that doubles with each failure, up to a cap, and is
answered 429 with Retry-After (before any password hashing, so a flood costs the server little). A right
password clears its account's count. The counts live in this process's memory: several web processes
each count on their own, and a restart forgets them (a slower guesser, never a locked-out user for
long). Entries older than an hour without a failure are dropped.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

FIRST_WAIT_SECONDS = 30.0
FORGET_AFTER_SECONDS = 3600.0
MAX_ENTRIES = 100_000  # an attacker varying names cannot grow memory without bound


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0


class LoginThrottle:
    def __init__(self, free_per_account: int = 10, free_per_address: int = 30, max_wait: float = 900.0,
                 clock=time.monotonic):  # noqa: ANN001
        self.free = {"account": free_per_account, "address": free_per_address}
        self.max_wait, self.clock = max_wait, clock
        self._counts: dict[tuple[str, str], _Count] = {}
        self._lock = threading.Lock()

    def _delay(self, kind: str, count: _Count | None) -> float:
        if count is None or count.failures < self.free[kind]:
            return 0.0
        wait = min(FIRST_WAIT_SECONDS * 2 ** min(count.failures - self.free[kind], 30), self.max_wait)
        return max(0.0, count.last + wait - self.clock())

    def retry_after(self, name: str, address: str) -> int:
        """Seconds this attempt must still wait (0: go ahead)."""
        with self._lock:
            wait = max(self._delay("account", self._counts.get(("account", name))),
                       self._delay("address", self._counts.get(("address", address))))
        return math.ceil(wait)

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._counts) >= MAX_ENTRIES:
                self._forget_old(now)
            for key in (("account", name), ("address", address)):
                count = self._counts.setdefault(key, _Count())
                count.failures += 1
                count.last = now

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._counts.pop(("account", name), None)

    def _forget_old(self, now: float) -> None:
        stale = [k for k, c in self._counts.items() if now - c.last > max(FORGET_AFTER_SECONDS, self.max_wait)]
        for key in stale:
            del self._counts[key]
        if len(self._counts) >= MAX_ENTRIES:  # all recent: drop the oldest half
            for key, _ in sorted(self._counts.items(), key=lambda kv: kv[1].last)[:MAX_ENTRIES // 2]:
                del self._counts[key]
