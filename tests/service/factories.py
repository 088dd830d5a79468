"""Test factories shared by the service tests: a round brought to "running" or "succeeded" by writing the
database (and the storage) as the worker would, without a worker."""

from __future__ import annotations

from collections.abc import Sequence

from app.domain.models import Candidate, Generation, Round, utcnow
from app.infra import storage
from app.infra.db import session_factory
from app.settings import Settings

from .conftest import reference_image


def _contents(count: int, contents: Sequence[str] | None) -> list[str]:
    """Each candidate's content: as given, or the first half "a cat" and the second half "a bridge"."""
    if contents is not None:
        assert len(contents) == count, "one content per candidate"
        return list(contents)
    pair, per = ("a cat", "a bridge"), max(1, count // 2)
    return [pair[min(i // per, 1)] for i in range(count)]


def add_candidates(settings: Settings, session, rnd: Round, count: int, contents: Sequence[str] | None = None,
                   text_scores: Sequence[float | None] | None = None,
                   style_scores: Sequence[float | None] | None = None) -> list[int]:
    """`count` candidates with PNG files, CLIP scores (text rising 0.20, 0.21, ...; style falling 0.70, 0.68,
    ... unless given) and seeds 100, 101, ...; returns their ids (flushed, not committed)."""
    ids = []
    for i, content in enumerate(_contents(count, contents)):
        relative = storage.candidate_path(rnd.style_id, rnd.number, i)
        storage.save_png(settings.storage_root, relative, reference_image(32))
        candidate = Candidate(round_id=rnd.id, content=content, prompt=f"A {content[2:]} in watercolor painting style",
                              seed=100 + i, image_path=relative,
                              clip_text_score=text_scores[i] if text_scores is not None else 0.2 + 0.01 * i,
                              clip_style_score=style_scores[i] if style_scores is not None else 0.7 - 0.02 * i)
        session.add(candidate)
        session.flush()
        ids.append(candidate.id)
    return ids


def run_round(settings: Settings, round_id: int, step: int = 4, phase: str = "training", made: int = 0) -> None:
    """As the worker: the round is running at `step` (heartbeat now), with `made` candidates drawn so far."""
    with session_factory(settings)() as session:
        rnd = session.get(Round, round_id)
        rnd.status, rnd.phase, rnd.step, rnd.loss, rnd.eta_seconds = "running", phase, step, 1.2345, 75.0
        rnd.started_at = rnd.heartbeat_at = utcnow()
        add_candidates(settings, session, rnd, made)
        session.commit()


def finish_round(settings: Settings, round_id: int, candidates: int = 4, contents: Sequence[str] | None = None,
                 text_scores: Sequence[float | None] | None = None,
                 style_scores: Sequence[float | None] | None = None) -> list[int]:
    """As the worker: the round succeeded with `candidates` scored candidates and an adapter file; returns
    the candidates' ids."""
    with session_factory(settings)() as session:
        rnd = session.get(Round, round_id)
        ids = add_candidates(settings, session, rnd, candidates, contents, text_scores, style_scores)
        rnd.status, rnd.phase, rnd.step, rnd.loss, rnd.eta_seconds = "succeeded", None, rnd.total_steps, 0.9, 0.0
        rnd.finished_at = utcnow()
        rnd.adapter_path = storage.adapter_path(rnd.style_id, rnd.number)
        path = storage.resolve(settings.storage_root, rnd.adapter_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"adapter")
        session.commit()
        return ids


def finish_generation(settings: Settings, style_id: int, generation_id: int, images: int) -> None:
    """As the worker: the generation succeeded with `images` small PNGs on disk."""
    with session_factory(settings)() as session:
        generation = session.get(Generation, generation_id)
        paths = []
        for i in range(images):
            relative = storage.generation_path(style_id, generation_id, i)
            storage.save_png(settings.storage_root, relative, reference_image(32))
            paths.append(relative)
        generation.status, generation.image_paths, generation.finished_at = "succeeded", paths, utcnow()
        session.commit()
