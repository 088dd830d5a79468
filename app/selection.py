"""CLIP feedback: which candidates of a round train the next one. THE one place that picks them.

Integration point: `styledrop.selection.select_by_clip` (engine, pure Python, torch-free) is used when it
can be imported and every candidate has both CLIP scores. Otherwise the documented fallback below is
used: for each content prompt, the candidate with the highest CLIP text score (the paper's CLIP feedback,
§3.3: top-1 per prompt by text score); candidates without a score rank last, ties go to the lower id.
"""

from __future__ import annotations

from typing import Any


def select_by_clip(items: list[dict[str, Any]], top_k: int = 1) -> tuple[list[int], str]:
    """items: dicts with id, content, text_score, style_score. Returns (chosen ids, which method chose)."""
    if not items:
        return [], "none"
    scored = all(i.get("text_score") is not None and i.get("style_score") is not None for i in items)
    if scored:
        try:
            from styledrop.selection import select_by_clip as engine_select
        except ImportError:
            engine_select = None
        if engine_select is not None:
            return [int(i) for i in engine_select(items, top_k=top_k)], "styledrop.selection.select_by_clip"
    return fallback_top_per_prompt(items, top_k), "fallback: top-1 per prompt by CLIP text score"


def fallback_top_per_prompt(items: list[dict[str, Any]], top_k: int = 1) -> list[int]:
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_prompt.setdefault(item["content"], []).append(item)
    chosen: list[int] = []
    for group in by_prompt.values():
        group.sort(key=lambda i: (i.get("text_score") is None, -(i.get("text_score") or 0.0), i["id"]))
        chosen.extend(int(i["id"]) for i in group[:top_k])
    return chosen
