"""The REST API, /api/v1. JSON in and out; errors are `{"detail": "message"}` with the right status.

A thin HTTP layer: the rules and writes are the domain's (app/domain/), who may touch what comes in as a dependency
(app/api/access.py), and rows become JSON in app/domain/resources.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..domain import downloads, examples, feedback, generations, rounds, styles, webhooks, worlds
from ..domain.feedback import auto_select
from ..domain.lifecycle import JobStatus
from ..domain.models import Candidate, Generation, Round, Style, User
from ..domain.queries import latest_adapter_round
from ..domain.resources import candidate_out, generation_out, round_out, style_out
from ..domain.schemas import (
    AutoSelectIn,
    AutoSelectOut,
    CandidateOut,
    CandidatePage,
    ExampleOut,
    GenerationCreate,
    GenerationOut,
    GenerationPage,
    RatingIn,
    RoundCreate,
    RoundOut,
    RoundPage,
    SelectedIn,
    StyleCreate,
    StyleOut,
    StylePage,
    StyleUpdate,
    WebhookSecretOut,
    WorldOut,
    field_bounds,
    refusals,
)
from ..errors import ApiError
from ..infra import storage
from ..settings import Settings
from .access import (
    OwnedRound,
    OwnedStyle,
    ReadableCandidate,
    ReadableGeneration,
    ReadableRound,
    ReadableStyle,
)
from .deps import DispatcherDep, JobDispatcherDep, SessionDep, SettingsDep, UserDep, authorize, identify_request
from .idempotency import IdempotencyDep
from .openapi import operation_id
from .paging import PageDep

router = APIRouter(prefix="/api/v1", generate_unique_id_function=operation_id)


def _style_field(name: str, default: Any = None) -> Any:
    """A form parameter of POST /styles documented (OpenAPI) with StyleCreate's description and bounds."""
    info = StyleCreate.model_fields[name]
    return Form(default, description=info.description, **field_bounds(StyleCreate, name))


def _file(settings, relative: str | None, what: str, media_type: str, filename: str | None = None) -> FileResponse:
    """A stored file, downloaded as `filename` (downloads.py's names: style, round or generation, prompt, seed)."""
    if not relative:
        raise ApiError(404, f"{what} does not exist yet.")
    path = storage.resolve(settings.storage_root, relative)
    if not path.is_file():
        raise ApiError(404, f"{what} is missing from the storage.")
    return FileResponse(path, media_type=media_type, filename=filename or path.name)


@router.get("/health", tags=["meta"], responses={503: {"description": "degraded: a worker `styledrop serve` "
                                                                        "runs is down (the detail says which)"}})
def health(request: Request, response: Response) -> dict[str, str]:
    """"ok"; or, with 503, "degraded" while a worker of the embedded run (`styledrop serve`) is resting after
    dying repeatedly: the pages and the API answer, but new jobs are refused (or webhooks wait)."""
    workers = request.app.state.workers
    problems = workers.problems() if workers is not None else []
    if problems:
        response.status_code = 503
        return {"status": "degraded", "detail": " ".join(problems)}
    return {"status": "ok"}


# ---- examples and worlds ------------------------------------------------------------------------------------

@router.get("/examples", response_model=list[ExampleOut], tags=["styles"])
def list_examples(settings: SettingsDep, user: UserDep, base_model: str | None = None) -> list[ExampleOut]:
    """Example references a new style may start from, those that suit `base_model` (default: the server's):
    the world's held-out style references for a world (`shapes`), else the quick start's picture."""
    return [ExampleOut(**e.out()) for e in examples.examples_for(settings, base_model)]


@router.get("/examples/{example_id}/image", response_class=FileResponse, tags=["styles"], responses=refusals(404))
def example_image(example_id: str, settings: SettingsDep, user: UserDep) -> FileResponse:
    """An example's picture (one of those GET /examples lists)."""
    try:
        example = examples.find(settings, example_id)
    except ApiError:
        raise ApiError(404, "No such example.") from None
    return FileResponse(settings.examples_dir / example.file, media_type="image/png")


@router.get("/worlds/{name}", response_model=WorldOut, tags=["worlds"], responses=refusals(404))
def get_world(name: str, settings: SettingsDep, user: UserDep) -> WorldOut:
    """Whether a world base model (`shapes`) is built on this server, and where its build stands."""
    return WorldOut(**worlds.world_status(worlds.offered_world(name, settings), settings))


@router.post("/worlds/{name}/build", response_model=WorldOut, status_code=202, tags=["worlds"],
             responses=refusals(404, 503))
def build_world(name: str, settings: SettingsDep, user: UserDep, dispatcher: JobDispatcherDep) -> WorldOut:
    """Build a world base model on this server (a worker job; about `build_minutes` on one CPU core), or go on
    with a build that stopped. One server-wide build: while one is queued or running, this answers it (and
    queues nothing); a built world answers `built`. Any signed-in user may start it."""
    return WorldOut(**worlds.start_build(settings, dispatcher, worlds.offered_world(name, settings)))


# ---- styles -------------------------------------------------------------------------------------------------

@router.post("/styles", response_model=StyleOut, status_code=201, tags=["styles"],
             responses=refusals(400, 409, 413, 415, 422, 429))
def create_style(session: SessionDep, settings: SettingsDep, user: UserDep, idempotency: IdempotencyDep,
                 image: UploadFile = File(..., description="the style reference (PNG, JPEG or WebP)"),
                 more_images: list[UploadFile] = File(default=[], description="more reference images of the same "
                                                      "style (at most STYLEDROP_MAX_REFERENCES in all); every "
                                                      "round trains on all of them"),
                 content: str = _style_field("content", ...),
                 contents: list[str] = Form(default=[], description=StyleCreate.model_fields["contents"].description),
                 descriptor: str = _style_field("descriptor", ...),
                 name: str | None = _style_field("name"),
                 base_model: str | None = _style_field("base_model"),
                 adapter: Literal["styledrop", "lora"] = _style_field("adapter", "styledrop"),
                 steps: int | None = _style_field("steps"),
                 learning_rate: float | None = _style_field("learning_rate"),
                 rank: int | None = _style_field("rank"),
                 seed: int | None = _style_field("seed"),
                 sample_every: int | None = _style_field("sample_every"),
                 sample_prompts: list[str] | None = _style_field("sample_prompts")) -> StyleOut:
    """Upload a reference image and describe it. Training starts with POST /styles/{id}/rounds.
    The fields are checked by the StyleCreate schema, as the new-style page's form is."""
    try:
        body = StyleCreate(content=content, contents=contents or None, descriptor=descriptor, name=name,
                           base_model=base_model, adapter=adapter, steps=steps, learning_rate=learning_rate,
                           rank=rank, seed=seed, sample_every=sample_every, sample_prompts=sample_prompts)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    data = [f.file.read(settings.max_upload_bytes + 1) for f in (image, *more_images)]  # before the guard:
    files = {f"image-{i}": d for i, d in enumerate(data)}  # their hashes are part of the request
    with idempotency.guard(user.id, "create_style", body.model_dump(mode="json"), files) as replay:
        if replay is not None:
            return replay
        return idempotency.done(201, style_out(styles.create_style(session, settings, user, body, data)))


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
def read_style(style: ReadableStyle, user: UserDep) -> StyleOut:
    return style_out(style, user)


@router.patch("/styles/{style_id}", response_model=StyleOut, tags=["styles"], responses=refusals(404, 409, 422))
def update_style(style: OwnedStyle, body: StyleUpdate, session: SessionDep, settings: SettingsDep,
                 user: UserDep) -> StyleOut:
    """Rename the style (`name`; null or blank: its descriptor names it) and/or change its `descriptor` for the
    rounds started from now on. All or nothing: 409 while a round is queued or running and the descriptor
    would change (the name alone may change any time)."""
    return style_out(styles.update_style(session, settings, style, body.model_dump(exclude_unset=True)), user)


@router.delete("/styles/{style_id}", status_code=204, tags=["styles"])
def delete_style(style: OwnedStyle, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete the style with its rounds, candidates, generations, evaluations and files; its jobs, queued or
    running, stop with it. Its id is never given to another style."""
    styles.delete_style(session, settings, style)
    return Response(status_code=204)


@router.get("/styles/{style_id}/reference", response_class=FileResponse, tags=["styles"])
def style_reference(style: ReadableStyle, settings: SettingsDep) -> FileResponse:
    return _file(settings, style.reference_path, f"The reference of style {style.id}",
                 storage.media_type(style.reference_path))


@router.get("/styles/{style_id}/references/{index}", response_class=FileResponse, tags=["styles"])
def style_reference_at(style: ReadableStyle, index: int, settings: SettingsDep) -> FileResponse:
    """Reference image `index` (0 is the first, the one /reference gives)."""
    paths = style.reference_paths
    if not 0 <= index < len(paths):
        raise ApiError(404, f"Style {style.id} has no reference {index} (it has {len(paths)}).")
    return _file(settings, paths[index], f"Reference {index} of style {style.id}", storage.media_type(paths[index]))


@router.get("/styles/{style_id}/adapter", response_class=FileResponse, tags=["styles"])
def style_adapter(style: ReadableStyle, settings: SettingsDep) -> FileResponse:
    """The latest finished round's adapter.safetensors (loads with `styledrop generate`)."""
    rnd = latest_adapter_round(style)
    if rnd is None:
        raise ApiError(404, f"Style {style.id} has no finished round yet, so no adapter to download.")
    return _file(settings, rnd.adapter_path, f"The adapter of round {rnd.id}", "application/octet-stream",
                 downloads.adapter_name(rnd))


# ---- rounds -------------------------------------------------------------------------------------------------

@router.post("/styles/{style_id}/rounds", response_model=RoundOut, status_code=201, tags=["rounds"],
             responses=refusals(404, 409, 422, 429, 503))
def start_round(style: OwnedStyle, session: SessionDep, settings: SettingsDep, dispatcher: JobDispatcherDep,
                user: UserDep, idempotency: IdempotencyDep, body: RoundCreate | None = None) -> RoundOut:
    """Start round 1, or the next round from the selection of the latest finished round
    (`feedback: "clip"` lets CLIP select first). 409 while another round of the style is queued or running;
    429 (with Retry-After) while you have STYLEDROP_MAX_ACTIVE_JOBS jobs queued or running."""
    body = body or RoundCreate()
    with idempotency.guard(user.id, f"start_round/{style.id}", body.model_dump(mode="json")) as replay:
        if replay is not None:
            return replay
        return idempotency.done(201, round_out(rounds.start_round(session, settings, dispatcher, style, body)))


@router.get("/styles/{style_id}/rounds", response_model=RoundPage, tags=["rounds"])
def list_rounds(style: ReadableStyle, session: SessionDep, page: PageDep) -> RoundPage:
    """The style's rounds, first round first, a page at a time (`next`)."""
    rows, after = page.fetch(session, select(Round).where(Round.style_id == style.id), Round.id)
    return RoundPage(items=[round_out(r) for r in rows], next=after)


@router.get("/rounds/{round_id}", response_model=RoundOut, tags=["rounds"])
def read_round(rnd: ReadableRound) -> RoundOut:
    """Status, step, total steps, loss, ETA, error. A running round whose worker stopped sending heartbeats
    goes back to the queue by itself and resumes from its checkpoint (the reaper, every minute); one that no
    worker takes up again in time ends failed, with a retry action."""
    return round_out(rnd)


@router.post("/rounds/{round_id}/cancel", response_model=RoundOut, status_code=202, tags=["rounds"])
def cancel_round(rnd: OwnedRound, session: SessionDep, dispatcher: DispatcherDep) -> RoundOut:
    """A queued round is cancelled at once; a running one stops within seconds (its checkpoint is kept,
    so retry resumes)."""
    return round_out(rounds.cancel_round(session, dispatcher, rnd))


@router.post("/rounds/{round_id}/retry", response_model=RoundOut, status_code=202, tags=["rounds"],
             responses=refusals(404, 409, 429, 503))
def retry_round(rnd: OwnedRound, session: SessionDep, settings: SettingsDep,
                dispatcher: JobDispatcherDep) -> RoundOut:
    """Queue a failed or cancelled round again; training resumes from its last checkpoint."""
    return round_out(rounds.retry_round(session, settings, dispatcher, rnd))


@router.get("/rounds/{round_id}/adapter", response_class=FileResponse, tags=["rounds"])
def round_adapter(rnd: ReadableRound, settings: SettingsDep) -> FileResponse:
    if rnd.status != JobStatus.succeeded.value:
        raise ApiError(404, f"Round {rnd.id} is {rnd.status}; its adapter exists once it has succeeded.")
    return _file(settings, rnd.adapter_path, f"The adapter of round {rnd.id}", "application/octet-stream",
                 downloads.adapter_name(rnd))


@router.get("/rounds/{round_id}/samples/{index}", response_class=FileResponse, tags=["rounds"])
def round_training_sample(rnd: ReadableRound, index: int, settings: SettingsDep) -> FileResponse:
    """Sample `index` of the round's `training_samples`: an image drawn while it trained."""
    stored = rnd.training_samples or []
    if not 0 <= index < len(stored):
        raise ApiError(404, f"Round {rnd.id} has no training sample {index} (it has {len(stored)}).")
    return _file(settings, stored[index].get("path"), f"Training sample {index} of round {rnd.id}", "image/png")


@router.get("/rounds/{round_id}/candidates", response_model=CandidatePage, tags=["candidates"])
def list_candidates(rnd: ReadableRound, session: SessionDep, user: UserDep, page: PageDep) -> CandidatePage:
    """The round's candidates in the order they were made, a page at a time (`next`)."""
    rows, after = page.fetch(session, select(Candidate).where(Candidate.round_id == rnd.id), Candidate.id)
    return CandidatePage(items=[candidate_out(c, user) for c in rows], next=after)


@router.post("/rounds/{round_id}/auto-select", response_model=AutoSelectOut, tags=["candidates"])
def auto_select_round(rnd: OwnedRound, session: SessionDep, settings: SettingsDep, user: UserDep,
                      body: AutoSelectIn | None = None) -> AutoSelectOut:
    """CLIP feedback: replace the round's selection with what a named rule picks (default STYLEDROP_CLIP_RULE);
    each selected candidate records the rule (`selection_rule`)."""
    body = body or AutoSelectIn()
    rule = body.rule or settings.clip_rule
    chosen, method = auto_select(session, rnd, rule, body.top_k, body.seed)
    return AutoSelectOut(round_id=rnd.id, rule=rule, method=method, selected=[candidate_out(c, user) for c in chosen])


# ---- candidates ---------------------------------------------------------------------------------------------

@router.get("/candidates/{candidate_id}", response_model=CandidateOut, tags=["candidates"])
def read_candidate(candidate: ReadableCandidate, user: UserDep) -> CandidateOut:
    return candidate_out(candidate, user)


@router.get("/candidates/{candidate_id}/image", response_class=FileResponse, tags=["candidates"])
def candidate_image(candidate: ReadableCandidate, settings: SettingsDep) -> FileResponse:
    return _file(settings, candidate.image_path, f"The image of candidate {candidate.id}", "image/png",
                 downloads.candidate_name(candidate))


# A rating is a rater's keystroke: one thread hop. The endpoints are `async` and send all of their
# database work, identification included, to the thread pool in one call (a sync endpoint would cost a
# second hop for FastAPI's response validation); 4-5 SQL statements and one commit (app/domain/feedback.py).

def _as_user(request: Request, settings: Settings, change: Callable[[Session, User], Candidate]) -> CandidateOut:
    with request.app.state.sessions() as session:
        user = authorize(request, identify_request(request, session, settings))
        return candidate_out(change(session, user), user)


@router.put("/candidates/{candidate_id}/rating", response_model=CandidateOut, tags=["candidates"])
async def rate_candidate(candidate_id: int, body: RatingIn, request: Request, settings: SettingsDep) -> CandidateOut:
    """Your rating of a candidate: -1/+1 (thumbs) or 1..5 (stars); a second PUT replaces it."""
    return await run_in_threadpool(_as_user, request, settings, lambda session, user: feedback.rate_candidate(
        session, candidate_id, user, body.value))


@router.put("/candidates/{candidate_id}/selected", response_model=CandidateOut, tags=["candidates"])
async def select_candidate(candidate_id: int, body: SelectedIn, request: Request,
                           settings: SettingsDep) -> CandidateOut:
    """Choose (or un-choose) a candidate for the next round's training set (human feedback)."""
    return await run_in_threadpool(_as_user, request, settings, lambda session, user: feedback.select_candidate(
        session, candidate_id, user, body.selected))


# ---- generations --------------------------------------------------------------------------------------------

@router.post("/styles/{style_id}/generations", response_model=GenerationOut, status_code=202, tags=["generations"],
             responses=refusals(404, 409, 422, 429, 503))
def create_generation(style: OwnedStyle, body: GenerationCreate, session: SessionDep, settings: SettingsDep,
                      dispatcher: JobDispatcherDep, user: UserDep, idempotency: IdempotencyDep) -> GenerationOut:
    """Generate `num_images` images per prompt with the style (its latest finished round by default).
    429 (with Retry-After) while you have too many jobs queued or running."""
    with idempotency.guard(user.id, f"create_generation/{style.id}", body.model_dump(mode="json")) as replay:
        if replay is not None:
            return replay
        return idempotency.done(202, generation_out(generations.create_generation(session, settings, dispatcher,
                                                                               user, style, body)))


@router.get("/styles/{style_id}/generations", response_model=GenerationPage, tags=["generations"])
def list_generations(style: OwnedStyle, session: SessionDep, page: PageDep) -> GenerationPage:
    """The style's generations, oldest first, a page at a time (`next`)."""
    rows, after = page.fetch(session, select(Generation).where(Generation.style_id == style.id), Generation.id)
    return GenerationPage(items=[generation_out(g) for g in rows], next=after)


@router.get("/generations/{generation_id}", response_model=GenerationOut, tags=["generations"])
def read_generation(generation: ReadableGeneration) -> GenerationOut:
    return generation_out(generation)


@router.get("/generations/{generation_id}/images/{index}", response_class=FileResponse, tags=["generations"])
def generation_image(generation: ReadableGeneration, index: int, settings: SettingsDep) -> FileResponse:
    paths = generation.image_paths or []
    if not 0 <= index < len(paths):
        raise ApiError(404, f"Generation {generation.id} has no image {index} (it has {len(paths)}).")
    return _file(settings, paths[index], f"Image {index} of generation {generation.id}", "image/png",
                 downloads.generation_image_name(generation, index))


@router.get("/generations/{generation_id}/images.zip", response_class=StreamingResponse, tags=["generations"],
            responses={200: {"content": {"application/zip": {}}, "description": "the images and manifest.json"}})
def generation_zip(generation: ReadableGeneration, session: SessionDep, settings: SettingsDep) -> StreamingResponse:
    """All of a finished generation's images in one zip, named by prompt and seed, with a manifest.json of the
    prompts, seeds and decoding settings that drew them."""
    if generation.status != JobStatus.succeeded.value or not generation.image_paths:
        raise ApiError(404, f"Generation {generation.id} is {generation.status}; its images can be downloaded once "
                            "it has succeeded.")
    rnd = session.get(Round, generation.round_id) if generation.round_id else None
    files, manifest = downloads.generation_files(settings.storage_root, generation, rnd.number if rnd else None)
    missing = [name for name, path in files if not path.is_file()]
    if missing:
        raise ApiError(404, f"{len(missing)} image(s) of generation {generation.id} are missing from the storage.")
    name = downloads.archive_name(generation)
    return StreamingResponse(downloads.zip_stream(files, manifest), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


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
