"""Evaluation jobs in the REST API: score every round of a style on held-out prompts (paper §4, Table 2)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from ..domain.evaluations import EvaluationCreate, EvaluationOut, EvaluationPage, evaluation_out
from ..domain.evaluations import start_evaluation as queue_evaluation
from ..domain.models import Evaluation
from ..domain.schemas import refusals
from .access import OwnedStyle, ReadableEvaluation, ReadableStyle
from .deps import DispatcherDep, SessionDep, SettingsDep, UserDep
from .idempotency import IdempotencyDep
from .openapi import operation_id
from .paging import PageDep

router = APIRouter(prefix="/api/v1", tags=["evaluations"], generate_unique_id_function=operation_id)


@router.post("/styles/{style_id}/evaluations", response_model=EvaluationOut, status_code=202,
             responses=refusals(404, 409, 422))
def start_evaluation(style: OwnedStyle, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep,
                     user: UserDep, idempotency: IdempotencyDep,
                     body: EvaluationCreate | None = None) -> EvaluationOut:
    """CLIP text and style scores of the base model and every finished round, same prompts and seeds
    (default: the built-in held-out list). 422 names prompts a round was trained on (unless allow_overlap);
    409 without a finished round or while an evaluation of the style is running."""
    body = body or EvaluationCreate()
    with idempotency.guard(user.id, f"start_evaluation/{style.id}", body.model_dump(mode="json")) as replay:
        if replay is not None:
            return replay
        return idempotency.done(202, evaluation_out(queue_evaluation(session, settings, dispatcher, style, user,
                                                                     body)))


@router.get("/styles/{style_id}/evaluations", response_model=EvaluationPage)
def list_evaluations(style: ReadableStyle, session: SessionDep, page: PageDep) -> EvaluationPage:
    """The style's evaluations, oldest first, a page at a time (`next`)."""
    rows, after = page.fetch(session, select(Evaluation).where(Evaluation.style_id == style.id), Evaluation.id)
    return EvaluationPage(items=[evaluation_out(e) for e in rows], next=after)


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationOut)
def read_evaluation(evaluation: ReadableEvaluation) -> EvaluationOut:
    return evaluation_out(evaluation)
