"""The reaper as it runs: from celery beat (worker.tasks.reap, every reap_interval_seconds), when a worker
starts, and on `styledrop serve`'s own timer (the embedded run has no beat). Never inside a request.

It is the lifecycle's reap (app.domain.lifecycle.reap: rounds whose worker vanished go back to the queue,
jobs no worker takes up end failed), then the webhooks of the jobs it ended.
"""

from __future__ import annotations

from ..infra.db import session_factory
from ..infra.task_queue import Dispatcher
from ..settings import Settings
from . import lifecycle
from .webhooks import jobs_ended


def run(settings: Settings, dispatcher: Dispatcher, worker_starting: bool = False) -> dict[str, list[int]]:
    """Reap once. A worker that is starting is what rounds put back in the queue wait for: their wait restarts
    first, so they are taken up rather than failed. Returns what changed (app.domain.lifecycle.reap)."""
    with session_factory(settings)() as session:
        if worker_starting:
            lifecycle.wait_afresh(session)
        reaped = lifecycle.reap(session, settings, dispatcher)
        jobs_ended(session, dispatcher, "round", reaped["failed"])
        jobs_ended(session, dispatcher, "generation", reaped["failed_generations"])
    return reaped
