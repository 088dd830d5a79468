"""CLIP assisting the person's picks for the next round without overruling them (the person's own picks, by
click or thumb, are app/domain/feedback.py's store_selection and thumb).

CLIP assistance *adds*: it runs the engine's CLIP rule (app.domain.clip_rules) over
the candidates no one thumbed down, selects what the rule chose that is not picked yet, never removes a pick,
and remembers what it added (round metrics `clip_assist`) so one click undoes it. Every selection records who
made it: the person (user_id) and, for CLIP picks, the rule's name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import ApiError
from .clip_rules import apply_clip_rule
from .lifecycle import JobStatus
from .models import Candidate, Rating, Round, Selection, User, utcnow


def _finished(rnd: Round) -> None:
    if rnd.status != JobStatus.succeeded.value:
        raise ApiError(409, f"Round {rnd.id} is {rnd.status}; only a finished round's candidates can be selected.")
    if not rnd.candidates:
        raise ApiError(409, f"Round {rnd.id} has no candidates to select from.")


def clip_assist(session: Session, rnd: Round, user: User, rule: str = "guarded") -> tuple[list[Candidate], str]:
    """Add CLIP's picks to the person's: returns (the candidates it added, the rule's name). 409 when the
    round is not finished or the rule cannot choose (unscored candidates: the engine's message)."""
    _finished(rnd)
    disliked = set(session.scalars(select(Rating.candidate_id).join(Candidate)
                                   .where(Candidate.round_id == rnd.id, Rating.value < 0)))
    items = [{"id": c.id, "content": c.content, "text_score": c.clip_text_score,
              "style_score": c.clip_style_score} for c in rnd.candidates if c.id not in disliked]
    if not items:
        raise ApiError(409, "Every candidate of this round is thumbed down; CLIP has nothing to add.")
    ids, _ = apply_clip_rule(items, rule)
    by_id = {c.id: c for c in rnd.candidates}
    added = [by_id[i] for i in ids if i in by_id and by_id[i].selection is None]
    for candidate in added:
        session.add(Selection(candidate_id=candidate.id, round_id=rnd.id, by="clip", user_id=user.id, rule=rule,
                              created_at=utcnow()))
    rnd.metrics = dict(rnd.metrics or {}, clip_assist={"rule": rule, "added": [c.id for c in added],
                                                       "user_id": user.id, "at": utcnow().isoformat()})
    session.commit()
    session.refresh(rnd)
    return added, rule


def undo_clip_assist(session: Session, rnd: Round) -> int:
    """Take back what the last CLIP assistance added (the picks a person has since made their own stay).
    Returns how many selections it removed."""
    last: dict[str, Any] = (rnd.metrics or {}).get("clip_assist") or {}
    ids = [int(i) for i in last.get("added") or []]
    removed = 0
    if ids:
        removed = session.execute(delete(Selection).where(Selection.candidate_id.in_(ids),
                                                          Selection.by == "clip")).rowcount or 0
    rnd.metrics = {k: v for k, v in (rnd.metrics or {}).items() if k != "clip_assist"}
    session.commit()
    session.refresh(rnd)
    return removed
