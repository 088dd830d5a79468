"""The gallery's style cards: a running style shows its live phase and the round's ETA (the card polls itself
while a round is queued or running), a finished round waiting for the person says "ready to rate"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ..api.access import PageReadableStyle
from ..api.deps import PageUserDep as UserDep
from ..api.deps import csrf_guard
from ..domain.lifecycle import ACTIVE, JobStatus
from ..domain.models import Style
from .progress import round_progress
from .rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


def style_item(style: Style, user) -> dict[str, Any]:
    """What a gallery card shows about a style."""
    last = style.rounds[-1] if style.rounds else None
    item: dict[str, Any] = {"style": style, "rounds": len(style.rounds), "last": last,
                            "status": last.status if last else "no rounds yet", "live": None, "to_rate": None}
    if last is not None and last.status in ACTIVE:
        item["live"] = round_progress(last)
    elif last is not None and last.status == JobStatus.succeeded.value and last.candidates \
            and user is not None and style.user_id == user.id:
        rated = sum(1 for c in last.candidates if any(r.user_id == user.id for r in c.ratings))
        picked = sum(1 for c in last.candidates if c.selection is not None)
        item["to_rate"] = {"rated": rated, "total": len(last.candidates), "fresh": rated == 0 and picked == 0}
    return item


@router.get("/styles/{style_id}/card", response_class=HTMLResponse)
def style_card(style: PageReadableStyle, request: Request, user: UserDep) -> HTMLResponse:
    """One gallery card (htmx polls it every few seconds while the style's round is queued or running)."""
    return render(request, "_style_card.html", {"item": style_item(style, user)})
