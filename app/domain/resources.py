"""Database rows to API JSON (who may see which row: app/domain/ownership.py, app/api/access.py)."""

from __future__ import annotations

from .lifecycle import JobStatus
from .models import Candidate, Generation, Round, Style, User
from .queries import latest_adapter_round
from .round_samples import samples
from .schemas import (
    API,
    CandidateOut,
    GenerationOut,
    RatingOut,
    RoundOut,
    RoundSummary,
    StyleOut,
    TrainingSampleOut,
)


def style_out(style: Style, user: User | None = None) -> StyleOut:
    return StyleOut(
        editable=user is None or style.user_id == user.id,
        id=style.id, content=style.content, descriptor=style.descriptor, base_model=style.base_model,
        adapter_kind=style.adapter_kind, settings=style.settings or {}, created_at=style.created_at,
        reference_url=f"{API}/styles/{style.id}/reference",
        reference_urls=[f"{API}/styles/{style.id}/references/{i}" for i in range(len(style.reference_paths))],
        rounds=[RoundSummary(id=r.id, number=r.number, status=r.status, url=f"{API}/rounds/{r.id}")
                for r in style.rounds],
        adapter_url=f"{API}/styles/{style.id}/adapter" if latest_adapter_round(style) else None)


def round_actions(rnd: Round) -> list[str]:
    if rnd.status in (JobStatus.queued.value, JobStatus.running.value):
        return ["cancel"]
    if rnd.status in (JobStatus.failed.value, JobStatus.cancelled.value):
        return ["retry"]
    return ["auto-select", "next-round"] if rnd.candidates else ["next-round"]


def round_out(rnd: Round) -> RoundOut:
    total = rnd.total_steps or 0
    progress = 1.0 if rnd.status == JobStatus.succeeded.value else (min(rnd.step / total, 1.0) if total else 0.0)
    return RoundOut(
        id=rnd.id, style_id=rnd.style_id, number=rnd.number, status=rnd.status, phase=rnd.phase,
        feedback=rnd.feedback, step=rnd.step, total_steps=total, progress=round(progress, 4), loss=rnd.loss,
        eta_seconds=rnd.eta_seconds, error=rnd.error, cancel_requested=rnd.cancel_requested,
        attempts=rnd.attempts, parameters=rnd.parameters or {}, metrics=rnd.metrics or {},
        created_at=rnd.created_at, started_at=rnd.started_at, finished_at=rnd.finished_at,
        heartbeat_at=rnd.heartbeat_at,
        adapter_url=f"{API}/rounds/{rnd.id}/adapter" if rnd.adapter_path and rnd.status == "succeeded" else None,
        candidates_url=f"{API}/rounds/{rnd.id}/candidates", actions=round_actions(rnd),
        training_samples=[TrainingSampleOut(step=s["step"], content=s["content"], prompt=s["prompt"], seed=s["seed"],
                                            image_url=s["url"]) for s in samples(rnd)])


def candidate_out(candidate: Candidate, user: User | None = None) -> CandidateOut:
    ratings = [RatingOut(user=r.user.name, value=r.value) for r in candidate.ratings]
    mine = next((r.value for r in candidate.ratings if user is not None and r.user_id == user.id), None)
    return CandidateOut(
        id=candidate.id, round_id=candidate.round_id, content=candidate.content, prompt=candidate.prompt,
        seed=candidate.seed, image_url=f"{API}/candidates/{candidate.id}/image",
        clip_text_score=candidate.clip_text_score, clip_style_score=candidate.clip_style_score,
        ratings=ratings, rating_mean=(sum(r.value for r in ratings) / len(ratings)) if ratings else None,
        my_rating=mine, selected=candidate.selection is not None,
        selected_by=candidate.selection.by if candidate.selection is not None else None,
        selection_rule=candidate.selection.rule if candidate.selection is not None else None)


def generation_out(generation: Generation) -> GenerationOut:
    return GenerationOut(
        id=generation.id, style_id=generation.style_id, round_id=generation.round_id, status=generation.status,
        request=generation.request or {},
        images=[f"{API}/generations/{generation.id}/images/{i}" for i in range(len(generation.image_paths or []))],
        error=generation.error, created_at=generation.created_at, finished_at=generation.finished_at)
