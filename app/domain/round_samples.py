"""A round's training samples as the API and the pages show them: the images the worker drew every N steps
while the round trained (styledrop.training_samples; stored by app.domain.fencing.Attempt.add_training_samples in
Round.training_samples). Torch-free."""

from __future__ import annotations

from typing import Any

from .models import Round
from .schemas import API

STEPS_SHOWN = 6  # the round panel shows the newest steps' samples; the API lists them all


def sample_url(rnd: Round, index: int) -> str:
    return f"{API}/rounds/{rnd.id}/samples/{index}"


def samples(rnd: Round) -> list[dict[str, Any]]:
    """Every sample of the round, by step then prompt, each with its image's URL (its position in the list)."""
    return [{"step": int(s.get("step", 0)), "content": s.get("content", ""), "prompt": s.get("prompt", ""),
             "seed": s.get("seed"), "url": sample_url(rnd, i)} for i, s in enumerate(rnd.training_samples or [])]


def samples_by_step(rnd: Round, limit: int = STEPS_SHOWN) -> list[dict[str, Any]]:
    """The newest `limit` steps, newest first, each with its images in prompt order: [{step, images}]."""
    steps: dict[int, list[dict[str, Any]]] = {}
    for sample in samples(rnd):
        steps.setdefault(sample["step"], []).append(sample)
    return [{"step": step, "images": steps[step]} for step in sorted(steps, reverse=True)[:limit]]
