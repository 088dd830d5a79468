"""Rounds: create the next round of a style and send it to the workers, cancel it, retry it. The state changes
themselves are app.domain.lifecycle's; the rules of who may ask for them, and when, are here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from styledrop.model_profiles import ModelProfile, profile_for  # torch-free: a base model's defaults
from styledrop.plan import plan_round  # pydantic, no torch: the round's plan and the per-round recipe
from styledrop.prompt_sets import overlap

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
from .worlds import refuse_unbuilt


def check_held_out(body: dict[str, Any], profile: ModelProfile) -> None:
    """422, naming them, for candidate prompts that are on the base model's held-out evaluation list (as
    styledrop.prompt_sets compares prompts; a world's evaluation contents for a world): a round picked from them
    would train on what the evaluation scores, unless the request says it means to (allow_eval_overlap)."""
    if not body.get("prompts") or body.get("allow_eval_overlap"):
        return
    held = overlap(body["prompts"], profile.eval_prompts())
    if held:
        shown = ", ".join(repr(p) for p in held[:5]) + (" …" if len(held) > 5 else "")
        raise ApiError(422, f"{len(held)} candidate prompt(s) are on the held-out evaluation list "
                            f"({profile.held_out_name}), so a later round could train on what the evaluation "
                            f"scores: {shown}. Use other prompts or set allow_eval_overlap.")


def new_round(session: Session, style: Style, body: dict[str, Any], settings: Settings,
              callback_url: str | None = None) -> Round:
    """Create the next round of a style (queued). Round 1 trains on the reference; round n >= 2 on the
    reference plus the selected candidates of the latest finished round, each with its own content.
    Refused before anything is stored: 422 (too much asked), 409 (the style is busy), 429 (the user is)."""
    body = check_round_request(body, settings)
    profile = profile_for(style.base_model)
    check_held_out(body, profile)
    _refuse_if_busy(session, style)
    last_number = _last_number(session, style.id)
    base = latest_succeeded(session, style.id)
    feedback = body.get("feedback")
    # Every reference image of the style, in every round (a style made from several stays one of several).
    # ... each with its own content ("a house", "a lighthouse"), as `styledrop train` takes them
    training_set: list[dict[str, Any]] = [{"image": path, "content": content}
                                          for path, content in zip(style.reference_paths, style.contents, strict=True)]
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
        # each image with who picked it (a person, a CLIP rule, the random baseline) and the rule, as recorded
        training_set += [{"image": c.image_path, "content": c.content, "candidate_id": c.id,
                          "picked_by": c.selection.by, "rule": c.selection.rule} for c in selected]
        feedback = feedback_label([c.selection.by for c in selected])  # human, clip, random or mixed
    style_settings = style.settings or {}
    # What the request, then the style, then an administrator's explicit setting say; what none says is the base
    # model's (styledrop.model_profiles, filled in by plan_round): the shapes world trains 150 steps, not 1,000.
    steps = body.get("train_steps") or style_settings.get("steps") or settings.explicit("train_steps")
    seed = body.get("seed") if body.get("seed") is not None else style_settings.get("seed", 0)
    learning_rate = body.get("learning_rate") or style_settings.get("learning_rate")  # None: the model's
    # The first round's adapter width may be the style's own (`rank`, from the new-style form).
    rank = style_settings.get("rank") if last_number == 0 else None
    count = body.get("candidate_prompts") or settings.explicit("candidate_prompts")  # None: the model's
    # a later round draws the model's candidate prompts it does not train on (ModelProfile.fresh_candidates)
    prompts = body.get("prompts") or (profile.fresh_candidates([item["content"] for item in training_set],
                                                               count or profile.candidate_count)
                                      if base is not None else None)
    # The per-round recipe (adapter size, λA) is styledrop.plan's; the request and settings fill the rest.
    plan = plan_round(
        last_number + 1, model=style.base_model, adapter_kind=style.adapter_kind, training_set=training_set,
        based_on_round=base.id if base else None, rank=int(rank) if rank is not None else None,
        train={"steps": int(steps) if steps else None,
               "batch_size": body.get("batch_size") or settings.explicit("batch_size"),
               "learning_rate": learning_rate, "seed": int(seed),
               "checkpoint_every": body.get("checkpoint_every") or settings.checkpoint_every,
               "sample_every": next((v for v in (body.get("sample_every"), style_settings.get("sample_every"),
                                                 settings.explicit("sample_every")) if v is not None), None),
               "sample_prompts": body.get("sample_prompts") or style_settings.get("sample_prompts"),
               **{k: body.get(k) for k in ("flips", "weight_decay", "max_grad_norm", "text_dropout")}},
        candidates={"prompts": prompts, "count": count,
                    "per_prompt": body.get("candidates_per_prompt") or settings.candidates_per_prompt,
                    "seed": int(seed), "clip_model": settings.clip_scorer(style.base_model)},
        sampling={"steps": body.get("sample_steps") or settings.explicit("sample_steps"),
                  "adapter_guidance": body.get("adapter_guidance"), "guidance": body.get("guidance"),
                  "temperature": body.get("temperature")})
    check_job_quota(session, style.user_id, settings)  # locks the user until enqueue commits: atomic
    # Read again under the lock: a round of the style started by a request that ran beside this one since the
    # first look is seen now (409), instead of failing this insert on the style's round numbers (a 500).
    _refuse_if_busy(session, style)
    if _last_number(session, style.id) != last_number:
        raise ApiError(409, f"Another round of style {style.id} was started meanwhile; wait for it or cancel it.")
    try:
        return lifecycle.enqueue(session, Round(style_id=style.id, number=plan.number, feedback=feedback,
                                                parameters=plan.stored(), total_steps=plan.train.steps,
                                                callback_url=callback_url))
    except IntegrityError as exc:  # no user to lock (a style without one): the unique (style, number) decides
        session.rollback()
        raise ApiError(409, f"Another round of style {style.id} was started meanwhile; wait for it or cancel "
                            "it.") from exc


def _refuse_if_busy(session: Session, style: Style) -> None:
    if (running := active_round(session, style.id)) is not None:
        raise ApiError(409, f"Round {running.number} of style {style.id} is {running.status}; wait for it "
                            f"or cancel it (POST /api/v1/rounds/{running.id}/cancel) before starting another.")


def _last_number(session: Session, style_id: int) -> int:
    return session.scalar(select(Round.number).where(Round.style_id == style_id)
                          .order_by(Round.number.desc()).limit(1)) or 0


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
    refuse_unbuilt(rnd.style.base_model)
    check_job_quota(session, rnd.style.user_id, settings)  # locks the user until the retry commits
    lifecycle.retry(session, rnd)
    lifecycle.send_or_fail(session, rnd, dispatcher.train_round)
    return rnd


def start_round(session: Session, settings: Settings, dispatcher: Dispatcher, style: Style,
                body: RoundCreate) -> Round:
    """Create the style's next round (new_round's rules) and send it to the workers (503 and the round failed
    when the queue is not reachable). A `callback_url` is checked first (webhooks' allow-list) and kept on the
    row, not in the round's parameters."""
    refuse_unbuilt(style.base_model)  # 409: its world is not built here (yet, or any more)
    callback_url = check_callback_url(body.callback_url, settings)
    rnd = new_round(session, style, body.model_dump(exclude={"callback_url"}), settings, callback_url)
    lifecycle.send_or_fail(session, rnd, dispatcher.train_round)
    return rnd
