"""Sending work to the Celery workers, by task name: the app never imports the worker package (which would
pull the engine), and the worker imports this module for its own Celery app, so the broker settings, queues
and routes are written once, on the sending side.

GPU work goes to queue "gpu", light work to "default", webhook deliveries to "webhooks" (a worker of their
own: a slow receiver must never hold the workers that train and sample). No result backend: a job's state
lives in the database and nothing reads Celery results, so the end of a job does not depend on Redis being up.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..settings import Settings

TRAIN_ROUND = "worker.tasks.train_round"
GENERATE_IMAGES = "worker.tasks.generate_images"
REAP = "worker.tasks.reap"
EVALUATE = "worker.tasks.evaluate_style"
BUILD_WORLD = "worker.tasks.build_world"
DELIVER_WEBHOOK = "worker.webhooks.deliver"
GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"
WEBHOOK_QUEUE = "webhooks"


def make_celery(settings: Settings) -> Any:
    """The Celery app of both sides: the web app sends through it, the worker (worker.celery_app) runs it."""
    from celery import Celery
    from kombu import Queue

    app = Celery("styledrop", broker=settings.broker_url, include=[])
    app.conf.update(
        task_acks_late=True,  # a task whose worker died is redelivered ...
        # ... but only after the visibility timeout, which must outlast the longest task, or a long training
        # would be delivered a second time while the first copy still runs.
        broker_transport_options={"visibility_timeout": settings.task_time_limit + 3600},
        task_time_limit=settings.task_time_limit,
        worker_prefetch_multiplier=1,  # one job at a time per worker process; the rest wait in the queue
        task_default_queue=DEFAULT_QUEUE,
        task_queues=[Queue(GPU_QUEUE), Queue(DEFAULT_QUEUE), Queue(WEBHOOK_QUEUE)],
        task_routes={
            TRAIN_ROUND: {"queue": GPU_QUEUE},
            GENERATE_IMAGES: {"queue": GPU_QUEUE},
            EVALUATE: {"queue": GPU_QUEUE},
            BUILD_WORLD: {"queue": GPU_QUEUE},  # training, like a round (on the CPU: it holds a worker as long)
            REAP: {"queue": DEFAULT_QUEUE},
            DELIVER_WEBHOOK: {"queue": WEBHOOK_QUEUE},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # Redis restarted or away for a while: the worker reconnects however long it takes (the default gives
        # up after 100 tries and exits), and a running job is not cancelled meanwhile: its state is in the
        # database, and a redelivered copy of its message does nothing (claim_round).
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        # `celery -A worker.celery_app beat` (or `worker -B`) runs the reaper periodically.
        # Workers run it when they are free; a copy no worker took before the next one is dropped.
        beat_schedule={"reap-stale-rounds": {"task": REAP, "schedule": settings.reap_interval_seconds,
                                             "options": {"expires": settings.reap_interval_seconds}}},
    )
    return app


class Dispatcher(Protocol):
    """Sends jobs to the workers; each returns the Celery task id. What the app, the reaper and the worker
    send through (CeleryDispatcher; tests pass a recording one)."""

    def train_round(self, round_id: int) -> str | None: ...

    def generate(self, generation_id: int) -> str | None: ...

    def evaluate(self, evaluation_id: int) -> str | None: ...

    def deliver_webhook(self, user_id: int | None, url: str, body: str) -> str | None: ...

    def build_world(self, name: str) -> str | None: ...


class WorkerHealth(Protocol):
    """What the API asks of the workers a process runs itself (`styledrop serve`: app.runner.Workers)."""

    def jobs_down(self) -> tuple[str, int] | None:
        """(why no worker can run a new job, seconds until one is expected), or None."""

    def problems(self) -> list[str]:
        """What is wrong with any of them, for /api/v1/health (empty: all well)."""


class CeleryDispatcher:
    def __init__(self, settings: Settings, celery: Any = None):
        """`celery`: an existing Celery app to send through (a worker passes its own); else one is made."""
        self.celery = celery if celery is not None else make_celery(settings)

    # ignore_result: the job's state is in the database; nothing waits on a Celery result.
    def train_round(self, round_id: int) -> str | None:
        return self.celery.send_task(TRAIN_ROUND, args=[round_id], ignore_result=True).id

    def generate(self, generation_id: int) -> str | None:
        return self.celery.send_task(GENERATE_IMAGES, args=[generation_id], ignore_result=True).id

    def evaluate(self, evaluation_id: int) -> str | None:
        return self.celery.send_task(EVALUATE, args=[evaluation_id], ignore_result=True).id

    def deliver_webhook(self, user_id: int | None, url: str, body: str) -> str | None:
        return self.celery.send_task(DELIVER_WEBHOOK, args=[user_id, url, body], ignore_result=True).id

    def build_world(self, name: str) -> str | None:
        return self.celery.send_task(BUILD_WORLD, args=[name], ignore_result=True).id
