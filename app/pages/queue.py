"""Where a queued job stands: one worker takes the GPU queue's jobs one at a time, in the order they were queued
(rounds, playground generations and evaluations alike), so a queued job's place is the jobs running plus those
queued before it. Each is named to its owner ("round 2 of Ink, running"); another person's job is counted, not
named. An estimate: a job put back in the queue after an interruption goes by its original time."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..domain.lifecycle import JobStatus
from ..domain.models import Evaluation, Generation, Round, Style

QUEUED, RUNNING = JobStatus.queued.value, JobStatus.running.value
Job = Round | Generation | Evaluation
JOB_MODELS: tuple[type[Job], ...] = (Round, Generation, Evaluation)  # all on the GPU queue (app/infra/task_queue.py)
NAMED_AHEAD = 3  # the jobs ahead named in a line; the rest are counted


def jobs_before(session: Session, job: Job) -> list[Job]:
    """The jobs the worker does before this queued one: those running, then those queued earlier, in queue
    order ([] unless it is queued)."""
    if job.status != QUEUED:
        return []
    running: list[Job] = []
    queued: list[Job] = []
    for model in JOB_MODELS:
        running += session.scalars(select(model).where(model.status == RUNNING))
        earlier = or_(model.created_at < job.created_at,
                      (model.created_at == job.created_at) & (model.id < job.id)) if isinstance(job, model) \
            else model.created_at <= job.created_at
        queued += session.scalars(select(model).where(model.status == QUEUED, earlier))
    running.sort(key=lambda j: j.created_at)
    queued.sort(key=lambda j: j.created_at)
    return running + queued


def owner_id(job: Job) -> int | None:
    return job.style.user_id if isinstance(job, Round) else job.user_id


def job_title(job: Job) -> str:
    """What a job is called on the jobs page and in a queue line."""
    if isinstance(job, Round):
        return f"Round {job.number}"
    if isinstance(job, Generation):
        return f"Playground job {job.id}"
    return f"Evaluation {job.id}"


def job_label(job: Job) -> str:
    """A job named for its owner in a queue line: "round 2 of Ink (running)"."""
    style: Style = job.style
    title = job_title(job)
    return f"{title[0].lower()}{title[1:]} of {style.name or style.descriptor}" + \
        (" (running)" if job.status == RUNNING else "")


def ahead_text(before: list[Job] | None, user_id: int | None) -> str:
    """A queued job's place and what is ahead of it (`before`: jobs_before; None: not queued): the asker's own
    jobs named, another person's counted."""
    if before is None:
        return ""
    if not before:
        return "next in the queue"
    mine = [job_label(j) for j in before if user_id is not None and owner_id(j) == user_id]
    others = len(before) - len(mine)
    named = mine[:NAMED_AHEAD] + ([f"{len(mine) - NAMED_AHEAD} more of yours"] if len(mine) > NAMED_AHEAD else [])
    if others:
        named.append(f"{others} of other people" if others > 1 else "1 of another person")
    return f"{len(before)} job{'' if len(before) == 1 else 's'} ahead in the queue: {', '.join(named)}"


def place_in_queue(session: Session, job: Job, user_id: int | None) -> str:
    """The line a queued job shows to the person `user_id` ("" unless it is queued)."""
    return ahead_text(jobs_before(session, job) if job.status == QUEUED else None, user_id)
