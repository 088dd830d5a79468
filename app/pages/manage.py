"""Manage a style from the pages: rename it, edit its descriptor, delete it (after a confirmation page).

The descriptor is read by the worker when a round starts, so it cannot change while a round is queued or
running (409, said on the form; a rename sent with it is saved all the same). Deleting follows DELETE
/api/v1/styles/{id}: refused while a round runs, so the page offers to cancel the round and delete; the style's
files go with it, and the gallery says it is deleted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from styledrop.model_profiles import profile_for  # torch-free

from ..api.access import PageOwnedStyle
from ..api.deps import SessionDep, SettingsDep, csrf_guard
from ..domain import limits, styles
from ..domain.models import Style
from ..domain.plain_text import control_message, first_control
from ..domain.queries import active_round
from ..domain.schemas import MAX_SAMPLE_PROMPTS, MAX_STEPS, STYLE_NAME_CHARS
from ..errors import ApiError
from ..settings import Settings
from .rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
DELETED = "/?notice=deleted"  # the gallery says the style is deleted


def _edit_context(style: Style, values: dict[str, str], errors: dict[str, str], settings: Settings,
                  busy) -> dict:
    return {"style": style, "values": values, "errors": errors, "busy": busy, "max_chars": settings.max_prompt_chars,
            "max_name": STYLE_NAME_CHARS, "max_steps": MAX_STEPS, "max_sample_prompts": MAX_SAMPLE_PROMPTS,
            "default_sample_every": settings.sample_every_for(style.base_model),
            "sample_contents": profile_for(style.base_model).sample_contents}  # what an empty field draws


def _live_samples(values: dict[str, str], settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    """The style's live-sample settings from the form (blank: the server's defaults), with each field's problem."""
    chosen: dict[str, Any] = {}
    errors: dict[str, str] = {}
    every = values["sample_every"].strip()
    if every:
        if not every.isdigit() or int(every) > MAX_STEPS:
            errors["sample_every"] = f"Live samples every must be between 0 and {MAX_STEPS:,}."
        else:
            chosen["sample_every"] = int(every)
    lines = [line.strip() for line in values["sample_prompts"].splitlines() if line.strip()]
    if len(lines) > MAX_SAMPLE_PROMPTS:
        errors["sample_prompts"] = f"Live samples draw at most {MAX_SAMPLE_PROMPTS} prompts, one per line."
    elif lines:
        try:
            chosen["sample_prompts"] = limits.clean_prompts(lines, settings, "Live sample prompts")
        except ApiError as exc:
            errors["sample_prompts"] = exc.detail
    return chosen, errors


@router.get("/styles/{style_id}/edit", response_class=HTMLResponse)
def edit_style_page(style: PageOwnedStyle, request: Request, session: SessionDep,
                    settings: SettingsDep) -> HTMLResponse:
    kept = style.settings or {}
    values = {"name": style.name or "", "descriptor": style.descriptor,
              "sample_every": str(kept.get("sample_every", "")),
              "sample_prompts": "\n".join(kept.get("sample_prompts", []))}
    return render(request, "style_edit.html", _edit_context(style, values, {}, settings,
                                                            active_round(session, style.id)))


@router.post("/styles/{style_id}/edit", response_class=HTMLResponse)
async def save_style_page(style: PageOwnedStyle, request: Request, session: SessionDep,
                          settings: SettingsDep) -> Response:
    """Save what can be saved: a rename is kept even when the descriptor change beside it is refused (a round
    reads it, or it is not usable text); the form then says what was saved and what was not."""
    form = await request.form()
    posted = {k: str(form.get(k, "")) for k in ("name", "descriptor")}
    values = {k: " ".join(v.split()) for k, v in posted.items()}
    values |= {k: str(form.get(k, "")) for k in ("sample_every", "sample_prompts")}
    samples, errors = _live_samples(values, settings)
    status = 422
    name = None
    if (char := first_control(posted["name"])) is not None:
        errors["name"] = control_message("The name", char)
    else:
        try:
            name = styles.clean_name(values["name"])
        except ApiError as exc:
            errors["name"] = exc.detail
    try:
        descriptor = styles.check_descriptor_change(session, settings, style, posted["descriptor"])
    except ApiError as exc:
        errors["descriptor"] = exc.detail
        status = exc.status
    if "name" not in errors and name != style.name:
        style.name = name
        session.commit()
        saved = f"The name “{name}” is saved." if name else "The name is cleared: the descriptor names the style."
    else:
        saved = None
    if errors:
        context = _edit_context(style, values, errors, settings, active_round(session, style.id)) | {"saved": saved}
        return render(request, "style_edit.html", context, status_code=status)
    style.descriptor = descriptor
    # for the rounds started from now on (rounds.start_round reads them); blank fields: the server's defaults
    style.settings = {k: v for k, v in (style.settings or {}).items()
                      if k not in ("sample_every", "sample_prompts")} | samples
    session.commit()
    return RedirectResponse(f"/styles/{style.id}", status_code=303)


@router.get("/styles/{style_id}/delete", response_class=HTMLResponse)
def confirm_delete_page(style: PageOwnedStyle, request: Request, session: SessionDep) -> HTMLResponse:
    """The confirmation: what deleting removes (with a round queued or running: that it stops too), and a button
    to do it."""
    return render(request, "style_delete.html", {"style": style, "busy": active_round(session, style.id),
                                                 "candidates": sum(len(r.candidates) for r in style.rounds)})


@router.post("/styles/{style_id}/delete", response_class=HTMLResponse)
def delete_style_page(style: PageOwnedStyle, request: Request, session: SessionDep,
                      settings: SettingsDep) -> Response:
    styles.delete_style(session, settings, style)  # its jobs, queued or running, go with it
    return RedirectResponse(DELETED, status_code=303)
