"""Progress of a long command: a live tqdm bar on a terminal, one plain line per interval anywhere else.

Piped into a file or a CI log, a bar's carriage-return redraws pile up (each step printed, often twice); a log
wants a line now and then with the same facts: count, rate, time left.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Iterator, TextIO


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class Progress:
    """`update(k)` / `update_to(n)` with optional facts (loss=...), `close()`; also a context manager."""

    def __init__(self, total: int, desc: str, unit: str = "step", stream: TextIO | None = None,
                 interval: float = 10.0):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.stream = stream or sys.stderr
        self.interval = interval
        self._bar = None
        self._facts: dict[str, Any] = {}
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream)
        self._start = time.monotonic()
        self._first: tuple[int, float] | None = None  # the rate is measured after the first (warm-up) update
        self._printed_at: float | None = None
        self._printed_n = -1

    def update(self, k: int = 1, **facts: Any) -> None:
        self.update_to(self.n + k, **facts)

    def update_to(self, n: int, **facts: Any) -> None:
        self.n = n
        self._facts.update(facts)
        now = time.monotonic()
        if self._bar is not None:
            self._bar.n = n
            if facts:
                self._bar.set_postfix(facts, refresh=False)
            self._bar.refresh()
            return
        if self._first is None:
            self._first = (n, now)
            self._line(now)
        elif now - (self._printed_at or 0.0) >= self.interval:
            self._line(now)

    def _line(self, now: float) -> None:
        parts = [f"{self.desc}: {self.n}/{self.total} {self.unit}s"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts += [f"{key} {value}" for key, value in self._facts.items()]
        parts.append(f"{_clock(now - self._start)} elapsed")
        if self._first is not None and self.n > self._first[0] and self.n < self.total:
            per_unit = (now - self._first[1]) / (self.n - self._first[0])
            parts.append(f"~{_clock(per_unit * (self.total - self.n))} left")
        print(", ".join(parts), file=self.stream, flush=True)
        self._printed_at, self._printed_n = now, self.n

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._printed_n != self.n:  # the last count once, unless it was just printed
            self._line(time.monotonic())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def training_bar(total: int, desc: str) -> Iterator[Callable]:
    """Progress fed by the trainer's callback (step, loss, seconds per step), with the time left."""
    with Progress(total, desc, unit="step") as bar:
        yield lambda p: bar.update_to(p.step, loss=f"{p.loss:.4f}", s_per_step=f"{p.seconds_per_step:.3f}")
