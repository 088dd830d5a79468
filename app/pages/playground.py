"""The playground: generate images with a trained style (what POST /api/v1/styles/{id}/generations does)
and watch each generation's panel until its images are there."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from styledrop.model_profiles import profile_for  # torch-free: the base model's first prompts

from ..api import paging
from ..api.access import PageOwnedStyle, PageReadableGeneration
from ..api.deps import DispatcherDep, SessionDep, SettingsDep, check_workers, csrf_guard
from ..api.deps import PageUserDep as UserDep
from ..domain import generations
from ..domain.lifecycle import JobStatus
from ..domain.models import Generation, Round, Style
from ..domain.plain_text import BLANK, lines
from ..domain.queries import latest_adapter_round
from ..domain.schemas import MAX_ADAPTER_GUIDANCE, MAX_GUIDANCE, MAX_SAMPLE_STEPS, GenerationCreate
from ..errors import ApiError
from ..settings import Settings
from .forms import form_values, parse_form
from .queue import place_in_queue
from .rendering import render
from .views import generation_view

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

LABELS = {"prompts": "Prompts", "num_images": "Images per prompt", "seed": "Seed", "round_id": "Round",
          "descriptor": "Style descriptor", "adapter_guidance": "λA (adapter guidance)",
          "guidance": "λB (guidance)", "steps": "Sampling steps"}
SAMPLING_FIELDS = ("adapter_guidance", "guidance", "steps")  # blank: the round's own (its plan's sampling defaults)
MESSAGES = {"prompts": 'Write at least one prompt, one per line (e.g. "a cat").'}
GENERATIONS_PER_PAGE = 20  # a playground's generations grow: pages (app/api/paging.py), newest first


def _context(session: Session, settings: Settings, style: Style, values: dict[str, str],
             errors: dict[str, str], cursor: str | None = None) -> dict[str, Any]:
    numbers = {r.id: r.number for r in style.rounds}
    gens, after = paging.page(session, select(Generation).where(Generation.style_id == style.id), Generation.id,
                              GENERATIONS_PER_PAGE, cursor, descending=True)
    views = [generation_view(g, numbers.get(g.round_id)) for g in gens]
    adapter_round = latest_adapter_round(style)
    for view in views:  # the queue position of each waiting job (the page is its owner's)
        view["ahead_text"] = place_in_queue(session, view["row"], style.user_id)
    finished = [r for r in style.rounds if r.status == JobStatus.succeeded.value]
    sampling = _defaults(adapter_round)
    return {"style": style, "values": sampling | values, "errors": errors, "generations": views,
            "subject": profile_for(style.base_model).playground_prompts[0],
            "older": f"/styles/{style.id}/playground?cursor={after}" if after else None,
            "adapter_round": adapter_round, "max_images": settings.max_generation_images,
            "sampling": sampling, "limits": {"adapter_guidance": MAX_ADAPTER_GUIDANCE,
                                                             "guidance": MAX_GUIDANCE, "steps": MAX_SAMPLE_STEPS},
            "max_prompts": settings.max_prompts, "max_chars": settings.max_prompt_chars,
            # Each round's own defaults: picking a round in "Adapter of" sets the controls to them
            # (static/playground.js), so round 1 is not sampled with round 2's λA.
            "finished_rounds": [(r, _defaults(r)) for r in finished]}


def _defaults(rnd: Round | None) -> dict[str, str]:
    """The sampling controls' starting values: the round's plan (its base model's λA, λB and steps unless the
    round set its own: on aMUSEd λA 0 for round 1, 2 later, λB 9; on the shapes world λA 0, λB 1)."""
    if rnd is None:
        return {name: "" for name in SAMPLING_FIELDS}
    sampling = rnd.plan.sampling
    return {"adapter_guidance": f"{sampling.adapter_guidance:g}", "guidance": f"{sampling.guidance:g}",
            "steps": str(sampling.steps)}


@router.get("/styles/{style_id}/playground", response_class=HTMLResponse)
def playground_page(style: PageOwnedStyle, request: Request, session: SessionDep, settings: SettingsDep,
                    user: UserDep) -> HTMLResponse:
    values = {"prompts": "\n".join(profile_for(style.base_model).playground_prompts), "num_images": "2", "seed": "0",
              "round_id": "",
              "descriptor": style.descriptor, "no_descriptor": ""}  # the sampling controls: _context's defaults
    if style.generations:  # start from what was asked last time
        last = max(style.generations, key=lambda g: g.id).request or {}
        values |= {"prompts": "\n".join(last.get("prompts") or []), "num_images": str(last.get("num_images") or 1),
                   "seed": str(last.get("seed") if last.get("seed") is not None else 0)}
        values |= {name: f"{last[name]:g}" for name in SAMPLING_FIELDS if last.get(name) is not None}
        if last.get("descriptor") is not None:
            values |= {"descriptor": last["descriptor"] or style.descriptor,
                       "no_descriptor": "on" if last["descriptor"] == "" else ""}
    return render(request, "playground.html", _context(session, settings, style, values, {},
                                                       request.query_params.get("cursor")))


@router.post("/styles/{style_id}/playground", response_class=HTMLResponse)
async def generate_page(style: PageOwnedStyle, request: Request, session: SessionDep, settings: SettingsDep,
                        dispatcher: DispatcherDep, user: UserDep) -> Response:
    """Start a generation job: the form is a GenerationCreate, one prompt per line."""
    posted = (await form_values(request))[0]
    values = {k: posted.get(k, "") for k in ("prompts", "num_images", "seed", "round_id", "descriptor",
                                              "no_descriptor", *SAMPLING_FIELDS)}
    prompts = lines(values["prompts"])
    # The descriptor box starts with the style's own: unchanged or blank means the style's; the box "none" means
    # none (GenerationCreate's ""), anything else is another descriptor for these images.
    descriptor = "" if values["no_descriptor"] else (values["descriptor"].strip(BLANK) or None)
    descriptor = None if descriptor == style.descriptor else descriptor
    body, errors = parse_form(GenerationCreate, values | {"prompts": prompts, "descriptor": descriptor},
                              LABELS, MESSAGES)
    if body is not None and descriptor == "":  # parse_form reads a blank field as "not given": here it means none
        body = body.model_copy(update={"descriptor": ""})
    status, headers = 422, None
    if body is not None:
        try:
            check_workers(request)
            generations.create_generation(session, settings, dispatcher, user, style, body)
        except ApiError as exc:
            errors["prompts" if exc.status == 422 else "form"] = exc.detail
            status, headers = exc.status, exc.headers
    if errors:
        session.expire_all()
        return render(request, "playground.html", _context(session, settings, style, values, errors),
                      status_code=status, headers=headers)
    return RedirectResponse(f"/styles/{style.id}/playground", status_code=303)


@router.get("/generations/{generation_id}/panel", response_class=HTMLResponse)
def generation_panel(generation: PageReadableGeneration, request: Request, session: SessionDep,
                     user: UserDep) -> HTMLResponse:
    """A generation's panel: polls itself while the job is queued or running."""
    rnd = session.get(Round, generation.round_id) if generation.round_id else None
    view = generation_view(generation, rnd and rnd.number)
    view["ahead_text"] = place_in_queue(session, generation, user.id if user else None)
    return render(request, "_generation.html", {"g": view})
