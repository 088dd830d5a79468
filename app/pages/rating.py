"""Rating-grid routes (htmx fragments): a thumb or a Select per click or key, and CLIP assistance that adds
to the person's picks with a one-click undo (the rules are in app/picks.py).

Every answer carries, out of band, what else the change moves: the selection bar's count and the Picked cell
of the style's side table, so nothing on the page is stale until a reload.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from .. import picks
from ..api.deps import PageUserDep as UserDep
from ..api.deps import SessionDep, csrf_guard
from ..api.views import get_candidate, get_round
from ..errors import ApiError
from .routes import error_page, grid_context, render, templates

FEEDBACK = {"human": "your picks", "clip": "CLIP's picks", "both": "your picks + CLIP's"}
templates.env.filters["feedback"] = lambda value: FEEDBACK.get(value or "", value or "")

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


def _card(request: Request, session, user, candidate_id: int) -> HTMLResponse:
    session.expire_all()
    candidate = get_candidate(session, candidate_id, user)
    context = grid_context(session, candidate.round, user, "prompt")
    card = next(card for group in context["groups"] for card in group["cards"] if card["c"].id == candidate_id)
    return render(request, "_card_response.html", {"grid": context, "card": card})


@router.put("/candidates/{candidate_id}/rating", response_class=HTMLResponse)
@router.post("/candidates/{candidate_id}/rating", response_class=HTMLResponse)
async def rate_page(candidate_id: int, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """Thumbs up (+1) or down (-1); the same thumb again takes the rating back (picks.rate_and_pick)."""
    form = await request.form()
    try:
        candidate = get_candidate(session, candidate_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    try:
        value = int(str(form.get("value", "")))
        if value not in (-1, 1):
            raise ValueError
    except ValueError:
        return render(request, "error.html", {"status": 422, "message": "A rating is 1 (thumbs up) or -1."},
                      status_code=422)
    picks.rate_and_pick(session, candidate, user, value)
    return _card(request, session, user, candidate_id)


@router.post("/candidates/{candidate_id}/selected", response_class=HTMLResponse)
def toggle_selected_page(candidate_id: int, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """Select the image for the next round's training set, or unselect it."""
    try:
        candidate = get_candidate(session, candidate_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    picks.set_pick(session, candidate, user, candidate.selection is None)
    return _card(request, session, user, candidate_id)


def _grid(request: Request, session, user, round_id: int, sort: str, notice: str | None,
          undo: bool = False) -> HTMLResponse:
    session.expire_all()
    rnd = get_round(session, round_id, user)
    return render(request, "_grid.html", {"grid": grid_context(session, rnd, user, sort), "grid_notice": notice,
                                          "grid_undo": undo, "picked_oob": True})


def _names(items: list) -> str:
    names = [f"{c.content} (seed {c.seed})" for c in items[:6]]
    return ", ".join(names) + (f" and {len(items) - 6} more" if len(items) > 6 else "")


@router.post("/rounds/{round_id}/auto-select", response_class=HTMLResponse)
def clip_assist_page(round_id: int, request: Request, session: SessionDep, user: UserDep,
                     sort: str = "prompt") -> HTMLResponse:
    """CLIP assistance: add CLIP's best per prompt to the person's picks (never a thumbed-down image, never
    removing a pick), say what it added, offer Undo."""
    try:
        rnd = get_round(session, round_id, user)
        kept = sum(1 for c in rnd.candidates if c.selection is not None)
        added, _rule = picks.clip_assist(session, rnd, user)
    except ApiError as exc:
        if exc.status == 404:
            return error_page(request, exc)
        return _grid(request, session, user, round_id, sort, exc.detail)
    yours = f"Your {kept} pick{'' if kept == 1 else 's'} stay{'s' if kept == 1 else ''}."
    if not added:
        notice = f"CLIP added nothing: its best image per prompt is already picked. {yours}"
    else:
        notice = (f"CLIP added {len(added)} pick{'' if len(added) == 1 else 's'}, the best per prompt by CLIP "
                  f"text score that no one thumbed down: {_names(added)}. {yours}")
    return _grid(request, session, user, round_id, sort, notice, undo=bool(added))


@router.post("/rounds/{round_id}/auto-select/undo", response_class=HTMLResponse)
def undo_clip_assist_page(round_id: int, request: Request, session: SessionDep, user: UserDep,
                          sort: str = "prompt") -> HTMLResponse:
    """Take back the picks the last CLIP assistance added."""
    try:
        rnd = get_round(session, round_id, user)
        removed = picks.undo_clip_assist(session, rnd)
    except ApiError as exc:
        return error_page(request, exc)
    notice = (f"Undone: CLIP's {removed} pick{'' if removed == 1 else 's'} removed; yours are as they were."
              if removed else "Nothing to undo: CLIP's picks were already removed.")
    return _grid(request, session, user, round_id, sort, notice)
