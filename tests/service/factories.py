"""Test factories shared by the service tests: rounds and generations brought to "running" or "succeeded" as the
worker brings them, through the real lifecycle (app.domain.lifecycle: claim, the attempt's fenced writes, its
end; app.domain.fencing.Attempt for the files), without a worker or the engine."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update

from app.domain import lifecycle
from app.domain.fencing import ADAPTER_FILE, Attempt
from app.domain.lifecycle import JobStatus
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


def attempt_of(settings: Settings, round_id: int) -> Attempt:
    """The round's current attempt: claimed now if the round is queued (as a worker takes it up)."""
    with session_factory(settings)() as session:
        if session.get(Round, round_id).status == JobStatus.queued.value:
            assert lifecycle.claim_round(session, settings, round_id, "factory") == "claimed"
    attempt = Attempt.claimed(settings, round_id)
    assert attempt.is_current(), f"round {round_id} is not running"
    return attempt


def add_candidates(settings: Settings, attempt: Attempt, count: int, contents: Sequence[str] | None = None,
                   text_scores: Sequence[float | None] | None = None,
                   style_scores: Sequence[float | None] | None = None) -> list[int]:
    """`count` candidates stored by the attempt (PNG and row), seeds 100, 101, ..., then scored as the worker
    scores them (text rising 0.20, 0.21, ...; style falling 0.70, 0.68, ... unless given); returns their ids."""
    ids = []
    for i, content in enumerate(_contents(count, contents)):
        relative = storage.candidate_path(attempt.style_id, attempt.number, i)
        ids.append(attempt.add_candidate(reference_image(32), relative, content=content, seed=100 + i,
                                         prompt=f"A {content[2:]} in watercolor painting style"))
    with session_factory(settings)() as session:
        attempt.update(session, heartbeat_at=utcnow())
        for i, candidate_id in enumerate(ids):
            session.execute(update(Candidate).where(Candidate.id == candidate_id).values(
                clip_text_score=text_scores[i] if text_scores is not None else 0.2 + 0.01 * i,
                clip_style_score=style_scores[i] if style_scores is not None else 0.7 - 0.02 * i))
        session.commit()
    return ids


def run_round(settings: Settings, round_id: int, step: int = 4, phase: str = "training", made: int = 0) -> None:
    """As the worker: the round is running at `step` (heartbeat now), with `made` candidates drawn so far."""
    attempt = attempt_of(settings, round_id)
    attempt.update(phase=phase, step=step, loss=1.2345, eta_seconds=75.0, heartbeat_at=utcnow())
    add_candidates(settings, attempt, made)


def finish_round(settings: Settings, round_id: int, candidates: int = 4, contents: Sequence[str] | None = None,
                 text_scores: Sequence[float | None] | None = None,
                 style_scores: Sequence[float | None] | None = None) -> list[int]:
    """As the worker: the round succeeded with `candidates` scored candidates and an adapter file
    (Attempt.finish); returns the candidates' ids."""
    attempt = attempt_of(settings, round_id)
    ids = add_candidates(settings, attempt, candidates, contents, text_scores, style_scores)
    (attempt.prepare() / ADAPTER_FILE).write_bytes(b"adapter")
    with session_factory(settings)() as session:
        total = session.get(Round, round_id).total_steps
    attempt.finish(step=total, loss=0.9, eta_seconds=0.0)
    return ids


def finish_generation(settings: Settings, style_id: int, generation_id: int, images: int) -> None:
    """As the worker: the generation succeeded with `images` small PNGs on disk."""
    with session_factory(settings)() as session:
        assert lifecycle.claim(session, Generation, generation_id)
        paths = []
        for i in range(images):
            relative = storage.generation_path(style_id, generation_id, i)
            storage.save_png(settings.storage_root, relative, reference_image(32))
            paths.append(relative)
        assert lifecycle.finish(session, Generation, generation_id, JobStatus.succeeded, image_paths=paths)
