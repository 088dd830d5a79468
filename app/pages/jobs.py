"""The jobs view: the user's queued and running rounds, playground jobs and evaluations, each with its place in
the queue and what is ahead of it, phase, progress and ETA.

Queue positions: queue.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..api.deps import PageUserDep as UserDep
from ..api.deps import SessionDep, csrf_guard
from ..domain.lifecycle import ACTIVE
from ..domain.models import Evaluation, Generation, Round, Style
from .progress import round_progress
from .queue import QUEUED, RUNNING, Job, ahead_text, job_title, jobs_before
from .rendering import render
from .views import generation_view

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


def user_jobs(session: Session, user) -> list[dict[str, Any]]:
    """The user's active jobs (rounds, playground jobs, evaluations: all wait for the same worker), running
    first, then by queue order, each queued one with what is ahead of it."""
    jobs: list[dict[str, Any]] = []
    rounds = session.scalars(select(Round).join(Style).where(Style.user_id == user.id, Round.status.in_(ACTIVE)))
    for rnd in rounds:
        live = round_progress(rnd)
        jobs.append(_job(session, user, rnd, f"/styles/{rnd.style_id}#round-{rnd.id}", live["phase_label"],
                         live["percent"], live["eta_text"]))
    generations = session.scalars(select(Generation).where(Generation.user_id == user.id,
                                                           Generation.status.in_(ACTIVE)))
    for gen in generations:
        view = generation_view(gen, None)
        jobs.append(_job(session, user, gen, f"/styles/{gen.style_id}/playground#gen-{gen.id}",
                         f"drawing {view['slots']} images"))
    evaluations = session.scalars(select(Evaluation).where(Evaluation.user_id == user.id,
                                                           Evaluation.status.in_(ACTIVE)))
    for ev in evaluations:
        jobs.append(_job(session, user, ev, f"/styles/{ev.style_id}#evaluation",
                         "drawing and scoring with CLIP"))
    jobs.sort(key=lambda j: (j["status"] != RUNNING, j["ahead"] or 0, j["created_at"]))
    return jobs


def _job(session: Session, user, job: Job, url: str, running_phase: str, percent: int | None = None,
         eta: str = "—") -> dict[str, Any]:
    before = jobs_before(session, job) if job.status == QUEUED else None
    return {"kind": type(job).__name__.lower(), "id": job.id, "title": job_title(job), "style": job.style,
            "status": job.status, "created_at": job.created_at, "url": url,
            "ahead": None if before is None else len(before), "ahead_text": ahead_text(before, user.id),
            "phase": running_phase if job.status == RUNNING else "waiting for the worker",
            "percent": percent, "eta": eta}


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    return render(request, "jobs.html", {"jobs": user_jobs(session, user)})


@router.get("/jobs/list", response_class=HTMLResponse)
def jobs_list(request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """The list alone: the jobs page polls it every 3 s while a job is queued or running."""
    return render(request, "_jobs.html", {"jobs": user_jobs(session, user)})
