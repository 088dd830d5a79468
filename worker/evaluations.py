"""The evaluation job: the engine's evaluation (styledrop.evaluation) over a style's stored rounds.

Claims the job (app.domain.lifecycle.claim: a duplicate message does nothing), scores the base model and every
finished round on the request's prompts with the same seeds, and stores the rows. The scorer follows the
engine's rule for the style's base model (offline presets → "tiny"), as the CLI and the rounds do.
"""

from __future__ import annotations

import logging
import traceback

from sqlalchemy import select

from app.domain import lifecycle
from app.domain.lifecycle import JobStatus
from app.domain.models import Evaluation, Round, Style
from app.infra import storage
from app.infra.db import session_factory
from app.settings import Settings

from . import engine_cache
from .errors import describe
from .scoring import scorer

log = logging.getLogger(__name__)


def run_evaluation(settings: Settings, evaluation_id: int) -> str:
    """Returns "succeeded" or "failed"; "skipped" for an evaluation that was not queued (a duplicate message);
    "superseded" when the reaper had ended it meanwhile (its end stands)."""
    from styledrop.evaluation import evaluate_adapter_files
    from styledrop.images import load_image

    with session_factory(settings)() as session:
        if not lifecycle.claim(session, Evaluation, evaluation_id):
            return "skipped"
        evaluation = session.get(Evaluation, evaluation_id)
        request = dict(evaluation.request)
        style = session.get(Style, evaluation.style_id)
        base_model, reference_paths = style.base_model, style.reference_paths
        rounds = [(r.number, r.adapter_path) for r in session.scalars(
            select(Round).where(Round.style_id == style.id, Round.status == JobStatus.succeeded.value,
                                Round.adapter_path.is_not(None)).order_by(Round.number))]
    try:
        root = settings.storage_root
        components = engine_cache.components(base_model)
        clip = scorer(settings.clip_scorer(base_model), engine_cache.device())
        reference = [load_image(storage.resolve(root, path)) for path in reference_paths]  # all of them
        rows = evaluate_adapter_files([(n, storage.resolve(root, p)) for n, p in rounds], components, clip,
                                      reference, list(request["prompts"]), int(request["per_prompt"]),
                                      int(request["seed"]), steps=settings.sample_steps,
                                      precision=settings.sampling_precision)
        status, values = JobStatus.succeeded, {"result": {"clip_model": clip.name, "rows": [r.summary() for r in rows]}}
    except Exception as exc:  # noqa: BLE001
        log.error("evaluation %s failed:\n%s", evaluation_id, traceback.format_exc())
        status, values = JobStatus.failed, {"error": describe(exc)}
    with session_factory(settings)() as session:
        return status.value if lifecycle.finish(session, Evaluation, evaluation_id, status, **values) else "superseded"
