"""The webhook worker: deliveries of jobs' end events (app/domain/webhooks.py), and nothing else.

Its own Celery app, queue ("webhooks") and processes, started by `styledrop serve` (app/runner.py) and by the
compose file's `webhooks` service: a delivery waiting on a slow or hostile receiver never holds a worker that
trains or samples. It imports neither the engine nor the GPU workers' tasks (the web image runs it).

Prefork pool: Celery enforces task time limits only there. Each attempt has its own wall-clock deadline
(app/domain/webhooks.py); the soft limit turns an attempt that outlives it anyway into a retry, the hard limit
kills the pool process that runs it. `celery -A worker.webhooks worker --queues webhooks`.
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from app.domain import webhooks
from app.infra.db import session_factory
from app.infra.task_queue import DELIVER_WEBHOOK, make_celery
from app.settings import get_settings

log = logging.getLogger(__name__)

celery_app = make_celery(get_settings())
_limit = get_settings().webhook_timeout_seconds


@worker_process_init.connect
def _end_with_the_worker(**_: object) -> None:
    """A pool process ends with the worker that forked it: `styledrop serve` killed outright takes its workers
    with it (app/infra/children.py), and their pool processes must not go on delivering as orphans."""
    from app.infra.children import end_with_parent

    end_with_parent()


@celery_app.task(name=DELIVER_WEBHOOK, bind=True, soft_time_limit=_limit + 15, time_limit=_limit + 30)
def deliver(self, user_id: int | None, url: str, body: str) -> str:  # noqa: ANN001
    """One delivery attempt of a job's end event; retried with exponential backoff."""
    settings = get_settings()
    try:
        with session_factory(settings)() as session:
            return webhooks.deliver(settings, session, user_id, url, body)
    except (webhooks.DeliveryFailed, SoftTimeLimitExceeded) as exc:
        attempt = self.request.retries + 1
        if attempt >= settings.webhook_attempts:
            log.warning("webhook to %s given up after %s attempts: %s", url, attempt, exc)
            return "given up"
        log.info("webhook to %s failed (attempt %s): %s", url, attempt, exc)
        raise self.retry(countdown=webhooks.backoff_seconds(settings, attempt), max_retries=None) from exc
