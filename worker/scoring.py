"""CLIP scoring and candidate prompts for the worker: the engine's scorer, loaded once per process.

Text scores compare each image with its content prompt *without* the style descriptor ("A chihuahua"),
style scores compare it with the style's reference image (styledrop.clip_scores, paper §4).
"""

from __future__ import annotations

import threading
from typing import Any

_scorers: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def candidate_prompts(count: int, model: str | None = None) -> list[str]:
    """`count` of the base model's candidate prompts (styledrop.model_profiles): for aMUSEd the built-in ones,
    drawn across every category (not animals first); for a world its candidate contents. For rounds planned
    before the plan recorded its prompts."""
    from styledrop.model_profiles import profile_for

    return profile_for(model).candidate_prompts(max(1, count))


def scorer(name: str, device: Any) -> Any:
    """The named CLIP scorer on a device, loaded once per process."""
    from styledrop.clip_scores import load_scorer

    key = (name, str(device))
    with _lock:
        if key not in _scorers:
            _scorers[key] = load_scorer(name, device=device)
        return _scorers[key]


def score_candidates(reference: Any, images: list[Any], contents: list[str], name: str = "default",
                     device: Any = None) -> tuple[list[float], list[float]]:
    """(text scores, style scores), one per image, by the engine's rule (styledrop.candidates.score_images)
    with this process's cached scorer."""
    from styledrop.candidates import score_images

    if not images:
        return [], []
    return score_images(scorer(name, device), images, contents, reference)
