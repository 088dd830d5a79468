"""Celery tasks: thin wrappers around the jobs (worker/rounds.py, generations.py, evaluations.py, worlds.py) and
the reaper, registered under the names the app sends them by (app.infra.task_queue, which also routes them: GPU
work to queue "gpu", light work to "default"; webhook deliveries run in worker/webhooks.py, a worker of their
own)."""

from __future__ import annotations

import logging
from functools import lru_cache

from celery.signals import worker_ready, worker_shutting_down

from app.domain import reaper, webhooks
from app.infra.db import session_factory
from app.infra.task_queue import BUILD_WORLD, EVALUATE, GENERATE_IMAGES, REAP, TRAIN_ROUND, CeleryDispatcher
from app.settings import get_settings

from . import evaluations, generations, progress, rounds, worlds
from .celery_app import celery_app

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def dispatcher() -> CeleryDispatcher:
    """Sends rounds again (the reaper, an interrupted round) and webhooks (run by worker/webhooks.py) through
    this worker's own Celery app."""
    return CeleryDispatcher(get_settings(), celery=celery_app)


@celery_app.task(name=TRAIN_ROUND, bind=True)
def train_round(self, round_id: int) -> str:  # noqa: ANN001
    """Train a round, generate its candidates and score them (one GPU job)."""
    outcome = rounds.run_round(get_settings(), round_id, task_id=self.request.id, dispatcher=dispatcher())
    if outcome in ("succeeded", "failed", "cancelled", "gave up"):
        _job_ended("round", [round_id])
    return outcome


@celery_app.task(name=GENERATE_IMAGES)
def generate_images(generation_id: int) -> str:
    outcome = generations.run_generation(get_settings(), generation_id)
    if outcome in ("succeeded", "failed"):
        _job_ended("generation", [generation_id])
    return outcome


def _job_ended(kind: str, idents: list[int]) -> None:
    """Queue the webhooks of ended jobs that asked for one (app/domain/webhooks.py; never raises)."""
    with session_factory(get_settings())() as session:
        webhooks.jobs_ended(session, dispatcher(), kind, idents)


@celery_app.task(name=EVALUATE)
def evaluate_style(evaluation_id: int) -> str:
    """CLIP text/style scores of the base model and every finished round of a style (paper Table 2)."""
    return evaluations.run_evaluation(get_settings(), evaluation_id)


@celery_app.task(name=BUILD_WORLD, bind=True)
def build_world(self, name: str) -> str:  # noqa: ANN001
    """Build a world's base model (styledrop.world), progress in its folder's status file (worker/worlds.py)."""
    return worlds.run_world_build(get_settings(), name, task_id=self.request.id)


@celery_app.task(name=REAP)
def reap() -> dict[str, list[int]]:
    """Rounds whose worker vanished go back to the queue; jobs no worker takes up end failed (app.domain.reaper)."""
    return reaper.run(get_settings(), dispatcher())


@worker_ready.connect
def _reap_at_start(**_: object) -> None:
    try:
        reaped = reaper.run(get_settings(), dispatcher(), worker_starting=True)
        if any(reaped.values()):
            log.warning("rounds that had lost their worker: %s", reaped)
    except Exception:  # the database may not be migrated yet; the periodic reaper will catch up
        log.exception("reaping stale rounds at worker start failed")


@worker_shutting_down.connect
def _interrupt_training(**_: object) -> None:
    """Warm shutdown (SIGTERM: docker compose stop, `styledrop serve` stopping): the running round stops at
    its next step, writes a checkpoint and goes back to the queue, rather than running on until killed or
    ending cancelled. Runs in the signal handler: it only sets a flag."""
    progress.shutting_down.set()
