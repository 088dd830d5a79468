"""The person's picks for the next round, and CLIP assisting them without overruling them.

A thumbs up selects the image (recorded with rule "thumbs up"), a thumbs down unselects it, and the same thumb
again takes the rating back; taking back a like unselects the image only when that like had selected it, so a
toggle undoes exactly what it did. CLIP assistance *adds*: it runs the engine's CLIP rule (app.selection) over
the candidates no one thumbed down, selects what the rule chose that is not picked yet, never removes a pick,
and remembers what it added (round metrics `clip_assist`) so one click undoes it. Every selection records who
made it: the person (user_id) and, for CLIP picks, the rule's name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .errors import ApiError
from .models import Candidate, Rating, Round, RoundStatus, Selection, User, utcnow
from .selection import select_by_clip
from .services import _insert, rate_candidate

LIKE = "thumbs up"


def set_pick(session: Session, candidate: Candidate, user: User, selected: bool, rule: str | None = None) -> None:
    """Select (a person's pick, with how it was made) or unselect a candidate, atomically."""
    if selected:
        statement = _insert(session, Selection).values(candidate_id=candidate.id, round_id=candidate.round_id,
                                                       by="human", user_id=user.id, rule=rule, created_at=utcnow())
        session.execute(statement.on_conflict_do_update(index_elements=["candidate_id"],
                                                        set_={"by": "human", "user_id": user.id, "rule": rule}))
    else:
        session.execute(delete(Selection).where(Selection.candidate_id == candidate.id))
    session.commit()


def rate_and_pick(session: Session, candidate: Candidate, user: User, value: int) -> None:
    """A thumb from the rating grid (value -1 or +1); see the module docstring for what it selects."""
    rating = session.scalar(select(Rating).where(Rating.candidate_id == candidate.id, Rating.user_id == user.id))
    if rating is not None and rating.value == value:  # the same thumb again: take it back
        selection = session.scalar(select(Selection).where(Selection.candidate_id == candidate.id))
        session.delete(rating)
        if value > 0 and selection is not None and selection.rule == LIKE:
            session.delete(selection)
        session.commit()
        return
    already = candidate.selection is not None
    rate_candidate(session, candidate, user, value)
    if value > 0:
        if not already:  # a pick made before the like stays as it was made (and un-liking keeps it)
            set_pick(session, candidate, user, True, rule=LIKE)
    else:
        set_pick(session, candidate, user, False)


def _finished(rnd: Round) -> None:
    if rnd.status != RoundStatus.succeeded.value:
        raise ApiError(409, f"Round {rnd.id} is {rnd.status}; only a finished round's candidates can be selected.")
    if not rnd.candidates:
        raise ApiError(409, f"Round {rnd.id} has no candidates to select from.")


def clip_assist(session: Session, rnd: Round, user: User) -> tuple[list[Candidate], str]:
    """Add CLIP's picks to the person's: returns (the candidates it added, the rule's name). 409 when the
    round is not finished or the rule cannot choose (unscored candidates: the engine's message)."""
    _finished(rnd)
    disliked = set(session.scalars(select(Rating.candidate_id).join(Candidate)
                                   .where(Candidate.round_id == rnd.id, Rating.value < 0)))
    items = [{"id": c.id, "content": c.content, "text_score": c.clip_text_score,
              "style_score": c.clip_style_score} for c in rnd.candidates if c.id not in disliked]
    if not items:
        raise ApiError(409, "Every candidate of this round is thumbed down; CLIP has nothing to add.")
    ids, rule = select_by_clip(items)
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
