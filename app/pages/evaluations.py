"""The style page's evaluation panel: start the paper's CLIP evaluation of every round (app/domain/evaluations.py)
and show its result as a table and a text-against-style chart (the paper's Figure 6). The panel loads by
itself (htmx) and polls while the job is queued or running."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from styledrop.model_profiles import profile_for  # torch-free

from ..api.access import PageOwnedStyle, PageReadableStyle
from ..api.deps import DispatcherDep, SessionDep, SettingsDep, check_workers, csrf_guard
from ..api.deps import PageUserDep as UserDep
from ..domain.evaluations import EvaluationCreate, latest_evaluation, start_evaluation
from ..domain.lifecycle import ACTIVE, JobStatus
from ..domain.models import Style
from ..errors import ApiError
from .chart import evaluation_chart
from .forms import form_values, parse_form
from .rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
LABELS = {"limit": "Prompts", "per_prompt": "Images per prompt"}


def _panel(request: Request, session: Session, style: Style, read_only: bool, error: str | None = None,
           values: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    evaluation = latest_evaluation(session, style.id)
    result = (evaluation.result or {}) if evaluation is not None else {}
    rows = result.get("rows") or []
    finished = any(r.status == JobStatus.succeeded.value for r in style.rounds)
    held_out = len(profile_for(style.base_model).eval_prompts())  # the base model's list: 104, or a world's 5
    return render(request, "_evaluation.html", {
        "style": style, "evaluation": evaluation, "rows": rows, "chart": evaluation_chart(rows),
        "clip_model": result.get("clip_model"), "active": evaluation is not None and evaluation.status in ACTIVE,
        "finished": finished, "read_only": read_only, "error": error,
        "held_out": held_out, "values": values or {"limit": str(min(32, held_out)), "per_prompt": "2"}},
        status_code=status_code)


@router.get("/styles/{style_id}/evaluation", response_class=HTMLResponse)
def evaluation_panel(style: PageReadableStyle, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    return _panel(request, session, style, style.user_id != user.id)


@router.post("/styles/{style_id}/evaluation", response_class=HTMLResponse)
async def start_evaluation_page(style: PageOwnedStyle, request: Request, session: SessionDep, settings: SettingsDep,
                                dispatcher: DispatcherDep, user: UserDep) -> HTMLResponse:
    """Evaluate every finished round on the first N held-out prompts (the form is an EvaluationCreate)."""
    values = {k: v for k, v in (await form_values(request))[0].items() if k in LABELS}
    body, errors = parse_form(EvaluationCreate, values, LABELS)
    if body is None:
        return _panel(request, session, style, False, next(iter(errors.values())), values, status_code=422)
    try:
        check_workers(request)
        start_evaluation(session, settings, dispatcher, style, user, body)
    except ApiError as exc:
        return _panel(request, session, style, False, exc.detail, values, status_code=exc.status)
    return _panel(request, session, style, False, values=values)
