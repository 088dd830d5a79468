"""Enqueueing work for the Celery worker. The app talks to the broker by task name only: it never imports
the tasks module (which would pull the engine)."""

from __future__ import annotations

from typing import Any, Protocol

from .settings import Settings

TRAIN_ROUND = "worker.tasks.train_round"
GENERATE_IMAGES = "worker.tasks.generate_images"
REAP = "worker.tasks.reap"
EVALUATE = "worker.tasks.evaluate_style"


class Dispatcher(Protocol):
    def train_round(self, round_id: int) -> str | None: ...

    def generate(self, generation_id: int) -> str | None: ...

    def evaluate(self, evaluation_id: int) -> str | None: ...


class CeleryDispatcher:
    def __init__(self, settings: Settings, celery: Any = None):
        """`celery`: an existing Celery app to send through (a worker passes its own); else one is made."""
        from worker.celery_app import make_celery

        self.celery = celery if celery is not None else make_celery(settings)

    # ignore_result: the job's state is in the database; nothing waits on a Celery result.
    def train_round(self, round_id: int) -> str | None:
        return self.celery.send_task(TRAIN_ROUND, args=[round_id], ignore_result=True).id

    def generate(self, generation_id: int) -> str | None:
        return self.celery.send_task(GENERATE_IMAGES, args=[generation_id], ignore_result=True).id

    def evaluate(self, evaluation_id: int) -> str | None:
        return self.celery.send_task(EVALUATE, args=[evaluation_id], ignore_result=True).id
