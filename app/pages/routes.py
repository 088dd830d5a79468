"""Page routes: HTML for people (the REST API under /api/v1 is for programs).

Each route calls the same services (and, where the rule is the API's own, the API function itself), so the
pages and the API cannot drift apart. Errors of an action are shown on the page, next to what caused them.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import UploadFile

from .. import paging, storage
from ..api import routes as api
from ..api.deps import DispatcherDep, SessionDep, SettingsDep, csrf_guard, get_dispatcher
from ..api.deps import PageUserDep as UserDep
from ..api.views import candidate_out, get_candidate, get_generation, get_round, get_style, latest_adapter_round
from ..errors import ApiError
from ..models import ACTIVE, TERMINAL, Candidate, Generation, Rating, Round, RoundStatus, Style
from ..schemas import GenerationCreate, RatingIn, RoundCreate, SelectedIn
from ..services import (
    active_round,
    cancel_round,
    check_job_quota,
    clean_prompts,
    clean_text,
    latest_succeeded,
    new_round,
    reap_stale,
    retry_round,
)
from .chart import RoundScores, scores_chart

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"

# The paper's style descriptors (StyleDrop, arXiv 2306.00983), offered as suggestions.
DESCRIPTORS = ["watercolor painting", "oil painting", "line drawing", "cartoon line drawing",
               "flat cartoon illustration", "sticker", "glowing", "3d rendering", "glowing 3d rendering",
               "kid crayon drawing", "melting golden 3d rendering", "wooden sculpture",
               "abstract rainbow colored flowing smoke wave design"]
BASE_MODELS = ["amused/amused-256", "amused/amused-512", "tiny"]
SORTS = {"prompt": "Prompt", "text": "CLIP text score", "style": "CLIP style score"}
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png",
               ".ico": "image/x-icon", ".txt": "text/plain", ".LICENSE": "text/plain"}

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
# Every page knows who asks (a log-in redirect otherwise) and every form post carries the CSRF token.
STYLES_PER_PAGE = 48  # the gallery and a playground's generations grow: pages (app/paging.py), newest first
GENERATIONS_PER_PAGE = 20

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])
static_router = APIRouter(include_in_schema=False)  # no session for static files


# ---- formatting helpers (Jinja filters) -----------------------------------------------------------------------

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _score(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


templates.env.filters["duration"] = _duration
templates.env.filters["when"] = _when
templates.env.filters["score"] = _score
templates.env.globals["SORTS"] = SORTS


@pass_context
def _csrf_field(context: Any) -> Markup:
    """The hidden CSRF field every posting form carries (checked by app/api/deps.py:csrf_guard)."""
    token = getattr(context["request"].state, "csrf_token", "")
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)


templates.env.globals["csrf_field"] = _csrf_field


def _static_version() -> str:
    """Changes when a static file changes, so browsers fetch the new one (cache busting)."""
    try:
        return str(int(max(p.stat().st_mtime for p in STATIC_DIR.iterdir())))
    except (OSError, ValueError):
        return "0"


templates.env.globals["static_version"] = _static_version()


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code, headers=headers)


def error_page(request: Request, exc: ApiError) -> HTMLResponse:
    return render(request, "error.html", {"status": exc.status, "message": exc.detail}, status_code=exc.status,
                  headers=exc.headers)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# ---- static files -------------------------------------------------------------------------------------------

@static_router.get("/static/{name:path}")
def static(name: str) -> FileResponse:
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR.resolve() not in path.parents or not path.is_file():
        raise ApiError(404, f"No static file {name}.")
    media = MEDIA_TYPES.get(path.suffix) or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


# ---- view models --------------------------------------------------------------------------------------------

def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return sum(known) / len(known) if known else None


def expected_candidates(rnd: Round) -> int:
    c = (rnd.parameters or {}).get("candidates") or {}
    prompts = c.get("prompts")
    count = len(prompts) if prompts else int(c.get("count") or 0)
    return max(count * int(c.get("per_prompt") or 1), len(rnd.candidates))


def round_view(rnd: Round) -> dict[str, Any]:
    """What the templates need about a round: its row, progress and summary numbers."""
    total = rnd.total_steps or 0
    done = rnd.status == RoundStatus.succeeded.value
    progress = 1.0 if done else (min(rnd.step / total, 1.0) if total else 0.0)
    phase = rnd.phase or ""
    if rnd.status == RoundStatus.running.value and phase in ("candidates", "scoring"):
        made, expected = len(rnd.candidates), expected_candidates(rnd)
        phase_text = (f"making candidates ({made} of {expected})" if phase == "candidates"
                      else "scoring candidates with CLIP")
    else:
        phase_text = {"starting": "loading the model", "training": "training"}.get(phase, phase)
    params = rnd.parameters or {}
    return {
        "row": rnd, "id": rnd.id, "number": rnd.number, "status": rnd.status, "active": rnd.status in ACTIVE,
        "terminal": rnd.status in TERMINAL, "progress": progress, "percent": round(progress * 100),
        "phase_text": phase_text, "training_images": len(params.get("training_set") or []),
        "mean_text": _mean([c.clip_text_score for c in rnd.candidates]),
        "mean_style": _mean([c.clip_style_score for c in rnd.candidates]),
        "selected": sum(1 for c in rnd.candidates if c.selection is not None),
        "slots": expected_candidates(rnd), "adapter": (params.get("adapter") or {}),
    }


def card_view(candidate: Candidate, user, editable: bool) -> dict[str, Any]:
    out = candidate_out(candidate, user)
    return {"c": out, "editable": editable}


def group_candidates(candidates: list[Candidate], sort: str) -> list[dict[str, Any]]:
    """Candidates grouped by prompt. Within a group the chosen score sorts (best first); the groups follow
    the prompt order of the round, or their best score."""
    groups: dict[str, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.content, []).append(c)
    key = {"text": "clip_text_score", "style": "clip_style_score"}.get(sort)

    def score(c: Candidate) -> float:
        v = getattr(c, key) if key else None
        return -math.inf if v is None or math.isnan(v) else v

    result = []
    for content, items in groups.items():
        if key:
            items = sorted(items, key=lambda c: (-score(c), c.id))
        result.append({"content": content, "prompt": items[0].prompt, "items": items,
                       "best": max(score(c) for c in items) if key else 0.0})
    if key:
        result.sort(key=lambda g: -g["best"])
    return result


def grid_context(session, rnd: Round, user, sort: str) -> dict[str, Any]:
    sort = sort if sort in SORTS else "prompt"
    latest = latest_succeeded(session, rnd.style_id)
    busy = active_round(session, rnd.style_id)
    editable = latest is not None and latest.id == rnd.id and busy is None and rnd.style.user_id == user.id
    return {"round": round_view(rnd), "style_id": rnd.style_id, "sort": sort, "editable": editable,
            "groups": [{"content": g["content"], "prompt": g["prompt"],
                        "cards": [card_view(c, user, editable) for c in g["items"]]}
                       for g in group_candidates(rnd.candidates, sort)],
            "selected": sum(1 for c in rnd.candidates if c.selection is not None),
            "next_number": rnd.number + 1}


def style_summary(style: Style) -> dict[str, Any]:
    rounds = [round_view(r) for r in style.rounds]
    chart = scores_chart([RoundScores(r["number"], r["mean_text"], r["mean_style"])
                          for r in rounds if r["status"] == RoundStatus.succeeded.value])
    return {"rounds": rounds, "chart": chart, "adapter_round": latest_adapter_round(style)}


def round_panel_context(session, settings, dispatcher, rnd: Round, user, sort: str,
                        notice: str | None = None) -> dict:
    if rnd.status in (RoundStatus.queued.value, RoundStatus.running.value):
        reap_stale(session, settings, dispatcher, round_id=rnd.id)
        session.refresh(rnd)
    context = {"round": round_view(rnd), "style_id": rnd.style_id, "notice": notice, "sort": sort,
               "read_only": rnd.style.user_id != user.id,  # another user's style, shown by the public setting
               "is_latest": session.scalar(select(Round.id).where(Round.style_id == rnd.style_id)
                                           .order_by(Round.number.desc()).limit(1)) == rnd.id,
               "candidates": list(rnd.candidates)}
    if rnd.status == RoundStatus.succeeded.value:
        context["grid"] = grid_context(session, rnd, user, sort)
    return context


# ---- styles -------------------------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def styles_page(request: Request, session: SessionDep, settings: SettingsDep, user: UserDep) -> HTMLResponse:
    """Your styles; with public styles on (an admin setting), the others' too, below and read-only."""
    query = select(Style)
    if not settings.public_styles:
        query = query.where(Style.user_id == user.id)
    items, shared = [], []
    rows, after = paging.page(session, query, Style.id, STYLES_PER_PAGE, request.query_params.get("cursor"),
                              descending=True)  # newest first, a page at a time (app/paging.py)
    for style in rows:
        last = style.rounds[-1] if style.rounds else None
        (items if style.user_id == user.id else shared).append(
            {"style": style, "rounds": len(style.rounds), "last": last,
             "status": last.status if last else "no rounds yet"})
    return render(request, "styles.html", {"items": items, "shared": shared,
                                           "older": f"/?cursor={after}" if after else None})


def _form_defaults(settings) -> dict[str, str]:
    return {"content": "", "descriptor": "", "base_model": settings.model, "adapter": "styledrop",
            "steps": str(settings.train_steps), "learning_rate": "", "rank": "", "seed": "0"}


def _new_style_context(settings, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    models = [settings.model] + [m for m in BASE_MODELS if m != settings.model]
    return {"values": values, "errors": errors, "descriptors": DESCRIPTORS, "base_models": models,
            "max_steps": settings.max_train_steps, "max_mb": settings.max_upload_bytes // (1024 * 1024),
            "max_chars": settings.max_prompt_chars}


@router.get("/styles/new", response_class=HTMLResponse)
def new_style_page(request: Request, settings: SettingsDep, user: UserDep) -> HTMLResponse:
    return render(request, "new_style.html", _new_style_context(settings, _form_defaults(settings), {}))


def _int(values: dict[str, str], errors: dict[str, str], name: str, low: int, high: int, label: str) -> int | None:
    raw = values.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        errors[name] = f"{label} must be a whole number."
        return None
    if not low <= value <= high:
        errors[name] = f"{label} must be between {low:,} and {high:,}."
        return None
    return value


@router.post("/styles/new", response_class=HTMLResponse)
async def create_style_page(request: Request, session: SessionDep, settings: SettingsDep,
                            dispatcher: DispatcherDep, user: UserDep) -> Response:
    """Create the style and start round 1 (the same rules as POST /api/v1/styles and .../rounds)."""
    form = await request.form(max_part_size=settings.max_upload_bytes + 1024)
    values = _form_defaults(settings) | {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}
    errors: dict[str, str] = {}
    for name, label in (("content", "What the image shows"), ("descriptor", "The style descriptor")):
        values[name] = " ".join(values.get(name, "").split())
        try:
            clean_text(values[name], label, settings)
        except ApiError as exc:
            errors[name] = exc.detail
    if values.get("adapter") not in ("styledrop", "lora"):
        errors["adapter"] = "Choose StyleDrop or LoRA."
    steps = _int(values, errors, "steps", 1, settings.max_train_steps, "Training steps")
    rank = _int(values, errors, "rank", 1, 256, "Rank")
    seed = _int(values, errors, "seed", 0, 2**31 - 1, "Seed")
    learning_rate = None
    if values.get("learning_rate"):
        try:
            learning_rate = float(values["learning_rate"])
            if not 0 < learning_rate < 1:
                raise ValueError
        except ValueError:
            errors["learning_rate"] = "The learning rate is a number between 0 and 1, e.g. 3e-5."
            learning_rate = None
    upload = form.get("image")
    data = b""
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["image"] = "Choose a reference image (PNG, JPEG or WebP)."
    else:
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            errors["image"] = f"The image is larger than {settings.max_upload_bytes // (1024 * 1024)} MB."
        else:
            try:
                storage.decode_upload(data, settings.max_image_pixels)
            except storage.UploadError as exc:
                errors["image"] = f"{upload.filename}: {exc.detail}"
    if errors:
        if "image" not in errors and data:
            errors["image"] = "Please choose the image again (a browser cannot keep a chosen file on a form " \
                              "that is shown again)."
        elif "image" in errors and data:
            errors["image"] += " Choose another file."
        return render(request, "new_style.html", _new_style_context(settings, values, errors), status_code=422)

    try:
        check_job_quota(session, user.id, settings)  # round 1 would be refused: store no style either
        created = api.new_style(session, settings, user, data,
                                content=values["content"], descriptor=values["descriptor"],
                                   base_model=values.get("base_model") or None, adapter=values["adapter"],
                                   steps=steps, seed=seed)
    except ApiError as exc:
        errors["image" if exc.status in (400, 413, 415) else "form"] = exc.detail
        return render(request, "new_style.html", _new_style_context(settings, values, errors),
                      status_code=exc.status, headers=exc.headers)
    style = get_style(session, created.id, user)
    extra = {k: v for k, v in {"learning_rate": learning_rate, "rank": rank}.items() if v is not None}
    if extra:
        style.settings = dict(style.settings or {}, **extra)
        session.commit()
    try:
        _start_round(session, settings, dispatcher, style, RoundCreate(learning_rate=learning_rate), rank=rank)
    except ApiError as exc:  # the style exists; its page says why training did not start and offers a retry
        return RedirectResponse(f"/styles/{style.id}?notice={quote(exc.detail)}", status_code=303)
    return RedirectResponse(f"/styles/{style.id}", status_code=303)


def _start_round(session, settings, dispatcher, style: Style, body: RoundCreate, rank: int | None = None) -> Round:
    """POST /api/v1/styles/{id}/rounds, plus the round-1 adapter width the form may set."""
    reap_stale(session, settings, dispatcher)
    rnd = new_round(session, style, body.model_dump(), settings)
    if rank is not None and rnd.number == 1:
        adapter = {"kind": style.adapter_kind, "rank": rank}
        adapter |= {"shared": True} if style.adapter_kind == "styledrop" else {"alpha": float(rank)}
        rnd.parameters = dict(rnd.parameters, adapter=adapter)
        session.commit()
    api._dispatch_round(session, dispatcher, rnd)
    return rnd


@router.get("/styles/{style_id}", response_class=HTMLResponse)
def style_page(style_id: int, request: Request, session: SessionDep, settings: SettingsDep, user: UserDep,
               sort: str = "prompt", notice: str | None = None) -> HTMLResponse:
    try:
        style = get_style(session, style_id, user, settings.public_styles)
    except ApiError as exc:
        return error_page(request, exc)
    dispatcher = get_dispatcher(request)  # the reaper sends again the rounds it puts back in the queue
    reap_stale(session, settings, dispatcher)
    session.refresh(style)
    sort = sort if sort in SORTS else "prompt"
    panels = [round_panel_context(session, settings, dispatcher, r, user, sort) for r in reversed(style.rounds)]
    return render(request, "style.html", {"style": style, "summary": style_summary(style), "panels": panels,
                                          "notice": notice, "sort": sort, "busy": active_round(session, style.id),
                                          "read_only": style.user_id != user.id,
                                          "settings": settings})


@router.post("/styles/{style_id}/rounds", response_class=HTMLResponse)
async def start_round_page(style_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                           dispatcher: DispatcherDep, user: UserDep) -> Response:
    """Train the next round: human feedback (the selection) by default, or CLIP feedback."""
    form = await request.form()
    try:
        style = get_style(session, style_id, user)
        feedback = form.get("feedback") or None
        body = RoundCreate(feedback=feedback if feedback in ("human", "clip") else None)
        _start_round(session, settings, dispatcher, style, body)
    except ApiError as exc:
        if exc.status == 404:
            return error_page(request, exc)
        # The style page itself says why, with the refusal's status (409, 429 with Retry-After).
        page = style_page(style_id, request, session, settings, user, notice=exc.detail)
        page.status_code = exc.status
        page.headers.update(exc.headers or {})
        return page
    return RedirectResponse(f"/styles/{style_id}", status_code=303)


# ---- rounds (htmx fragments) --------------------------------------------------------------------------------

def _panel(request: Request, session, settings, user, round_id: int, sort: str = "prompt",
           notice: str | None = None, public: bool = False) -> HTMLResponse:
    try:
        rnd = get_round(session, round_id, user, public)
    except ApiError as exc:
        return error_page(request, exc)
    context = round_panel_context(session, settings, get_dispatcher(request), rnd, user, sort, notice)
    if rnd.status in TERMINAL and is_htmx(request):  # the style's summary changes when a round ends
        context["summary_oob"] = style_summary(rnd.style)
        context["style"] = rnd.style
    return render(request, "_round.html", context)


@router.get("/rounds/{round_id}/panel", response_class=HTMLResponse)
def round_panel(round_id: int, request: Request, session: SessionDep, settings: SettingsDep, user: UserDep,
                sort: str = "prompt") -> HTMLResponse:
    """The round's panel: polls itself every 2 s while the round is queued or running (hx-trigger), and
    comes back without the trigger once it has ended, which stops the polling."""
    return _panel(request, session, settings, user, round_id, sort, public=settings.public_styles)


@router.post("/rounds/{round_id}/cancel", response_class=HTMLResponse)
def cancel_round_page(round_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                      user: UserDep) -> HTMLResponse:
    notice = None
    try:
        cancel_round(session, get_round(session, round_id, user))
        notice = "Stopping… training stops at its next step and keeps a checkpoint, so Retry resumes there."
    except ApiError as exc:
        if exc.status == 404:
            return error_page(request, exc)
        notice = exc.detail
    return _panel(request, session, settings, user, round_id, notice=notice)


@router.post("/rounds/{round_id}/retry", response_class=HTMLResponse)
def retry_round_page(round_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                     dispatcher: DispatcherDep, user: UserDep) -> HTMLResponse:
    try:
        rnd = retry_round(session, get_round(session, round_id, user), settings)
        api._dispatch_round(session, dispatcher, rnd)
    except ApiError as exc:
        if exc.status == 404:
            return error_page(request, exc)
        panel = _panel(request, session, settings, user, round_id, notice=exc.detail)
        if not is_htmx(request):  # htmx swaps only 2xx answers into the page, so it gets the notice with 200
            panel.status_code = exc.status
        panel.headers.update(exc.headers or {})
        return panel
    return _panel(request, session, settings, user, round_id)


@router.get("/rounds/{round_id}/grid", response_class=HTMLResponse)
def round_grid(round_id: int, request: Request, session: SessionDep, settings: SettingsDep, user: UserDep,
               sort: str = "prompt") -> HTMLResponse:
    try:
        rnd = get_round(session, round_id, user, settings.public_styles)
    except ApiError as exc:
        return error_page(request, exc)
    return render(request, "_grid.html", {"grid": grid_context(session, rnd, user, sort)})


@router.post("/rounds/{round_id}/auto-select", response_class=HTMLResponse)
def auto_select_page(round_id: int, request: Request, session: SessionDep, user: UserDep,
                     sort: str = "prompt") -> HTMLResponse:
    """CLIP feedback: the best candidate per prompt (replaces the round's selection)."""
    notice = None
    try:
        chosen = api.auto_select_round(round_id, session, user).selected
        notice = f"CLIP selected {len(chosen)} image{'s' if len(chosen) != 1 else ''}: the best per prompt."
    except ApiError as exc:
        if exc.status == 404:
            return error_page(request, exc)
        notice = exc.detail
    session.expire_all()
    rnd = get_round(session, round_id, user)
    return render(request, "_grid.html", {"grid": grid_context(session, rnd, user, sort), "grid_notice": notice})


# ---- candidates: one click or one key ------------------------------------------------------------------------

def _card(request: Request, session, user, candidate_id: int) -> HTMLResponse:
    session.expire_all()
    candidate = get_candidate(session, candidate_id, user)
    rnd = candidate.round
    context = grid_context(session, rnd, user, "prompt")
    card = next(card for group in context["groups"] for card in group["cards"] if card["c"].id == candidate_id)
    return render(request, "_card_response.html", {"grid": context, "card": card})


@router.put("/candidates/{candidate_id}/rating", response_class=HTMLResponse)
@router.post("/candidates/{candidate_id}/rating", response_class=HTMLResponse)
async def rate_page(candidate_id: int, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """Thumbs up (+1) or down (-1); the same thumb again takes the rating back. Thumbs up also selects the
    image for the next round and thumbs down unselects it. One rating per user and candidate."""
    form = await request.form()
    try:
        candidate = get_candidate(session, candidate_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    try:
        value = int(str(form.get("value", "")))
        if value not in (-1, 1):
            raise ValueError
    except ValueError:
        return render(request, "error.html", {"status": 422, "message": "A rating is 1 (thumbs up) or -1."},
                      status_code=422)
    rating = session.scalar(select(Rating).where(Rating.candidate_id == candidate.id, Rating.user_id == user.id))
    if rating is not None and rating.value == value:  # the same thumb again: take it back
        session.delete(rating)
        session.commit()
    else:
        api.rate(candidate.id, RatingIn(value=value), session, user)
        api.set_selected(candidate.id, SelectedIn(selected=value > 0), session, user)
    return _card(request, session, user, candidate_id)


@router.post("/candidates/{candidate_id}/selected", response_class=HTMLResponse)
def toggle_selected_page(candidate_id: int, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """Select the image for the next round's training set, or unselect it."""
    try:
        candidate = get_candidate(session, candidate_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    api.set_selected(candidate.id, SelectedIn(selected=candidate.selection is None), session, user)
    return _card(request, session, user, candidate_id)


# ---- playground ---------------------------------------------------------------------------------------------

def generation_view(generation: Generation) -> dict[str, Any]:
    request = generation.request or {}
    prompts = list(request.get("prompts") or [])
    images = []
    for i in range(len(generation.image_paths or [])):  # the engine tiles prompts num_images times
        images.append({"index": i, "url": f"/api/v1/generations/{generation.id}/images/{i}",
                       "prompt": prompts[i % len(prompts)] if prompts else "",
                       "download": f"style{generation.style_id}-gen{generation.id}-{i:03d}.png"})
    count = len(prompts) * int(request.get("num_images") or 1)
    return {"row": generation, "id": generation.id, "status": generation.status,
            "active": generation.status in ACTIVE, "prompts": prompts, "seed": request.get("seed"),
            "num_images": request.get("num_images"), "images": images, "slots": count,
            "round_number": None}


def _playground_context(session, settings, style: Style, values: dict[str, str], errors: dict[str, str],
                        cursor: str | None = None) -> dict:
    gens, after = paging.page(session, select(Generation).where(Generation.style_id == style.id), Generation.id,
                              GENERATIONS_PER_PAGE, cursor, descending=True)
    numbers = {r.id: r.number for r in style.rounds}
    views = []
    for g in gens:
        view = generation_view(g)
        view["round_number"] = numbers.get(g.round_id)
        views.append(view)
    return {"style": style, "values": values, "errors": errors, "generations": views,
            "older": f"/styles/{style.id}/playground?cursor={after}" if after else None,
            "adapter_round": latest_adapter_round(style), "max_images": settings.max_generation_images,
            "max_prompts": settings.max_prompts, "max_chars": settings.max_prompt_chars,
            "finished_rounds": [r for r in style.rounds if r.status == RoundStatus.succeeded.value]}


@router.get("/styles/{style_id}/playground", response_class=HTMLResponse)
def playground_page(style_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                    user: UserDep) -> HTMLResponse:
    try:
        style = get_style(session, style_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    values = {"prompts": "a cat\na bridge", "num_images": "2", "seed": "0", "round_id": ""}
    if style.generations:  # start from what was asked last time
        last = max(style.generations, key=lambda g: g.id).request or {}
        values |= {"prompts": "\n".join(last.get("prompts") or []), "num_images": str(last.get("num_images") or 1),
                   "seed": str(last.get("seed") if last.get("seed") is not None else 0)}
    return render(request, "playground.html", _playground_context(session, settings, style, values, {},
                                                                  request.query_params.get("cursor")))


@router.post("/styles/{style_id}/playground", response_class=HTMLResponse)
async def generate_page(style_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                        dispatcher: DispatcherDep, user: UserDep) -> Response:
    """Start a generation job (the rules of POST /api/v1/styles/{id}/generations)."""
    try:
        style = get_style(session, style_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    form = await request.form()
    values = {k: str(form.get(k, "")).strip() for k in ("prompts", "num_images", "seed", "round_id")}
    errors: dict[str, str] = {}
    status, headers = 422, None
    prompts = [p.strip() for p in values["prompts"].splitlines() if p.strip()]
    if not prompts:
        errors["prompts"] = "Write at least one prompt, one per line (e.g. \"a cat\")."
    else:
        try:
            prompts = clean_prompts(prompts, settings)
        except ApiError as exc:
            errors["prompts"] = exc.detail
    number = _int(values, errors, "num_images", 1, 16, "Images per prompt")
    seed = _int(values, errors, "seed", 0, 2**31 - 1, "Seed")
    round_id = _int(values, errors, "round_id", 1, 2**62, "Round")
    if not errors:
        try:
            body = GenerationCreate(prompts=prompts, num_images=number or 1, seed=seed if seed is not None else 0,
                                    round_id=round_id)
            api.new_generation(style.id, body, session, settings, dispatcher, user)
        except ValidationError as exc:
            errors["prompts"] = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        except ApiError as exc:
            errors["prompts" if exc.status == 422 else "form"] = exc.detail
            status, headers = exc.status, exc.headers
    if errors:
        session.expire_all()
        style = get_style(session, style_id, user)
        return render(request, "playground.html", _playground_context(session, settings, style, values, errors),
                      status_code=status, headers=headers)
    return RedirectResponse(f"/styles/{style_id}/playground", status_code=303)


@router.get("/generations/{generation_id}/panel", response_class=HTMLResponse)
def generation_panel(generation_id: int, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    """A generation's panel: polls itself while the job is queued or running."""
    try:
        generation = get_generation(session, generation_id, user)
    except ApiError as exc:
        return error_page(request, exc)
    view = generation_view(generation)
    view["round_number"] = generation.round_id and session.get(Round, generation.round_id).number
    return render(request, "_generation.html", {"g": view})

