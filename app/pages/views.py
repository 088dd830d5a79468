"""View models of the pages: what the templates need about a round, its candidates, a style and a generation,
computed from the database rows (no writes here)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.downloads import image_contents_and_seeds
from ..domain.feedback import load_feedback
from ..domain.lifecycle import ACTIVE, TERMINAL, JobStatus
from ..domain.models import Candidate, Generation, Round, Style, User
from ..domain.queries import active_round, latest_adapter_round, latest_succeeded
from ..domain.resources import candidate_out
from ..domain.round_samples import samples_by_step
from .chart import RoundScores, loss_chart, scores_chart
from .progress import expected_candidates, round_progress
from .rendering import SORTS


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return sum(known) / len(known) if known else None


def round_view(rnd: Round) -> dict[str, Any]:
    """What the templates need about a round: its row, progress and summary numbers."""
    total = rnd.total_steps or 0
    done = rnd.status == JobStatus.succeeded.value
    progress = 1.0 if done else (min(rnd.step / total, 1.0) if total else 0.0)
    phase = rnd.phase or ""
    if rnd.status == JobStatus.running.value and phase in ("candidates", "scoring"):
        made, expected = len(rnd.candidates), expected_candidates(rnd)
        phase_text = (f"making candidates ({made} of {expected})" if phase == "candidates"
                      else "scoring candidates with CLIP")
    else:
        phase_text = {"starting": "loading the model", "training": "training"}.get(phase, phase)
    plan = rnd.plan
    live = round_progress(rnd) if rnd.status in ACTIVE else None  # phases and the whole round's ETA
    if live is not None:
        progress = live["fraction"]
    return {
        "row": rnd, "id": rnd.id, "number": rnd.number, "status": rnd.status, "active": rnd.status in ACTIVE,
        "terminal": rnd.status in TERMINAL, "progress": progress, "percent": round(progress * 100),
        "phase_text": phase_text, "training_images": len(plan.training_set),
        "mean_text": _mean([c.clip_text_score for c in rnd.candidates]),
        "mean_style": _mean([c.clip_style_score for c in rnd.candidates]),
        "selected": sum(1 for c in rnd.candidates if c.selection is not None),
        "slots": expected_candidates(rnd), "adapter": plan.adapter.model_dump(), "live": live,
        "loss_chart": loss_chart(rnd.loss_curve or [], rnd.total_steps),
        "samples": samples_by_step(rnd),  # drawn every N steps while training, newest first
    }


def card_view(candidate: Candidate, user: User, editable: bool) -> dict[str, Any]:
    rule = candidate.selection.rule if candidate.selection is not None else None  # how it was picked
    return {"c": candidate_out(candidate, user), "editable": editable, "rule": rule}


def group_candidates(candidates: list[Candidate], sort: str) -> list[dict[str, Any]]:
    """Candidates grouped by prompt. Within a group the chosen score sorts (best first); the groups follow
    the prompt order of the round, or their best score."""
    groups: dict[str, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.content, []).append(c)
    key = {"text": "clip_text_score", "style": "clip_style_score"}.get(sort)

    def score(c: Candidate) -> float:
        v = getattr(c, key) if key else None
        return -math.inf if v is None or math.isnan(v) else v

    result = []
    for content, items in groups.items():
        if key:
            items = sorted(items, key=lambda c: (-score(c), c.id))
        result.append({"content": content, "prompt": items[0].prompt, "items": items,
                       "best": max(score(c) for c in items) if key else 0.0})
    if key:
        result.sort(key=lambda g: -g["best"])
    return result


def grid_context(session: Session, rnd: Round, user: User, sort: str) -> dict[str, Any]:
    sort = sort if sort in SORTS else "prompt"
    load_feedback(session, rnd)  # ratings and selections of every card in two statements, not two per card
    latest = latest_succeeded(session, rnd.style_id)
    busy = active_round(session, rnd.style_id)
    editable = latest is not None and latest.id == rnd.id and busy is None and rnd.style.user_id == user.id
    return {"round": round_view(rnd), "style_id": rnd.style_id, "sort": sort, "editable": editable,
            "groups": [{"content": g["content"], "prompt": g["prompt"],
                        "cards": [card_view(c, user, editable) for c in g["items"]]}
                       for g in group_candidates(rnd.candidates, sort)],
            "selected": sum(1 for c in rnd.candidates if c.selection is not None),
            "next_number": rnd.number + 1}


def card_context(session: Session, candidate: Candidate, user: User) -> dict[str, Any]:
    """One card after a click, with its grid (the selection bar changes too)."""
    session.expire_all()
    context = grid_context(session, candidate.round, user, "prompt")
    card = next(card for group in context["groups"] for card in group["cards"] if card["c"].id == candidate.id)
    return {"grid": context, "card": card}


def style_summary(style: Style) -> dict[str, Any]:
    rounds = [round_view(r) for r in style.rounds]
    chart = scores_chart([RoundScores(r["number"], r["mean_text"], r["mean_style"])
                          for r in rounds if r["status"] == JobStatus.succeeded.value])
    return {"rounds": rounds, "chart": chart, "adapter_round": latest_adapter_round(style)}


def round_panel_context(session: Session, rnd: Round, user: User, sort: str,
                        notice: str | None = None) -> dict[str, Any]:
    context = {"round": round_view(rnd), "style_id": rnd.style_id, "notice": notice, "sort": sort,
               "read_only": rnd.style.user_id != user.id,  # another user's style, shown by the public setting
               "is_latest": session.scalar(select(Round.id).where(Round.style_id == rnd.style_id)
                                           .order_by(Round.number.desc()).limit(1)) == rnd.id,
               "candidates": list(rnd.candidates)}
    if rnd.status == JobStatus.succeeded.value:
        context["grid"] = grid_context(session, rnd, user, sort)
    return context


def generation_view(generation: Generation, round_number: int | None) -> dict[str, Any]:
    request = generation.request or {}
    prompts = list(request.get("prompts") or [])
    images = [{"index": i, "url": f"/api/v1/generations/{generation.id}/images/{i}", "prompt": content,
               "seed": seed if seed is not None else "random",
               "download": f"style{generation.style_id}-gen{generation.id}-{i:03d}.png"}
              for i, (content, seed) in enumerate(image_contents_and_seeds(generation))]
    count = len(prompts) * int(request.get("num_images") or 1)
    chosen = [f"{label} {request[key]:g}" for key, label in (("adapter_guidance", "λA"), ("guidance", "λB"),
                                                              ("steps", "steps")) if request.get(key) is not None]
    return {"settings": " · ".join(chosen), "row": generation, "id": generation.id, "status": generation.status,
            "active": generation.status in ACTIVE, "prompts": prompts, "seed": request.get("seed"),
            "num_images": request.get("num_images"), "images": images, "slots": count,
            "round_number": round_number}
