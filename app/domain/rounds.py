"""Rounds: create the next round of a style and send it to the workers, cancel it, retry it. The state changes
themselves are app.domain.lifecycle's; the rules of who may ask for them, and when, are here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from styledrop.plan import plan_round  # pydantic, no torch: the round's plan and the per-round recipe

from ..errors import ApiError
from ..infra.task_queue import Dispatcher
from ..settings import Settings
from . import lifecycle
from .clip_rules import feedback_label
from .feedback import auto_select
from .lifecycle import JobStatus
from .limits import check_job_quota, check_round_request
from .models import Round, Style
from .queries import active_round, latest_succeeded
from .schemas import RoundCreate
from .webhooks import check_callback_url, jobs_ended


def new_round(session: Session, style: Style, body: dict[str, Any], settings: Settings,
              callback_url: str | None = None) -> Round:
    """Create the next round of a style (queued). Round 1 trains on the reference; round n >= 2 on the
    reference plus the selected candidates of the latest finished round, each with its own content.
    Refused before anything is stored: 422 (too much asked), 409 (the style is busy), 429 (the user is)."""
    body = check_round_request(body, settings)
    if (running := active_round(session, style.id)) is not None:
        raise ApiError(409, f"Round {running.number} of style {style.id} is {running.status}; wait for it "
                            f"or cancel it (POST /api/v1/rounds/{running.id}/cancel) before starting another.")
    last_number = session.scalar(select(Round.number).where(Round.style_id == style.id)
                                 .order_by(Round.number.desc()).limit(1)) or 0
    base = latest_succeeded(session, style.id)
    feedback = body.get("feedback")
    # Every reference image of the style, in every round (a style made from several stays one of several).
    training_set: list[dict[str, Any]] = [{"image": path, "content": style.content} for path in style.reference_paths]
    if base is None:
        if feedback is not None and last_number:
            raise ApiError(409, f"Style {style.id} has no finished round to give feedback on.")
        feedback = None
    else:
        feedback = feedback or "human"
        if feedback == "clip":
            auto_select(session, base, body.get("clip_rule") or settings.clip_rule)
        selected = [c for c in base.candidates if c.selection is not None]
        if not selected:
            raise ApiError(409, f"No candidate of round {base.number} (id {base.id}) is selected: select some "
                                f"(PUT /api/v1/candidates/{{id}}/selected) or start the round with feedback 'clip'.")
        training_set += [{"image": c.image_path, "content": c.content, "candidate_id": c.id} for c in selected]
        feedback = feedback_label([c.selection.by for c in selected])  # who picked them: human, clip or both
    style_settings = style.settings or {}
    steps = body.get("train_steps") or style_settings.get("steps") or settings.train_steps
    seed = body.get("seed") if body.get("seed") is not None else style_settings.get("seed", 0)
    learning_rate = body.get("learning_rate") or style_settings.get("learning_rate")  # None: the engine's
    # The first round's adapter width may be the style's own (`rank`, from the new-style form).
    rank = style_settings.get("rank") if last_number == 0 else None
    # The per-round recipe (adapter size, λA) is styledrop.plan's; the request and settings fill the rest.
    plan = plan_round(
        last_number + 1, model=style.base_model, adapter_kind=style.adapter_kind, training_set=training_set,
        based_on_round=base.id if base else None, rank=int(rank) if rank is not None else None,
        train={"steps": int(steps), "batch_size": body.get("batch_size") or settings.batch_size,
               "learning_rate": learning_rate, "seed": int(seed),
               "checkpoint_every": body.get("checkpoint_every") or settings.checkpoint_every,
               "sample_every": settings.sample_every if body.get("sample_every") is None else body["sample_every"]},
        candidates={"prompts": body.get("prompts"),
                    "count": body.get("candidate_prompts") or settings.candidate_prompts,
                    "per_prompt": body.get("candidates_per_prompt") or settings.candidates_per_prompt,
                    "seed": int(seed), "clip_model": settings.clip_scorer(style.base_model)},
        sampling={"steps": body.get("sample_steps") or settings.sample_steps,
                  "adapter_guidance": body.get("adapter_guidance")})
    check_job_quota(session, style.user_id, settings)  # locks the user until enqueue commits: atomic
    return lifecycle.enqueue(session, Round(style_id=style.id, number=plan.number, feedback=feedback,
                                            parameters=plan.stored(), total_steps=int(steps),
                                            callback_url=callback_url))


def cancel_round(session: Session, dispatcher: Dispatcher, rnd: Round) -> Round:
    """Cancel a round (app.domain.lifecycle.cancel_round), from the API or a page. A queued round ends here, so
    its webhook (app/domain/webhooks.py) is queued here; a running one ends in the worker, which sends it."""
    rnd = lifecycle.cancel_round(session, rnd)
    if rnd.status == JobStatus.cancelled.value:
        jobs_ended(session, dispatcher, "round", [rnd.id])
    return rnd


def retry_round(session: Session, settings: Settings, dispatcher: Dispatcher, rnd: Round) -> Round:
    """Queue a failed or cancelled round again (app.domain.lifecycle.retry) and send it to the workers, if it is
    the style's latest, no other round of the style is active, it has attempts left and its user is within the
    jobs quota. Training resumes from its last checkpoint."""
    if rnd.status not in (JobStatus.failed.value, JobStatus.cancelled.value):
        raise ApiError(409, f"Round {rnd.id} is {rnd.status}; only a failed or cancelled round can be retried.")
    if (running := active_round(session, rnd.style_id)) is not None:
        raise ApiError(409, f"Round {running.number} of this style is {running.status}; wait for it first.")
    newer = session.scalar(select(Round.id).where(Round.style_id == rnd.style_id, Round.number > rnd.number))
    if newer is not None:
        raise ApiError(409, f"Round {rnd.id} is not the style's latest round; start a new round instead.")
    if rnd.attempts >= settings.max_attempts:
        raise ApiError(409, f"Round {rnd.id} already ran {rnd.attempts} times (limit {settings.max_attempts}); "
                            "start a new round with other settings instead.")
    check_job_quota(session, rnd.style.user_id, settings)  # locks the user until the retry commits
    lifecycle.retry(session, rnd)
    lifecycle.send_or_fail(session, rnd, dispatcher.train_round)
    return rnd


def start_round(session: Session, settings: Settings, dispatcher: Dispatcher, style: Style,
                body: RoundCreate) -> Round:
    """Create the style's next round (new_round's rules) and send it to the workers (503 and the round failed
    when the queue is not reachable). A `callback_url` is checked first (webhooks' allow-list) and kept on the
    row, not in the round's parameters."""
    callback_url = check_callback_url(body.callback_url, settings)
    rnd = new_round(session, style, body.model_dump(exclude={"callback_url"}), settings, callback_url)
    lifecycle.send_or_fail(session, rnd, dispatcher.train_round)
    return rnd
