"""Rounds compared with pictures: the same prompt and seed from every finished round, side by side.

Rounds of a style draw their candidates with the same seeds (the seed of candidate i is fixed by the style's
seed and i), so an image of round 1 and the one of round 3 with the same prompt and seed differ only by the
adapter: what the feedback changed. Rows are (prompt, seed), each beside the reference; a round that did not
draw that pair shows a gap. A pool of 64 is read a page of rows at a time, one prompt at a time if asked, and
compact (small images, more rows to a screen) if asked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

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
ROWS_PER_PAGE = {"large": 12, "compact": 48}  # about two screens either way


def comparison(style: Style, user) -> dict[str, Any]:
    """Columns: the finished rounds, oldest first. Rows: each (content, seed), in the order first drawn, pairs
    more than one round drew first."""
    rounds = [r for r in style.rounds if r.status == JobStatus.succeeded.value and r.candidates]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for column, rnd in enumerate(rounds):
        for c in rnd.candidates:
            row = rows.setdefault((c.content, c.seed), {"content": c.content, "seed": c.seed,
                                                        "cells": [None] * len(rounds)})
            row["cells"][column] = candidate_out(c, user)
    shared = [r for r in rows.values() if sum(cell is not None for cell in r["cells"]) > 1]
    ordered = shared + [r for r in rows.values() if r not in shared]  # pairs every round drew come first
    return {"rounds": [round_view(r) for r in rounds], "rows": ordered, "shared_rows": len(shared)}


def _prompts(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Each prompt (content) with its number of rows, in row order: the filter's choices."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["content"]] = counts.get(row["content"], 0) + 1
    return list(counts.items())


@router.get("/styles/{style_id}/compare", response_class=HTMLResponse)
def compare_page(style: PageReadableStyle, request: Request, user: UserDep, prompt: str = "", page: int = 1,
                 view: str = "large") -> HTMLResponse:
    """One page of rows: all prompts or one (?prompt=), large or compact images (?view=)."""
    view = view if view in ROWS_PER_PAGE else "large"
    cmp = comparison(style, user)
    prompts = _prompts(cmp["rows"])
    prompt = prompt if prompt in dict(prompts) else ""
    rows = [r for r in cmp["rows"] if not prompt or r["content"] == prompt]
    per_page = ROWS_PER_PAGE[view]
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(page, 1), pages)
    first = (page - 1) * per_page

    def link(**changes: Any) -> str:
        query = {"prompt": prompt, "view": view, "page": page} | changes
        query = {k: v for k, v in query.items() if v not in ("", None) and not (k == "page" and v == 1)
                 and not (k == "view" and v == "large")}
        return f"/styles/{style.id}/compare" + (f"?{urlencode(query)}" if query else "")

    return render(request, "compare.html", {
        "style": style, "cmp": cmp, "summary": style_summary(style), "rows": rows[first:first + per_page],
        "prompts": prompts, "prompt": prompt, "view": view, "page": page, "pages": pages,
        "first": first + 1, "last": min(first + per_page, len(rows)), "matching": len(rows),
        "prev": link(page=page - 1) if page > 1 else None, "next": link(page=page + 1) if page < pages else None,
        "page_links": [(n, link(page=n)) for n in range(1, pages + 1)],
        "other_view": link(view="compact" if view == "large" else "large", page=1)})
