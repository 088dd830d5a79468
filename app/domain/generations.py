"""Generations: images drawn with a finished round of a style, asked for by the API or the playground."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..errors import ApiError
from ..infra.task_queue import Dispatcher
from ..settings import Settings
from . import lifecycle
from .lifecycle import JobStatus
from .limits import check_job_quota, clean_prompts, clean_text
from .models import Generation, Round, Style, User
from .ownership import owned
from .queries import latest_adapter_round
from .schemas import GenerationCreate
from .webhooks import check_callback_url


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
        if rnd.status != JobStatus.succeeded.value:
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
    generation = lifecycle.enqueue(session, Generation(
        style_id=style.id, round_id=rnd.id, user_id=user.id, callback_url=callback_url,
        request=body.model_dump(exclude={"callback_url"}) | {"prompts": prompts, "round_id": rnd.id,
                                                               "descriptor": descriptor}))
    lifecycle.send_or_fail(session, generation, dispatcher.generate)
    return generation
