"""Style pages: your styles, a new style (which starts round 1), a style with its rounds, the next round."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from styledrop.model_profiles import profile_for  # torch-free
from styledrop.model_sources import OFFLINE_PRESETS, OFFLINE_WORLDS, availability
from styledrop.world.spec import is_world

from ..api import paging
from ..api.access import PageOwnedStyle, PageReadableStyle
from ..api.deps import DispatcherDep, SessionDep, SettingsDep, WorkersDown, check_workers, csrf_guard
from ..api.deps import PageUserDep as UserDep
from ..domain import examples, limits, rounds, styles, worlds
from ..domain.base_models import allowed_base_models
from ..domain.models import Style, User
from ..domain.queries import active_round
from ..domain.schemas import MAX_SAMPLE_PROMPTS, STYLE_NAME_CHARS, RoundCreate, StyleCreate
from ..errors import ApiError
from ..settings import Settings
from .forms import form_values, parse_form
from .gallery import style_item
from .rendering import SORTS, chosen_sort, remember_sort, render
from .views import round_panel_context, style_summary

# Every page knows who asks (a log-in redirect otherwise) and every form post carries the CSRF token.
router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
STYLES_PER_PAGE = 48  # the gallery grows: pages (app/api/paging.py), newest first, an 'Older styles' link

# The paper's style descriptors (StyleDrop, arXiv 2306.00983), offered as suggestions.
DESCRIPTORS = ["watercolor painting", "oil painting", "line drawing", "cartoon line drawing",
               "flat cartoon illustration", "sticker", "glowing", "3d rendering", "glowing 3d rendering",
               "kid crayon drawing", "melting golden 3d rendering", "wooden sculpture",
               "abstract rainbow colored flowing smoke wave design"]
LABELS = {"name": "The name", "content": "What the image shows", "descriptor": "The style descriptor",
          "steps": "Training steps", "sample_every": "Live samples every", "sample_prompts": "Live sample prompts",
          "rank": "Rank", "seed": "Seed", "learning_rate": "The learning rate", "base_model": "The base model"}
MESSAGES = {"adapter": "Choose StyleDrop or LoRA.",
            "sample_prompts": f"Live samples draw at most {MAX_SAMPLE_PROMPTS} prompts, one per line.",
            "learning_rate": "The learning rate is a number between 0 and 1, e.g. 3e-5."}

# What the style page may say from its URL (?notice=CODE): a fixed set, so no link can put its own words there.
NOTICES = {
    "queue-down": "The style is saved, but its first round did not start: the job queue is not reachable. "
                  "Start round 1 below once it is back.",
    "workers-down": "The style is saved, but its first round did not start: no worker can run jobs now (the "
                    "worker is restarting after dying repeatedly). Start round 1 below in a few minutes.",
    "too-many-jobs": "The style is saved, but its first round did not start: you have too many jobs queued or "
                     "running. Start round 1 below when one has finished.",
    "not-started": "The style is saved, but its first round did not start. Start round 1 below.",
}


def notice_code(exc: ApiError) -> str:
    if isinstance(exc, WorkersDown):
        return "workers-down"
    return {503: "queue-down", 429: "too-many-jobs"}.get(exc.status, "not-started")


# ---- your styles ----------------------------------------------------------------------------------------------

GALLERY_NOTICES = {"deleted": "The style is deleted, with its rounds, adapters and images."}  # ?notice=CODE


@router.get("/", response_class=HTMLResponse)
def styles_page(request: Request, session: SessionDep, settings: SettingsDep, user: UserDep,
                notice: str | None = None) -> HTMLResponse:
    """Your styles; with public styles on (an admin setting), the others' too, below and read-only."""
    query = select(Style)
    if not settings.public_styles:
        query = query.where(Style.user_id == user.id)
    items, shared = [], []
    rows, after = paging.page(session, query, Style.id, STYLES_PER_PAGE, request.query_params.get("cursor"),
                              descending=True)  # newest first, a page at a time
    for style in rows:  # each card: its live phase and ETA, or "ready to rate"
        (items if style.user_id == user.id else shared).append(style_item(style, user))
    return render(request, "styles.html", {"items": items, "shared": shared,
                                           "notice": GALLERY_NOTICES.get(notice or ""),
                                           "older": f"/?cursor={after}" if after else None})


# ---- a new style ----------------------------------------------------------------------------------------------

def _form_defaults(settings: Settings) -> dict[str, str]:
    return {"name": "", "example": "", "content": "", "more_contents": "", "descriptor": "",
            "base_model": settings.model, "adapter": "styledrop", "steps": str(settings.explicit("train_steps") or ""),
            "learning_rate": "", "rank": "", "seed": "0", "sample_every": "", "sample_prompts": ""}
    # empty: the server's STYLEDROP_SAMPLE_EVERY, the default prompts, and the steps the administrator set or else
    # the chosen base model's own (styledrop.model_profiles: 150 on the shapes world, 1,000 on aMUSEd)


def _chosen_model(settings: Settings, values: dict[str, str]) -> str:
    chosen = values.get("base_model") or settings.model
    return chosen if chosen in allowed_base_models(settings) else settings.model


def _model_choices(settings: Settings, values: dict[str, str]) -> dict[str, Any]:
    """What follows the chosen base model: the examples that suit it, its world's build when it is a world."""
    chosen = _chosen_model(settings, values)
    return {"examples": examples.examples_for(settings, chosen),
            "world": worlds.world_status(chosen, settings) if is_world(chosen) else None}


def _new_style_context(settings: Settings, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    models = allowed_base_models(settings)  # a choice, not free text: a typo would fail the round later
    default = availability(settings.model)  # said before the upload, not after a failed round
    return _model_choices(settings, values) | {
            "values": values, "errors": errors, "descriptors": DESCRIPTORS, "base_models": models,
            "default_model": settings.model, "default_model_missing": None if default.available else default.reason,
            "default_is_world": is_world(settings.model), "max_name_chars": STYLE_NAME_CHARS,
            "offline_models": [m for m in models if m in OFFLINE_PRESETS],
            "offline_worlds": [(m, availability(m).available) for m in models if m in OFFLINE_WORLDS],
            # each choice said to be on this machine or not (a hub model not downloaded fails its first round)
            "model_missing": {m: None if (a := availability(m)).available else a.reason for m in models},
            "max_steps": settings.max_train_steps, "max_mb": settings.max_upload_bytes // (1024 * 1024),
            "max_bytes": settings.max_upload_bytes,
            "max_chars": settings.max_prompt_chars, "max_references": settings.max_references,
            "sample_contents": profile_for(settings.model).sample_contents, "max_sample_prompts": MAX_SAMPLE_PROMPTS,
            "default_sample_every": settings.sample_every_for(settings.model)}


def _fill_from_example(settings: Settings, values: dict[str, str], errors: dict[str, str]) -> bytes | None:
    """The chosen example's picture, its words in the fields left empty; None when none is chosen. The id is
    looked up among the examples listed for the chosen base model (app.domain.examples), never used as a path."""
    ident = values.get("example", "").strip()
    if not ident:
        return None
    try:
        example = examples.find(settings, ident, _chosen_model(settings, values))
    except ApiError as exc:
        errors["example"] = exc.detail
        values["example"] = ""
        return None
    for field in ("name", "descriptor", "content"):
        if not values.get(field, "").strip():
            values[field] = getattr(example, field)
    return examples.read(settings, example)


@router.get("/styles/new", response_class=HTMLResponse)
def new_style_page(request: Request, settings: SettingsDep, user: UserDep, base_model: str | None = None,
                   example: str | None = None) -> HTMLResponse:
    """The form; `?base_model=` chooses the base model, `?example=` an example (its words fill the fields)."""
    values = _form_defaults(settings)
    if base_model in allowed_base_models(settings):
        values["base_model"] = base_model
    errors: dict[str, str] = {}
    if example:
        values["example"] = example
        _fill_from_example(settings, values, errors)
    return render(request, "new_style.html", _new_style_context(settings, values, errors))


@router.get("/styles/new/choices", response_class=HTMLResponse)
def new_style_choices(request: Request, settings: SettingsDep, user: UserDep,
                      base_model: str | None = None) -> HTMLResponse:
    """The parts of the form that follow the base model (htmx, when the choice changes)."""
    values = _form_defaults(settings) | {"base_model": base_model or settings.model}
    return render(request, "_new_style_choices.html", _model_choices(settings, values) | {"values": values,
                                                                                          "errors": {}})


def _check_fields(values: dict[str, str], settings: Settings) -> tuple[StyleCreate | None, dict[str, str]]:
    """The form as POST /api/v1/styles would take it (StyleCreate), with every field's problem at once, in
    the form's words; the rules are the domain's (clean_text, check_train_steps)."""
    errors: dict[str, str] = {}
    for name in ("content", "descriptor"):
        try:  # as posted: collapsing the whitespace first would turn some control characters into spaces
            limits.clean_text(values.get(name, ""), LABELS[name], settings)
        except ApiError as exc:
            errors[name] = exc.detail
        values[name] = " ".join(values.get(name, "").split())
    samples = [line.strip() for line in values.get("sample_prompts", "").splitlines() if line.strip()]
    for i, line in enumerate(samples[:MAX_SAMPLE_PROMPTS]):  # one per line; each is a prompt like the others
        try:
            limits.clean_text(line, f"Live sample prompt {i + 1}", settings)
        except ApiError as exc:
            errors.setdefault("sample_prompts", exc.detail)
    body, invalid = parse_form(StyleCreate, values | {"sample_prompts": samples or ""}, LABELS, MESSAGES,
                               bounds={"steps": (1, settings.max_train_steps)})
    errors = invalid | errors
    if values.get("base_model") not in allowed_base_models(settings):
        errors["base_model"] = "Choose one of the base models offered."
    else:
        try:  # a world not built here: refused up front, the form kept, its build offered above the form
            worlds.refuse_unbuilt(values["base_model"])
        except ApiError as exc:
            errors["base_model"] = exc.detail
    if body is not None:
        try:
            limits.check_train_steps(body.steps, settings)
        except ApiError as exc:
            errors["steps"] = exc.detail
    return (None if errors else body), errors


async def _check_image(form: Any, settings: Settings, errors: dict[str, str]) -> list[bytes]:
    """The chosen reference images (one, or a few of the same style), each checked by its content."""
    uploads = [u for u in form.getlist("image") if isinstance(u, UploadFile) and u.filename]
    if not uploads:
        errors["image"] = "Choose a reference image (PNG, JPEG or WebP)."
        return []
    if len(uploads) > settings.max_references:
        errors["image"] = f"{len(uploads)} images chosen; a style takes at most {settings.max_references}."
    images = []
    for upload in uploads:
        data = await upload.read(settings.max_upload_bytes + 1)
        try:
            styles.decode_image(data, settings)
        except ApiError as exc:
            errors.setdefault("image", exc.detail if exc.status == 413 else f"{upload.filename}: {exc.detail}")
        images.append(data)
    return images


@router.post("/styles/new", response_class=HTMLResponse)
async def create_style_page(request: Request, session: SessionDep, settings: SettingsDep,
                            dispatcher: DispatcherDep, user: UserDep) -> Response:
    """Create the style and start round 1 (the services of POST /api/v1/styles and .../rounds)."""
    posted, form = await form_values(request, max_part_size=settings.max_upload_bytes + 1024)
    values = _form_defaults(settings) | posted
    chosen: dict[str, str] = {}
    example = _fill_from_example(settings, values, chosen)
    body, errors = _check_fields(values, settings)
    errors |= chosen
    data = [example] if example is not None else await _check_image(form, settings, errors)
    more = [line.strip() for line in values.get("more_contents", "").splitlines() if line.strip()]
    if body is not None and more:  # each reference's own content (app.domain.styles.reference_contents checks)
        body = body.model_copy(update={"contents": [body.content, *more]})
    if body is None or errors:
        unbuilt = set(errors) == {"base_model"} and is_world(values.get("base_model"))
        if data and example is None:  # a chosen example stays chosen on the form shown again; a file cannot
            if "image" not in errors:
                errors["image"] = "Please choose the image again (a browser cannot keep a chosen file on a form " \
                                  "that is shown again)."
            else:
                errors["image"] += " Choose another file."
        return render(request, "new_style.html", _new_style_context(settings, values, errors),
                      status_code=409 if unbuilt else 422)
    try:
        limits.check_job_quota(session, user.id, settings)  # round 1 would be refused: store no style either
        style = styles.create_style(session, settings, user, body, data)
    except ApiError as exc:
        field = "more_contents" if "contents" in exc.detail else "form"
        errors["image" if exc.status in (400, 413, 415) else field] = exc.detail
        return render(request, "new_style.html", _new_style_context(settings, values, errors),
                      status_code=exc.status, headers=exc.headers)
    try:
        check_workers(request)
        rounds.start_round(session, settings, dispatcher, style, RoundCreate())
    except ApiError as exc:  # the style exists; its page says why training did not start and offers a start
        return RedirectResponse(f"/styles/{style.id}?notice={notice_code(exc)}", status_code=303)
    return RedirectResponse(f"/styles/{style.id}", status_code=303)


# ---- a style and its rounds -----------------------------------------------------------------------------------

def _style_page(request: Request, session: Session, settings: Settings, user: User, style: Style,
                sort: str = "prompt", notice: str | None = None, status_code: int = 200,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    sort = sort if sort in SORTS else "prompt"
    panels = [round_panel_context(session, r, user, sort) for r in reversed(style.rounds)]
    return render(request, "style.html", {"style": style, "summary": style_summary(style), "panels": panels,
                                          "notice": notice, "sort": sort,
                                          "busy": active_round(session, style.id),
                                          "read_only": style.user_id != user.id, "settings": settings,
                                          "subject": profile_for(style.base_model).playground_prompts[0]},
                  status_code=status_code, headers=headers)


@router.get("/styles/{style_id}", response_class=HTMLResponse)
def style_page(style: PageReadableStyle, request: Request, session: SessionDep, settings: SettingsDep,
               user: UserDep, sort: str | None = None, notice: str | None = None) -> HTMLResponse:
    """The style with its rounds; the grid in the sort order asked for, else the one chosen last time."""
    page = _style_page(request, session, settings, user, style, chosen_sort(request, sort), NOTICES.get(notice or ""))
    return remember_sort(page, sort)


@router.post("/styles/{style_id}/rounds", response_class=HTMLResponse)
async def start_round_page(style: PageOwnedStyle, request: Request, session: SessionDep, settings: SettingsDep,
                           dispatcher: DispatcherDep, user: UserDep) -> Response:
    """Train the next round: human feedback (the selection) by default, or CLIP feedback."""
    feedback = (await form_values(request))[0].get("feedback")
    try:
        check_workers(request)
        body = RoundCreate(feedback=feedback if feedback in ("human", "clip") else None)
        rounds.start_round(session, settings, dispatcher, style, body)
    except ApiError as exc:  # the style page itself says why, with the refusal's status (409, 429 + Retry-After)
        return _style_page(request, session, settings, user, style, notice=exc.detail, status_code=exc.status,
                           headers=exc.headers)
    return RedirectResponse(f"/styles/{style.id}", status_code=303)
