"""The reaper: jobs whose worker vanished go back to the queue, or end failed when no worker takes them up.

Runs from celery beat (worker.tasks.reap), at a worker's start, and on `styledrop serve`'s own timer.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..infra.task_queue import Dispatcher
from ..settings import Settings
from .models import ACTIVE, Generation, Round, RoundStatus, as_utc, utcnow
from .webhooks import jobs_ended

log = logging.getLogger(__name__)


def requeued_values(rnd: Round, reason: str, exit_code: int | None = None) -> dict[str, Any]:
    """The column values that put an interrupted running round back in the queue, for a conditional UPDATE.

    Its checkpoint stays, so the next attempt resumes there. metrics.interruptions records where and why
    (the next attempt records where it restarted, started_at_step), and metrics.requeued_at starts the wait
    for a worker that reap_stale watches (requeue_wait_seconds)."""
    now = utcnow().isoformat()
    metrics = dict(rnd.metrics or {})
    interruptions = list(metrics.get("interruptions", []))
    interruptions.append({"at_step": rnd.step, "reason": reason, "exit_code": exit_code, "when": now,
                          "attempt_started_at_step": metrics.pop("started_at_step", None)})
    return {"status": RoundStatus.queued.value, "phase": None,
            "metrics": dict(metrics, interruptions=interruptions, requeued_at=now)}


def wait_afresh(session: Session) -> list[int]:
    """A worker is (re)starting and takes the queue from here: rounds put back in the queue wait for it from
    now on, instead of being failed by a reaper that looks before the worker has claimed them."""
    ids = []
    for rnd in session.scalars(select(Round).where(Round.status == RoundStatus.queued.value)):
        if (rnd.metrics or {}).get("requeued_at"):
            rnd.metrics = dict(rnd.metrics, requeued_at=utcnow().isoformat())
            ids.append(rnd.id)
    session.commit()
    return ids


def send_again(dispatcher: Dispatcher, round_ids: list[int]) -> None:
    """Send rounds put back in the queue to the workers. With the broker down a round just waits: the
    reaper fails it once requeue_wait_seconds have passed without a worker taking it."""
    for round_id in round_ids:
        try:
            dispatcher.train_round(round_id)
        except Exception:  # noqa: BLE001
            log.exception("could not send round %s again", round_id)


def _a_worker_is_busy(session: Session, since: datetime) -> bool:
    """Some round had a heartbeat since then: a worker is alive, busy with it, and takes the queue next."""
    return (as_utc(session.scalar(select(func.max(Round.heartbeat_at)))) or since) > since


def reap_stale(session: Session, settings: Settings, dispatcher: Dispatcher, round_id: int | None = None
               ) -> dict[str, list[int]]:
    """Rounds whose worker vanished go back to the queue by themselves; rounds no worker takes end failed.

    A running round whose heartbeat is older than heartbeat_stale_seconds lost its worker (killed for memory,
    its machine gone): it is queued again and sent again, so a live worker resumes it from its last
    checkpoint, unless it already ran max_attempts times (then it fails: it may be what kills its workers).
    A round put back in the queue that no worker has taken within requeue_wait_seconds, while no worker shows
    signs of life (a busy one would come to it), is failed with a retry action rather than left waiting for
    no one; a message for it that a worker takes later does nothing (claim_round). Every update is
    conditional, so a worker that wrote a heartbeat or claimed the round in the meantime wins.
    Runs at worker start, every minute with celery beat, and when the API reads a queued or running round."""
    now = utcnow()
    stale_seconds, wait = int(settings.heartbeat_stale_seconds), int(settings.requeue_wait_seconds)
    stale = now - timedelta(seconds=stale_seconds)
    query = select(Round).where(Round.status.in_(ACTIVE))
    if round_id is not None:
        query = query.where(Round.id == round_id)
    requeued: list[int] = []
    failed: list[int] = []
    busy: bool | None = None

    def failure(error: str) -> dict[str, Any]:
        return {"status": RoundStatus.failed.value, "phase": None, "finished_at": now, "error": error}

    for rnd in list(session.scalars(query)):
        if rnd.status == RoundStatus.running.value:
            last = as_utc(rnd.heartbeat_at) or as_utc(rnd.started_at) or as_utc(rnd.created_at)
            if last is None or last >= stale:
                continue
            unchanged = Round.heartbeat_at == rnd.heartbeat_at  # a heartbeat written meanwhile wins
            if rnd.attempts < settings.max_attempts:
                values, changed = requeued_values(rnd, f"no heartbeat for {stale_seconds} s"), requeued
            else:
                values, changed = failure(
                    f"The worker stopped responding (no heartbeat for {stale_seconds} s) on attempt {rnd.attempts} "
                    f"of {settings.max_attempts}: not starting it again, since it may be what kills its workers "
                    "(out of memory?). Start a new round, perhaps with a smaller batch size."), failed
        else:
            since = (rnd.metrics or {}).get("requeued_at")
            if not since or datetime.fromisoformat(since) > now - timedelta(seconds=wait):
                continue
            busy = _a_worker_is_busy(session, stale) if busy is None else busy
            if busy:
                continue
            unchanged = Round.status == RoundStatus.queued.value  # a worker that claimed it meanwhile wins
            values, changed = failure(
                f"Its worker stopped at step {rnd.step} and no worker took the round up again within {wait} s "
                f"(are the workers running?). POST /api/v1/rounds/{rnd.id}/retry resumes from the last "
                "checkpoint."), failed
        result = session.execute(update(Round).where(Round.id == rnd.id, Round.status == rnd.status, unchanged)
                                 .values(**values).execution_options(synchronize_session=False))
        if result.rowcount:
            changed.append(rnd.id)
    # Generations carry no heartbeat: one running longer than the task time limit lost its worker. Each is
    # failed by a conditional update (a worker finishing it at that moment wins), so the webhook goes exactly
    # to those this reaper ended.
    lost = session.scalars(select(Generation.id).where(
        Generation.status == RoundStatus.running.value,
        Generation.created_at < now - timedelta(seconds=settings.task_time_limit))).all()
    failed_generations = [gid for gid in lost if session.execute(
        update(Generation).where(Generation.id == gid, Generation.status == RoundStatus.running.value)
        .values(status=RoundStatus.failed.value, finished_at=now,
                error="The worker stopped before this generation finished; ask again.")
        .execution_options(synchronize_session=False)).rowcount]
    session.commit()
    send_again(dispatcher, requeued)  # after the commit, so the worker that takes one finds it queued
    jobs_ended(session, dispatcher, "round", failed)
    jobs_ended(session, dispatcher, "generation", failed_generations)
    for rid in requeued + failed:
        rnd = session.get(Round, rid)
        if rnd is not None:
            session.refresh(rnd)
    return {"requeued": requeued, "failed": failed}
