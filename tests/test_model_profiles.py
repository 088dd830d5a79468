"""Per-base-model defaults (styledrop.model_profiles): aMUSEd and every model that is not a world keep the paper's
recipe and the built-in prompt lists exactly; a world's come from its spec and scene, and reach the round plan."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from styledrop.model_profiles import AMUSED, profile_for
from styledrop.plan import RoundPlan, plan_round, sampling_recipe
from styledrop.prompt_sets import SAMPLE_CONTENTS, diverse_prompts, eval_prompts, overlap
from styledrop.world import scene as world
from styledrop.world.spec import WORLDS


@pytest.mark.parametrize("model", [None, "amused/amused-256", "amused/amused-512", "tiny", "amused-256-random",
                                   "/some/diffusers/folder", "shapes-large"])
def test_models_that_are_not_worlds_keep_the_papers_recipe(model):
    assert profile_for(model) is AMUSED
    first, second = plan_round(1, model=model), plan_round(2, model=model)
    assert first.sampling.model_dump() == {"adapter_guidance": 0.0, "guidance": 9.0, "steps": 12,
                                           "temperature": (2.0, 0.0)}
    assert second.sampling.adapter_guidance == 2.0 and second.sampling.guidance == 9.0
    train = first.train
    assert (train.steps, train.batch_size, train.learning_rate, train.flips) == (1000, 8, None, True)
    assert train.sample_every == 250
    assert first.candidates.prompts == diverse_prompts(16) and first.candidates.count == 16
    assert first.train.sample_prompts == list(SAMPLE_CONTENTS)
    assert profile_for(model).eval_prompts() == eval_prompts()


@pytest.mark.parametrize("name", list(WORLDS))
def test_a_world_plans_its_rounds_with_its_own_recipe(name):
    spec = WORLDS[name]
    for number in (1, 2, 3):
        sampling = plan_round(number, model=name).sampling
        assert sampling.guidance == spec.sampling["guidance"] == 1.0
        assert sampling.adapter_guidance == spec.round_sampling["adapter_guidance"] == 0.0  # not the paper's 2
    plan = plan_round(1, model=f" {name} ")
    train = plan.train
    assert (train.steps, train.learning_rate, train.batch_size, train.flips) == (150, 2e-3, 8, False)
    assert train.sample_every == 50  # four sets of live samples in a 150-step round
    assert plan.candidates.prompts == [world.content_of(s) for s in world.CANDIDATE_SHAPES]
    assert plan.candidates.count == len(world.CANDIDATE_SHAPES)
    assert plan.train.sample_prompts == ["a circle", "a star"]
    held_out = profile_for(name).eval_prompts()
    assert held_out == [world.content_of(s) for s in world.EVAL_SHAPES]
    assert not overlap(plan.candidates.prompts, held_out)  # candidates never drawn on the evaluation contents


def test_what_is_given_wins_over_the_worlds_defaults():
    plan = plan_round(2, model="shapes", train={"steps": 7, "flips": True, "batch_size": None},
                      candidates={"count": 2, "prompts": None}, sampling={"adapter_guidance": 2.0, "steps": 3})
    assert (plan.train.steps, plan.train.flips, plan.train.batch_size) == (7, True, 8)
    assert plan.candidates.prompts == ["a circle", "a square"]
    assert (plan.sampling.adapter_guidance, plan.sampling.steps, plan.sampling.guidance) == (2.0, 3, 1.0)
    assert sampling_recipe(1, "shapes", guidance=4.0).guidance == 4.0


def test_a_stored_plan_is_read_back_as_it_was_and_an_older_row_by_its_model():
    plan = plan_round(2, model="shapes")
    again = RoundPlan.from_stored(plan.stored())
    assert again == plan  # the row holds the values used, prompts included
    older = RoundPlan.from_stored({"model": "shapes", "based_on_round": 3, "candidates": {"count": 4}})
    assert (older.number, older.sampling.guidance, older.sampling.adapter_guidance) == (2, 1.0, 0.0)


def test_the_round_recipe_does_not_change_what_a_build_is():
    """A world built before the recipe was recorded, or with another recipe, is the same build."""
    spec = WORLDS["shapes"]
    other = replace(spec, round_sampling={"adapter_guidance": 1.0}, round_training={"steps": 10})
    assert other.fingerprint() == spec.fingerprint()


def test_profiles_stay_torch_free():
    code = ("import sys; from styledrop.plan import plan_round; from styledrop.model_profiles import profile_for; "
            "plan_round(2, model='shapes'); profile_for('shapes-micro').eval_prompts(); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
