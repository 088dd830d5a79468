"""The round job: claim the round, train its adapter, draw its candidates, score them with CLIP, and end it
(app.domain.lifecycle). The task in worker/tasks.py is a one-liner around run_round.

Job state lives in the database: the claim is a conditional UPDATE (a duplicate or redelivered message does
nothing), and everything the attempt writes afterwards is fenced by its token (app.domain.fencing.Attempt), so
a worker that lost the round has its writes refused and stops. Training reads the round's cancel flag to stop
cooperatively (worker/progress.py); when the worker shuts down (SIGTERM), training stops the same way, but the
round goes back to the queue instead of ending cancelled. The engine is imported lazily, inside these functions.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from app.domain import lifecycle
from app.domain.fencing import ADAPTER_FILE, Attempt, remove_if_deleted, sha256
from app.domain.lifecycle import JobStatus, StaleAttempt
from app.domain.models import Candidate, Round, Style, utcnow
from app.infra import storage
from app.infra.db import session_factory
from app.infra.task_queue import Dispatcher
from app.settings import Settings
from styledrop.plan import RoundPlan  # torch-free

from . import engine_cache, scoring
from .errors import describe
from .progress import Heartbeat, Interrupted, Stopped, progress_writer, samples_writer, stop_checker, why_stopped

log = logging.getLogger(__name__)


def run_round(settings: Settings, round_id: int, task_id: str | None = None,
              dispatcher: Dispatcher | None = None) -> str:
    """Train, make candidates, score. Returns how the attempt ended: "succeeded", "failed", "cancelled",
    "interrupted" (the worker's shutdown put the round back in the queue and sent it again through
    `dispatcher`, for the next worker to resume from the checkpoint), "stale" (another attempt took the round
    over), or why it did not start (lifecycle.claim_round: "gave up", "skipped (...)", "missing")."""
    with session_factory(settings)() as session:
        outcome = lifecycle.claim_round(session, settings, round_id, task_id)
    if outcome != "claimed":
        log.info("round %s not run: %s", round_id, outcome)
        return outcome
    attempt = Attempt.claimed(settings, round_id)
    try:
        return _run_attempt(settings, attempt, dispatcher)
    except StaleAttempt as exc:
        log.warning("%s", exc)
        remove_if_deleted(settings, attempt.style_id)  # its style was deleted: what it wrote since goes too
        return "stale"


def _run_attempt(settings: Settings, attempt: Attempt, dispatcher: Dispatcher | None) -> str:
    round_id = attempt.round_id
    with session_factory(settings)() as session:
        rnd = session.get(Round, round_id)
        style = session.get(Style, rnd.style_id)
        plan = rnd.plan
        model = plan.model or style.base_model
        descriptor, style_id = style.descriptor, style.id
    timings: dict[str, float] = {}
    try:
        with Heartbeat(settings, attempt):
            out_dir = attempt.prepare()  # this attempt's own folder, seeded from the last one's checkpoint
            started = time.monotonic()
            components = engine_cache.components(model)
            timings["model_seconds"] = round(time.monotonic() - started, 2)
            train_metrics = _train(settings, attempt, plan, descriptor, out_dir, components, style_id)
            timings.update(train_metrics.pop("timings", {}))
            started = time.monotonic()
            images = _candidates(settings, attempt, plan, out_dir, components, style_id)
            timings["candidates_seconds"] = round(time.monotonic() - started, 2)
            started = time.monotonic()
            _score(settings, attempt, plan, images)
            timings["scoring_seconds"] = round(time.monotonic() - started, 2)
        with session_factory(settings)() as session:
            rnd = session.get(Round, round_id)
            metrics = dict(rnd.metrics or {}, **train_metrics, timings=timings, candidates=len(images))
            total = rnd.total_steps
        # the attempt's adapter becomes the round's, in the fenced transaction that ends it succeeded
        attempt.finish(step=total, eta_seconds=0.0, metrics=metrics)
        return "succeeded"
    except StaleAttempt:
        engine_cache.evict(model)  # its adapter may still be attached to the cached model
        raise
    except Stopped as exc:
        attempt.end(JobStatus.cancelled, error=str(exc))
        return "cancelled"
    except Interrupted as exc:
        # Back to the queue and sent again: this worker takes nothing more, and another one, or this one
        # restarted, resumes it. Should the message be lost, the reaper's wait ends it.
        if attempt.requeue(str(exc)):
            log.warning("round %s interrupted by the worker's shutdown; queued again", round_id)
            if dispatcher is not None:
                lifecycle.send_again(dispatcher, [round_id])
        return "interrupted"
    except Exception as exc:  # noqa: BLE001 - any failure is written to the round, with its reason
        engine_cache.evict(model)  # an adapter may still be attached to the cached model
        log.error("round %s failed:\n%s", round_id, traceback.format_exc())
        attempt.end(JobStatus.failed, error=describe(exc))
        return "failed"


def _train(settings: Settings, attempt: Attempt, plan: RoundPlan, descriptor: str, out_dir: Path, components: Any,
           style_id: int) -> dict[str, Any]:
    from styledrop.adapters import AdapterConfig
    from styledrop.images import load_image
    from styledrop.styles import train_style
    from styledrop.training import TrainConfig

    round_id = attempt.round_id
    if (out_dir / ADAPTER_FILE).exists() and not (out_dir / "checkpoints").exists():
        log.info("round %s: adapter already trained (earlier attempt), going on to candidates", round_id)
        return {"training": "reused the adapter of an earlier attempt"}
    attempt.update(phase="training")
    images = [load_image(storage.resolve(settings.storage_root, item.image)) for item in plan.training_set]
    contents = [item.content for item in plan.training_set]
    adapter_config = AdapterConfig.from_dict(plan.adapter.config_dict())
    t = plan.train
    sample_every = t.sample_every if t.sample_every is not None else settings.sample_every_for(plan.model)
    train_config = TrainConfig(steps=t.steps, batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed,
                               checkpoint_every=t.checkpoint_every, sample_every=sample_every, augment=t.flips,
                               weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm or None,
                               cond_dropout=t.text_dropout)  # the plan's departures from the paper, as recorded
    train_config.validate()
    should_stop = stop_checker(settings, attempt)
    started = time.monotonic()
    trained = train_style(images, contents, descriptor, out_dir, components=components,
                          adapter_config=adapter_config, train_config=train_config,
                          on_progress=progress_writer(settings, attempt), should_stop=should_stop, resume=True,
                          extra_meta={"style_id": style_id, "round": plan.number, "round_id": round_id},
                          sample_defaults=plan.sampling.model_dump(mode="json"), on_samples=samples_writer(attempt),
                          sample_contents=t.sample_prompts)
    trained.adapter.detach()  # the cached model is reused by the next job
    result = trained.result
    if result.stopped:
        raise why_stopped(attempt, f"Cancelled at step {result.steps_done} of {train_config.steps}; "
                          f"POST /api/v1/rounds/{round_id}/retry resumes from the checkpoint.")
    return {"adapter": adapter_config.to_dict(), "adapter_parameters": trained.adapter.num_parameters(),
            "final_loss": trained.meta.extra.get("final_loss"), "steps_done": result.steps_done,
            "resumed_from": result.resumed_from,
            "timings": {"train_seconds": round(time.monotonic() - started, 2)}}


def _candidates(settings: Settings, attempt: Attempt, plan: RoundPlan, out_dir: Path, components: Any,
                style_id: int) -> list[tuple[int, Any, str]]:
    """Draw the round's candidates with the engine's pipeline (styledrop.candidates.draw_candidates); this
    function only saves each finished one and records its row.

    Candidates an earlier attempt of the round made are kept, with their ratings and selections: the adapter
    is the same (training is not redone once it has finished) and so are the seeds, so making them again would
    only give them new ids. An interrupted attempt goes on from the first one missing."""
    from PIL import Image

    from styledrop.candidates import candidate_slots, draw_candidates
    from styledrop.sampling import sample_config, sampling_precision
    from styledrop.styles import load_style

    round_id = attempt.round_id
    attempt.update(phase="candidates")
    c = plan.candidates
    prompts = c.prompts or scoring.candidate_prompts(c.count, components.source)
    should_stop = stop_checker(settings, attempt)
    with session_factory(settings)() as session:
        attempt.update(session, heartbeat_at=utcnow())  # fenced: locks the round's row until the commit
        rows = session.scalars(select(Candidate).where(Candidate.round_id == round_id))
        kept = {r.image_path: r.id for r in rows if storage.resolve(settings.storage_root, r.image_path).is_file()}
        session.execute(delete(Candidate).where(Candidate.round_id == round_id, Candidate.id.not_in(kept.values())))
        session.commit()
    slots = candidate_slots(prompts, c.per_prompt, c.seed)
    made: dict[int, tuple[int, Any, str]] = {}
    for slot in slots:
        relative = storage.candidate_path(style_id, plan.number, slot.k)
        if relative in kept:
            with Image.open(storage.resolve(settings.storage_root, relative)) as image:
                made[slot.k] = (kept.pop(relative), image.convert("RGB"), slot.content)

    def record(candidate: Any) -> None:
        relative = storage.candidate_path(style_id, plan.number, candidate.id)
        row_id = attempt.add_candidate(candidate.image, relative, content=candidate.content,  # fenced: image and
                                       prompt=candidate.prompt, seed=candidate.seed)  # row, or neither
        made[candidate.id] = (row_id, candidate.image, candidate.content)

    loaded = load_style(out_dir, components=components)
    config = sample_config(plan.sampling, precision=settings.sampling_precision)
    # What draws the candidates, recorded: the adapter (as stored) and the precision auto meant on this worker.
    with session_factory(settings)() as session:
        metrics = dict(session.scalar(select(Round.metrics).where(Round.id == round_id)) or {})
    metrics["candidates_precision"] = sampling_precision(config.precision, components.device)
    if (out_dir / ADAPTER_FILE).is_file():
        metrics["candidates_adapter_sha256"] = sha256(out_dir / ADAPTER_FILE)
    attempt.update(metrics=metrics)
    try:
        draw_candidates(loaded, prompts, c.per_prompt, c.seed, plan.number, config,
                        c.batch_size, done=set(made), on_candidate=record, should_stop=should_stop)
    finally:
        loaded.adapter.detach()
    if len(made) < len(slots):
        raise why_stopped(attempt, f"Cancelled while generating candidates ({len(made)} made); "
                          f"POST /api/v1/rounds/{round_id}/retry makes the rest.")
    if kept:  # not part of this round's candidates (none, unless its files were changed by hand)
        with session_factory(settings)() as session:
            attempt.update(session, heartbeat_at=utcnow())
            session.execute(delete(Candidate).where(Candidate.id.in_(kept.values())))
            session.commit()
    return [made[slot.k] for slot in slots]


def _score(settings: Settings, attempt: Attempt, plan: RoundPlan, made: list[tuple[int, Any, str]]) -> None:
    """CLIP text and style scores of every candidate. A scorer that fails leaves them unscored (they still serve
    human feedback) and says why in the round's metrics."""
    from styledrop.images import load_image

    attempt.update(phase="scoring")
    # every reference image of the style: the scorer compares with their mean direction
    reference = [load_image(storage.resolve(settings.storage_root, item.image)) for item in plan.references]
    name = plan.candidates.clip_model or settings.clip_scorer(plan.model)
    try:
        text, style = scoring.score_candidates(reference, [m[1] for m in made], [m[2] for m in made], name=name,
                                               device=engine_cache.device())
    except Exception as exc:  # noqa: BLE001 - the candidates still serve human feedback: keep them, say why
        log.error("round %s: CLIP scoring failed:\n%s", attempt.round_id, traceback.format_exc())
        with session_factory(settings)() as session:
            metrics = session.scalar(select(Round.metrics).where(Round.id == attempt.round_id)) or {}
            attempt.update(session, metrics=dict(metrics, scoring_error=f"CLIP scoring failed: {describe(exc)}"))
            session.commit()
        return
    with session_factory(settings)() as session:
        attempt.update(session, heartbeat_at=utcnow())  # fenced: locks the round's row until the commit
        for (candidate_id, _, _), t, s in zip(made, text, style, strict=True):
            session.execute(update(Candidate).where(Candidate.id == candidate_id)
                            .values(clip_text_score=t, clip_style_score=s))
        session.commit()
