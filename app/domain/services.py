"""What the web app does, apart from HTTP: creating styles, starting, cancelling, retrying and reaping rounds,
ratings and selections, generations, and the limits of what one request may ask for.

Every write and every rule is here, shared by the API routes (app/api/routes.py), the pages (app/pages/) and
the worker (the reaper), so a rule lives in one place. Who may touch what is app/domain/ownership.py.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from styledrop.plan import plan_round  # pydantic, no torch: the round's plan and the per-round recipe
from styledrop.prompts import MAX_WORDS  # plain Python, no torch: the engine refuses longer text
from styledrop.selection import DEFAULT_RULE  # plain Python, no torch

from ..errors import ApiError
from ..infra import storage
from ..infra.db import dialect_insert
from ..infra.task_queue import Dispatcher
from ..settings import Settings
from .clip_rules import feedback_label, select_by_clip
from .models import ACTIVE, Candidate, Generation, Rating, Round, RoundStatus, Selection, Style, User, as_utc, utcnow
from .ownership import MAX_ID, owned
from .schemas import GenerationCreate, RoundCreate, StyleCreate
from .uploads import check_base_model, check_storage_quota
from .uploads import create_style as store_style
from .webhooks import check_callback_url, jobs_ended

log = logging.getLogger(__name__)


def requeued_values(rnd: Round, reason: str, exit_code: int | None = None) -> dict[str, Any]:
    """The column values that put an interrupted running round back in the queue, for a conditional UPDATE.

    Its checkpoint stays, so the next attempt resumes there. metrics.interruptions records where and why
    (the next attempt records where it restarted, started_at_step), and metrics.requeued_at starts the wait
    for a worker that reap_stale watches (requeue_wait_seconds)."""
    now = utcnow().isoformat()
    metrics = dict(rnd.metrics or {})
    interruptions = list(metrics.get("interruptions", []))
    interruptions.append({"at_step": rnd.step, "reason": reason, "exit_code": exit_code, "when": now,
                          "attempt_started_at_step": metrics.pop("started_at_step", None)})
    return {"status": RoundStatus.queued.value, "phase": None,
            "metrics": dict(metrics, interruptions=interruptions, requeued_at=now)}


def wait_afresh(session: Session) -> list[int]:
    """A worker is (re)starting and takes the queue from here: rounds put back in the queue wait for it from
    now on, instead of being failed by a reaper that looks before the worker has claimed them."""
    ids = []
    for rnd in session.scalars(select(Round).where(Round.status == RoundStatus.queued.value)):
        if (rnd.metrics or {}).get("requeued_at"):
            rnd.metrics = dict(rnd.metrics, requeued_at=utcnow().isoformat())
            ids.append(rnd.id)
    session.commit()
    return ids


def send_again(dispatcher: Dispatcher, round_ids: list[int]) -> None:
    """Send rounds put back in the queue to the workers. With the broker down a round just waits: the
    reaper fails it once requeue_wait_seconds have passed without a worker taking it."""
    for round_id in round_ids:
        try:
            dispatcher.train_round(round_id)
        except Exception:  # noqa: BLE001
            log.exception("could not send round %s again", round_id)


def _a_worker_is_busy(session: Session, since: datetime) -> bool:
    """Some round had a heartbeat since then: a worker is alive, busy with it, and takes the queue next."""
    return (as_utc(session.scalar(select(func.max(Round.heartbeat_at)))) or since) > since


def reap_stale(session: Session, settings: Settings, dispatcher: Dispatcher, round_id: int | None = None
               ) -> dict[str, list[int]]:
    """Rounds whose worker vanished go back to the queue by themselves; rounds no worker takes end failed.

    A running round whose heartbeat is older than heartbeat_stale_seconds lost its worker (killed for memory,
    its machine gone): it is queued again and sent again, so a live worker resumes it from its last
    checkpoint, unless it already ran max_attempts times (then it fails: it may be what kills its workers).
    A round put back in the queue that no worker has taken within requeue_wait_seconds, while no worker shows
    signs of life (a busy one would come to it), is failed with a retry action rather than left waiting for
    no one; a message for it that a worker takes later does nothing (claim_round). Every update is
    conditional, so a worker that wrote a heartbeat or claimed the round in the meantime wins.
    Runs at worker start, every minute with celery beat, and when the API reads a queued or running round."""
    now = utcnow()
    stale_seconds, wait = int(settings.heartbeat_stale_seconds), int(settings.requeue_wait_seconds)
    stale = now - timedelta(seconds=stale_seconds)
    query = select(Round).where(Round.status.in_(ACTIVE))
    if round_id is not None:
        query = query.where(Round.id == round_id)
    requeued: list[int] = []
    failed: list[int] = []
    busy: bool | None = None

    def failure(error: str) -> dict[str, Any]:
        return {"status": RoundStatus.failed.value, "phase": None, "finished_at": now, "error": error}

    for rnd in list(session.scalars(query)):
        if rnd.status == RoundStatus.running.value:
            last = as_utc(rnd.heartbeat_at) or as_utc(rnd.started_at) or as_utc(rnd.created_at)
            if last is None or last >= stale:
                continue
            unchanged = Round.heartbeat_at == rnd.heartbeat_at  # a heartbeat written meanwhile wins
            if rnd.attempts < settings.max_attempts:
                values, changed = requeued_values(rnd, f"no heartbeat for {stale_seconds} s"), requeued
            else:
                values, changed = failure(
                    f"The worker stopped responding (no heartbeat for {stale_seconds} s) on attempt {rnd.attempts} "
                    f"of {settings.max_attempts}: not starting it again, since it may be what kills its workers "
                    "(out of memory?). Start a new round, perhaps with a smaller batch size."), failed
        else:
            since = (rnd.metrics or {}).get("requeued_at")
            if not since or datetime.fromisoformat(since) > now - timedelta(seconds=wait):
                continue
            busy = _a_worker_is_busy(session, stale) if busy is None else busy
            if busy:
                continue
            unchanged = Round.status == RoundStatus.queued.value  # a worker that claimed it meanwhile wins
            values, changed = failure(
                f"Its worker stopped at step {rnd.step} and no worker took the round up again within {wait} s "
                f"(are the workers running?). POST /api/v1/rounds/{rnd.id}/retry resumes from the last "
                "checkpoint."), failed
        result = session.execute(update(Round).where(Round.id == rnd.id, Round.status == rnd.status, unchanged)
                                 .values(**values).execution_options(synchronize_session=False))
        if result.rowcount:
            changed.append(rnd.id)
    # Generations carry no heartbeat: one running longer than the task time limit lost its worker. Each is
    # failed by a conditional update (a worker finishing it at that moment wins), so the webhook goes exactly
    # to those this reaper ended.
    lost = session.scalars(select(Generation.id).where(
        Generation.status == RoundStatus.running.value,
        Generation.created_at < now - timedelta(seconds=settings.task_time_limit))).all()
    failed_generations = [gid for gid in lost if session.execute(
        update(Generation).where(Generation.id == gid, Generation.status == RoundStatus.running.value)
        .values(status=RoundStatus.failed.value, finished_at=now,
                error="The worker stopped before this generation finished; ask again.")
        .execution_options(synchronize_session=False)).rowcount]
    session.commit()
    send_again(dispatcher, requeued)  # after the commit, so the worker that takes one finds it queued
    jobs_ended(session, dispatcher, "round", failed)
    jobs_ended(session, dispatcher, "generation", failed_generations)
    for rid in requeued + failed:
        rnd = session.get(Round, rid)
        if rnd is not None:
            session.refresh(rnd)
    return {"requeued": requeued, "failed": failed}


def active_round(session: Session, style_id: int) -> Round | None:
    return session.scalar(select(Round).where(Round.style_id == style_id, Round.status.in_(ACTIVE)))


def latest_succeeded(session: Session, style_id: int) -> Round | None:
    return session.scalar(select(Round).where(Round.style_id == style_id,
                                              Round.status == RoundStatus.succeeded.value)
                          .order_by(Round.number.desc()).limit(1))


def candidate_items(rnd: Round) -> list[dict[str, Any]]:
    return [{"id": c.id, "content": c.content, "text_score": c.clip_text_score, "style_score": c.clip_style_score}
            for c in rnd.candidates]


def auto_select(session: Session, rnd: Round, rule: str = DEFAULT_RULE, top_k: int = 1,
                seed: int = 0) -> tuple[list[Candidate], str]:
    """CLIP feedback: replace the round's selection with the candidates a named rule picks (app.domain.clip_rules);
    each selection records the rule."""
    if rnd.status != RoundStatus.succeeded.value:
        raise ApiError(409, f"Round {rnd.id} is {rnd.status}; only a finished round's candidates can be selected.")
    if not rnd.candidates:
        raise ApiError(409, f"Round {rnd.id} has no candidates to select from.")
    ids, method = select_by_clip(candidate_items(rnd), rule, top_k, seed)
    for candidate in rnd.candidates:
        if candidate.selection is not None:
            session.delete(candidate.selection)
    session.flush()
    by_id = {c.id: c for c in rnd.candidates}
    chosen = [by_id[i] for i in ids if i in by_id]
    for candidate in chosen:
        session.add(Selection(candidate_id=candidate.id, round_id=rnd.id, by="clip", rule=rule))
    rnd.metrics = dict(rnd.metrics or {}, clip_selection={"rule": rule, "method": method,
                                                          "candidate_ids": [c.id for c in chosen]})
    session.commit()
    session.refresh(rnd)
    return chosen, method


def new_round(session: Session, style: Style, body: dict[str, Any], settings: Settings) -> Round:
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
    steps = body.get("steps") or style_settings.get("steps") or settings.train_steps
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
    check_job_quota(session, style.user_id, settings)  # locks the user until the commit below: atomic
    rnd = Round(style_id=style.id, number=plan.number, status=RoundStatus.queued.value, feedback=feedback,
                parameters=plan.stored(), total_steps=int(steps))
    session.add(rnd)
    session.commit()
    return rnd


def cancel_round(session: Session, rnd: Round) -> Round:
    """A queued round ends here; a running one gets the flag its worker reads between steps. Each update is
    conditional on the status in the database, not on the one read earlier: a worker may claim the round in
    between (the cancel then has to reach the running round, or it is lost and the round runs to its end)."""
    ended = session.execute(update(Round).where(Round.id == rnd.id, Round.status == RoundStatus.queued.value)
                            .values(status=RoundStatus.cancelled.value, cancel_requested=True, finished_at=utcnow(),
                                    error="Cancelled before it started.")).rowcount
    if not ended:
        # Cooperative: the worker reads this flag between training steps and stops within seconds.
        flagged = session.execute(update(Round).where(Round.id == rnd.id, Round.status == RoundStatus.running.value)
                                  .values(cancel_requested=True)).rowcount
        if not flagged:
            session.refresh(rnd)
            raise ApiError(409, f"Round {rnd.id} is already {rnd.status}; there is nothing to cancel.")
    session.commit()
    session.refresh(rnd)
    return rnd


def stop_round(session: Session, dispatcher: Dispatcher, rnd: Round) -> Round:
    """Cancel a round (cancel_round's rules), from the API or a page. A queued round ends here, so its webhook
    (app/domain/webhooks.py) is queued here; a running one ends in the worker, which sends it."""
    rnd = cancel_round(session, rnd)
    if rnd.status == RoundStatus.cancelled.value:
        jobs_ended(session, dispatcher, "round", [rnd.id])
    return rnd


def retry_round(session: Session, rnd: Round, settings: Settings) -> Round:
    if rnd.status not in (RoundStatus.failed.value, RoundStatus.cancelled.value):
        raise ApiError(409, f"Round {rnd.id} is {rnd.status}; only a failed or cancelled round can be retried.")
    if (running := active_round(session, rnd.style_id)) is not None:
        raise ApiError(409, f"Round {running.number} of this style is {running.status}; wait for it first.")
    newer = session.scalar(select(Round.id).where(Round.style_id == rnd.style_id, Round.number > rnd.number))
    if newer is not None:
        raise ApiError(409, f"Round {rnd.id} is not the style's latest round; start a new round instead.")
    if rnd.attempts >= settings.max_attempts:
        raise ApiError(409, f"Round {rnd.id} already ran {rnd.attempts} times (limit {settings.max_attempts}); "
                            "start a new round with other settings instead.")
    check_job_quota(session, rnd.style.user_id, settings)
    rnd.status = RoundStatus.queued.value
    rnd.metrics = {k: v for k, v in (rnd.metrics or {}).items() if k != "requeued_at"}  # queued afresh
    rnd.cancel_requested = False
    rnd.error = None
    rnd.finished_at = None
    rnd.phase = None
    session.commit()
    return rnd


# Statements of the rating path are built once, with bound parameters: building and hashing a statement
# costs SQLAlchemy more CPU than SQLite spends running it (the cache key of a built one is memoized).
_UPSERTS: dict[str, Any] = {}


def _rating_upsert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERTS:
        statement = dialect_insert(session, Rating).values(
            candidate_id=bindparam("candidate_id"), user_id=bindparam("user_id"), value=bindparam("value"),
            created_at=bindparam("now"), updated_at=bindparam("now"))
        _UPSERTS[dialect] = statement.on_conflict_do_update(
            index_elements=["candidate_id", "user_id"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at})
    return _UPSERTS[dialect]


def _upsert_rating(session: Session, candidate_id: int, user_id: int, value: int) -> None:
    # Core, not the ORM's bulk insert: nothing to synchronise with the identity map, and half the CPU.
    session.connection().execute(_rating_upsert(session), {"candidate_id": candidate_id, "user_id": user_id,
                                                           "value": value, "now": utcnow()})


def _write_selection(session: Session, candidate_id: int, round_id: int, user_id: int, selected: bool,
                     rule: str | None = None) -> None:
    if selected:
        statement = dialect_insert(session, Selection).values(candidate_id=candidate_id, round_id=round_id,
                                                       by="human", user_id=user_id, rule=rule, created_at=utcnow())
        session.execute(statement.on_conflict_do_update(index_elements=["candidate_id"],
                                                        set_={"by": "human", "user_id": user_id, "rule": rule}))
    else:
        session.execute(delete(Selection).where(Selection.candidate_id == candidate_id))


def rate_candidate(session: Session, candidate: Candidate, user: User, value: int) -> None:
    """One rating per user and candidate, atomically: concurrent or repeated PUTs replace, never duplicate."""
    _upsert_rating(session, candidate.id, user.id, value)
    session.commit()


def select_candidate(session: Session, candidate: Candidate, user: User, selected: bool,
                     rule: str | None = None) -> None:
    """Choose or un-choose a candidate for the next round (human feedback), atomically. `rule` records how
    (LIKE when a thumbs up made the pick)."""
    _write_selection(session, candidate.id, candidate.round_id, user.id, selected, rule)
    session.commit()


LIKE = "thumbs up"  # the rule of a selection a like made


def thumb(session: Session, candidate: Candidate, user: User, value: int) -> None:
    """The rating grid's thumbs: up (+1) rates and selects the candidate for the next round (unless it is
    picked already: that pick stays as it was made), down (-1) rates and unselects it, and the same thumb
    again takes the rating back, and with a like the pick that like made, so a toggle undoes what it did."""
    rating = session.scalar(select(Rating).where(Rating.candidate_id == candidate.id, Rating.user_id == user.id))
    selection = session.scalar(select(Selection).where(Selection.candidate_id == candidate.id))
    if rating is not None and rating.value == value:
        session.delete(rating)
        if value > 0 and selection is not None and selection.rule == LIKE:
            session.delete(selection)
        session.commit()
        return
    rate_candidate(session, candidate, user, value)
    if value < 0:
        select_candidate(session, candidate, user, False)
    elif selection is None:
        select_candidate(session, candidate, user, True, rule=LIKE)


# ---- styles, rounds and generations as the API and the pages ask for them ----------------------------------------

MAX_NAME_CHARS = 500  # a base model id or folder: what its database column holds


def create_style(session: Session, settings: Settings, user: User, body: StyleCreate,
                 image: bytes | list[bytes]) -> Style:
    """Store a new style and its reference image or images (at most STYLEDROP_REFERENCE_MAX_SIDE px, PNG when small,
    else WebP). Training starts with start_round. Refused before anything is stored: 422 (text, a base model
    not in STYLEDROP_BASE_MODELS), 413 (too large, over the stored-MB quota), 429 (styles quota), 400/415
    (not an image). The image work runs outside any transaction (app.domain.uploads.create_style)."""
    content = clean_text(body.content, "The content", settings)
    descriptor = clean_text(body.descriptor, "The descriptor", settings)
    if body.base_model is not None and len(body.base_model) > MAX_NAME_CHARS:
        raise ApiError(422, f"base_model is {len(body.base_model)} characters long; the limit is {MAX_NAME_CHARS}.")
    model = check_base_model(body.base_model, settings)
    check_train_steps(body.steps, settings)
    # The style's defaults for its rounds (new_round reads them; the first round's adapter width `rank` goes into its plan).
    style_settings = body.model_dump(include={"steps", "seed", "learning_rate", "rank"}, exclude_none=True)
    return store_style(session, settings, user, image, {
        "content": content, "descriptor": descriptor, "base_model": model, "adapter_kind": body.adapter,
        "settings": style_settings})


def decode_image(data: bytes, settings: Settings) -> Any:
    """An uploaded image, checked by its content: 413 when larger than the upload limit, 400/415 otherwise."""
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"The image is larger than {settings.max_upload_bytes // (1024 * 1024)} MB.")
    try:
        return storage.decode_upload(data, settings.max_image_pixels)
    except storage.UploadError as exc:
        raise ApiError(exc.status, exc.detail) from exc


def delete_style(session: Session, settings: Settings, style: Style) -> None:
    """Remove a style, its rows and its files; 409 while one of its rounds is queued or running."""
    if (running := active_round(session, style.id)) is not None:
        raise ApiError(409, f"Round {running.number} of style {style.id} is {running.status}; cancel it first.")
    style_id = style.id
    session.delete(style)
    session.commit()
    storage.remove_tree(settings.storage_root, storage.style_dir(style_id))


def start_round(session: Session, settings: Settings, dispatcher: Dispatcher, style: Style,
                body: RoundCreate) -> Round:
    """Create the style's next round (new_round's rules) and send it to the workers. A `callback_url` is
    checked first (webhooks' allow-list) and kept on the row, not in the round's parameters."""
    callback_url = check_callback_url(body.callback_url, settings)
    reap_stale(session, settings, dispatcher)
    rnd = new_round(session, style, body.model_dump(exclude={"callback_url"}), settings)
    if callback_url is not None:
        rnd.callback_url = callback_url
        session.commit()  # before the worker can end the job
    dispatch_round(session, dispatcher, rnd)
    return rnd


def dispatch_round(session: Session, dispatcher: Dispatcher, rnd: Round) -> None:
    """Send a queued round to the workers; 503 (and the round failed) when the queue is not reachable,
    instead of a round left queued forever."""
    try:
        rnd.celery_task_id = dispatcher.train_round(rnd.id)
    except Exception as exc:  # noqa: BLE001  the broker is down
        rnd.status, rnd.error, rnd.finished_at = RoundStatus.failed.value, f"Could not queue the job: {exc}", utcnow()
        session.commit()
        raise ApiError(503, f"The job queue is not reachable ({exc}); is Redis running?") from exc
    session.commit()
    session.refresh(rnd)


def requeue_round(session: Session, settings: Settings, dispatcher: Dispatcher, rnd: Round) -> Round:
    """Retry a failed or cancelled round (retry_round's rules) and send it to the workers."""
    rnd = retry_round(session, rnd, settings)
    dispatch_round(session, dispatcher, rnd)
    return rnd


def create_generation(session: Session, settings: Settings, dispatcher: Dispatcher, user: User, style: Style,
                      body: GenerationCreate) -> Generation:
    """Queue a generation with a finished round of the style (its latest by default) and send it."""
    prompts = clean_prompts(body.prompts, settings)
    if len(prompts) * body.num_images > settings.max_generation_images:
        raise ApiError(422, f"{len(prompts)} prompts x {body.num_images} images is more than the "
                            f"{settings.max_generation_images} images one request may ask for.")
    if body.round_id is not None:
        rnd = owned(session, Round, body.round_id, user)
        if rnd.style_id != style.id:
            raise ApiError(404, f"Round {rnd.id} does not belong to style {style.id}.")
        if rnd.status != RoundStatus.succeeded.value:
            raise ApiError(409, f"Round {rnd.id} is {rnd.status}; generate with a finished round.")
    else:
        rnd = latest_adapter_round(style)
        if rnd is None:
            raise ApiError(409, f"Style {style.id} has no finished round yet; train one first "
                                f"(POST /api/v1/styles/{style.id}/rounds).")
    descriptor = style.descriptor if body.descriptor is None else \
        clean_text(body.descriptor, "descriptor", settings) if body.descriptor.strip() else ""
    callback_url = check_callback_url(body.callback_url, settings)
    check_job_quota(session, user.id, settings, generation=True)
    generation = Generation(style_id=style.id, round_id=rnd.id, user_id=user.id, status=RoundStatus.queued.value,
                            request=body.model_dump(exclude={"callback_url"}) | {"prompts": prompts,
                                                                                   "round_id": rnd.id,
                                                                                   "descriptor": descriptor},
                            callback_url=callback_url)
    session.add(generation)
    session.commit()
    try:
        generation.celery_task_id = dispatcher.generate(generation.id)
    except Exception as exc:  # noqa: BLE001  the broker is down
        generation.status, generation.error = RoundStatus.failed.value, f"Could not queue the job: {exc}"
        session.commit()
        raise ApiError(503, f"The job queue is not reachable ({exc}); is Redis running?") from exc
    session.commit()
    session.refresh(generation)
    return generation


def latest_adapter_round(style: Style) -> Round | None:
    """The style's latest finished round with an adapter: what generations and downloads use by default."""
    done = [r for r in style.rounds if r.status == RoundStatus.succeeded.value and r.adapter_path]
    return max(done, key=lambda r: r.number) if done else None


# ---- the rating path: a keystroke of a rater, so as few statements as it can be ------------------------------
# Identify the user (one statement, app/api/deps.py), check ownership with a join, upsert, read the answer
# back with its ratings and selection in one statement, one commit: 4 or 5 statements in all.

_OWNED_ROUND = (select(Candidate.round_id).join(Round, Round.id == Candidate.round_id)
                .join(Style, Style.id == Round.style_id)
                .where(Candidate.id == bindparam("candidate_id"), Style.user_id == bindparam("user_id")))
_WITH_FEEDBACK = (select(Candidate).where(Candidate.id == bindparam("candidate_id"))
                  .options(joinedload(Candidate.ratings).joinedload(Rating.user), joinedload(Candidate.selection))
                  .execution_options(populate_existing=True))


def owned_candidate_round(session: Session, candidate_id: int, user: User) -> int:
    """The round of a candidate the user owns (one statement, joined up to its style), else 404: the same
    answer as for an id that does not exist, so other people's ids leak nothing."""
    round_id = None
    if 1 <= candidate_id <= MAX_ID:
        round_id = session.scalar(_OWNED_ROUND, {"candidate_id": candidate_id, "user_id": user.id})
    if round_id is None:
        raise ApiError(404, f"Candidate {candidate_id} does not exist.")
    return round_id


def candidate_with_feedback(session: Session, candidate_id: int) -> Candidate:
    """A candidate with its ratings (and their users) and its selection, in one statement."""
    return session.scalars(_WITH_FEEDBACK, {"candidate_id": candidate_id}).unique().one()


def rate_owned(session: Session, candidate_id: int, user: User, value: int) -> Candidate:
    """Rate a candidate the user owns; returns it as stored, ratings included. Commits once."""
    owned_candidate_round(session, candidate_id, user)
    _upsert_rating(session, candidate_id, user.id, value)
    candidate = candidate_with_feedback(session, candidate_id)
    session.commit()
    return candidate


def select_owned(session: Session, candidate_id: int, user: User, selected: bool) -> Candidate:
    """Choose or un-choose a candidate the user owns; returns it as stored. Commits once."""
    round_id = owned_candidate_round(session, candidate_id, user)
    _write_selection(session, candidate_id, round_id, user.id, selected)
    candidate = candidate_with_feedback(session, candidate_id)
    session.commit()
    return candidate


def load_feedback(session: Session, rnd: Round) -> list[Candidate]:
    """A round's candidates with their ratings (and raters) and selections, in two statements whatever
    their number (the rating grid of 64 or 256 images would otherwise ask once per image)."""
    candidates = list(session.scalars(select(Candidate).where(Candidate.round_id == rnd.id).order_by(Candidate.id)
                                      .options(selectinload(Candidate.ratings).joinedload(Rating.user),
                                               joinedload(Candidate.selection))).unique())
    set_committed_value(rnd, "candidates", candidates)
    return candidates


# ---- limits: what one request may ask for, and how many jobs one user may have waiting -----------------------

RETRY_AFTER_SECONDS = 30  # Retry-After when no running job has an ETA (generations carry none)
CLIP_NOTE = "CLIP's text encoder reads only 77 tokens, about 300 characters, and cuts the rest"


def clean_text(value: str | None, field: str, settings: Settings) -> str:
    """One piece of user text (content, descriptor, a prompt), whitespace collapsed. 422 when it is empty,
    longer than CLIP reads (or than the engine's word limit, which would fail the job later on the worker),
    or holds control characters or lone surrogates (some databases cannot store them: a 500 otherwise)."""
    text = " ".join((value or "").split())
    if not text:
        raise ApiError(422, f"{field} is empty; describe it in a few words.")
    if len(text) > settings.max_prompt_chars:
        raise ApiError(422, f"{field} is {len(text)} characters long; the limit is {settings.max_prompt_chars} "
                            f"({CLIP_NOTE}).")
    if len(text.split()) > MAX_WORDS:
        raise ApiError(422, f"{field} has {len(text.split())} words; the limit is {MAX_WORDS} ({CLIP_NOTE}).")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise ApiError(422, f"{field} contains control characters; write plain text.")
    return text


def clean_prompts(values: list[str] | None, settings: Settings, field: str = "prompts") -> list[str]:
    """The prompts of one request: at least one, at most `max_prompts`, each checked by clean_text."""
    if not values:
        raise ApiError(422, f'{field} is empty; give at least one prompt, e.g. "a cat".')
    if len(values) > settings.max_prompts:
        raise ApiError(422, f"{field} has {len(values)} prompts; one request may have at most {settings.max_prompts}.")
    return [clean_text(value, f"Prompt {i + 1} ({field}[{i}])", settings) for i, value in enumerate(values)]


def check_train_steps(steps: int | None, settings: Settings) -> None:
    if steps is not None and steps > settings.max_train_steps:
        raise ApiError(422, f"{steps} training steps is more than the {settings.max_train_steps} allowed.")


def check_round_request(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """422 for a round that asks more than one request may (training steps, prompts, candidates), before
    anything is stored. Returns the body with its prompts cleaned."""
    body = dict(body)
    check_train_steps(body.get("steps"), settings)
    if body.get("prompts") is not None:
        body["prompts"] = clean_prompts(body["prompts"], settings)
        count = len(body["prompts"])
    else:
        count = body.get("candidate_prompts") or settings.candidate_prompts
        if body.get("candidate_prompts") and count > settings.max_prompts:
            raise ApiError(422, f"candidate_prompts is {count}; one request may have at most "
                                f"{settings.max_prompts} prompts.")
    per_prompt = body.get("candidates_per_prompt") or settings.candidates_per_prompt
    if count * per_prompt > settings.max_round_candidates:
        raise ApiError(422, f"{count} prompts x {per_prompt} candidates per prompt is {count * per_prompt} images; "
                            f"one round may draw at most {settings.max_round_candidates}.")
    return body


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def lock_user(session: Session, user_id: int | None) -> None:
    """Serialise one user's job requests: a fresh transaction that first locks the user's row, held until the
    caller commits. SQLite locks the whole database on the first write, so a no-op UPDATE takes its write lock
    before anything is read (a read first could see a count another request is about to change)."""
    session.commit()  # a fresh transaction: the lock comes before the reads that count
    if user_id is None:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == user_id).with_for_update())
    else:
        session.execute(update(User).where(User.id == user_id).values(id=User.id)
                        .execution_options(synchronize_session=False))


def check_job_quota(session: Session, user_id: int | None, settings: Settings, generation: bool = False) -> None:
    """429 when the user already has `max_active_jobs` rounds and generations queued or running (all styles
    together), or, before a generation, `max_pending_generations` generations. The message and the
    Retry-After header say when to try again: the soonest expected end of a running job (a round's ETA;
    RETRY_AFTER_SECONDS for a generation, which has none), else RETRY_AFTER_SECONDS.

    Atomic: the count runs after lock_user() has locked the user's row (PostgreSQL: SELECT ... FOR UPDATE;
    SQLite: the database's write lock), and the caller inserts the job and commits in the same transaction,
    so concurrent requests of one user are counted one after another and never overshoot. Also 413 when
    the user's stored files are over STYLEDROP_MAX_STORED_MB_PER_USER (a job stores more)."""
    check_storage_quota(session, settings, user_id)  # walks the user's files: before the lock
    lock_user(session, user_id)
    rounds = session.scalars(select(Round).join(Style).where(Style.user_id == user_id,
                                                             Round.status.in_(ACTIVE))).all()
    generations = session.scalars(select(Generation.status).where(Generation.user_id == user_id,
                                                                  Generation.status.in_(ACTIVE))).all()
    running, total = RoundStatus.running.value, len(rounds) + len(generations)
    if total >= settings.max_active_jobs:
        what = (f"{_plural(total, 'job')} queued or running ({_plural(len(rounds), 'round')}, "
                f"{_plural(len(generations), 'generation')}); the limit is {settings.max_active_jobs} per user")
        ends = [r.eta_seconds for r in rounds
                if r.status == running and r.eta_seconds is not None and math.isfinite(r.eta_seconds)]
    elif generation and len(generations) >= settings.max_pending_generations:
        what = (f"{_plural(len(generations), 'generation job')} queued or running; the limit is "
                f"{settings.max_pending_generations} per user")
        ends = []
    else:
        return
    ends += [RETRY_AFTER_SECONDS for status in generations if status == running]
    seconds = max(5, math.ceil(min(ends))) if ends else RETRY_AFTER_SECONDS
    when = f"{seconds} s" if seconds < 120 else f"{round(seconds / 60)} min"
    raise ApiError(429, f"You have {what}. Try again in about {when}, when one has finished.",
                   headers={"Retry-After": str(seconds)})
