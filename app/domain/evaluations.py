"""Evaluation jobs: the paper's CLIP text/style scores for every round of a style (paper §4, Table 2).

The web app's side: check the request, record it, queue it, and turn its result into what the API and the
style page show. The prompts default to the style's base model's held-out list (styledrop.model_profiles,
torch-free: the built-in list for aMUSEd, the evaluation shapes for the shapes world), never a candidate prompt; prompts that a round of this style was trained on are refused unless the request
allows the overlap, as `styledrop eval` does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from styledrop.model_profiles import profile_for
from styledrop.prompt_sets import overlap

from ..errors import ApiError
from ..infra.task_queue import Dispatcher
from ..settings import Settings
from . import lifecycle
from .lifecycle import ACTIVE, JobStatus
from .limits import check_job_quota, clean_prompts
from .models import Evaluation, Round, Style, User
from .plain_text import PlainText
from .schemas import Seed


class EvaluationCreate(BaseModel):
    """What to evaluate on; everything optional."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"limit": 32, "per_prompt": 2}]})

    prompts: list[PlainText] | None = Field(None, min_length=1, description="contents (default: the base model's "
                                                                            "held-out list, never used for "
                                                                            "candidates: on aMUSEd the built-in 104 "
                                                                            "prompts, on the shapes world its five "
                                                                            "evaluation shapes)")
    limit: int | None = Field(None, ge=1, le=500, description="use only the first N prompts")
    per_prompt: int = Field(2, ge=1, le=8, description="images per prompt and model")
    seed: Seed = 0
    allow_overlap: bool = Field(False, description="score prompts a round of this style was trained on")


class EvaluationRow(BaseModel):
    name: str
    text_mean: float
    text_std: float
    style_mean: float
    style_std: float
    count: int
    sampling: dict[str, Any] = Field(default_factory=dict, description="what drew this row's images: the round's own "
                                     "decoding steps, λB (guidance), λA (adapter_guidance) and temperature")


class EvaluationOut(BaseModel):
    id: int
    style_id: int
    status: str
    request: dict[str, Any]
    clip_model: str | None = None
    rows: list[EvaluationRow] = []
    error: str | None = None


class EvaluationPage(BaseModel):
    items: list[EvaluationOut]
    next: str | None = Field(description="URL of the next page; null on the last page")


def trained_contents(session: Session, style: Style) -> list[str]:
    """What the style's rounds trained on, from each round's recorded training set (its plan): the references'
    contents and the candidates selected at the time. Not the current selections, which can change after a
    round trained (select, auto-select) and before the next one."""
    rounds = session.scalars(select(Round).where(Round.style_id == style.id))
    contents = [*style.contents] + [item.content for rnd in rounds for item in rnd.plan.training_set]
    return list(dict.fromkeys(contents))


def create_evaluation(session: Session, style: Style, user: User | None, body: EvaluationCreate,
                      settings: Settings) -> Evaluation:
    """Check and record an evaluation of every finished round (queued); the caller dispatches it. Refused
    before anything is stored: 409 (no finished round, one already active), 422 (trained prompts, more images
    than max_evaluation_images), 429 (the user's jobs quota: evaluations count like every job)."""
    done = session.scalar(select(Round.id).where(Round.style_id == style.id,
                                                 Round.status == JobStatus.succeeded.value).limit(1))
    if done is None:
        raise ApiError(409, "This style has no finished round to evaluate yet.")
    if session.scalar(select(Evaluation.id).where(Evaluation.style_id == style.id, Evaluation.status.in_(ACTIVE))):
        raise ApiError(409, "An evaluation of this style is already queued or running.")
    profile = profile_for(style.base_model)
    prompts = clean_prompts(body.prompts, settings) if body.prompts else profile.eval_prompts()
    prompts = prompts[: body.limit] if body.limit else prompts
    if not body.allow_overlap:
        trained = overlap(prompts, trained_contents(session, style))
        if trained:
            shown = ", ".join(repr(p) for p in trained[:5]) + (" …" if len(trained) > 5 else "")
            raise ApiError(422, f"{len(trained)} prompt(s) were trained on by a round of this style, which would "
                                f"inflate its text score: {shown}. Remove them or set allow_overlap.")
    images = len(prompts) * body.per_prompt * (len(session.scalars(select(Round.id).where(
        Round.style_id == style.id, Round.status == JobStatus.succeeded.value)).all()) + 1)
    if images > settings.max_evaluation_images:
        raise ApiError(422, f"{len(prompts)} prompts x {body.per_prompt} images per prompt x the base model and "
                            f"every finished round is {images} images; one evaluation may draw at most "
                            f"{settings.max_evaluation_images} (use limit or per_prompt).")
    check_job_quota(session, style.user_id, settings)  # locks the user until enqueue commits: atomic
    if session.scalar(select(Evaluation.id).where(Evaluation.style_id == style.id, Evaluation.status.in_(ACTIVE))):
        raise ApiError(409, "An evaluation of this style is already queued or running.")  # read again, locked
    return lifecycle.enqueue(session, Evaluation(
        style_id=style.id, user_id=user.id if user else None,
        request={"prompts": prompts, "prompt_list": "your prompts" if body.prompts else profile.held_out_name,
                 "per_prompt": body.per_prompt, "seed": body.seed, "allow_overlap": body.allow_overlap}))


def start_evaluation(session: Session, settings: Settings, dispatcher: Dispatcher, style: Style, user: User | None,
                     body: EvaluationCreate) -> Evaluation:
    """Record an evaluation (create_evaluation) and send it to the workers; 503 if the queue is unreachable."""
    evaluation = create_evaluation(session, style, user, body, settings)
    lifecycle.send_or_fail(session, evaluation, dispatcher.evaluate)
    return evaluation


def cancel_evaluation(session: Session, evaluation: Evaluation) -> Evaluation:
    """Cancel a queued or running evaluation (app.domain.lifecycle.cancel_one_shot): its worker stops at the
    next model it would score, and its end is refused. 409 once it has ended."""
    if not lifecycle.cancel_one_shot(session, evaluation):
        raise ApiError(409, f"Evaluation {evaluation.id} is already {evaluation.status}; there is nothing to "
                            "cancel.")
    return evaluation


def evaluation_out(evaluation: Evaluation) -> EvaluationOut:
    result = evaluation.result or {}
    return EvaluationOut(id=evaluation.id, style_id=evaluation.style_id, status=evaluation.status,
                         request={k: v for k, v in evaluation.request.items() if k != "prompts"}
                         | {"prompt_count": len(evaluation.request.get("prompts", []))},
                         clip_model=result.get("clip_model"), rows=result.get("rows", []), error=evaluation.error)


def latest_evaluation(session: Session, style_id: int) -> Evaluation | None:
    return session.scalar(select(Evaluation).where(Evaluation.style_id == style_id)
                          .order_by(Evaluation.id.desc()).limit(1))
