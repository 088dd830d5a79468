"""Rule feedback for the web app: the engine's named selection rules (styledrop.selection, pure Python, no torch).

`paper`: per content prompt, the top-k candidates by CLIP text score (the paper's rule). `guarded` (our
extension, the default: STYLEDROP_CLIP_RULE): first drops every candidate whose style score is in the lowest
quarter of the whole pool, then the paper's rule on the rest, so a prompt whose images all fall in that
quarter gets no pick. `random`: the paper's random-selection baseline, no CLIP at all. Ties go to the higher
style score, then the lower id. A round whose candidates could not all be scored, or where nothing passes, is
refused with the engine's explanation (HTTP 409).

Every selection records its origin as it is (`origin`): "human" (a person), "clip" (a CLIP rule, named in
`rule`) or "random" (the random baseline, rule "random").
"""

from __future__ import annotations

from typing import Any

from styledrop.selection import DEFAULT_RULE, RANDOM, RULES, SelectionError, select_by_rule

from ..errors import ApiError

METHODS = {
    "paper": "clip (paper): top-{k} per prompt by text score",
    "guarded": "clip (guarded, our extension): the pool's lowest style-score quarter dropped, then top-{k} per "
               "prompt by text score; a prompt with nothing left gets no pick",
    "random": "random (the paper's baseline, no CLIP): {k} at random per prompt",
}
assert set(METHODS) == set(RULES)

# What each rule does, in the words the pages, the API schema and the docs use.
RULE_HELP = {
    "paper": "CLIP's best text score per prompt (the paper's rule)",
    "guarded": "our extension: drops the pool's lowest quarter of style scores, then CLIP's best text score per "
               "prompt among the rest (a prompt can get no pick)",
    "random": "a random image per prompt, no CLIP (the paper's baseline)",
}
assert set(RULE_HELP) == set(RULES)

HUMAN, CLIP, RANDOM_ORIGIN = "human", "clip", "random"


def origin(rule: str) -> str:
    """Who a rule's selection is by: "random" for the random baseline, "clip" for a CLIP rule."""
    return RANDOM_ORIGIN if rule == RANDOM else CLIP


def apply_clip_rule(items: list[dict[str, Any]], rule: str = DEFAULT_RULE, top_k: int = 1,
                   seed: int = 0) -> tuple[list[int], str]:
    """items: dicts with id, content, text_score, style_score. Returns (chosen ids, how they were chosen)."""
    try:
        ids = select_by_rule(items, rule, top_k=top_k, seed=seed)
    except SelectionError as exc:
        raise ApiError(409, str(exc)) from exc
    return ids, METHODS[rule].format(k=top_k)


def feedback_label(bys: list[str]) -> str:
    """How a round's training set was chosen, from who picked its images: "human", "clip", "random", or
    "mixed" (more than one of them; the round's training set records each image's origin and rule)."""
    kinds = set(bys)
    return kinds.pop() if len(kinds) == 1 else "mixed"


LABELS = {HUMAN: "your picks", CLIP: "CLIP's picks", RANDOM_ORIGIN: "random picks (the paper's baseline)",
          "both": "your picks + CLIP's", "mixed": "mixed picks"}  # rounds.feedback ("both": older rows)


def training_origins(items: list[Any], feedback: str | None) -> str:
    """The selected part of a round's training set in words, e.g. "2 of your picks + 3 CLIP picks (guarded
    rule)"; rounds planned before items recorded their origin fall back to the round's feedback label."""
    picked = [i for i in items if getattr(i, "candidate_id", None) is not None]
    if not picked or any(getattr(i, "picked_by", None) is None for i in picked):
        return LABELS.get(feedback or "", feedback or "")
    parts = []
    humans = sum(1 for i in picked if i.picked_by == HUMAN)
    if humans:
        parts.append(f"{humans} of your picks")
    for kind, noun in ((CLIP, "CLIP"), (RANDOM_ORIGIN, "random")):
        rules = sorted({i.rule or "" for i in picked if i.picked_by == kind})
        for rule in rules:
            count = sum(1 for i in picked if i.picked_by == kind and (i.rule or "") == rule)
            what = f"{count} {noun} pick{'' if count == 1 else 's'}"
            if kind == CLIP and rule:
                what += f" ({rule} rule)"
            elif kind == RANDOM_ORIGIN:
                what += " (the paper's baseline)"
            parts.append(what)
    return " + ".join(parts)
