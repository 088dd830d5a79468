"""The worker's CLIP scoring and the app's CLIP selection use the engine's real implementations."""

from __future__ import annotations

import pytest
from PIL import Image

from app.domain.clip_rules import apply_clip_rule
from app.errors import ApiError
from styledrop.prompt_sets import CONTENT_PROMPTS, diverse_prompts
from styledrop.selection import select_by_rule
from worker import scoring


def test_worker_scores_with_the_engine_scorer():
    red, blue = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))
    text, style = scoring.score_candidates(red, [red, blue], ["a cat", "a dog"], name="tiny", device="cpu")
    assert len(text) == len(style) == 2
    assert all(-1 <= s <= 1 for s in text + style)
    assert style[0] == pytest.approx(1.0, abs=1e-5) and style[1] < 0.9999  # the reference scores itself 1
    assert scoring.score_candidates(red, [], [], name="tiny", device="cpu") == ([], [])


def test_worker_prompts_are_the_engine_list():
    assert scoring.candidate_prompts(5) == diverse_prompts(5)
    pool = scoring.candidate_prompts(16)  # the default pool: two prompts of every category
    assert {name for name, prompts in CONTENT_PROMPTS.items() for p in pool if p in prompts} == set(CONTENT_PROMPTS)


ITEMS = [
    {"id": 1, "content": "a cat", "text_score": 0.30, "style_score": 0.70},
    {"id": 2, "content": "a cat", "text_score": 0.35, "style_score": 0.20},  # best text, style guard drops it
    {"id": 3, "content": "a dog", "text_score": 0.25, "style_score": 0.60},
    {"id": 4, "content": "a dog", "text_score": 0.20, "style_score": 0.65},
]


def test_app_selection_is_the_engine_rule():
    ids, method = apply_clip_rule(ITEMS)  # the default rule: guarded, our extension, and said to be one
    assert ids == [1, 3] and method.startswith("clip (guarded, our extension): the pool's lowest style-score")
    for rule in ("paper", "guarded", "random"):
        assert apply_clip_rule(ITEMS, rule)[0] == select_by_rule(ITEMS, rule)


def test_unscored_or_empty_rounds_are_refused_with_the_reason():
    with pytest.raises(ApiError) as info:
        apply_clip_rule(ITEMS + [{"id": 5, "content": "a fox", "text_score": None, "style_score": None}])
    assert info.value.status == 409 and "no CLIP scores" in info.value.detail
    with pytest.raises(ApiError, match="no candidates to select from") as info:
        apply_clip_rule([])
    assert info.value.status == 409


def test_offline_presets_are_scored_offline_unless_a_scorer_is_configured():
    from app.settings import Settings

    assert Settings(model="tiny", clip_model=None).clip_scorer() == "tiny"
    assert Settings(model="amused/amused-256", clip_model=None).clip_scorer() == "default"
    assert Settings(model="amused/amused-256", clip_model=None).clip_scorer("amused-256-random") == "tiny"
    assert Settings(model="tiny", clip_model="ViT-B-32/openai").clip_scorer() == "ViT-B-32/openai"
