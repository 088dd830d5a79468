"""Which generated images feed the next round (paper §3.3, §4.4.3). Pure Python: the web app imports it.

Three CLIP rules, named for what they are (`select_by_rule`):

``paper``
    The paper's CLIP feedback: for each content prompt, the candidate with the best CLIP *text* score
    (`top_k` per prompt, default 1: 30 images from 30 prompts in the paper). Nothing else.
``guarded`` (our extension, the service's default)
    First drops every candidate in the whole pool's lowest style-score quantile (default: the lowest quarter),
    or below an absolute `style_floor` when one is given, then the paper's rule on the rest, so a prompt whose
    images all fell below the guard gets no pick. High text fidelity alone rewards images that dropped the
    style; the guard keeps those out. This is not in the paper.
``random``
    The paper's Table 2 baseline ("+random selection"): as many images as the paper's rule would pick, one
    per prompt, chosen at random (seeded, so a round can be reproduced).

Ties break on the higher style score, then the lower id. An optional `text_threshold` drops candidates
below an absolute text score.

Human feedback
    Ratings are thumbs (−1/+1) or stars (1–5, mapped to (v − 3)/2 so both live in [−1, 1]). One rater's
    latest rating of a candidate counts once; a candidate's score is the mean over raters. Selected are the
    candidates with a positive mean, best first (ties: more raters, then lower id), at most `max_images`
    (default 10, the paper's "up to 10" — fewer than a dozen is enough).

CLIP-assisted human feedback
    CLIP pre-selects with a rule; the person's confirmations are added and rejections removed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from .errors import StyleDropError

THUMBS = "thumbs"
STARS = "stars"


class SelectionError(StyleDropError):
    """No image could be selected; the message says why and what to change."""


def _get(item: Any, key: str) -> Any:
    return item[key] if isinstance(item, Mapping) else getattr(item, key)


@dataclass(frozen=True)
class ClipRule:
    """The guarded rule by default; `ClipRule(style_quantile=0)` is the paper's (see `rule_named`)."""

    top_k: int = 1
    text_threshold: float | None = None
    style_quantile: float = 0.25
    style_floor: float | None = None
    max_images: int | None = None


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def style_guard(style_scores: list[float], rule: ClipRule) -> float:
    """The lowest style score a candidate may have to be picked."""
    if rule.style_floor is not None:
        return rule.style_floor
    return _quantile(style_scores, rule.style_quantile) if rule.style_quantile > 0 else float("-inf")


def select_by_clip(items: Iterable[Any], rule: ClipRule = ClipRule()) -> list[int]:
    """Ids chosen by CLIP feedback; items have id, content, text_score and style_score."""
    pool = list(items)
    if rule.top_k < 1:
        raise SelectionError("top_k must be at least 1.")
    if not pool:
        raise SelectionError("There are no candidates to select from: generate candidates first.")
    if any(_get(c, "text_score") is None or _get(c, "style_score") is None for c in pool):
        raise SelectionError("Some candidates have no CLIP scores yet: score them before CLIP selection.")
    floor = style_guard([float(_get(c, "style_score")) for c in pool], rule)
    by_prompt: dict[str, list[Any]] = defaultdict(list)
    for c in pool:
        if float(_get(c, "style_score")) < floor:
            continue
        if rule.text_threshold is not None and float(_get(c, "text_score")) < rule.text_threshold:
            continue
        by_prompt[_get(c, "content")].append(c)
    key = lambda c: (-float(_get(c, "text_score")), -float(_get(c, "style_score")), int(_get(c, "id")))  # noqa: E731
    chosen = [c for group in by_prompt.values() for c in sorted(group, key=key)[: rule.top_k]]
    chosen.sort(key=key)
    if rule.max_images is not None:
        chosen = chosen[: rule.max_images]
    if not chosen:
        raise SelectionError(
            f"No candidate passed the CLIP rule (style guard {floor:.3f}"
            + (f", text threshold {rule.text_threshold}" if rule.text_threshold is not None else "")
            + "): lower the thresholds or generate more candidates.")
    return [int(_get(c, "id")) for c in chosen]


PAPER, GUARDED, RANDOM = "paper", "guarded", "random"
RULES = (PAPER, GUARDED, RANDOM)
DEFAULT_RULE = GUARDED


def rule_named(name: str, top_k: int = 1, max_images: int | None = None) -> ClipRule:
    """The ClipRule behind a rule name ('random' selects like 'paper' would, then draws at random)."""
    if name not in RULES:
        raise SelectionError(f"Unknown selection rule '{name}'; choose from {', '.join(RULES)}.")
    rule = ClipRule(top_k=top_k, max_images=max_images)
    return rule if name == GUARDED else replace(rule, style_quantile=0.0)


def select_randomly(items: Iterable[Any], per_prompt: int = 1, seed: int = 0,
                    max_images: int | None = None) -> list[int]:
    """The paper's random-selection baseline: `per_prompt` random candidates of every prompt (no scores needed)."""
    pool = sorted(items, key=lambda c: int(_get(c, "id")))
    if not pool:
        raise SelectionError("There are no candidates to select from: generate candidates first.")
    by_prompt: dict[str, list[Any]] = defaultdict(list)
    for c in pool:
        by_prompt[_get(c, "content")].append(c)
    rng = random.Random(seed)
    chosen = [int(_get(c, "id")) for group in by_prompt.values() for c in rng.sample(group, min(per_prompt, len(group)))]
    return chosen[:max_images] if max_images is not None else chosen


def select_by_rule(items: Iterable[Any], rule: str = DEFAULT_RULE, top_k: int = 1, seed: int = 0,
                   max_images: int | None = None) -> list[int]:
    """Ids chosen by a named rule: 'paper', 'guarded' (ours) or 'random' (the paper's baseline)."""
    if rule == RANDOM:
        return select_randomly(items, top_k, seed, max_images)
    return select_by_clip(items, rule_named(rule, top_k, max_images))


def normalize_rating(value: float, scale: str) -> float:
    if scale == THUMBS:
        if value not in (-1, 1):
            raise StyleDropError(f"A thumbs rating is -1 or +1, got {value}.")
        return float(value)
    if scale == STARS:
        if not 1 <= value <= 5 or int(value) != value:
            raise StyleDropError(f"A star rating is a whole number from 1 to 5, got {value}.")
        return (float(value) - 3.0) / 2.0
    raise StyleDropError(f"Unknown rating scale '{scale}' (thumbs or stars).")


@dataclass(frozen=True)
class RatingSummary:
    candidate_id: int
    mean: float
    raters: int


def aggregate_ratings(ratings: Iterable[Any], scale: str = THUMBS) -> dict[int, RatingSummary]:
    """Mean normalised rating per candidate over raters; a rater's later rating replaces an earlier one.

    Each rating has candidate_id, rater and value (dicts or objects), in the order they were given.
    """
    latest: dict[tuple[int, str], float] = {}
    for r in ratings:
        latest[(int(_get(r, "candidate_id")), str(_get(r, "rater")))] = normalize_rating(_get(r, "value"), scale)
    per_candidate: dict[int, list[float]] = defaultdict(list)
    for (candidate_id, _), value in latest.items():
        per_candidate[candidate_id].append(value)
    return {cid: RatingSummary(cid, sum(v) / len(v), len(v)) for cid, v in per_candidate.items()}


def select_by_ratings(ratings: Iterable[Any], scale: str = THUMBS, max_images: int = 10) -> list[int]:
    summaries = aggregate_ratings(ratings, scale)
    if not summaries:
        raise SelectionError("Nobody has rated any candidate yet: rate a few images (about 10 is enough).")
    liked = [s for s in summaries.values() if s.mean > 0]
    if not liked:
        raise SelectionError("No candidate has a positive rating: like at least one image to train the next round.")
    liked.sort(key=lambda s: (-s.mean, -s.raters, s.candidate_id))
    return [s.candidate_id for s in liked[:max_images]]


def clip_assisted(items: Iterable[Any], confirmed: Iterable[int] = (), rejected: Iterable[int] = (),
                  rule: ClipRule | str = ClipRule()) -> list[int]:
    """CLIP's pre-selection, with the person's additions (confirmed) and removals (rejected)."""
    rejected_set = set(rejected)
    picked = select_by_rule(items, rule) if isinstance(rule, str) else select_by_clip(items, rule)
    chosen = [cid for cid in picked if cid not in rejected_set]
    chosen += [cid for cid in confirmed if cid not in chosen and cid not in rejected_set]
    if not chosen:
        raise SelectionError("Every pre-selected image was rejected: confirm at least one image.")
    return chosen
