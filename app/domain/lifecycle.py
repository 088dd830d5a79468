"""The life of a job (a round, a generation, an evaluation) in one place: its states and every transition.

                    claim                       succeed
    (new) ─▶ queued ──────▶ running ─────────────────────▶ succeeded
              │  ▲             │  │  fail
              │  └─ requeue ───┘  ├──────────────────────▶ failed
              │                   │  stop (the cancel flag)
              │  cancel           └──────────────────────▶ cancelled
              ├──────────────────────────────────────────▶ cancelled
              │  not sent (broker down), gave up, reaped
              └──────────────────────────────────────────▶ failed
    failed, cancelled ── retry (rounds) ──▶ queued

Every transition is one conditional UPDATE (`... WHERE status = <the state it leaves>`): of two that race (a
worker's claim and a user's cancel, the reaper and a heartbeat, a slow worker and the reaper) one wins, the
other changes nothing, and each learns which from the row count. Rounds add three things:

- **Attempts and the fence.** A claim raises Round.attempts; that number is the attempt's token. Every write of
  a running attempt (progress, heartbeat, its end) is conditioned on its token, so a worker that lost the round
  (its heartbeat went stale and another worker took it up) has its writes refused (StaleAttempt) and stops.
  The attempts limit (max_attempts) ends a round that keeps killing its workers.
- **Heartbeat and cancel flag.** A running attempt writes heartbeat_at every few seconds; the reaper watches it.
  Cancelling a running round only sets cancel_requested: the worker reads it between steps and ends the round
  cancelled (cooperative, never a killed process).
- **Requeue.** A round whose worker stopped (shut down, or silent for heartbeat_stale_seconds) goes back to the
  queue with its checkpoint and is sent again; the next attempt resumes there. One that no worker takes up
  within requeue_wait_seconds ends failed, with a retry.

Generations and evaluations carry no heartbeat: one running for longer than the task time limit lost its worker.

Who calls what: the services (app/domain/rounds.py, generations.py, evaluations.py) create, send, cancel and
retry; the worker (worker/) claims, runs and ends; the reaper (app/domain/reaper.py: celery beat, a worker's
start, `styledrop serve`'s timer) requeues and fails; `styledrop serve` requeues or fails what its only worker
was running when that worker died (app/runner.py).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ..errors import ApiError
from ..infra.task_queue import Dispatcher
from ..settings import Settings
from .models import Evaluation, Generation, Round, as_utc, utcnow

log = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    """A job's state: the values of the status column of rounds, generations and evaluations."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE = (JobStatus.queued.value, JobStatus.running.value)
TERMINAL = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value)
Job = Round | Generation | Evaluation
OneShotJob = type[Generation] | type[Evaluation]  # no attempts, no heartbeat


def _move(session: Session, model: type[Job], ident: int, leaving: str | tuple[str, ...], to: JobStatus,
          *conditions: Any, **values: Any) -> bool:
    """One transition: the job's status goes from `leaving` to `to`, with `values`, if it still is there (and
    `conditions` hold). True if it moved. Not committed."""
    leaving = (leaving,) if isinstance(leaving, str) else leaving
    statement = (update(model).where(model.id == ident, model.status.in_(leaving), *conditions)
                 .values(status=to.value, **values).execution_options(synchronize_session=False))
    return bool(session.execute(statement).rowcount)


# ---- (new) → queued, and sent to the workers ---------------------------------------------------------------

def enqueue(session: Session, job: Job) -> Job:
    """A new job, queued and committed (which ends the caller's quota lock, app.domain.limits.lock_user)."""
    job.status = JobStatus.queued.value
    session.add(job)
    session.commit()
    return job


def send_or_fail(session: Session, job: Job, send: Callable[[int], str | None]) -> None:
    """Send a queued job to the workers (`send`: the Dispatcher's method for its kind) and keep its Celery task
    id. When the broker is not reachable the job ends failed here, with the reason, instead of waiting queued
    for no one, and the request is answered 503."""
    try:
        task_id = send(job.id)
    except Exception as exc:  # noqa: BLE001  the broker is down
        _move(session, type(job), job.id, JobStatus.queued, JobStatus.failed, finished_at=utcnow(),
              error=f"Could not queue the job: {exc}")
        session.commit()
        session.refresh(job)
        raise ApiError(503, f"The job queue is not reachable ({exc}); is Redis running?") from exc
    job.celery_task_id = task_id
    session.commit()
    session.refresh(job)


# ---- queued → running: claim ---------------------------------------------------------------------------------

def claim(session: Session, model: OneShotJob, ident: int) -> bool:
    """A generation or an evaluation starts, committed: a duplicate or late message for it claims nothing."""
    claimed = _move(session, model, ident, JobStatus.queued, JobStatus.running)
    session.commit()
    return claimed


def claim_round(session: Session, settings: Settings, round_id: int, task_id: str | None) -> str:
    """A round's next attempt starts: queued → running, raising Round.attempts (the attempt's token); or
    running → running, taking over a round whose heartbeat is stale (its message redelivered after its worker
    died). Committed. Returns "claimed", or why not: "gave up" (queued → failed: it ran max_attempts times
    already; an OOM would otherwise repeat forever), "missing", "skipped (<status>)". A cancel asked for before
    the claim stands (retry clears it): the attempt then stops at its first check, as cancelled."""
    now = utcnow()
    stale = now - timedelta(seconds=settings.heartbeat_stale_seconds)
    claimed = session.execute(
        update(Round)
        .where(Round.id == round_id, Round.attempts < settings.max_attempts,
               or_(Round.status == JobStatus.queued.value,
                   (Round.status == JobStatus.running.value) & (Round.heartbeat_at < stale)))
        .values(status=JobStatus.running.value, attempts=Round.attempts + 1, started_at=now, heartbeat_at=now,
                celery_task_id=task_id, phase="starting", error=None)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if claimed:
        return "claimed"
    rnd = session.get(Round, round_id)
    if rnd is None:
        return "missing"
    if rnd.status == JobStatus.queued.value and rnd.attempts >= settings.max_attempts and _move(
            session, Round, round_id, JobStatus.queued, JobStatus.failed, Round.attempts >= settings.max_attempts,
            finished_at=utcnow(), error=f"Gave up after {rnd.attempts} attempts (limit {settings.max_attempts})."):
        session.commit()
        return "gave up"
    session.refresh(rnd)
    return f"skipped ({rnd.status})"


# ---- running: the fence, the heartbeat, the cancel flag (rounds) ---------------------------------------------

class StaleAttempt(Exception):
    """Another attempt of the round has taken over: this one's writes are refused and it stops."""


def refusal(round_id: int, token: int) -> str:
    return f"round {round_id}: attempt {token} is no longer the current attempt; its writes are refused and it stops"


def _fenced(round_id: int, token: int, **values: Any) -> Any:
    return (update(Round).where(Round.id == round_id, Round.attempts == token, Round.status == JobStatus.running.value)
            .values(**values).execution_options(synchronize_session=False))


def write(session: Session, round_id: int, token: int, **values: Any) -> None:
    """A running attempt's write (phase, progress, metrics, samples ...) if it is still the round's current
    attempt, else StaleAttempt. Not committed. Never the status: the transitions here write that."""
    if "status" in values:
        raise ValueError("a job's status changes only by a transition of app.domain.lifecycle")
    if not session.execute(_fenced(round_id, token, **values)).rowcount:
        raise StaleAttempt(refusal(round_id, token))


def is_current(session: Session, round_id: int, token: int) -> bool:
    row = session.execute(select(Round.attempts, Round.status).where(Round.id == round_id)).first()
    return row is not None and row.attempts == token and row.status == JobStatus.running.value


def beat(session: Session, round_id: int, token: int) -> None:
    """The heartbeat of a running attempt (the reaper watches heartbeat_at). Fenced, not committed."""
    write(session, round_id, token, heartbeat_at=utcnow())


def cancel_requested(session: Session, round_id: int) -> bool:
    return bool(session.scalar(select(Round.cancel_requested).where(Round.id == round_id)))


# ---- running → succeeded, failed, cancelled: the end ---------------------------------------------------------

def end_attempt(session: Session, round_id: int, token: int, status: JobStatus, **values: Any) -> None:
    """A round's current attempt ends it: succeeded (its adapter moved into place in the same transaction,
    app.domain.fencing.Attempt.finish), failed (with the error), or cancelled (it read the cancel flag).
    StaleAttempt when another attempt has taken over. Not committed."""
    if status not in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled):
        raise ValueError(f"an attempt ends succeeded, failed or cancelled, not {status}")
    if not session.execute(_fenced(round_id, token, status=status.value, **({"phase": None, "finished_at": utcnow()}
                                                                              | values))).rowcount:
        raise StaleAttempt(refusal(round_id, token))


def finish(session: Session, model: OneShotJob, ident: int, status: JobStatus, **values: Any) -> bool:
    """A generation or an evaluation ends, succeeded or failed, committed. False if it was no longer running
    (the reaper ended it meanwhile: that end stands, and its webhook has gone)."""
    if status not in (JobStatus.succeeded, JobStatus.failed):
        raise ValueError(f"a generation or evaluation ends succeeded or failed, not {status}")
    ended = _move(session, model, ident, JobStatus.running, status, finished_at=utcnow(), **values)
    session.commit()
    return ended


# ---- queued → cancelled; running → cancel flag (rounds) -------------------------------------------------------

def cancel_round(session: Session, rnd: Round) -> Round:
    """A queued round ends here; a running one gets the flag its worker reads between steps (and ends itself
    cancelled within seconds). Each update is conditional on the status in the database, not on the one read
    earlier: a worker may claim the round in between (the cancel then has to reach the running round, or it is
    lost and the round runs to its end). 409 for a round that has ended. Committed."""
    ended = _move(session, Round, rnd.id, JobStatus.queued, JobStatus.cancelled, cancel_requested=True,
                  finished_at=utcnow(), error="Cancelled before it started.")
    if not ended:
        flagged = session.execute(update(Round).where(Round.id == rnd.id, Round.status == JobStatus.running.value)
                                  .values(cancel_requested=True).execution_options(synchronize_session=False)).rowcount
        if not flagged:
            session.refresh(rnd)
            raise ApiError(409, f"Round {rnd.id} is already {rnd.status}; there is nothing to cancel.")
    session.commit()
    session.refresh(rnd)
    return rnd


# ---- running → queued: requeue (rounds) -----------------------------------------------------------------------

def _requeued(rnd: Round, reason: str, exit_code: int | None = None) -> dict[str, Any]:
    """The values that put an interrupted running round back in the queue. Its checkpoint stays, so the next
    attempt resumes there. metrics.interruptions records where and why (the next attempt records where it
    restarted, started_at_step), and metrics.requeued_at starts the wait for a worker that the reaper watches
    (requeue_wait_seconds)."""
    now = utcnow().isoformat()
    metrics = dict(rnd.metrics or {})
    interruptions = list(metrics.get("interruptions", []))
    interruptions.append({"at_step": rnd.step, "reason": reason, "exit_code": exit_code, "when": now,
                          "attempt_started_at_step": metrics.pop("started_at_step", None)})
    return {"phase": None, "metrics": dict(metrics, interruptions=interruptions, requeued_at=now)}


def requeue_attempt(session: Session, round_id: int, token: int, reason: str) -> bool:
    """The worker is shutting down: its attempt puts the round back in the queue and gives its attempt back (a
    shutdown is not the round's fault, and the attempts limit is there to stop rounds that kill their workers).
    Fenced (False: another attempt has the round), committed; the caller sends it again (send_again)."""
    rnd = session.get(Round, round_id)
    moved = session.execute(_fenced(round_id, token, status=JobStatus.queued.value, attempts=Round.attempts - 1,
                                    **_requeued(rnd, reason))).rowcount
    session.commit()
    return bool(moved)


def send_again(dispatcher: Dispatcher, round_ids: list[int]) -> None:
    """Send rounds put back in the queue to the workers. With the broker down a round just waits: the reaper
    fails it once requeue_wait_seconds have passed without a worker taking it."""
    for round_id in round_ids:
        try:
            dispatcher.train_round(round_id)
        except Exception:  # noqa: BLE001
            log.exception("could not send round %s again", round_id)


def wait_afresh(session: Session) -> list[int]:
    """A worker is (re)starting and takes the queue from here: rounds put back in the queue wait for it from
    now on, instead of being failed by a reaper that looks before the worker has claimed them. Committed."""
    ids = []
    for rnd in session.scalars(select(Round).where(Round.status == JobStatus.queued.value)):
        if (rnd.metrics or {}).get("requeued_at"):
            rnd.metrics = dict(rnd.metrics, requeued_at=utcnow().isoformat())
            ids.append(rnd.id)
    session.commit()
    return ids


# ---- failed, cancelled → queued: retry (rounds) ---------------------------------------------------------------

def retry(session: Session, rnd: Round) -> Round:
    """A failed or cancelled round back in the queue, by its user (app.domain.rounds.retry_round checks the
    rules first): the cancel flag, the error and the end cleared, its wait for a worker starting afresh.
    Committed; 409 when it is no longer failed or cancelled. The next attempt resumes from the checkpoint."""
    metrics = {k: v for k, v in (rnd.metrics or {}).items() if k != "requeued_at"}
    if not _move(session, Round, rnd.id, (JobStatus.failed.value, JobStatus.cancelled.value), JobStatus.queued,
                 metrics=metrics, cancel_requested=False, error=None, finished_at=None, phase=None):
        session.refresh(rnd)
        raise ApiError(409, f"Round {rnd.id} is {rnd.status}; only a failed or cancelled round can be retried.")
    session.commit()
    session.refresh(rnd)
    return rnd


# ---- the reaper: running → queued or failed, queued → failed ----------------------------------------------------

def _a_worker_is_busy(session: Session, since: datetime) -> bool:
    """Some round had a heartbeat since then: a worker is alive, busy with it, and takes the queue next."""
    return (as_utc(session.scalar(select(func.max(Round.heartbeat_at)))) or since) > since


def reap(session: Session, settings: Settings, dispatcher: Dispatcher) -> dict[str, list[int]]:
    """Jobs whose worker vanished go back to the queue by themselves; jobs no worker takes up end failed.

    A running round whose heartbeat is older than heartbeat_stale_seconds lost its worker (killed for memory,
    its machine gone): it is queued again and sent again, so a live worker resumes it from its last checkpoint,
    unless it already ran max_attempts times (then it fails: it may be what kills its workers). A round put back
    in the queue that no worker has taken within requeue_wait_seconds, while no worker shows signs of life (a
    busy one would come to it), fails with a retry action rather than waiting for no one; a message for it that
    a worker takes later does nothing (claim_round). A generation or evaluation running for longer than the task
    time limit fails. Every update is conditional, so a worker that wrote a heartbeat, claimed the job or ended
    it in the meantime wins. Committed; returns the ids of the rounds requeued and of the jobs failed (their
    webhooks are the caller's: app.domain.reaper)."""
    now = utcnow()
    stale_seconds, wait = int(settings.heartbeat_stale_seconds), int(settings.requeue_wait_seconds)
    stale = now - timedelta(seconds=stale_seconds)
    requeued: list[int] = []
    failed: list[int] = []
    busy: bool | None = None
    for rnd in list(session.scalars(select(Round).where(Round.status.in_(ACTIVE)))):
        if rnd.status == JobStatus.running.value:
            last = as_utc(rnd.heartbeat_at) or as_utc(rnd.started_at) or as_utc(rnd.created_at)
            if last is None or last >= stale:
                continue
            unchanged = Round.heartbeat_at == rnd.heartbeat_at  # a heartbeat written meanwhile wins
            if rnd.attempts < settings.max_attempts:
                to, values, changed = JobStatus.queued, _requeued(rnd, f"no heartbeat for {stale_seconds} s"), requeued
            else:
                to, values, changed = JobStatus.failed, {"phase": None, "finished_at": now, "error": (
                    f"The worker stopped responding (no heartbeat for {stale_seconds} s) on attempt {rnd.attempts} "
                    f"of {settings.max_attempts}: not starting it again, since it may be what kills its workers "
                    "(out of memory?). Start a new round, perhaps with a smaller batch size.")}, failed
        else:
            since = (rnd.metrics or {}).get("requeued_at")
            if not since or datetime.fromisoformat(since) > now - timedelta(seconds=wait):
                continue
            busy = _a_worker_is_busy(session, stale) if busy is None else busy
            if busy:
                continue
            unchanged = Round.status == JobStatus.queued.value  # a worker that claimed it meanwhile wins
            to, values, changed = JobStatus.failed, {"phase": None, "finished_at": now, "error": (
                f"Its worker stopped at step {rnd.step} and no worker took the round up again within {wait} s "
                f"(are the workers running?). POST /api/v1/rounds/{rnd.id}/retry resumes from the last "
                "checkpoint.")}, failed
        if _move(session, Round, rnd.id, rnd.status, to, unchanged, **values):
            changed.append(rnd.id)
    too_old = now - timedelta(seconds=settings.task_time_limit)
    lost = {model: _fail_running(session, model, LOST[model], model.created_at < too_old)
            for model in (Generation, Evaluation)}
    session.commit()
    send_again(dispatcher, requeued)  # after the commit, so the worker that takes one finds it queued
    return {"requeued": requeued, "failed": failed, "failed_generations": lost[Generation],
            "failed_evaluations": lost[Evaluation]}


# ---- `styledrop serve`'s only worker died ---------------------------------------------------------------------

def requeue_running(session: Session, reason: str, exit_code: int | None) -> list[int]:
    """What the dead worker was running: its rounds back in the queue (the restarted worker resumes them; the
    caller sends them), its generations and evaluations failed. Committed; returns the rounds' ids."""
    ids = [rnd.id for rnd in list(session.scalars(select(Round).where(Round.status == JobStatus.running.value)))
           if _move(session, Round, rnd.id, JobStatus.running, JobStatus.queued, **_requeued(rnd, reason, exit_code))]
    for model in (Generation, Evaluation):
        _fail_running(session, model, LOST[model])
    session.commit()
    return ids


def fail_running(session: Session, error: str) -> list[int]:
    """The worker cannot be restarted any more: everything it was running fails (a round with a retry that
    resumes it). Committed; returns the rounds' ids."""
    ids = _fail_running(session, Round, error)
    for model in (Generation, Evaluation):
        _fail_running(session, model, error)
    session.commit()
    return ids


LOST = {Generation: "The worker stopped before this generation finished; ask again.",
        Evaluation: "The worker stopped before this evaluation finished; start it again."}


def _fail_running(session: Session, model: type[Job], error: str, *conditions: Any) -> list[int]:
    """running → failed for every job of a kind (that meets `conditions`), one conditional update each, so the
    ids returned are those this call ended (their webhooks go to them only). Not committed."""
    values = {"phase": None} if model is Round else {}
    running = session.scalars(select(model.id).where(model.status == JobStatus.running.value, *conditions)).all()
    return [ident for ident in running
            if _move(session, model, ident, JobStatus.running, JobStatus.failed, finished_at=utcnow(), error=error,
                     **values)]
