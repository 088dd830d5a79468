"""What a running round's attempt reports to its row and reads from it while the engine trains: the heartbeat,
progress (step, loss, ETA, the loss curve), the training samples, and the stop checks (its user's cancel, the
worker's shutdown, another attempt taking over). Every write goes through the attempt (app.domain.fencing:
fenced by its token), so a stale attempt has them refused and stops.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from app.domain.fencing import Attempt
from app.domain.lifecycle import StaleAttempt
from app.domain.loss_curve import add_loss_point
from app.domain.models import Round, utcnow
from app.infra.db import session_factory
from app.settings import Settings

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The round's cancel flag was set."""


class Interrupted(Exception):
    """The worker is shutting down: the round goes back to the queue, to resume from its checkpoint."""


# Set on the worker's warm shutdown (worker.tasks: SIGTERM from docker compose stop or from `styledrop serve`
# stopping). The solo pool runs the job in the process that receives the signal, so a flag here reaches it.
shutting_down = threading.Event()


class Heartbeat:
    """Writes heartbeat_at every few seconds while the job's process lives (the reaper watches it)."""

    def __init__(self, settings: Settings, attempt: Attempt):
        self.settings, self.attempt = settings, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{attempt.round_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                self.attempt.beat()
            except StaleAttempt as exc:  # another attempt beats for the round now
                log.warning("%s", exc)
                return
            except Exception:  # a busy database must not kill the job; the next beat tries again
                log.exception("heartbeat of round %s failed", self.attempt.round_id)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def stop_checker(settings: Settings, attempt: Attempt) -> Callable[[], bool]:
    """The engine's should_stop: the worker is shutting down, or (read at most every stop_check_seconds) the
    round's cancel flag is set or another attempt has taken the round over."""
    state = {"at": 0.0, "stop": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if not state["stop"] and now - state["at"] >= settings.stop_check_seconds:
            state["at"] = now
            state["stop"] = attempt.cancel_requested() or not attempt.is_current()
        return state["stop"] or shutting_down.is_set()

    return should_stop


def why_stopped(attempt: Attempt, cancelled: str) -> Exception:
    """The exception for a job that stopped early: its user's cancel wins (they asked for it to end);
    otherwise it was the worker shutting down, and the round is only interrupted. An attempt that lost the
    round to another stops without writing anything more (StaleAttempt)."""
    if not attempt.is_current():
        return StaleAttempt(attempt.refusal())
    if attempt.cancel_requested() or not shutting_down.is_set():
        return Stopped(cancelled)
    return Interrupted("the worker shut down")


def progress_writer(settings: Settings, attempt: Attempt) -> Callable[[Any], None]:
    """The engine's on_progress: step, loss and ETA to the round's row, about once a second, and the loss
    curve so far (an attempt that resumes goes on with the curve of the earlier one)."""
    state: dict[str, Any] = {"at": 0.0, "first": True, "curve": []}

    def on_progress(p: Any) -> None:
        first: dict[str, Any] = {}
        if state["first"]:  # the first step of this attempt tells where training (re)started
            state["first"] = False
            with session_factory(settings)() as session:
                rnd = session.get(Round, attempt.round_id)
                metrics, curve = rnd.metrics or {}, rnd.loss_curve or []
            first["metrics"] = dict(metrics, started_at_step=int(p.step) - 1)  # with the step: seen together
            state["curve"] = [pt for pt in curve if pt[0] < int(p.step)]  # a resumed attempt goes on from its step
        now = time.monotonic()
        if not first and now - state["at"] < settings.progress_interval_seconds and p.step < p.total:
            return
        state["at"] = now
        state["curve"] = add_loss_point(state["curve"], int(p.step), float(p.loss))
        attempt.update(step=int(p.step), total_steps=int(p.total), loss=float(p.loss),
                       eta_seconds=round(float(p.eta_seconds), 1), heartbeat_at=utcnow(),
                       loss_curve=state["curve"], **first)

    return on_progress


def samples_writer(attempt: Attempt) -> Callable[[int, list[Any]], None]:
    """The engine's on_samples: each step's training samples (styledrop.training_samples) into the round's
    samples/ folder and its row (Attempt.add_training_samples: a stale attempt writes nothing and stops)."""
    def on_samples(step: int, samples: list[Any]) -> None:
        attempt.add_training_samples(step, [(sample.image, sample.describe()) for sample in samples])

    return on_samples
