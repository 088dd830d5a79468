"""Where a queued job stands: the worker takes jobs one at a time in the order they were queued (rounds and
generations alike), so a queued job's position is the number of jobs queued before it, plus the one running.
An estimate: a job put back in the queue after an interruption goes by its original time."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..domain.lifecycle import JobStatus
from ..domain.models import Generation, Round

QUEUED, RUNNING = JobStatus.queued.value, JobStatus.running.value


def jobs_ahead(session: Session, job: Round | Generation) -> int | None:
    """How many jobs the worker does before this queued one (None unless it is queued)."""
    if job.status != QUEUED:
        return None
    running = (session.scalar(select(func.count(Round.id)).where(Round.status == RUNNING)) or 0) + \
        (session.scalar(select(func.count(Generation.id)).where(Generation.status == RUNNING)) or 0)
    before = []
    for model in (Round, Generation):
        earlier = or_(model.created_at < job.created_at,
                      (model.created_at == job.created_at) & (model.id < job.id)) if isinstance(job, model) \
            else model.created_at <= job.created_at
        before.append(session.scalar(select(func.count(model.id)).where(model.status == QUEUED, earlier)) or 0)
    return running + sum(before)


def ahead_text(ahead: int | None) -> str:
    if ahead is None:
        return ""
    if ahead == 0:
        return "next in the queue"
    return f"{ahead} job{'' if ahead == 1 else 's'} ahead in the queue"
