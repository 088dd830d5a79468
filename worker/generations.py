"""The generation job: draw a generation's images with its round's adapter (styledrop.styles), store them and
end the generation (app.domain.lifecycle: claim, then finish)."""

from __future__ import annotations

import logging
import traceback

from app.domain import lifecycle
from app.domain.lifecycle import JobStatus
from app.domain.models import Generation, Round, Style
from app.infra import storage
from app.infra.db import session_factory
from app.settings import Settings

from . import engine_cache
from .errors import describe

log = logging.getLogger(__name__)


def run_generation(settings: Settings, generation_id: int) -> str:
    """Returns "succeeded" or "failed"; "skipped" for a generation that was not queued (a duplicate message);
    "superseded" when the reaper had ended it meanwhile (its end stands)."""
    from styledrop.sampling import image_seeds, sample_config
    from styledrop.styles import generate_with_style, load_style

    with session_factory(settings)() as session:
        if not lifecycle.claim(session, Generation, generation_id):
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
            seeds = image_seeds(config.seed, len(prompts) * config.num_images)  # the seed contract (docs/method.md)
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
        status, values = JobStatus.succeeded, {"image_paths": paths}
    except Exception as exc:  # noqa: BLE001
        engine_cache.evict(model)
        log.error("generation %s failed:\n%s", generation_id, traceback.format_exc())
        status, values = JobStatus.failed, {"error": describe(exc)}
    with session_factory(settings)() as session:
        return status.value if lifecycle.finish(session, Generation, generation_id, status, **values) else "superseded"
