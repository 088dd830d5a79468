"""The jobs view: the user's queued and running rounds, playground jobs and evaluations, each with its place in
the queue and what is ahead of it, phase, progress and ETA, a round's Cancel; and the jobs that ended lately.

Queue positions: queue.py. A world base model's build (server-wide, app.domain.worlds) is listed above them while it
is queued or running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from styledrop.world.spec import is_world  # torch-free

from ..api.access import PageOwnedRound
from ..api.deps import DispatcherDep, SessionDep, SettingsDep, csrf_guard
from ..api.deps import PageUserDep as UserDep
from ..domain import rounds, worlds
from ..domain.lifecycle import ACTIVE, TERMINAL, JobStatus
from ..domain.models import Evaluation, Generation, Round, Style
from ..errors import ApiError
from .progress import round_progress
from .queue import QUEUED, RUNNING, Job, ahead_text, job_title, jobs_before
from .rendering import is_htmx, render
from .views import generation_view

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
HISTORY = 10  # ended jobs listed under the active ones
JOB_URLS: dict[type, Callable[[Any], str]] = {
    Round: lambda r: f"/styles/{r.style_id}#round-{r.id}",
    Generation: lambda g: f"/styles/{g.style_id}/playground#gen-{g.id}",
    Evaluation: lambda e: f"/styles/{e.style_id}#evaluation",
}


def user_jobs(session: Session, user) -> list[dict[str, Any]]:
    """The user's active jobs (rounds, playground jobs, evaluations: all wait for the same worker), running
    first, then by queue order, each queued one with what is ahead of it."""
    jobs: list[dict[str, Any]] = []
    rounds = session.scalars(select(Round).join(Style).where(Style.user_id == user.id, Round.status.in_(ACTIVE)))
    for rnd in rounds:
        live = round_progress(rnd)
        jobs.append(_job(session, user, rnd, JOB_URLS[Round](rnd), live["phase_label"],
                         live["percent"], live["eta_text"]))
    generations = session.scalars(select(Generation).where(Generation.user_id == user.id,
                                                           Generation.status.in_(ACTIVE)))
    for gen in generations:
        view = generation_view(gen, None)
        jobs.append(_job(session, user, gen, JOB_URLS[Generation](gen),
                         f"drawing {view['slots']} images"))
    evaluations = session.scalars(select(Evaluation).where(Evaluation.user_id == user.id,
                                                           Evaluation.status.in_(ACTIVE)))
    for ev in evaluations:
        jobs.append(_job(session, user, ev, JOB_URLS[Evaluation](ev),
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
            "percent": percent, "eta": eta, "stopping": bool(getattr(job, "cancel_requested", False))}


def recent_jobs(session: Session, user) -> list[dict[str, Any]]:
    """The user's last HISTORY ended jobs of every kind, the latest first: how each ended, and when."""
    ended: list[Job] = [
        *session.scalars(select(Round).join(Style).where(Style.user_id == user.id, Round.status.in_(TERMINAL))
                         .order_by(Round.finished_at.desc().nulls_last()).limit(HISTORY)),
        *(row for model in (Generation, Evaluation) for row in session.scalars(
            select(model).where(model.user_id == user.id, model.status.in_(TERMINAL))
            .order_by(model.finished_at.desc().nulls_last()).limit(HISTORY)))]
    ended.sort(key=lambda j: j.finished_at or j.created_at, reverse=True)
    return [{"kind": type(j).__name__.lower(), "id": j.id, "title": job_title(j), "style": j.style,
             "status": j.status, "ended_at": j.finished_at, "url": JOB_URLS[type(j)](j),
             "error": getattr(j, "error", None)} for j in ended[:HISTORY]]


def world_builds(settings) -> list[dict[str, Any]]:
    """World base models being built on this server now (app.domain.worlds): a server-wide job, not a user's, but
    it holds the worker that the user's jobs wait for."""
    offered = [m for m in settings.allowed_base_models if is_world(m)]
    return [w for w in (worlds.world_status(m, settings) for m in offered) if w["state"] in (worlds.QUEUED,
                                                                                              worlds.RUNNING)]


def _context(session: Session, user, settings, notice: str | None = None) -> dict[str, Any]:
    return {"jobs": user_jobs(session, user), "recent": recent_jobs(session, user), "notice": notice,
            "world_builds": world_builds(settings)}


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep, settings: SettingsDep, user: UserDep) -> HTMLResponse:
    return render(request, "jobs.html", _context(session, user, settings))


@router.get("/jobs/list", response_class=HTMLResponse)
def jobs_list(request: Request, session: SessionDep, settings: SettingsDep, user: UserDep) -> HTMLResponse:
    """The list alone: the jobs page polls it every 3 s while a job is queued or running."""
    return render(request, "_jobs.html", _context(session, user, settings))


@router.post("/jobs/rounds/{round_id}/cancel", response_class=HTMLResponse)
def cancel_from_jobs(rnd: PageOwnedRound, request: Request, session: SessionDep, settings: SettingsDep,
                     dispatcher: DispatcherDep, user: UserDep) -> Response:
    """Cancel a round from the jobs page (as the style page's Cancel does); the list comes back with what
    happened."""
    label = f"Round {rnd.number} of {rnd.style.name or rnd.style.descriptor}"
    try:
        rounds.cancel_round(session, dispatcher, rnd)
        notice = f"{label} is cancelled." if rnd.status == JobStatus.cancelled.value else \
            f"{label} is stopping: training stops at its next step and keeps a checkpoint, so Retry resumes there."
    except ApiError as exc:
        notice = exc.detail
    if not is_htmx(request):
        return RedirectResponse("/jobs", status_code=303)
    return render(request, "_jobs.html", _context(session, user, settings, notice))
