"""The REST API, /api/v1. JSON in and out; errors are `{"detail": "message"}` with the right status."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import select

from .. import services, storage, webhooks
from ..errors import ApiError
from ..idempotency import IdempotencyDep
from ..models import Candidate, Generation, Round, RoundStatus, Style, utcnow
from ..paging import PageDep
from ..schemas import (
    AutoSelectOut,
    CandidateOut,
    CandidatePage,
    GenerationCreate,
    GenerationOut,
    GenerationPage,
    RatingIn,
    RoundCreate,
    RoundOut,
    RoundPage,
    SelectedIn,
    StyleOut,
    StylePage,
    WebhookSecretOut,
    refusals,
)
from ..services import (
    active_round,
    auto_select,
    cancel_round,
    check_job_quota,
    check_train_steps,
    clean_prompts,
    clean_text,
    new_round,
    reap_stale,
    retry_round,
)
from .deps import DispatcherDep, SessionDep, SettingsDep, UserDep
from .openapi import operation_id
from .views import (
    candidate_out,
    generation_out,
    get_candidate,
    get_generation,
    get_round,
    get_style,
    latest_adapter_round,
    round_out,
    style_out,
)

router = APIRouter(prefix="/api/v1", generate_unique_id_function=operation_id)


MAX_NAME_CHARS = 500  # a base model id or folder: what its database column holds


def _file(settings, relative: str | None, what: str, media_type: str) -> FileResponse:
    if not relative:
        raise ApiError(404, f"{what} does not exist yet.")
    path = storage.resolve(settings.storage_root, relative)
    if not path.is_file():
        raise ApiError(404, f"{what} is missing from the storage.")
    return FileResponse(path, media_type=media_type, filename=path.name)


@router.get("/health", tags=["meta"])
def health() -> dict[str, str]:
    return {"status": "ok"}


# ---- styles -------------------------------------------------------------------------------------------------

@router.post("/styles", response_model=StyleOut, status_code=201, tags=["styles"],
             responses=refusals(400, 413, 415, 422))
def create_style(session: SessionDep, settings: SettingsDep, user: UserDep, idempotency: IdempotencyDep,
                 image: UploadFile = File(..., description="the style reference (PNG, JPEG or WebP)"),
                 content: str = Form(..., description='what the reference shows, e.g. "a house"'),
                 descriptor: str = Form(..., description='the style in words, e.g. "watercolor painting"'),
                 base_model: str | None = Form(None, description="hub id, local folder or preset"),
                 adapter: Literal["styledrop", "lora"] = Form("styledrop"),
                 steps: int | None = Form(None, ge=1, description="training steps per round"),
                 seed: int | None = Form(None, ge=0)) -> StyleOut:
    """Upload a reference image and describe it. Training starts with POST /styles/{id}/rounds."""
    data = image.file.read(settings.max_upload_bytes + 1)
    fields = {"content": content, "descriptor": descriptor, "base_model": base_model, "adapter": adapter,
              "steps": steps, "seed": seed}
    with idempotency.guard(user.id, "styles-create_style", fields, {"image": data}) as replay:
        if replay is not None:
            return replay
        return idempotency.done(201, new_style(session, settings, user, data, **fields))


def new_style(session, settings, user, data: bytes, content: str, descriptor: str, base_model: str | None,
                  adapter: str, steps: int | None, seed: int | None) -> StyleOut:
    content = clean_text(content, "The content", settings)
    descriptor = clean_text(descriptor, "The descriptor", settings)
    if base_model is not None and len(base_model) > MAX_NAME_CHARS:
        raise ApiError(422, f"base_model is {len(base_model)} characters long; the limit is {MAX_NAME_CHARS}.")
    check_train_steps(steps, settings)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"The image is larger than {settings.max_upload_bytes // (1024 * 1024)} MB.")
    try:
        picture = storage.decode_upload(data, settings.max_image_pixels)
    except storage.UploadError as exc:
        raise ApiError(exc.status, exc.detail) from exc
    style_settings = {k: v for k, v in {"steps": steps, "seed": seed}.items() if v is not None}
    style = Style(user_id=user.id, content=content, descriptor=descriptor,
                  base_model=(base_model or "").strip() or settings.model, adapter_kind=adapter,
                  settings=style_settings)
    session.add(style)
    session.flush()
    style.reference_path = storage.reference_path(style.id)
    storage.save_png(settings.storage_root, style.reference_path, picture)
    session.commit()
    session.refresh(style)
    return style_out(style)


@router.get("/styles", response_model=StylePage, tags=["styles"])
def list_styles(session: SessionDep, settings: SettingsDep, user: UserDep, page: PageDep) -> StylePage:
    """Your styles, oldest first, a page at a time (`next`); with public styles on (an admin setting),
    everyone's, yours marked `editable`."""
    query = select(Style)
    if not settings.public_styles:
        query = query.where(Style.user_id == user.id)
    rows, after = page.fetch(session, query, Style.id)
    return StylePage(items=[style_out(s, user) for s in rows], next=after)


@router.get("/styles/{style_id}", response_model=StyleOut, tags=["styles"])
def read_style(style_id: int, session: SessionDep, settings: SettingsDep, user: UserDep) -> StyleOut:
    return style_out(get_style(session, style_id, user, settings.public_styles), user)


@router.delete("/styles/{style_id}", status_code=204, tags=["styles"])
def delete_style(style_id: int, session: SessionDep, settings: SettingsDep, user: UserDep) -> Response:
    style = get_style(session, style_id, user)
    if (running := active_round(session, style.id)) is not None:
        raise ApiError(409, f"Round {running.number} of style {style.id} is {running.status}; cancel it first.")
    session.delete(style)
    session.commit()
    storage.remove_tree(settings.storage_root, storage.style_dir(style_id))
    return Response(status_code=204)


@router.get("/styles/{style_id}/reference", response_class=FileResponse, tags=["styles"])
def style_reference(style_id: int, session: SessionDep, settings: SettingsDep, user: UserDep) -> FileResponse:
    style = get_style(session, style_id, user, settings.public_styles)
    return _file(settings, style.reference_path, f"The reference of style {style_id}", "image/png")


@router.get("/styles/{style_id}/adapter", response_class=FileResponse, tags=["styles"])
def style_adapter(style_id: int, session: SessionDep, settings: SettingsDep, user: UserDep) -> FileResponse:
    """The latest finished round's adapter.safetensors (loads with `styledrop generate`)."""
    style = get_style(session, style_id, user, settings.public_styles)
    rnd = latest_adapter_round(style)
    if rnd is None:
        raise ApiError(404, f"Style {style_id} has no finished round yet, so no adapter to download.")
    return _file(settings, rnd.adapter_path, f"The adapter of round {rnd.id}", "application/octet-stream")


# ---- rounds -------------------------------------------------------------------------------------------------

@router.post("/styles/{style_id}/rounds", response_model=RoundOut, status_code=201, tags=["rounds"],
             responses=refusals(404, 409, 422, 429))
def start_round(style_id: int, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep,
                user: UserDep, idempotency: IdempotencyDep, body: RoundCreate | None = None) -> RoundOut:
    """Start round 1, or the next round from the selection of the latest finished round
    (`feedback: "clip"` lets CLIP select first). 409 while another round of the style is queued or running;
    429 (with Retry-After) while you have STYLEDROP_MAX_ACTIVE_JOBS jobs queued or running."""
    body = body or RoundCreate()
    with idempotency.guard(user.id, f"rounds-start_round/{style_id}", body.model_dump(mode="json")) as replay:
        if replay is not None:
            return replay
        style = get_style(session, style_id, user)
        callback_url = webhooks.check_callback_url(body.callback_url, settings)
        reap_stale(session, settings, dispatcher)
        rnd = new_round(session, style, body.model_dump(exclude={"callback_url"}), settings)
        rnd.callback_url = callback_url
        _dispatch_round(session, dispatcher, rnd)
        return idempotency.done(201, round_out(rnd))


def _dispatch_round(session, dispatcher, rnd: Round) -> None:
    try:
        rnd.celery_task_id = dispatcher.train_round(rnd.id)
    except Exception as exc:  # broker down: say so instead of leaving a round queued forever
        rnd.status, rnd.error, rnd.finished_at = RoundStatus.failed.value, f"Could not queue the job: {exc}", utcnow()
        session.commit()
        raise ApiError(503, f"The job queue is not reachable ({exc}); is Redis running?") from exc
    session.commit()
    session.refresh(rnd)


@router.get("/styles/{style_id}/rounds", response_model=RoundPage, tags=["rounds"])
def list_rounds(style_id: int, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep,
                user: UserDep, page: PageDep) -> RoundPage:
    """The style's rounds, first round first, a page at a time (`next`)."""
    style = get_style(session, style_id, user, settings.public_styles)
    reap_stale(session, settings, dispatcher)
    rows, after = page.fetch(session, select(Round).where(Round.style_id == style.id), Round.id)
    return RoundPage(items=[round_out(r) for r in rows], next=after)


@router.get("/rounds/{round_id}", response_model=RoundOut, tags=["rounds"])
def read_round(round_id: int, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep,
               user: UserDep) -> RoundOut:
    """Status, step, total steps, loss, ETA, error. A running round whose worker stopped sending heartbeats
    goes back to the queue here and is sent again (it resumes from its checkpoint); one that no worker took
    up again in time is marked failed (with a retry action)."""
    rnd = get_round(session, round_id, user, settings.public_styles)
    if rnd.status in (RoundStatus.queued.value, RoundStatus.running.value):
        reap_stale(session, settings, dispatcher, round_id=rnd.id)
        session.refresh(rnd)
    return round_out(rnd)


@router.post("/rounds/{round_id}/cancel", response_model=RoundOut, status_code=202, tags=["rounds"],
             name="cancel_round")
def cancel(round_id: int, session: SessionDep, dispatcher: DispatcherDep, user: UserDep) -> RoundOut:
    """A queued round is cancelled at once; a running one stops within seconds (its checkpoint is kept,
    so retry resumes)."""
    rnd = cancel_round(session, get_round(session, round_id, user))
    if rnd.status == RoundStatus.cancelled.value:  # it ended here (a running one ends in the worker)
        webhooks.job_ended(session, dispatcher, "round", rnd.id)
    return round_out(rnd)


@router.post("/rounds/{round_id}/retry", response_model=RoundOut, status_code=202, tags=["rounds"],
             responses=refusals(404, 409, 429), name="retry_round")
def retry(round_id: int, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep,
          user: UserDep) -> RoundOut:
    """Queue a failed or cancelled round again; training resumes from its last checkpoint."""
    rnd = retry_round(session, get_round(session, round_id, user), settings)
    _dispatch_round(session, dispatcher, rnd)
    return round_out(rnd)


@router.get("/rounds/{round_id}/adapter", response_class=FileResponse, tags=["rounds"])
def round_adapter(round_id: int, session: SessionDep, settings: SettingsDep, user: UserDep) -> FileResponse:
    rnd = get_round(session, round_id, user, settings.public_styles)
    if rnd.status != RoundStatus.succeeded.value:
        raise ApiError(404, f"Round {round_id} is {rnd.status}; its adapter exists once it has succeeded.")
    return _file(settings, rnd.adapter_path, f"The adapter of round {round_id}", "application/octet-stream")


@router.get("/rounds/{round_id}/candidates", response_model=CandidatePage, tags=["candidates"])
def list_candidates(round_id: int, session: SessionDep, settings: SettingsDep, user: UserDep,
                    page: PageDep) -> CandidatePage:
    """The round's candidates in the order they were made, a page at a time (`next`)."""
    rnd = get_round(session, round_id, user, settings.public_styles)
    rows, after = page.fetch(session, select(Candidate).where(Candidate.round_id == rnd.id), Candidate.id)
    return CandidatePage(items=[candidate_out(c, user) for c in rows], next=after)


@router.post("/rounds/{round_id}/auto-select", response_model=AutoSelectOut, tags=["candidates"])
def auto_select_round(round_id: int, session: SessionDep, user: UserDep) -> AutoSelectOut:
    """CLIP feedback: replace the round's selection with the best candidate per prompt by CLIP score."""
    rnd = get_round(session, round_id, user)
    chosen, method = auto_select(session, rnd)
    return AutoSelectOut(round_id=rnd.id, method=method, selected=[candidate_out(c, user) for c in chosen])


# ---- candidates ---------------------------------------------------------------------------------------------

@router.get("/candidates/{candidate_id}", response_model=CandidateOut, tags=["candidates"])
def read_candidate(candidate_id: int, session: SessionDep, settings: SettingsDep, user: UserDep) -> CandidateOut:
    return candidate_out(get_candidate(session, candidate_id, user, settings.public_styles), user)


@router.get("/candidates/{candidate_id}/image", response_class=FileResponse, tags=["candidates"])
def candidate_image(candidate_id: int, session: SessionDep, settings: SettingsDep, user: UserDep) -> FileResponse:
    candidate = get_candidate(session, candidate_id, user, settings.public_styles)
    return _file(settings, candidate.image_path, f"The image of candidate {candidate_id}", "image/png")


@router.put("/candidates/{candidate_id}/rating", response_model=CandidateOut, tags=["candidates"],
            name="rate_candidate")
def rate(candidate_id: int, body: RatingIn, session: SessionDep, user: UserDep) -> CandidateOut:
    """Your rating of a candidate: -1/+1 (thumbs) or 1..5 (stars); a second PUT replaces it."""
    candidate = get_candidate(session, candidate_id, user)
    services.rate_candidate(session, candidate, user, body.value)
    session.refresh(candidate)
    return candidate_out(candidate, user)


@router.put("/candidates/{candidate_id}/selected", response_model=CandidateOut, tags=["candidates"],
            name="select_candidate")
def set_selected(candidate_id: int, body: SelectedIn, session: SessionDep, user: UserDep) -> CandidateOut:
    """Choose (or un-choose) a candidate for the next round's training set (human feedback)."""
    candidate = get_candidate(session, candidate_id, user)
    services.select_candidate(session, candidate, user, body.selected)
    session.refresh(candidate)
    return candidate_out(candidate, user)


# ---- generations --------------------------------------------------------------------------------------------

@router.post("/styles/{style_id}/generations", response_model=GenerationOut, status_code=202, tags=["generations"],
             responses=refusals(404, 409, 422, 429))
def create_generation(style_id: int, body: GenerationCreate, session: SessionDep, settings: SettingsDep,
                      dispatcher: DispatcherDep, user: UserDep, idempotency: IdempotencyDep) -> GenerationOut:
    """Generate `num_images` images per prompt with the style (its latest finished round by default).
    429 (with Retry-After) while you have too many jobs queued or running."""
    with idempotency.guard(user.id, f"generations-create_generation/{style_id}",
                           body.model_dump(mode="json")) as replay:
        if replay is not None:
            return replay
        return idempotency.done(202, new_generation(style_id, body, session, settings, dispatcher, user))


def new_generation(style_id: int, body: GenerationCreate, session, settings, dispatcher,
                       user) -> GenerationOut:
    style = get_style(session, style_id, user)
    prompts = clean_prompts(body.prompts, settings)
    if len(prompts) * body.num_images > settings.max_generation_images:
        raise ApiError(422, f"{len(prompts)} prompts x {body.num_images} images is more than the "
                            f"{settings.max_generation_images} images one request may ask for.")
    if body.round_id is not None:
        rnd = get_round(session, body.round_id, user)
        if rnd.style_id != style.id:
            raise ApiError(404, f"Round {rnd.id} does not belong to style {style.id}.")
        if rnd.status != RoundStatus.succeeded.value:
            raise ApiError(409, f"Round {rnd.id} is {rnd.status}; generate with a finished round.")
    else:
        rnd = latest_adapter_round(style)
        if rnd is None:
            raise ApiError(409, f"Style {style_id} has no finished round yet; train one first "
                                f"(POST /api/v1/styles/{style_id}/rounds).")
    callback_url = webhooks.check_callback_url(body.callback_url, settings)
    check_job_quota(session, user.id, settings, generation=True)
    generation = Generation(style_id=style.id, round_id=rnd.id, user_id=user.id, status=RoundStatus.queued.value,
                            request=body.model_dump(exclude={"callback_url"}) | {"prompts": prompts,
                                                                                   "round_id": rnd.id},
                            callback_url=callback_url)
    session.add(generation)
    session.commit()
    try:
        generation.celery_task_id = dispatcher.generate(generation.id)
    except Exception as exc:
        generation.status, generation.error = RoundStatus.failed.value, f"Could not queue the job: {exc}"
        session.commit()
        raise ApiError(503, f"The job queue is not reachable ({exc}); is Redis running?") from exc
    session.commit()
    session.refresh(generation)
    return generation_out(generation)


@router.get("/styles/{style_id}/generations", response_model=GenerationPage, tags=["generations"])
def list_generations(style_id: int, session: SessionDep, user: UserDep, page: PageDep) -> GenerationPage:
    """The style's generations, oldest first, a page at a time (`next`)."""
    style = get_style(session, style_id, user)
    rows, after = page.fetch(session, select(Generation).where(Generation.style_id == style.id), Generation.id)
    return GenerationPage(items=[generation_out(g) for g in rows], next=after)


@router.get("/generations/{generation_id}", response_model=GenerationOut, tags=["generations"])
def read_generation(generation_id: int, session: SessionDep, user: UserDep) -> GenerationOut:
    return generation_out(get_generation(session, generation_id, user))


@router.get("/generations/{generation_id}/images/{index}", response_class=FileResponse, tags=["generations"])
def generation_image(generation_id: int, index: int, session: SessionDep, settings: SettingsDep,
                     user: UserDep) -> FileResponse:
    generation = get_generation(session, generation_id, user)
    paths = generation.image_paths or []
    if not 0 <= index < len(paths):
        raise ApiError(404, f"Generation {generation_id} has no image {index} (it has {len(paths)}).")
    return _file(settings, paths[index], f"Image {index} of generation {generation_id}", "image/png")


# ---- webhooks -----------------------------------------------------------------------------------------------

@router.get("/webhooks/secret", response_model=WebhookSecretOut, tags=["webhooks"])
def read_webhook_secret(session: SessionDep, user: UserDep) -> WebhookSecretOut:
    """Your webhook secret: check `X-StyleDrop-Signature` = "sha256=" + hex HMAC-SHA256(secret,
    X-StyleDrop-Timestamp + "." + raw body) on every event, and refuse old timestamps."""
    return WebhookSecretOut(secret=webhooks.secret_for(session, user))


@router.post("/webhooks/secret", response_model=WebhookSecretOut, tags=["webhooks"])
def rotate_webhook_secret(session: SessionDep, user: UserDep) -> WebhookSecretOut:
    """A new webhook secret; deliveries from now on are signed with it."""
    return WebhookSecretOut(secret=webhooks.rotate_secret(session, user))
