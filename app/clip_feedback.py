"""CLIP feedback for the web app: the engine's documented rule (styledrop.selection, pure Python, no torch).

Per content prompt, the top-k candidates by CLIP text score, never one whose style score is in the round's
lowest quarter; ties to the higher style score, then the lower id. A round whose candidates could not all
be scored, or where nothing passes, is refused with the engine's explanation (HTTP 409).
"""

from __future__ import annotations

from typing import Any

from styledrop.selection import ClipRule, SelectionError
from styledrop.selection import select_by_clip as engine_select_by_clip

from .errors import ApiError

METHOD = "clip: top-{k} per prompt by text score, lowest style-score quarter excluded"


def select_by_clip(items: list[dict[str, Any]], top_k: int = 1) -> tuple[list[int], str]:
    """items: dicts with id, content, text_score, style_score. Returns (chosen ids, how they were chosen)."""
    try:
        ids = engine_select_by_clip(items, ClipRule(top_k=top_k))
    except SelectionError as exc:
        raise ApiError(409, str(exc)) from exc
    return ids, METHOD.format(k=top_k)


def feedback_label(bys: list[str]) -> str:
    """How a round's training set was chosen, from who picked its images: human, clip, or both."""
    kinds = set(bys)
    if kinds >= {"human", "clip"}:
        return "both"
    return "clip" if kinds == {"clip"} else "human"
