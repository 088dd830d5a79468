"""The jobs view: the user's queued and running rounds and generations, each with its place in the queue,
phase, progress and ETA; and the queue position the playground shows for its own jobs.

The worker takes jobs one at a time in the order they were queued (rounds and generations alike), so a
queued job's position is the number of jobs queued before it, plus the one running; it is an estimate, as a
job put back in the queue after an interruption goes by its original time.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..api.deps import PageUserDep as UserDep
from ..api.deps import SessionDep, csrf_guard
from ..models import ACTIVE, Generation, Round, RoundStatus, Style
from .progress import round_progress
from .routes import generation_view, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
QUEUED, RUNNING = RoundStatus.queued.value, RoundStatus.running.value


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


def user_jobs(session: Session, user) -> list[dict[str, Any]]:
    """The user's active jobs, running first, then by queue order."""
    jobs: list[dict[str, Any]] = []
    rounds = session.scalars(select(Round).join(Style).where(Style.user_id == user.id, Round.status.in_(ACTIVE)))
    for rnd in rounds:
        live = round_progress(rnd)
        jobs.append({"kind": "round", "id": rnd.id, "title": f"Round {rnd.number}", "style": rnd.style,
                     "status": rnd.status, "ahead": jobs_ahead(session, rnd), "created_at": rnd.created_at,
                     "phase": live["phase_label"] if rnd.status == RUNNING else "waiting for the worker",
                     "percent": live["percent"], "eta": live["eta_text"], "url": f"/styles/{rnd.style_id}#round-{rnd.id}"})
    generations = session.scalars(select(Generation).where(Generation.user_id == user.id,
                                                           Generation.status.in_(ACTIVE)))
    for gen in generations:
        view = generation_view(gen)
        jobs.append({"kind": "generation", "id": gen.id, "title": f"Playground job {gen.id}", "style": gen.style,
                     "status": gen.status, "ahead": jobs_ahead(session, gen), "created_at": gen.created_at,
                     "phase": f"drawing {view['slots']} images" if gen.status == RUNNING else "waiting for the worker",
                     "percent": None, "eta": "—", "url": f"/styles/{gen.style_id}/playground#gen-{gen.id}"})
    jobs.sort(key=lambda j: (j["status"] != RUNNING, j["ahead"] or 0, j["created_at"]))
    for job in jobs:
        job["ahead_text"] = ahead_text(job["ahead"])
    return jobs


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    return render(request, "jobs.html", {"jobs": user_jobs(session, user)})


@router.get("/jobs/list", response_class=HTMLResponse)
def jobs_list(request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """The list alone: the jobs page polls it every 3 s while a job is queued or running."""
    return render(request, "_jobs.html", {"jobs": user_jobs(session, user)})
