"""The Celery application: Redis broker, GPU work on queue "gpu", light work on "default".

No result backend: a job's state lives in the database and nothing reads Celery results, so the end of a job
does not depend on Redis being up (a Redis restart touches only the messages).

Start a worker with `celery -A worker.celery_app worker -Q gpu,default -c 1` (one GPU job per process).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from app.settings import Settings, get_settings

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"


def make_celery(settings: Settings) -> Celery:
    app = Celery("styledrop", broker=settings.broker_url, include=[])
    app.conf.update(
        task_acks_late=True,  # a task whose worker died is redelivered ...
        # ... but only after the visibility timeout, which must outlast the longest task, or a long training
        # would be delivered a second time while the first copy still runs.
        broker_transport_options={"visibility_timeout": settings.task_time_limit + 3600},
        task_time_limit=settings.task_time_limit,
        worker_prefetch_multiplier=1,  # one job at a time per worker process; the rest wait in the queue
        task_default_queue=DEFAULT_QUEUE,
        task_queues=[Queue(GPU_QUEUE), Queue(DEFAULT_QUEUE)],
        task_routes={
            "worker.tasks.train_round": {"queue": GPU_QUEUE},
            "worker.tasks.generate_images": {"queue": GPU_QUEUE},
            "worker.tasks.evaluate_style": {"queue": GPU_QUEUE},
            "worker.tasks.reap": {"queue": DEFAULT_QUEUE},
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
        beat_schedule={"reap-stale-rounds": {"task": "worker.tasks.reap", "schedule": settings.reap_interval_seconds,
                                             "options": {"expires": settings.reap_interval_seconds}}},
    )
    return app


celery_app = make_celery(get_settings())
# Import the tasks only in a worker process (it registers them); the web app sends tasks by name.
celery_app.conf.imports = ("worker.tasks",)
