"""What the Celery tasks do, as plain functions (the tasks in worker/tasks.py are one-liners around them).

Job state lives in the database: a round is claimed with a conditional UPDATE (so a duplicate or
redelivered message does nothing), progress and a heartbeat are written to its row, and training reads the
row's cancel flag to stop cooperatively. When the worker shuts down (SIGTERM), training stops the same way,
but the round goes back to the queue instead of ending cancelled. The engine is imported lazily, inside
these functions.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from app import storage
from app.db import session_factory
from app.fencing import Attempt, StaleAttempt, sha256
from app.loss_curve import add_loss_point
from app.models import Candidate, Generation, Round, RoundStatus, Style, utcnow
from app.services import reap_stale, requeued_values, send_again, wait_afresh
from app.settings import Settings
from app.task_queue import Dispatcher
from styledrop.plan import RoundPlan  # torch-free

from . import engine_cache, scoring

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The round's cancel flag was set."""


class Interrupted(Exception):
    """The worker is shutting down: the round goes back to the queue, to resume from its checkpoint."""


# Set on the worker's warm shutdown (worker.tasks: SIGTERM from docker compose stop or from `styledrop serve`
# stopping). The solo pool runs the job in the process that receives the signal, so a flag here reaches it.
shutting_down = threading.Event()


# The attempt this process runs of a round (app.fencing): its writes are conditioned on its token, so a
# worker that lost the round (an orphan, a stale heartbeat) has them refused and stops.
_attempts: dict[int, Attempt] = {}


# ---- database helpers ---------------------------------------------------------------------------------------

def _update_round(settings: Settings, round_id: int, **values: Any) -> None:
    if (attempt := _attempts.get(round_id)) is not None:
        attempt.update(**values)  # StaleAttempt when another attempt took over
        return
    with session_factory(settings)() as session:
        session.execute(update(Round).where(Round.id == round_id).values(**values))
        session.commit()


class Heartbeat:
    """Writes heartbeat_at every few seconds while the job's process lives (the reaper watches it)."""

    def __init__(self, settings: Settings, round_id: int):
        self.settings, self.round_id = settings, round_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{round_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                if (attempt := _attempts.get(self.round_id)) is not None:
                    attempt.update(heartbeat_at=utcnow())
                    continue
                with session_factory(self.settings)() as session:
                    session.execute(update(Round).where(Round.id == self.round_id,
                                                        Round.status == RoundStatus.running.value)
                                    .values(heartbeat_at=utcnow()))
                    session.commit()
            except StaleAttempt as exc:  # another attempt beats for the round now
                log.warning("%s", exc)
                return
            except Exception:  # a busy database must not kill the job; the next beat tries again
                log.exception("heartbeat of round %s failed", self.round_id)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def stop_checker(settings: Settings, round_id: int) -> Callable[[], bool]:
    """The engine's should_stop: the worker is shutting down, or the round's cancel flag (read at most every
    stop_check_seconds) is set."""
    state = {"at": 0.0, "stop": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if not state["stop"] and now - state["at"] >= settings.stop_check_seconds:
            state["at"] = now
            with session_factory(settings)() as session:
                state["stop"] = bool(session.scalar(select(Round.cancel_requested).where(Round.id == round_id)))
            if (attempt := _attempts.get(round_id)) is not None and not attempt.is_current():
                state["stop"] = True  # another attempt took over: stop writing at once
        return state["stop"] or shutting_down.is_set()

    return should_stop


def why_stopped(settings: Settings, round_id: int, cancelled: str) -> Exception:
    """The exception for a job that stopped early: its user's cancel wins (they asked for it to end);
    otherwise it was the worker shutting down, and the round is only interrupted. An attempt that lost the
    round to another stops without writing anything more (StaleAttempt)."""
    if (attempt := _attempts.get(round_id)) is not None and not attempt.is_current():
        return StaleAttempt(attempt.refusal())
    with session_factory(settings)() as session:
        if session.scalar(select(Round.cancel_requested).where(Round.id == round_id)) or not shutting_down.is_set():
            return Stopped(cancelled)
    return Interrupted("the worker shut down")


def progress_writer(settings: Settings, round_id: int) -> Callable[[Any], None]:
    """The engine's on_progress: step, loss and ETA to the round's row, about once a second, and the loss
    curve so far (an attempt that resumes goes on with the curve of the earlier one)."""
    state: dict[str, Any] = {"at": 0.0, "first": True, "curve": []}

    def on_progress(p: Any) -> None:
        first: dict[str, Any] = {}
        if state["first"]:  # the first step of this attempt tells where training (re)started
            state["first"] = False
            with session_factory(settings)() as session:
                rnd = session.get(Round, round_id)
                metrics, curve = rnd.metrics or {}, rnd.loss_curve or []
            first["metrics"] = dict(metrics, started_at_step=int(p.step) - 1)  # with the step: seen together
            state["curve"] = [pt for pt in curve if pt[0] < int(p.step)]  # a resumed attempt goes on from its step
        now = time.monotonic()
        if not first and now - state["at"] < settings.progress_interval_seconds and p.step < p.total:
            return
        state["at"] = now
        state["curve"] = add_loss_point(state["curve"], int(p.step), float(p.loss))
        _update_round(settings, round_id, step=int(p.step), total_steps=int(p.total), loss=float(p.loss),
                      eta_seconds=round(float(p.eta_seconds), 1), heartbeat_at=utcnow(),
                      loss_curve=state["curve"], **first)

    return on_progress


def samples_writer(round_id: int) -> Callable[[int, list[Any]], None]:
    """The engine's on_samples: each step's training samples (styledrop.training_samples) into the round's
    samples/ folder and its row, fenced (app.fencing.Attempt.add_training_samples): a stale attempt writes
    nothing and stops (StaleAttempt)."""
    def on_samples(step: int, samples: list[Any]) -> None:
        if (attempt := _attempts.get(round_id)) is None:
            log.warning("round %s: samples of step %s not stored (no claimed attempt)", round_id, step)
            return
        attempt.add_training_samples(step, [(sample.image, sample.describe()) for sample in samples])

    return on_samples


def claim_round(settings: Settings, round_id: int, task_id: str | None) -> str:
    """Mark a queued round running (or take over a running one whose heartbeat is stale, as after a
    redelivery). Returns "claimed", or why not. A cancel asked for before the claim stands (a retry clears it,
    app.services.retry_round): the attempt then stops at its first check, as cancelled."""
    stale = utcnow() - timedelta(seconds=settings.heartbeat_stale_seconds)
    with session_factory(settings)() as session:
        result = session.execute(
            update(Round)
            .where(Round.id == round_id, Round.attempts < settings.max_attempts,
                   or_(Round.status == RoundStatus.queued.value,
                       (Round.status == RoundStatus.running.value) & (Round.heartbeat_at < stale)))
            .values(status=RoundStatus.running.value, attempts=Round.attempts + 1, started_at=utcnow(),
                    heartbeat_at=utcnow(), celery_task_id=task_id, phase="starting", error=None)
            .execution_options(synchronize_session=False))
        session.commit()
        if result.rowcount:
            return "claimed"
        rnd = session.get(Round, round_id)
        if rnd is None:
            return "missing"
        if rnd.status == RoundStatus.queued.value and rnd.attempts >= settings.max_attempts:
            # Guard against requeue loops (an OOM would otherwise repeat forever).
            rnd.status, rnd.finished_at = RoundStatus.failed.value, utcnow()
            rnd.error = f"Gave up after {rnd.attempts} attempts (limit {settings.max_attempts})."
            session.commit()
            return "gave up"
        return f"skipped ({rnd.status})"


# ---- rounds -------------------------------------------------------------------------------------------------

def run_round(settings: Settings, round_id: int, task_id: str | None = None,
              dispatcher: Dispatcher | None = None) -> str:
    """Train, make candidates, score. A job stopped by the worker's shutdown puts the round back in the queue
    and sends it again through `dispatcher`, for the next worker to resume from the checkpoint."""
    outcome = claim_round(settings, round_id, task_id)
    if outcome != "claimed":
        log.info("round %s not run: %s", round_id, outcome)
        return outcome
    attempt = _attempts[round_id] = Attempt.claimed(settings, round_id)
    try:
        return _run_attempt(settings, attempt, dispatcher)
    except StaleAttempt as exc:
        log.warning("%s", exc)
        return "stale"
    finally:
        _attempts.pop(round_id, None)


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
        with Heartbeat(settings, round_id):
            out_dir = attempt.prepare()  # this attempt's own folder, seeded from the last one's checkpoint
            started = time.monotonic()
            components = engine_cache.components(model)
            timings["model_seconds"] = round(time.monotonic() - started, 2)
            train_metrics = _train(settings, round_id, plan, descriptor, out_dir, components, style_id)
            timings.update(train_metrics.pop("timings", {}))
            started = time.monotonic()
            images = _candidates(settings, round_id, plan, out_dir, components, style_id)
            timings["candidates_seconds"] = round(time.monotonic() - started, 2)
            started = time.monotonic()
            _score(settings, round_id, plan, images)
            timings["scoring_seconds"] = round(time.monotonic() - started, 2)
        with session_factory(settings)() as session:
            rnd = session.get(Round, round_id)
            metrics = dict(rnd.metrics or {}, **train_metrics, timings=timings, candidates=len(images))
            total = rnd.total_steps
        # the attempt's adapter becomes the round's, in the fenced transaction that marks it succeeded
        attempt.finish(status=RoundStatus.succeeded.value, phase=None, finished_at=utcnow(), step=total,
                       eta_seconds=0.0, metrics=metrics)
        return "succeeded"
    except StaleAttempt:
        engine_cache.evict(model)  # its adapter may still be attached to the cached model
        raise
    except Stopped as exc:
        _update_round(settings, round_id, status=RoundStatus.cancelled.value, phase=None, finished_at=utcnow(),
                      error=str(exc))
        return "cancelled"
    except Interrupted as exc:
        _requeue_interrupted(settings, round_id, str(exc), dispatcher)
        return "interrupted"
    except Exception as exc:  # noqa: BLE001 - any failure is written to the round, with its reason
        engine_cache.evict(model)  # an adapter may still be attached to the cached model
        log.error("round %s failed:\n%s", round_id, traceback.format_exc())
        _update_round(settings, round_id, status=RoundStatus.failed.value, phase=None, finished_at=utcnow(),
                      error=_describe(exc))
        return "failed"


def _requeue_interrupted(settings: Settings, round_id: int, reason: str, dispatcher: Dispatcher | None) -> None:
    """Back to the queue, the attempt given back (a shutdown is not the round's fault, and the attempts limit
    is there to stop rounds that kill their workers), and sent again: this worker takes nothing more, and
    another one, or this one restarted, resumes it. Should the message be lost, the reaper's wait ends it."""
    with session_factory(settings)() as session:
        rnd = session.get(Round, round_id)
        step = rnd.step
        fence = [Round.attempts == attempt.token] if (attempt := _attempts.get(round_id)) is not None else []
        session.execute(update(Round).where(Round.id == round_id, Round.status == RoundStatus.running.value, *fence)
                        .values(**requeued_values(rnd, reason), attempts=Round.attempts - 1))
        session.commit()
    log.warning("round %s interrupted by the worker's shutdown at step %s; queued again", round_id, step)
    if dispatcher is not None:
        send_again(dispatcher, [round_id])


def _describe(exc: Exception) -> str:
    """The error stored on the job's row for its user: no server paths in it (app.errors.without_paths)."""
    from app.errors import without_paths
    from styledrop.errors import StyleDropError  # torch-free
    from styledrop.model_sources import ModelUnavailableError

    if isinstance(exc, ModelUnavailableError):  # the CLI's advice names --model; the pages' user needs the setting
        return exc.service_message()
    if isinstance(exc, StyleDropError):
        return without_paths(str(exc))
    return without_paths(f"{type(exc).__name__}: {exc}")


def _train(settings: Settings, round_id: int, plan: RoundPlan, descriptor: str, out_dir: Path, components: Any,
           style_id: int) -> dict[str, Any]:
    from styledrop.adapters import AdapterConfig
    from styledrop.images import load_image
    from styledrop.styles import train_style
    from styledrop.training import TrainConfig

    adapter_file = out_dir / "adapter.safetensors"
    if adapter_file.exists() and not (out_dir / "checkpoints").exists():
        log.info("round %s: adapter already trained (earlier attempt), going on to candidates", round_id)
        return {"training": "reused the adapter of an earlier attempt"}
    _update_round(settings, round_id, phase="training")
    images = [load_image(storage.resolve(settings.storage_root, item.image)) for item in plan.training_set]
    contents = [item.content for item in plan.training_set]
    adapter_config = AdapterConfig.from_dict(plan.adapter.config_dict())
    t = plan.train
    sample_every = t.sample_every if t.sample_every is not None else settings.sample_every
    train_config = TrainConfig(steps=t.steps, batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed,
                               checkpoint_every=t.checkpoint_every, sample_every=sample_every)
    train_config.validate()
    should_stop = stop_checker(settings, round_id)
    started = time.monotonic()
    trained = train_style(images, contents, descriptor, out_dir, components=components,
                          adapter_config=adapter_config, train_config=train_config,
                          on_progress=progress_writer(settings, round_id), should_stop=should_stop, resume=True,
                          extra_meta={"style_id": style_id, "round": plan.number, "round_id": round_id},
                          sample_defaults=plan.sampling.model_dump(mode="json"), on_samples=samples_writer(round_id))
    trained.adapter.detach()  # the cached model is reused by the next job
    result = trained.result
    if result.stopped:
        raise why_stopped(settings, round_id, f"Cancelled at step {result.steps_done} of {train_config.steps}; "
                          f"POST /api/v1/rounds/{round_id}/retry resumes from the checkpoint.")
    return {"adapter": adapter_config.to_dict(), "adapter_parameters": trained.adapter.num_parameters(),
            "final_loss": trained.meta.extra.get("final_loss"), "steps_done": result.steps_done,
            "resumed_from": result.resumed_from,
            "timings": {"train_seconds": round(time.monotonic() - started, 2)}}


def _candidates(settings: Settings, round_id: int, plan: RoundPlan, out_dir: Path, components: Any,
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

    _update_round(settings, round_id, phase="candidates")
    c = plan.candidates
    prompts = c.prompts or scoring.candidate_prompts(c.count)
    should_stop = stop_checker(settings, round_id)
    with session_factory(settings)() as session:
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
        if (attempt := _attempts.get(round_id)) is not None:  # fenced: image and row, or neither
            row_id = attempt.add_candidate(candidate.image, relative, content=candidate.content,
                                           prompt=candidate.prompt, seed=candidate.seed)
            made[candidate.id] = (row_id, candidate.image, candidate.content)
            return
        storage.save_png(settings.storage_root, relative, candidate.image)
        with session_factory(settings)() as session:
            row = Candidate(round_id=round_id, content=candidate.content, prompt=candidate.prompt,
                            seed=candidate.seed, image_path=relative)
            session.add(row)
            session.commit()
            made[candidate.id] = (row.id, candidate.image, candidate.content)

    loaded = load_style(out_dir, components=components)
    config = sample_config(plan.sampling, precision=settings.sampling_precision)
    # What draws the candidates, recorded: the adapter (as stored) and the precision auto meant on this worker.
    with session_factory(settings)() as session:
        metrics = dict(session.scalar(select(Round.metrics).where(Round.id == round_id)) or {})
    metrics["candidates_precision"] = sampling_precision(config.precision, components.device)
    if (out_dir / "adapter.safetensors").is_file():
        metrics["candidates_adapter_sha256"] = sha256(out_dir / "adapter.safetensors")
    _update_round(settings, round_id, metrics=metrics)
    try:
        draw_candidates(loaded, prompts, c.per_prompt, c.seed, plan.number, config,
                        c.batch_size, done=set(made), on_candidate=record, should_stop=should_stop)
    finally:
        loaded.adapter.detach()
    if len(made) < len(slots):
        raise why_stopped(settings, round_id, f"Cancelled while generating candidates ({len(made)} made); "
                          f"POST /api/v1/rounds/{round_id}/retry makes the rest.")
    if kept:  # not part of this round's candidates (none, unless its files were changed by hand)
        with session_factory(settings)() as session:
            session.execute(delete(Candidate).where(Candidate.id.in_(kept.values())))
            session.commit()
    return [made[slot.k] for slot in slots]


def _score(settings: Settings, round_id: int, plan: RoundPlan, made: list[tuple[int, Any, str]]) -> None:
    from styledrop.images import load_image

    _update_round(settings, round_id, phase="scoring")
    # every reference image of the style: the scorer compares with their mean direction
    reference = [load_image(storage.resolve(settings.storage_root, item.image)) for item in plan.references]
    name = plan.candidates.clip_model or settings.clip_scorer(plan.model)
    try:
        text, style = scoring.score_candidates(reference, [m[1] for m in made], [m[2] for m in made], name=name,
                                               device=engine_cache.device())
    except Exception as exc:  # noqa: BLE001 - the candidates still serve human feedback: keep them, say why
        log.error("round %s: CLIP scoring failed:\n%s", round_id, traceback.format_exc())
        with session_factory(settings)() as session:
            rnd = session.get(Round, round_id)
            rnd.metrics = dict(rnd.metrics or {}, scoring_error=f"CLIP scoring failed: {_describe(exc)}")
            session.commit()
        return
    with session_factory(settings)() as session:
        for (candidate_id, _, _), t, s in zip(made, text, style, strict=True):
            session.execute(update(Candidate).where(Candidate.id == candidate_id)
                            .values(clip_text_score=t, clip_style_score=s))
        session.commit()


def claim_queued(session: Session, model: Any, ident: int) -> bool:
    """Mark a queued job (generation, evaluation) running with a conditional UPDATE, committed: a duplicate or
    late message for it then claims nothing."""
    claimed = session.execute(update(model).where(model.id == ident, model.status == RoundStatus.queued.value)
                              .values(status=RoundStatus.running.value)).rowcount
    session.commit()
    return bool(claimed)


# ---- generations --------------------------------------------------------------------------------------------

def run_generation(settings: Settings, generation_id: int) -> str:
    from styledrop.sampling import image_seeds, sample_config
    from styledrop.styles import generate_with_style, load_style

    with session_factory(settings)() as session:
        if not claim_queued(session, Generation, generation_id):
            return "skipped"
        generation = session.get(Generation, generation_id)
        rnd = session.get(Round, generation.round_id) if generation.round_id else None
        request, style_id = dict(generation.request), generation.style_id
        plan = rnd.plan if rnd else None
        model = (plan.model if plan else None) or session.get(Style, style_id).base_model
        adapter_rel = rnd.adapter_path if rnd else None
    try:
        if not adapter_rel:
            raise RuntimeError("The round this generation uses has no adapter.")
        components = engine_cache.components(model)
        loaded = load_style(storage.resolve(settings.storage_root, adapter_rel), components=components)
        try:
            # The round's sampling defaults (its λA ...), what the request sets instead.
            config = sample_config(plan.sampling if plan else {}, num_images=int(request.get("num_images") or 1),
                                   seed=request.get("seed"), steps=request.get("steps") or settings.sample_steps,
                                   adapter_guidance=request.get("adapter_guidance"), guidance=request.get("guidance"),
                                   precision=settings.sampling_precision)  # the candidates' own: seeds remake them
            prompts = list(request["prompts"])
            seeds = image_seeds(config.seed, len(prompts) * config.num_images)  # the seed contract (README)
            descriptor = request.get("descriptor")  # what the request chose: None (older rows) = the style's
            samples = generate_with_style(loaded, prompts, config, seeds=seeds, with_descriptor=descriptor != "",
                                          descriptor=descriptor or None)
        finally:
            loaded.adapter.detach()
        paths = []
        for index, image in enumerate(samples.images):
            relative = storage.generation_path(style_id, generation_id, index)
            storage.save_png(settings.storage_root, relative, image)
            paths.append(relative)
        with session_factory(settings)() as session:
            session.execute(update(Generation).where(Generation.id == generation_id).values(
                status=RoundStatus.succeeded.value, image_paths=paths, finished_at=utcnow()))
            session.commit()
        return "succeeded"
    except Exception as exc:  # noqa: BLE001
        engine_cache.evict(model)
        log.error("generation %s failed:\n%s", generation_id, traceback.format_exc())
        with session_factory(settings)() as session:
            session.execute(update(Generation).where(Generation.id == generation_id).values(
                status=RoundStatus.failed.value, error=_describe(exc), finished_at=utcnow()))
            session.commit()
        return "failed"


def reap(settings: Settings, dispatcher: Dispatcher, worker_starting: bool = False) -> dict[str, list[int]]:
    """The reaper (app.services.reap_stale). A worker that is starting is what rounds put back in the queue
    wait for: their wait restarts first, so they are taken up rather than failed."""
    with session_factory(settings)() as session:
        if worker_starting:
            wait_afresh(session)
        return reap_stale(session, settings, dispatcher)

