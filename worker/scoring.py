"""Integration points with the engine's CLIP scoring and candidate prompts (issue 3, being written).

`score_candidates` is THE one place where candidates get CLIP scores: it uses `styledrop.clip_scores`
when that module exists and otherwise leaves the scores NULL (the app's CLIP selection then falls back,
see app/selection.py). `candidate_prompts` uses `styledrop.candidates.default_prompts()` when it exists.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

# Used only until styledrop.candidates exists: a few of the paper's Table S2 content prompts.
FALLBACK_PROMPTS = [
    "a chihuahua", "a banana on the table", "a church on the beach", "a tiger", "a bowl of soup",
    "a cat", "a house", "a bridge", "an espresso machine", "a baby penguin", "a teapot", "a bicycle",
]

_scorers: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def candidate_prompts(count: int) -> list[str]:
    try:
        from styledrop.candidates import default_prompts
    except ImportError:
        prompts = list(FALLBACK_PROMPTS)
    else:
        prompts = list(default_prompts())
    return prompts[: max(1, count)]


def _load_scorer(name: str, device: Any) -> Any | None:
    try:
        from styledrop.clip_scores import load_scorer
    except ImportError:
        log.warning("styledrop.clip_scores is not available: candidates keep no CLIP scores")
        return None
    key = (name, str(device))
    with _lock:
        if key not in _scorers:
            _scorers[key] = load_scorer(name, device=device)
        return _scorers[key]


def score_candidates(reference: Any, images: list[Any], contents: list[str], name: str = "default",
                     device: Any = None) -> tuple[list[float] | None, list[float] | None]:
    """CLIP text scores (image vs. its content prompt, without the descriptor) and style scores (image vs.
    the reference), one per image; (None, None) when the engine has no scorer yet."""
    scorer = _load_scorer(name, device)
    if scorer is None or not images:
        return None, None
    reference_embedding = scorer.reference_embedding(reference)
    text = [float(s) for s in scorer.text_scores(images, contents)]
    style = [float(s) for s in scorer.style_scores(images, reference_embedding)]
    return text, style
