"""Round and candidate pages (htmx fragments): a round's panel (polling while it runs), cancel and retry,
the rating grid, CLIP assistance (adds to the person's picks, with Undo), and one click or key on a candidate
(thumbs, select). Answers that change the selection carry the side table's Picked count out of band."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from ..api.access import PageOwnedCandidate, PageOwnedRound, PageReadableRound
from ..api.deps import DispatcherDep, SessionDep, SettingsDep, csrf_guard
from ..api.deps import PageUserDep as UserDep
from ..domain import feedback, picks, rounds
from ..domain.lifecycle import TERMINAL
from ..domain.models import Round, User
from ..domain.schemas import RatingIn
from ..errors import ApiError
from .forms import form_values, parse_form
from .rendering import is_htmx, render
from .views import card_context, grid_context, round_panel_context, style_summary

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


def _panel(request: Request, session: Session, user: User, rnd: Round, sort: str = "prompt",
           notice: str | None = None) -> HTMLResponse:
    context = round_panel_context(session, rnd, user, sort, notice)
    if rnd.status in TERMINAL and is_htmx(request):  # the style's summary changes when a round ends
        context["summary_oob"] = style_summary(rnd.style)
        context["style"] = rnd.style
    return render(request, "_round.html", context)


# ---- rounds -------------------------------------------------------------------------------------------------

@router.get("/rounds/{round_id}/panel", response_class=HTMLResponse)
def round_panel(rnd: PageReadableRound, request: Request, session: SessionDep, user: UserDep,
                sort: str = "prompt") -> HTMLResponse:
    """The round's panel: polls itself every 2 s while the round is queued or running (hx-trigger), and
    comes back without the trigger once it has ended, which stops the polling."""
    return _panel(request, session, user, rnd, sort)


@router.post("/rounds/{round_id}/cancel", response_class=HTMLResponse)
def cancel_round_page(rnd: PageOwnedRound, request: Request, session: SessionDep, dispatcher: DispatcherDep,
                      user: UserDep) -> HTMLResponse:
    try:
        rounds.cancel_round(session, dispatcher, rnd)
        notice = "Stopping… training stops at its next step and keeps a checkpoint, so Retry resumes there."
    except ApiError as exc:
        notice = exc.detail
    return _panel(request, session, user, rnd, notice=notice)


@router.post("/rounds/{round_id}/retry", response_class=HTMLResponse)
def retry_round_page(rnd: PageOwnedRound, request: Request, session: SessionDep, settings: SettingsDep,
                     dispatcher: DispatcherDep, user: UserDep) -> HTMLResponse:
    try:
        rounds.retry_round(session, settings, dispatcher, rnd)
    except ApiError as exc:
        panel = _panel(request, session, user, rnd, notice=exc.detail)
        if not is_htmx(request):  # htmx swaps only 2xx answers into the page, so it gets the notice with 200
            panel.status_code = exc.status
        panel.headers.update(exc.headers or {})
        return panel
    return _panel(request, session, user, rnd)


@router.get("/rounds/{round_id}/grid", response_class=HTMLResponse)
def round_grid(rnd: PageReadableRound, request: Request, session: SessionDep, user: UserDep,
               sort: str = "prompt") -> HTMLResponse:
    return render(request, "_grid.html", {"grid": grid_context(session, rnd, user, sort)})


def _grid(request: Request, session: Session, user: User, rnd: Round, sort: str, notice: str | None,
          undo: bool = False) -> HTMLResponse:
    """The grid after a CLIP assist or its undo, with the side table's Picked count out of band."""
    session.expire_all()
    return render(request, "_grid.html", {"grid": grid_context(session, rnd, user, sort), "grid_notice": notice,
                                          "grid_undo": undo, "picked_oob": True})


def _names(items: list) -> str:
    names = [f"{c.content} (seed {c.seed})" for c in items[:6]]
    return ", ".join(names) + (f" and {len(items) - 6} more" if len(items) > 6 else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@router.post("/rounds/{round_id}/auto-select", response_class=HTMLResponse)
def clip_assist_page(rnd: PageOwnedRound, request: Request, session: SessionDep, settings: SettingsDep,
                     user: UserDep, sort: str = "prompt") -> HTMLResponse:
    """CLIP assistance (app/domain/picks.py): add CLIP's best per prompt to the person's picks, never a thumbed-down
    image and never removing a pick; say what it added and offer Undo."""
    kept = sum(1 for c in rnd.candidates if c.selection is not None)
    try:
        added, _rule = picks.clip_assist(session, rnd, user, settings.clip_rule)
    except ApiError as exc:
        return _grid(request, session, user, rnd, sort, exc.detail)
    yours = f"Your {_plural(kept, 'pick')} stay{'s' if kept == 1 else ''}."
    if not added:
        notice = f"CLIP added nothing: its best image per prompt is already picked. {yours}"
    else:
        notice = (f"CLIP added {_plural(len(added), 'pick')}, the best per prompt by CLIP text score that no one "
                  f"thumbed down: {_names(added)}. {yours}")
    return _grid(request, session, user, rnd, sort, notice, undo=bool(added))


@router.post("/rounds/{round_id}/auto-select/undo", response_class=HTMLResponse)
def undo_clip_assist_page(rnd: PageOwnedRound, request: Request, session: SessionDep, user: UserDep,
                          sort: str = "prompt") -> HTMLResponse:
    """Take back the picks the last CLIP assistance added."""
    removed = picks.undo_clip_assist(session, rnd)
    notice = (f"Undone: CLIP's {_plural(removed, 'pick')} removed; yours are as they were." if removed
              else "Nothing to undo: CLIP's picks were already removed.")
    return _grid(request, session, user, rnd, sort, notice)


# ---- candidates: one click or one key ------------------------------------------------------------------------

@router.put("/candidates/{candidate_id}/rating", response_class=HTMLResponse)
@router.post("/candidates/{candidate_id}/rating", response_class=HTMLResponse)
async def rate_page(candidate: PageOwnedCandidate, request: Request, session: SessionDep,
                    user: UserDep) -> HTMLResponse:
    """Thumbs up (+1) or down (-1) (app/domain/feedback.py:thumb); the same thumb again takes it back. One rating
    per user and candidate."""
    body, _ = parse_form(RatingIn, (await form_values(request))[0], {"value": "A rating"})
    if body is None or body.value not in (-1, 1):  # the page's thumbs; the API also takes 1 to 5 stars
        raise ApiError(422, "A rating is 1 (thumbs up) or -1.")
    feedback.thumb(session, candidate, user, body.value)
    return render(request, "_card_response.html", card_context(session, candidate, user))


@router.post("/candidates/{candidate_id}/selected", response_class=HTMLResponse)
def toggle_selected_page(candidate: PageOwnedCandidate, request: Request, session: SessionDep,
                         user: UserDep) -> HTMLResponse:
    """Select the image for the next round's training set, or unselect it."""
    feedback.store_selection(session, candidate, user, candidate.selection is None)
    return render(request, "_card_response.html", card_context(session, candidate, user))
