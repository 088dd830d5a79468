"""Iterative training with feedback: CLIP scoring, candidate pools, selection rules, rounds, evaluation."""

import csv
import json

import pytest
from PIL import Image

from styledrop.candidates import CONTENT_PROMPTS, Candidate, default_prompts, score_candidates
from styledrop.cli import main
from styledrop.clip_scores import load_scorer
from styledrop.errors import StyleDropError
from styledrop.presets import scorer_for
from styledrop.prompt_sets import EVAL_PROMPTS, diverse_prompts, eval_prompts, overlap
from styledrop.rounds import next_round_training_set, round_dir
from styledrop.selection import (
    ClipRule,
    SelectionError,
    aggregate_ratings,
    clip_assisted,
    select_by_clip,
    select_by_ratings,
    select_by_rule,
)


@pytest.fixture(scope="module")
def scorer():
    return load_scorer("tiny", "cpu")


def _images():
    return [Image.new("RGB", (64, 64), color) for color in [(255, 0, 0), (0, 128, 255), (20, 200, 20)]]


def test_scores_lie_in_range_and_an_image_matches_itself(scorer):
    images = _images()
    reference = scorer.reference_embedding(images[0])
    text, style = scorer.score(images, ["A cat", "A dog", "A house"], reference)
    assert all(-1 <= s <= 1 for s in text + style)
    assert style[0] == pytest.approx(1.0, abs=1e-5)
    assert style[1] < 0.9999


def test_text_score_uses_the_prompt_without_the_descriptor(scorer):
    image = _images()[1]
    candidate = Candidate(0, 1, "a cat", "A cat in watercolor painting style", 0, 0, image=image)
    score_candidates(scorer, [candidate], image)
    plain = scorer.text_scores([image], ["A cat"])[0]
    styled = scorer.text_scores([image], ["A cat in watercolor painting style"])[0]
    assert candidate.text_score == pytest.approx(plain, abs=1e-5)
    assert plain != pytest.approx(styled, abs=1e-4)


def test_built_in_prompts_are_many_and_diverse():
    prompts = default_prompts()
    assert len(prompts) >= 50 and len(set(prompts)) == len(prompts)
    assert set(CONTENT_PROMPTS) == {"animals", "objects", "scenes", "people", "vehicles", "food", "buildings", "text"}
    with pytest.raises(StyleDropError, match="Unknown prompt categories"):
        default_prompts(["dinosaurs"])


POOL = [  # hand-built scores: two prompts, four images each
    dict(id=0, content="a cat", text_score=0.30, style_score=0.70),
    dict(id=1, content="a cat", text_score=0.34, style_score=0.40),  # best text, but style below the guard
    dict(id=2, content="a cat", text_score=0.32, style_score=0.66),
    dict(id=3, content="a cat", text_score=0.32, style_score=0.69),  # ties with 2 on text: higher style wins
    dict(id=4, content="a dog", text_score=0.25, style_score=0.80),
    dict(id=5, content="a dog", text_score=0.28, style_score=0.60),
    dict(id=6, content="a dog", text_score=0.20, style_score=0.90),
    dict(id=7, content="a dog", text_score=0.27, style_score=0.35),  # excluded by the style guard
]


def test_clip_selection_follows_the_documented_rule():
    # lowest-quarter style guard: quantile 0.25 of the 8 style scores = 0.5 -> ids 1 and 7 excluded
    assert select_by_clip(POOL) == [3, 5]
    assert select_by_clip(POOL, ClipRule(top_k=2)) == [3, 2, 5, 4]
    assert select_by_clip(POOL, ClipRule(style_quantile=0)) == [1, 5]  # no guard: pure best text score
    assert select_by_clip(POOL, ClipRule(top_k=3, text_threshold=0.26)) == [3, 2, 0, 5]
    assert select_by_clip(POOL, ClipRule(top_k=4, max_images=3)) == [3, 2, 0]
    assert select_by_clip(POOL, ClipRule(style_floor=0.85)) == [6]


def test_named_rules_are_the_papers_ours_and_the_random_baseline():
    assert select_by_rule(POOL, "paper") == [1, 5]  # best text score per prompt, nothing else
    assert select_by_rule(POOL, "guarded") == [3, 5]  # ours: 1 is in the lowest style quarter
    assert select_by_rule(POOL, "paper", top_k=2) == [1, 3, 5, 7]
    unscored = [dict(c, text_score=None, style_score=None) for c in POOL]  # random needs no scores
    drawn = select_by_rule(unscored, "random", seed=3)
    assert len(drawn) == 2 and {POOL[i]["content"] for i in drawn} == {"a cat", "a dog"}
    assert select_by_rule(unscored, "random", seed=3) == drawn  # seeded: a round can be reproduced
    assert len({tuple(select_by_rule(POOL, "random", seed=s)) for s in range(20)}) > 1
    with pytest.raises(SelectionError, match="Unknown selection rule 'best'"):
        select_by_rule(POOL, "best")


def test_candidate_pools_cover_every_category_and_evaluation_is_held_out():
    pool = diverse_prompts(16)
    assert all(sum(p in prompts for p in pool) == 2 for prompts in CONTENT_PROMPTS.values())
    assert sorted(diverse_prompts()) == sorted(default_prompts())
    held_out = eval_prompts()
    assert len(held_out) >= 100 and set(EVAL_PROMPTS) == set(CONTENT_PROMPTS)
    assert overlap(held_out, default_prompts()) == [] and len(set(held_out)) == len(held_out)
    assert overlap(["A Chihuahua.", "a wolf"], ["a chihuahua"]) == ["A Chihuahua."]


def test_overlap_sees_through_the_red_teams_variants_of_a_prompt():
    """Case, articles, plurals, punctuation and Unicode (NFKC, zero-width characters, look-alike letters of other
    scripts) do not hide a trained prompt from the held-out check."""
    variants = ["a house!", "house", "the house", "a-house", "\u0430 house", "A HOUSE", "houses", "an house",
                "\uff41 \uff48\uff4f\uff55\uff53\uff45", "a\u200bhouse", "hou\u200bse", "h\u043euse", "a house.",
                '"a house"', "a_house", "a   house", "a h\u00f3use", "the houses", "a house\u00ad", "a\u00a0house",
                "\u1d00 house", "A House?", "a\u2011house"]
    assert overlap(variants, ["a house"]) == variants
    assert overlap(["a houseboat", "a horse", "a mouse", "a red house"], ["a house"]) == []
    assert overlap(["two puppies", "a box"], ["two puppy", "boxes"]) == ["two puppies", "a box"]


def test_the_cli_and_the_service_choose_the_same_scorer():
    from app.settings import Settings

    for model in ("tiny", "amused-256-random", "amused/amused-256"):
        assert Settings(model=model).clip_scorer() == scorer_for(model)
    assert scorer_for("tiny") == "tiny" and scorer_for("amused/amused-512") == "default"
    assert scorer_for("tiny", "ViT-B-32/openai") == Settings(clip_model="ViT-B-32/openai").clip_scorer("tiny")


def test_clip_selection_explains_empty_results():
    with pytest.raises(SelectionError, match="No candidate passed"):
        select_by_clip(POOL, ClipRule(text_threshold=0.99))
    with pytest.raises(SelectionError, match="no candidates"):
        select_by_clip([])
    with pytest.raises(SelectionError, match="no CLIP scores"):
        select_by_clip([dict(id=0, content="a", text_score=None, style_score=None)])


def test_human_ratings_aggregate_over_raters_as_documented():
    ratings = [
        {"candidate_id": 1, "rater": "ana", "value": 1}, {"candidate_id": 1, "rater": "ben", "value": 1},
        {"candidate_id": 2, "rater": "ana", "value": 1}, {"candidate_id": 2, "rater": "ben", "value": -1},
        {"candidate_id": 3, "rater": "ana", "value": -1}, {"candidate_id": 3, "rater": "ana", "value": 1},  # changed mind
        {"candidate_id": 4, "rater": "ben", "value": 1},
        {"candidate_id": 5, "rater": "ben", "value": -1},
    ]
    summary = aggregate_ratings(ratings)
    assert summary[1].mean == 1.0 and summary[1].raters == 2
    assert summary[2].mean == 0.0
    assert summary[3].mean == 1.0 and summary[3].raters == 1
    assert select_by_ratings(ratings) == [1, 3, 4]  # 2 (net zero) and 5 (disliked) are out; 1 has more raters
    assert select_by_ratings(ratings, max_images=2) == [1, 3]
    stars = [{"candidate_id": 9, "rater": "a", "value": 5}, {"candidate_id": 9, "rater": "b", "value": 2},
             {"candidate_id": 8, "rater": "a", "value": 3}]
    assert aggregate_ratings(stars, "stars")[9].mean == pytest.approx(0.25)
    assert select_by_ratings(stars, "stars") == [9]


def test_human_selection_explains_empty_and_bad_ratings():
    with pytest.raises(SelectionError, match="Nobody has rated"):
        select_by_ratings([])
    with pytest.raises(SelectionError, match="positive rating"):
        select_by_ratings([{"candidate_id": 1, "rater": "a", "value": -1}])
    with pytest.raises(StyleDropError, match="1 to 5"):
        aggregate_ratings([{"candidate_id": 1, "rater": "a", "value": 7}], "stars")


def test_clip_assisted_selection_applies_the_persons_changes():
    assert clip_assisted(POOL, confirmed=[6], rejected=[5]) == [3, 6]
    with pytest.raises(SelectionError, match="rejected"):
        clip_assisted(POOL, rejected=[3, 5])


TRAIN = ["train", "--content", "a house", "--descriptor", "flat cartoon illustration", "--model", "tiny",
         "--steps", "8", "--batch-size", "2", "--checkpoint-every", "0"]


def _first_round(tmp_path, reference_file):
    style = tmp_path / "style"
    assert main(TRAIN + ["--image", reference_file, "--out", str(style)]) == 0
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a short pool\na chihuahua\na teapot\na red bicycle\n")
    assert main(["candidates", str(style), "--per-prompt", "3", "--prompts", str(prompts), "--scorer", "tiny",
                 "--steps", "4"]) == 0
    return style


def _round_two(style):
    assert main(["train-round", str(style), "--steps", "6", "--batch-size", "2"]) == 0
    manifest = json.loads((style / "style.json").read_text())
    assert manifest["extra"]["round"] == 2 and manifest["adapter"]["rank"] == 32
    assert manifest["adapter"]["shared"] is False
    assert (round_dir(style, 2) / "adapter.safetensors").is_file()
    assert (round_dir(style, 1) / "adapter.safetensors").is_file()
    return manifest


def test_clip_feedback_loop_runs_two_rounds_end_to_end(tmp_path, reference_file, capsys):
    style = _first_round(tmp_path, reference_file)
    pool = json.loads((round_dir(style, 1) / "candidates" / "candidates.json").read_text())
    assert len(pool) == 9 and all(c["text_score"] is not None and c["style_score"] is not None for c in pool)
    assert [c["seed"] for c in pool] == list(range(9)) and all(c["round"] == 1 for c in pool)  # candidate_seed(0, k)
    assert main(["select", str(style), "--clip", "--rule", "random"]) == 0
    drawn = json.loads((round_dir(style, 1) / "selection.json").read_text())
    assert drawn["by"] == "random" and drawn["details"]["rule"] == "random"  # the baseline, not CLIP's pick
    assert main(["select", str(style), "--clip"]) == 0
    selection = json.loads((round_dir(style, 1) / "selection.json").read_text())
    assert selection["by"] == "clip" and selection["ids"] == select_by_clip(pool)

    images, contents = next_round_training_set(style, 1)
    assert len(images) == 1 + len(selection["ids"])
    assert contents[0] == "a house"
    assert contents[1:] == [next(c["content"] for c in pool if c["id"] == i) for i in selection["ids"]]

    manifest = _round_two(style)
    assert manifest["prompts"][0] == "A house in flat cartoon illustration style"
    assert manifest["extra"]["sample_defaults"]["adapter_guidance"] == 2.0
    out = tmp_path / "out"
    assert main(["generate", str(style), "a cat", "--out", str(out), "--steps", "4"]) == 0
    assert len(list(out.glob("*.png"))) == 1


def test_train_round_keeps_the_styles_adapter_kind_unless_told(tmp_path, reference_file):
    style = tmp_path / "style"
    assert main(TRAIN + ["--adapter", "lora", "--image", reference_file, "--out", str(style)]) == 0
    assert main(["candidates", str(style), "--per-prompt", "1", "--limit", "2", "--steps", "2"]) == 0
    assert main(["select", str(style), "--ids", "0"]) == 0
    assert main(["train-round", str(style), "--steps", "2", "--batch-size", "1"]) == 0
    manifest = json.loads((style / "style.json").read_text())
    assert manifest["extra"]["round"] == 2 and manifest["adapter"]["kind"] == "lora"  # a LoRA style stays LoRA
    trained = json.loads((round_dir(style, 1) / "candidates" / "candidates.json").read_text())[0]["content"]
    assert main(["candidates", str(style), "--per-prompt", "1", "--limit", "2", "--steps", "2"]) == 0
    pool = json.loads((round_dir(style, 2) / "candidates" / "candidates.json").read_text())
    assert len(pool) == 2 and trained not in {c["content"] for c in pool}  # round 2 draws on other prompts
    told = tmp_path / "told"
    assert main(TRAIN + ["--adapter", "lora", "--image", reference_file, "--out", str(told)]) == 0
    assert main(["candidates", str(told), "--per-prompt", "1", "--limit", "2", "--steps", "2"]) == 0
    assert main(["select", str(told), "--ids", "0"]) == 0
    assert main(["train-round", str(told), "--steps", "2", "--batch-size", "1", "--adapter", "styledrop",
                 "--no-flips", "--weight-decay", "0", "--max-grad-norm", "0", "--text-dropout", "0.5"]) == 0
    manifest = json.loads((told / "style.json").read_text())
    assert manifest["adapter"]["kind"] == "styledrop" and manifest["adapter"]["rank"] == 32  # told otherwise
    training = manifest["training"]  # the paper's choices, asked for, recorded with the adapter
    assert (training["augment"], training["weight_decay"], training["max_grad_norm"], training["cond_dropout"]) == \
        (False, 0.0, None, 0.5)
    out = tmp_path / "out"
    assert main(["generate", str(told), "a cat", "--out", str(out), "--steps", "2", "--temperature", "4.5", "0"]) == 0


def test_one_candidate_count_default(tmp_path, reference_file):
    """The service's settings, a round's plan and `styledrop candidates` draw pools of the same default size."""
    from app.settings import Settings
    from styledrop.cli import build_parser
    from styledrop.plan import CandidatePlan

    settings, plan = Settings(data_dir=tmp_path), CandidatePlan()
    assert (settings.candidate_prompts, settings.candidates_per_prompt) == (plan.count, plan.per_prompt)
    style = tmp_path / "style"
    assert main(TRAIN + ["--image", reference_file, "--out", str(style)]) == 0
    args = build_parser().parse_args(["candidates", str(style)])
    assert args.per_prompt == plan.per_prompt
    assert main(["candidates", str(style), "--per-prompt", "1", "--steps", "1", "--scorer", "tiny"]) == 0
    pool = json.loads((round_dir(style, 1) / "candidates" / "candidates.json").read_text())
    assert len(pool) == plan.count  # the built-in prompts, cut at the one default


def test_human_feedback_loop_runs_two_rounds_end_to_end(tmp_path, reference_file):
    style = _first_round(tmp_path, reference_file)
    ratings = tmp_path / "ratings.csv"
    with open(ratings, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["candidate_id", "rater", "value"])
        writer.writerows([[0, "ana", 1], [0, "ben", 1], [4, "ana", 1], [5, "ben", -1], [7, "ana", 1], [7, "ben", -1]])
    assert main(["select", str(style), "--ratings", str(ratings)]) == 0
    selection = json.loads((round_dir(style, 1) / "selection.json").read_text())
    assert selection == {"round": 1, "ids": [0, 4], "by": "human", "details": {"ratings": str(ratings), "scale": "thumbs"}}
    manifest = _round_two(style)
    assert len(manifest["prompts"]) == 3  # reference + two liked images, each with its own prompt
    assert manifest["extra"]["selection"] == "human"


def test_candidates_on_an_offline_style_pick_the_offline_scorer(tmp_path, reference_file):
    style = tmp_path / "style"
    assert main(TRAIN + ["--image", reference_file, "--out", str(style)]) == 0
    assert main(["candidates", str(style), "--per-prompt", "1", "--limit", "8", "--steps", "2"]) == 0  # no --scorer
    pool = json.loads((round_dir(style, 1) / "candidates" / "candidates.json").read_text())
    assert [c["content"] for c in pool] == diverse_prompts(8)  # one prompt of every category
    assert all(c["text_score"] is not None for c in pool)


def test_eval_refuses_prompts_a_round_was_trained_on(tmp_path, reference_file, capsys):
    style = _first_round(tmp_path, reference_file)
    assert main(["select", str(style), "--ids", "0,3"]) == 0  # a chihuahua and a teapot train round 2
    _round_two(style)
    prompts = tmp_path / "eval.txt"
    prompts.write_text("A Chihuahua\na wolf howling at the moon\na house\n")
    capsys.readouterr()
    assert main(["eval", str(style), "--prompts", str(prompts), "--per-prompt", "1"]) == 1
    err = capsys.readouterr().err
    assert "2 evaluation prompt(s) were trained on" in err and "'A Chihuahua'" in err and "'a house'" in err
    assert "--allow-overlap" in err
    out = tmp_path / "report"
    assert main(["eval", str(style), "--prompts", str(prompts), "--per-prompt", "1", "--allow-overlap",
                 "--out", str(out)]) == 0
    assert json.loads((out / "eval.json").read_text())["prompt_list"] == str(prompts)


def test_a_two_reference_style_keeps_both_references_in_every_round(tmp_path, reference_file, scorer):
    from styledrop.rounds import reference_contents, reference_images

    second = tmp_path / "second.png"
    Image.new("RGB", (64, 64), (30, 60, 200)).save(second)
    style = tmp_path / "style"
    two = [a for a in TRAIN if a not in ("--content", "a house")]
    assert main(two + ["--image", reference_file, "--image", str(second), "--content", "a house",
                       "--content", "a lake", "--out", str(style)]) == 0
    assert (style / "reference.png").is_file() and (style / "reference-2.png").is_file()
    assert reference_contents(style) == ["a house", "a lake"]
    assert main(["candidates", str(style), "--per-prompt", "1", "--limit", "2", "--steps", "2"]) == 0
    assert main(["select", str(style), "--ids", "1"]) == 0
    images, contents = next_round_training_set(style, 1)
    assert contents[:2] == ["a house", "a lake"] and len(images) == 3
    manifest = _round_two(style)
    assert manifest["prompts"][:2] == ["A house in flat cartoon illustration style",
                                       "A lake in flat cartoon illustration style"]
    assert not (round_dir(style, 2) / "reference-2.png").exists()  # kept once, at the top of the folder
    assert len(reference_images(style)) == 2
    # round 1's style scores compared each candidate with both references (their mean direction)
    pool = json.loads((round_dir(style, 1) / "candidates" / "candidates.json").read_text())
    with Image.open(round_dir(style, 1) / "candidates" / pool[0]["file"]) as img:
        image = img.convert("RGB")
    refs = reference_images(style)
    both = scorer.style_scores([image], scorer.reference_embedding(refs))[0]
    first = scorer.style_scores([image], scorer.reference_embedding(refs[0]))[0]
    assert pool[0]["style_score"] == pytest.approx(both, abs=1e-5) and both != pytest.approx(first, abs=1e-4)


def test_select_refuses_unknown_ids(tmp_path, reference_file, capsys):
    style = _first_round(tmp_path, reference_file)
    capsys.readouterr()
    assert main(["select", str(style), "--ids", "2,99"]) == 1
    assert "Unknown candidate ids [99]" in capsys.readouterr().err


def test_eval_writes_json_table_plot_and_contact_sheet(tmp_path, reference_file, capsys):
    style = _first_round(tmp_path, reference_file)
    assert main(["select", str(style), "--ids", "0,3"]) == 0
    _round_two(style)
    out = tmp_path / "report"
    assert main(["eval", str(style), "--scorer", "tiny", "--limit", "3", "--per-prompt", "2", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["prompts"] == eval_prompts()[:3] and report["prompt_list"].startswith("built-in held-out list")
    assert [r["name"] for r in report["rows"]] == ["base", "round 1", "round 2"]
    assert all(r["count"] == 6 and -1 <= r["text_mean"] <= 1 and r["style_std"] >= 0 for r in report["rows"])
    assert report["clip_model"].startswith("tiny")
    table = (out / "eval.md").read_text()
    assert "| round 2 |" in table and "CLIP model: tiny" in table and "held-out" in table
    for name in ("scores.png", "contact_sheet.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > 100
