"""The two hooks the engine's CLIP scoring and selection plug into (issue 3), tested with stand-ins."""

from __future__ import annotations

import sys
import types

from PIL import Image

from app.selection import fallback_top_per_prompt, select_by_clip
from worker import scoring


def test_score_candidates_without_engine_module_leaves_scores_empty(monkeypatch):
    monkeypatch.setitem(sys.modules, "styledrop.clip_scores", None)  # import fails as if missing
    assert scoring.score_candidates(Image.new("RGB", (8, 8)), [Image.new("RGB", (8, 8))], ["a cat"]) == (None, None)


def test_score_candidates_calls_the_engine_scorer(monkeypatch):
    calls = {}

    class FakeScorer:
        def reference_embedding(self, image):
            return "ref"

        def text_scores(self, images, contents):
            calls["contents"] = contents
            return [0.25 for _ in images]

        def style_scores(self, images, reference_embedding):
            assert reference_embedding == "ref"
            return [0.5 for _ in images]

    module = types.ModuleType("styledrop.clip_scores")
    module.load_scorer = lambda name="default", device=None: FakeScorer()
    monkeypatch.setitem(sys.modules, "styledrop.clip_scores", module)
    monkeypatch.setattr(scoring, "_scorers", {})
    images = [Image.new("RGB", (8, 8))] * 2
    assert scoring.score_candidates(images[0], images, ["a cat", "a dog"], name="tiny") == ([0.25, 0.25], [0.5, 0.5])
    assert calls["contents"] == ["a cat", "a dog"]


def test_candidate_prompts_use_the_engine_list_when_present(monkeypatch):
    monkeypatch.setitem(sys.modules, "styledrop.candidates", None)
    assert scoring.candidate_prompts(3) == scoring.FALLBACK_PROMPTS[:3]
    module = types.ModuleType("styledrop.candidates")
    module.default_prompts = lambda: [f"thing {i}" for i in range(60)]
    monkeypatch.setitem(sys.modules, "styledrop.candidates", module)
    assert scoring.candidate_prompts(2) == ["thing 0", "thing 1"]


ITEMS = [{"id": 1, "content": "a cat", "text_score": 0.2, "style_score": 0.9},
         {"id": 2, "content": "a cat", "text_score": 0.3, "style_score": 0.1},
         {"id": 3, "content": "a dog", "text_score": None, "style_score": None},
         {"id": 4, "content": "a dog", "text_score": 0.1, "style_score": 0.5}]


def test_selection_fallback_top_one_per_prompt():
    assert fallback_top_per_prompt(ITEMS) == [2, 4]  # unscored ranks last
    monkey_items = [dict(i, text_score=None, style_score=None) for i in ITEMS]
    assert fallback_top_per_prompt(monkey_items) == [1, 3]  # nothing scored: lowest id per prompt


def test_selection_uses_engine_select_by_clip_when_scored(monkeypatch):
    module = types.ModuleType("styledrop.selection")
    module.select_by_clip = lambda items, top_k=1, **kw: [items[0]["id"]]
    monkeypatch.setitem(sys.modules, "styledrop.selection", module)
    scored = [i for i in ITEMS if i["text_score"] is not None]
    assert select_by_clip(scored) == ([1], "styledrop.selection.select_by_clip")
    ids, method = select_by_clip(ITEMS)  # one candidate unscored: the fallback decides
    assert ids == [2, 4] and method.startswith("fallback")
