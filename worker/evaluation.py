"""The evaluation job: the engine's evaluation (styledrop.evaluation) over a style's stored rounds.

Claims the job with a conditional update (a duplicate message does nothing), scores the base model and every
finished round on the request's prompts with the same seeds, and stores the rows. The scorer follows the
engine's rule for the style's base model (offline presets → "tiny"), as the CLI and the rounds do.
"""

from __future__ import annotations

import logging
import traceback

from sqlalchemy import select, update

from app.domain.models import Evaluation, Round, RoundStatus, Style, utcnow
from app.infra import storage
from app.infra.db import session_factory
from app.settings import Settings

from . import engine_cache
from .jobs import claim_queued
from .scoring import scorer

log = logging.getLogger(__name__)


def _finish(settings: Settings, evaluation_id: int, **values) -> None:
    with session_factory(settings)() as session:
        session.execute(update(Evaluation).where(Evaluation.id == evaluation_id)
                        .values(finished_at=utcnow(), **values))
        session.commit()


def run_evaluation(settings: Settings, evaluation_id: int) -> str:
    from styledrop.evaluation import evaluate_adapter_files
    from styledrop.images import load_image

    with session_factory(settings)() as session:
        if not claim_queued(session, Evaluation, evaluation_id):
            return "skipped"
        evaluation = session.get(Evaluation, evaluation_id)
        request = dict(evaluation.request)
        style = session.get(Style, evaluation.style_id)
        base_model, reference_paths = style.base_model, style.reference_paths
        rounds = [(r.number, r.adapter_path) for r in session.scalars(
            select(Round).where(Round.style_id == style.id, Round.status == RoundStatus.succeeded.value,
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
        _finish(settings, evaluation_id, status=RoundStatus.succeeded.value,
                result={"clip_model": clip.name, "rows": [r.summary() for r in rows]})
        return "succeeded"
    except Exception as exc:  # noqa: BLE001
        from styledrop.errors import StyleDropError

        log.error("evaluation %s failed:\n%s", evaluation_id, traceback.format_exc())
        message = str(exc) if isinstance(exc, StyleDropError) else f"{type(exc).__name__}: {exc}"
        _finish(settings, evaluation_id, status=RoundStatus.failed.value, error=message)
        return "failed"
