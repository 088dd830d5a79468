"""Manage a style from the pages: rename it, edit its descriptor, delete it (after a confirmation page).

The descriptor is read by the worker when a round starts, so it cannot change while a round is queued or
running (409, said on the form). Deleting follows DELETE /api/v1/styles/{id}: refused while a round runs,
and the style's files go with it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from ..api.access import PageOwnedStyle
from ..api.deps import SessionDep, SettingsDep, csrf_guard
from ..domain import limits, styles
from ..domain.models import Style
from ..domain.queries import active_round
from ..errors import ApiError
from ..settings import Settings
from .rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
MAX_NAME = 100


def _edit_context(style: Style, values: dict[str, str], errors: dict[str, str], settings: Settings,
                  busy) -> dict:
    return {"style": style, "values": values, "errors": errors, "busy": busy, "max_chars": settings.max_prompt_chars,
            "max_name": MAX_NAME}


@router.get("/styles/{style_id}/edit", response_class=HTMLResponse)
def edit_style_page(style: PageOwnedStyle, request: Request, session: SessionDep,
                    settings: SettingsDep) -> HTMLResponse:
    values = {"name": style.name or "", "descriptor": style.descriptor}
    return render(request, "style_edit.html", _edit_context(style, values, {}, settings,
                                                            active_round(session, style.id)))


@router.post("/styles/{style_id}/edit", response_class=HTMLResponse)
async def save_style_page(style: PageOwnedStyle, request: Request, session: SessionDep,
                          settings: SettingsDep) -> Response:
    form = await request.form()
    values = {k: " ".join(str(form.get(k, "")).split()) for k in ("name", "descriptor")}
    errors: dict[str, str] = {}
    status = 422
    if len(values["name"]) > MAX_NAME:
        errors["name"] = f"The name is {len(values['name'])} characters long; the limit is {MAX_NAME}."
    try:
        limits.clean_text(values["descriptor"], "The style descriptor", settings)
    except ApiError as exc:
        errors["descriptor"] = exc.detail
    busy = active_round(session, style.id)
    if not errors and values["descriptor"] != style.descriptor and busy is not None:
        errors["descriptor"] = (f"Round {busy.number} is {busy.status} and reads the descriptor; change it when "
                                f"the round has ended (or cancel it).")
        status = 409
    if errors:
        return render(request, "style_edit.html", _edit_context(style, values, errors, settings, busy),
                      status_code=status)
    style.name = values["name"] or None
    style.descriptor = values["descriptor"]
    session.commit()
    return RedirectResponse(f"/styles/{style.id}", status_code=303)


def _delete_context(session: Session, style: Style, notice: str | None = None) -> dict:
    return {"style": style, "busy": active_round(session, style.id), "notice": notice,
            "candidates": sum(len(r.candidates) for r in style.rounds)}


@router.get("/styles/{style_id}/delete", response_class=HTMLResponse)
def confirm_delete_page(style: PageOwnedStyle, request: Request, session: SessionDep) -> HTMLResponse:
    """The confirmation: what deleting removes, and a button to do it."""
    return render(request, "style_delete.html", _delete_context(session, style))


@router.post("/styles/{style_id}/delete", response_class=HTMLResponse)
def delete_style_page(style: PageOwnedStyle, request: Request, session: SessionDep,
                      settings: SettingsDep) -> Response:
    try:
        styles.delete_style(session, settings, style)
    except ApiError as exc:  # 409 while a round runs: the confirmation page says so
        return render(request, "style_delete.html", _delete_context(session, style, exc.detail),
                      status_code=exc.status)
    return RedirectResponse("/", status_code=303)
