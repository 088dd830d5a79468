"""Ratings and selections: the feedback that chooses the next round's training set, by a person (ratings,
thumbs, picks) or by CLIP (a named rule, app.domain.clip_rules).

The rating path is a keystroke of a rater, so it runs as few statements as it can: identify the user (one
statement, app/api/deps.py), check ownership with a join, upsert, read the answer back with its ratings and
selection in one statement, one commit: 4 or 5 statements in all.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from styledrop.selection import DEFAULT_RULE  # plain Python, no torch

from ..errors import ApiError
from ..infra.db import dialect_insert
from .clip_rules import apply_clip_rule
from .lifecycle import JobStatus
from .models import Candidate, Rating, Round, Selection, Style, User, utcnow
from .ownership import MAX_ID


def candidate_items(rnd: Round) -> list[dict[str, Any]]:
    return [{"id": c.id, "content": c.content, "text_score": c.clip_text_score, "style_score": c.clip_style_score}
            for c in rnd.candidates]


def auto_select(session: Session, rnd: Round, rule: str = DEFAULT_RULE, top_k: int = 1,
                seed: int = 0) -> tuple[list[Candidate], str]:
    """CLIP feedback: replace the round's selection with the candidates a named rule picks (app.domain.clip_rules);
    each selection records the rule."""
    if rnd.status != JobStatus.succeeded.value:
        raise ApiError(409, f"Round {rnd.id} is {rnd.status}; only a finished round's candidates can be selected.")
    if not rnd.candidates:
        raise ApiError(409, f"Round {rnd.id} has no candidates to select from.")
    ids, method = apply_clip_rule(candidate_items(rnd), rule, top_k, seed)
    for candidate in rnd.candidates:
        if candidate.selection is not None:
            session.delete(candidate.selection)
    session.flush()
    by_id = {c.id: c for c in rnd.candidates}
    chosen = [by_id[i] for i in ids if i in by_id]
    for candidate in chosen:
        session.add(Selection(candidate_id=candidate.id, round_id=rnd.id, by="clip", rule=rule))
    rnd.metrics = dict(rnd.metrics or {}, clip_selection={"rule": rule, "method": method,
                                                          "candidate_ids": [c.id for c in chosen]})
    session.commit()
    session.refresh(rnd)
    return chosen, method


# Statements of the rating path are built once, with bound parameters: building and hashing a statement
# costs SQLAlchemy more CPU than SQLite spends running it (the cache key of a built one is memoized).
_UPSERTS: dict[str, Any] = {}


def _rating_upsert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERTS:
        statement = dialect_insert(session, Rating).values(
            candidate_id=bindparam("candidate_id"), user_id=bindparam("user_id"), value=bindparam("value"),
            created_at=bindparam("now"), updated_at=bindparam("now"))
        _UPSERTS[dialect] = statement.on_conflict_do_update(
            index_elements=["candidate_id", "user_id"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at})
    return _UPSERTS[dialect]


def _upsert_rating(session: Session, candidate_id: int, user_id: int, value: int) -> None:
    # Core, not the ORM's bulk insert: nothing to synchronise with the identity map, and half the CPU.
    session.connection().execute(_rating_upsert(session), {"candidate_id": candidate_id, "user_id": user_id,
                                                           "value": value, "now": utcnow()})


def _write_selection(session: Session, candidate_id: int, round_id: int, user_id: int, selected: bool,
                     rule: str | None = None) -> None:
    if selected:
        statement = dialect_insert(session, Selection).values(candidate_id=candidate_id, round_id=round_id,
                                                       by="human", user_id=user_id, rule=rule, created_at=utcnow())
        session.execute(statement.on_conflict_do_update(index_elements=["candidate_id"],
                                                        set_={"by": "human", "user_id": user_id, "rule": rule}))
    else:
        session.execute(delete(Selection).where(Selection.candidate_id == candidate_id))


def store_rating(session: Session, candidate: Candidate, user: User, value: int) -> None:
    """One rating per user and candidate, atomically: concurrent or repeated PUTs replace, never duplicate."""
    _upsert_rating(session, candidate.id, user.id, value)
    session.commit()


def store_selection(session: Session, candidate: Candidate, user: User, selected: bool,
                     rule: str | None = None) -> None:
    """Choose or un-choose a candidate for the next round (human feedback), atomically. `rule` records how
    (LIKE when a thumbs up made the pick)."""
    _write_selection(session, candidate.id, candidate.round_id, user.id, selected, rule)
    session.commit()


LIKE = "thumbs up"  # the rule of a selection a like made


def thumb(session: Session, candidate: Candidate, user: User, value: int) -> None:
    """The rating grid's thumbs: up (+1) rates and selects the candidate for the next round (unless it is
    picked already: that pick stays as it was made), down (-1) rates and unselects it, and the same thumb
    again takes the rating back, and with a like the pick that like made, so a toggle undoes what it did."""
    rating = session.scalar(select(Rating).where(Rating.candidate_id == candidate.id, Rating.user_id == user.id))
    selection = session.scalar(select(Selection).where(Selection.candidate_id == candidate.id))
    if rating is not None and rating.value == value:
        session.delete(rating)
        if value > 0 and selection is not None and selection.rule == LIKE:
            session.delete(selection)
        session.commit()
        return
    store_rating(session, candidate, user, value)
    if value < 0:
        store_selection(session, candidate, user, False)
    elif selection is None:
        store_selection(session, candidate, user, True, rule=LIKE)


_OWNED_ROUND = (select(Candidate.round_id).join(Round, Round.id == Candidate.round_id)
                .join(Style, Style.id == Round.style_id)
                .where(Candidate.id == bindparam("candidate_id"), Style.user_id == bindparam("user_id")))
_WITH_FEEDBACK = (select(Candidate).where(Candidate.id == bindparam("candidate_id"))
                  .options(joinedload(Candidate.ratings).joinedload(Rating.user), joinedload(Candidate.selection))
                  .execution_options(populate_existing=True))


def owned_candidate_round(session: Session, candidate_id: int, user: User) -> int:
    """The round of a candidate the user owns (one statement, joined up to its style), else 404: the same
    answer as for an id that does not exist, so other people's ids leak nothing."""
    round_id = None
    if 1 <= candidate_id <= MAX_ID:
        round_id = session.scalar(_OWNED_ROUND, {"candidate_id": candidate_id, "user_id": user.id})
    if round_id is None:
        raise ApiError(404, f"Candidate {candidate_id} does not exist.")
    return round_id


def candidate_with_feedback(session: Session, candidate_id: int) -> Candidate:
    """A candidate with its ratings (and their users) and its selection, in one statement."""
    return session.scalars(_WITH_FEEDBACK, {"candidate_id": candidate_id}).unique().one()


def rate_candidate(session: Session, candidate_id: int, user: User, value: int) -> Candidate:
    """Rate a candidate the user owns; returns it as stored, ratings included. Commits once."""
    owned_candidate_round(session, candidate_id, user)
    _upsert_rating(session, candidate_id, user.id, value)
    candidate = candidate_with_feedback(session, candidate_id)
    session.commit()
    return candidate


def select_candidate(session: Session, candidate_id: int, user: User, selected: bool) -> Candidate:
    """Choose or un-choose a candidate the user owns; returns it as stored. Commits once."""
    round_id = owned_candidate_round(session, candidate_id, user)
    _write_selection(session, candidate_id, round_id, user.id, selected)
    candidate = candidate_with_feedback(session, candidate_id)
    session.commit()
    return candidate


def load_feedback(session: Session, rnd: Round) -> list[Candidate]:
    """A round's candidates with their ratings (and raters) and selections, in two statements whatever
    their number (the rating grid of 64 or 256 images would otherwise ask once per image)."""
    candidates = list(session.scalars(select(Candidate).where(Candidate.round_id == rnd.id).order_by(Candidate.id)
                                      .options(selectinload(Candidate.ratings).joinedload(Rating.user),
                                               joinedload(Candidate.selection))).unique())
    set_committed_value(rnd, "candidates", candidates)
    return candidates

