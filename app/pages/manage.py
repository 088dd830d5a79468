"""Manage a style from the pages: rename it, edit its descriptor, delete it (after a confirmation page).

The descriptor is read by the worker when a round starts, so it cannot change while a round is queued or
running (409, said on the form). Deleting follows DELETE /api/v1/styles/{id}: refused while a round runs,
and the style's files go with it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api import routes as api
from ..api.deps import PageUserDep as UserDep
from ..api.deps import SessionDep, SettingsDep, csrf_guard
from ..api.views import get_style
from ..errors import ApiError
from ..services import active_round, clean_text
from .routes import error_page, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
MAX_NAME = 100


def _edit_context(style, values: dict[str, str], errors: dict[str, str], settings, busy) -> dict:
    return {"style": style, "values": values, "errors": errors, "busy": busy, "max_chars": settings.max_prompt_chars,
            "max_name": MAX_NAME}


@router.get("/styles/{style_id}/edit", response_class=HTMLResponse)
def edit_style_page(style_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                    user: UserDep) -> HTMLResponse:
    try:
        style = get_style(session, style_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    values = {"name": style.name or "", "descriptor": style.descriptor}
    return render(request, "style_edit.html", _edit_context(style, values, {}, settings,
                                                            active_round(session, style.id)))


@router.post("/styles/{style_id}/edit", response_class=HTMLResponse)
async def save_style_page(style_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                          user: UserDep) -> Response:
    try:
        style = get_style(session, style_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    form = await request.form()
    values = {k: " ".join(str(form.get(k, "")).split()) for k in ("name", "descriptor")}
    errors: dict[str, str] = {}
    status = 422
    if len(values["name"]) > MAX_NAME:
        errors["name"] = f"The name is {len(values['name'])} characters long; the limit is {MAX_NAME}."
    try:
        clean_text(values["descriptor"], "The style descriptor", settings)
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
    return RedirectResponse(f"/styles/{style_id}", status_code=303)


@router.get("/styles/{style_id}/delete", response_class=HTMLResponse)
def confirm_delete_page(style_id: int, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """The confirmation: what deleting removes, and a button to do it."""
    try:
        style = get_style(session, style_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    return render(request, "style_delete.html", {"style": style, "busy": active_round(session, style.id),
                                                 "candidates": sum(len(r.candidates) for r in style.rounds)})


@router.post("/styles/{style_id}/delete", response_class=HTMLResponse)
def delete_style_page(style_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                      user: UserDep) -> Response:
    try:
        api.delete_style(style_id, session, settings, user)
    except ApiError as exc:
        if exc.status == 404:
            return error_page(request, exc)
        style = get_style(session, style_id, user)
        return render(request, "style_delete.html", {"style": style, "busy": active_round(session, style.id),
                                                     "candidates": sum(len(r.candidates) for r in style.rounds),
                                                     "notice": exc.detail}, status_code=exc.status)
    return RedirectResponse("/?deleted=1", status_code=303)
