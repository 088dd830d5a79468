"""Who may see and change what: the rules, and lookups that answer 404 for unknown ids.

A user reads and changes only their own styles and everything under them (rounds, candidates, generations);
with STYLEDROP_PUBLIC_STYLES an administrator makes every style and its rounds and candidates readable by
everyone, never changeable. Whatever is not yours to see answers the same 404 as an id that does not exist,
so ids of other people's work leak nothing. The FastAPI dependencies that apply these rules to a route's
path id are in app/api/access.py.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from ..errors import not_found
from .models import Candidate, Evaluation, Generation, Round, Style, User
from .schemas import MAX_ID  # ids are INTEGER columns; anything outside is an id that cannot exist

Row = TypeVar("Row", Style, Round, Candidate, Generation, Evaluation)
NAMES = {Style: "Style", Round: "Round", Candidate: "Candidate", Generation: "Generation", Evaluation: "Evaluation"}


def style_of(row: Any) -> Style:
    """The style a row belongs to, whose owner owns the row."""
    if isinstance(row, Style):
        return row
    if isinstance(row, Candidate):
        return row.round.style
    return row.style


def owns(user: User | None, row: Any) -> bool:
    """`user` may change the row (None: a trusted caller, e.g. the worker or an admin command)."""
    return user is None or style_of(row).user_id == user.id


def may_read(user: User | None, row: Any, public_styles: bool) -> bool:
    """`user` may see the row: their own, or a style and its rounds and candidates when public styles are on.
    Generations stay private: they are a user's own requests, not part of the style."""
    return owns(user, row) or (public_styles and not isinstance(row, Generation))


def lookup(session: Session, model: type[Row], ident: int) -> Row | None:
    return session.get(model, ident) if 1 <= ident <= MAX_ID else None


def owned(session: Session, model: type[Row], ident: int, user: User | None) -> Row:
    """The row, if `user` may change it; 404 otherwise."""
    row = lookup(session, model, ident)
    if row is None or not owns(user, row):
        raise not_found(NAMES[model], ident)
    return row


def readable(session: Session, model: type[Row], ident: int, user: User | None, public_styles: bool) -> Row:
    """The row, if `user` may see it; 404 otherwise."""
    row = lookup(session, model, ident)
    if row is None or not may_read(user, row, public_styles):
        raise not_found(NAMES[model], ident)
    return row
