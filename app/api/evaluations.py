"""Evaluation jobs in the REST API: score every round of a style on held-out prompts (paper §4, Table 2)."""

from __future__ import annotations

from fastapi import APIRouter

from ..evaluations import EvaluationCreate, EvaluationOut, evaluation_out
from ..evaluations import start_evaluation as queue_evaluation
from ..schemas import refusals
from .access import OwnedStyle, ReadableEvaluation, ReadableStyle
from .deps import DispatcherDep, SessionDep, SettingsDep, UserDep

router = APIRouter(prefix="/api/v1", tags=["evaluations"])


@router.post("/styles/{style_id}/evaluations", response_model=EvaluationOut, status_code=202,
             responses=refusals(404, 409, 422))
def start_evaluation(style: OwnedStyle, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep,
                     user: UserDep, body: EvaluationCreate | None = None) -> EvaluationOut:
    """CLIP text and style scores of the base model and every finished round, same prompts and seeds
    (default: the built-in held-out list). 422 names prompts a round was trained on (unless allow_overlap);
    409 without a finished round or while an evaluation of the style is running."""
    return evaluation_out(queue_evaluation(session, settings, dispatcher, style, user, body or EvaluationCreate()))


@router.get("/styles/{style_id}/evaluations", response_model=list[EvaluationOut])
def list_evaluations(style: ReadableStyle) -> list[EvaluationOut]:
    return [evaluation_out(e) for e in style.evaluations]


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationOut)
def read_evaluation(evaluation: ReadableEvaluation) -> EvaluationOut:
    return evaluation_out(evaluation)
