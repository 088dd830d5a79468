"""CLIP feedback for the web app: the engine's named selection rules (styledrop.selection, pure Python, no torch).

`paper`: per content prompt, the top-k candidates by CLIP text score (the paper's rule). `guarded` (our
extension, the default: STYLEDROP_CLIP_RULE): the same, never one whose style score is in the round's lowest
quarter. `random`: the paper's random-selection baseline. Ties go to the higher style score, then the lower id.
A round whose candidates could not all be scored, or where nothing passes, is refused with the engine's
explanation (HTTP 409).
"""

from __future__ import annotations

from typing import Any

from styledrop.selection import DEFAULT_RULE, RULES, SelectionError, select_by_rule

from ..errors import ApiError

METHODS = {
    "paper": "clip (paper): top-{k} per prompt by text score",
    "guarded": "clip (guarded, our extension): top-{k} per prompt by text score, lowest style-score quarter excluded",
    "random": "clip (random, the paper's baseline): {k} random per prompt",
}
assert set(METHODS) == set(RULES)


def apply_clip_rule(items: list[dict[str, Any]], rule: str = DEFAULT_RULE, top_k: int = 1,
                   seed: int = 0) -> tuple[list[int], str]:
    """items: dicts with id, content, text_score, style_score. Returns (chosen ids, how they were chosen)."""
    try:
        ids = select_by_rule(items, rule, top_k=top_k, seed=seed)
    except SelectionError as exc:
        raise ApiError(409, str(exc)) from exc
    return ids, METHODS[rule].format(k=top_k)


def feedback_label(bys: list[str]) -> str:
    """How a round's training set was chosen, from who picked its images: human, clip, or both."""
    kinds = set(bys)
    if kinds >= {"human", "clip"}:
        return "both"
    return "clip" if kinds == {"clip"} else "human"
