"""The jobs view: the user's queued and running rounds and generations, each with its place in the queue,
phase, progress and ETA; and the queue position the playground shows for its own jobs.

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
from ..domain.models import Generation, Round, Style
from .progress import round_progress
from .queue import RUNNING, ahead_text, jobs_ahead
from .rendering import render
from .views import generation_view

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


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
        view = generation_view(gen, None)
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
