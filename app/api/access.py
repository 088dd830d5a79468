"""Authorisation as dependencies: the style, round, candidate or generation named by a route's path id, if
this user may read it (their own, or a public style's when STYLEDROP_PUBLIC_STYLES is on) or owns it.

Routes declare what they need, e.g. `style: OwnedStyle` for a change and `style: ReadableStyle` for a read,
so no route can forget the check or pass the wrong flag. The API and the pages use the same rules
(app/domain/ownership.py); they differ only in who asks: the API's user (401 when anonymous, CSRF by header) or the
page's user (a log-in redirect when anonymous, CSRF by form field), hence a set for each.

(No `from __future__ import annotations` here: FastAPI reads the annotations of the functions made below.)
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path

from ..domain.models import Candidate, Evaluation, Generation, Round, Style, User
from ..domain.ownership import owned, readable
from .deps import SessionDep, SettingsDep, current_user, page_user

PATH_IDS = {Style: "style_id", Round: "round_id", Candidate: "candidate_id", Generation: "generation_id",
            Evaluation: "evaluation_id"}


def _readable(model: type, who: Callable[..., User]) -> Callable[..., Any]:
    def dependency(session: SessionDep, settings: SettingsDep, user: Annotated[User, Depends(who)],
                   ident: int = Path(alias=PATH_IDS[model])) -> Any:
        return readable(session, model, ident, user, settings.public_styles)

    dependency.__name__ = f"readable_{model.__name__.lower()}"
    return dependency


def _owned(model: type, who: Callable[..., User]) -> Callable[..., Any]:
    def dependency(session: SessionDep, user: Annotated[User, Depends(who)],
                   ident: int = Path(alias=PATH_IDS[model])) -> Any:
        return owned(session, model, ident, user)

    dependency.__name__ = f"owned_{model.__name__.lower()}"
    return dependency


# ---- the API (/api/v1) --------------------------------------------------------------------------------------

ReadableStyle = Annotated[Style, Depends(_readable(Style, current_user))]
OwnedStyle = Annotated[Style, Depends(_owned(Style, current_user))]
ReadableRound = Annotated[Round, Depends(_readable(Round, current_user))]
OwnedRound = Annotated[Round, Depends(_owned(Round, current_user))]
ReadableCandidate = Annotated[Candidate, Depends(_readable(Candidate, current_user))]
OwnedCandidate = Annotated[Candidate, Depends(_owned(Candidate, current_user))]
# Generations stay private (app/domain/ownership.py:may_read): readable means owned, whatever the public setting.
ReadableGeneration = Annotated[Generation, Depends(_readable(Generation, current_user))]
OwnedGeneration = Annotated[Generation, Depends(_owned(Generation, current_user))]
ReadableEvaluation = Annotated[Evaluation, Depends(_readable(Evaluation, current_user))]

# ---- the pages ----------------------------------------------------------------------------------------------

PageReadableStyle = Annotated[Style, Depends(_readable(Style, page_user))]
PageOwnedStyle = Annotated[Style, Depends(_owned(Style, page_user))]
PageReadableRound = Annotated[Round, Depends(_readable(Round, page_user))]
PageOwnedRound = Annotated[Round, Depends(_owned(Round, page_user))]
PageReadableCandidate = Annotated[Candidate, Depends(_readable(Candidate, page_user))]
PageOwnedCandidate = Annotated[Candidate, Depends(_owned(Candidate, page_user))]
PageReadableGeneration = Annotated[Generation, Depends(_readable(Generation, page_user))]
PageOwnedGeneration = Annotated[Generation, Depends(_owned(Generation, page_user))]
