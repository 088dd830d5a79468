"""Rounds compared with pictures: the same prompt and seed from every finished round, side by side.

Rounds of a style draw their candidates with the same seeds (the seed of candidate i is fixed by the style's
seed and i), so an image of round 1 and the one of round 3 with the same prompt and seed differ only by the
adapter: what the feedback changed. Rows are (prompt, seed); a round that did not draw that pair shows a gap.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ..api.access import PageReadableStyle
from ..api.deps import PageUserDep as UserDep
from ..api.deps import csrf_guard
from ..domain.lifecycle import JobStatus
from ..domain.models import Style
from ..domain.resources import candidate_out
from .rendering import render
from .views import round_view, style_summary

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
MAX_ROWS = 64


def comparison(style: Style, user) -> dict[str, Any]:
    """Columns: the finished rounds, oldest first. Rows: each (content, seed), in the order first drawn."""
    rounds = [r for r in style.rounds if r.status == JobStatus.succeeded.value and r.candidates]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for column, rnd in enumerate(rounds):
        for c in rnd.candidates:
            row = rows.setdefault((c.content, c.seed), {"content": c.content, "seed": c.seed,
                                                        "cells": [None] * len(rounds)})
            row["cells"][column] = candidate_out(c, user)
    shared = [r for r in rows.values() if sum(cell is not None for cell in r["cells"]) > 1]
    ordered = shared + [r for r in rows.values() if r not in shared]  # pairs every round drew come first
    return {"rounds": [round_view(r) for r in rounds], "rows": ordered[:MAX_ROWS], "total_rows": len(ordered),
            "shared_rows": len(shared)}


@router.get("/styles/{style_id}/compare", response_class=HTMLResponse)
def compare_page(style: PageReadableStyle, request: Request, user: UserDep) -> HTMLResponse:
    return render(request, "compare.html", {"style": style, "cmp": comparison(style, user),
                                            "summary": style_summary(style), "max_rows": MAX_ROWS})
