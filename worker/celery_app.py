"""The worker's Celery application: the app's own (app.infra.task_queue.make_celery: broker, queues, routes),
with the tasks registered. The web app never imports this module; it sends tasks by name.

Start a worker with `celery -A worker.celery_app worker -Q gpu,default -c 1` (one GPU job per process).
"""

from __future__ import annotations

from app.infra.task_queue import DEFAULT_QUEUE, GPU_QUEUE, make_celery
from app.settings import get_settings

__all__ = ["DEFAULT_QUEUE", "GPU_QUEUE", "celery_app"]

celery_app = make_celery(get_settings())
# Import the tasks only in a worker process (it registers them).
celery_app.conf.imports = ("worker.tasks",)
