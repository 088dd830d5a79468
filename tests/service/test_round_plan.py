"""A round's plan is the one source of its settings for everything drawn from it: candidates, training samples,
generations, the adapter file and the evaluation. Tested with a round whose λA, λB and decoding steps all differ
from the server's defaults (the live worker's STYLEDROP_SAMPLE_STEPS is 2, λA 0 for round 1, λB 9)."""

from __future__ import annotations

import io
import json
import struct

from .conftest import png_bytes, stub_client, wait_for
from .factories import finish_round

API = "/api/v1"
OWN = {"steps": 3, "adapter_guidance": 0.5, "guidance": 4.0, "temperature": [3.0, 0.5]}  # none the default
DEPARTURES = {"flips": False, "weight_decay": 0.0, "max_grad_norm": 0.0, "text_dropout": 0.25}  # all the paper's


def _metadata(data: bytes) -> dict:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])["__metadata__"]


def _generate(live, style_id: int, **asked) -> dict:
    job = live.post(f"{API}/styles/{style_id}/generations", json={"prompts": ["a cat"], "seed": 5} | asked)
    assert job.status_code == 202, job.text
    done = wait_for(live, f"{API}/generations/{job.json()['id']}")
    assert done["status"] == "succeeded", done
    return done


def test_everything_drawn_from_a_round_uses_its_plan(live):
    assert live.settings.sample_steps == 2  # the global the round's own must win over
    style = live.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                      data={"content": "a house", "descriptor": "watercolor painting", "steps": "4"}).json()
    started = live.post(f"{API}/styles/{style['id']}/rounds", json={
        "train_steps": 4, "prompts": ["a cat"], "candidates_per_prompt": 1, "sample_every": 2,
        "sample_steps": OWN["steps"], "adapter_guidance": OWN["adapter_guidance"], "guidance": OWN["guidance"],
        "temperature": OWN["temperature"], **DEPARTURES})
    assert started.status_code == 201, started.text
    rnd = wait_for(live, f"{API}/rounds/{started.json()['id']}")
    assert rnd["status"] == "succeeded", rnd
    sampling = rnd["parameters"]["sampling"]
    assert {k: sampling[k] for k in OWN} == OWN
    assert {k: rnd["parameters"]["train"][k] for k in DEPARTURES} == DEPARTURES  # recorded in the plan ...
    # the adapter file carries the plan's sampling defaults, as do the training samples drawn with it
    metadata = _metadata(live.get(f"{API}/styles/{style['id']}/adapter").content)
    extra, training = json.loads(metadata["extra"]), json.loads(metadata["training"])
    assert {k: extra["sample_defaults"][k] for k in OWN} == OWN
    # ... and trained with: no flips, plain Adam (no weight decay), no clipping, the asked text dropout
    assert (training["augment"], training["weight_decay"], training["max_grad_norm"], training["cond_dropout"]) == \
        (False, 0.0, None, 0.25)

    # a generation that sends nothing samples as its round does; a request overrides field by field
    default = _generate(live, style["id"])
    assert {k: default["request"]["sampling"][k] for k in OWN} == OWN
    fewer = _generate(live, style["id"], steps=2)
    assert {k: fewer["request"]["sampling"][k] for k in OWN} == OWN | {"steps": 2}
    same = _generate(live, style["id"], steps=OWN["steps"])
    image = lambda done: live.get(done["images"][0]).content  # noqa: E731
    assert image(default) == image(same) != image(fewer)

    # the evaluation draws every round with its own λA, λB and steps (the base row: its λB and steps, no λA)
    evaluation = live.post(f"{API}/styles/{style['id']}/evaluations", json={"limit": 1, "per_prompt": 1})
    assert evaluation.status_code == 202, evaluation.text
    done = wait_for(live, f"{API}/evaluations/{evaluation.json()['id']}")
    assert done["status"] == "succeeded", done
    rows = {r["name"]: r["sampling"] for r in done["rows"]}
    assert {k: rows["round 1"][k] for k in OWN} == OWN
    assert {k: rows["base"][k] for k in OWN} == OWN | {"adapter_guidance": 0.0}


def test_a_rounds_departures_from_the_paper_default_to_ours_and_are_recorded(stub_app):
    style = stub_app.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                          data={"content": "a house", "descriptor": "sticker"}).json()
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    train, sampling = rnd["parameters"]["train"], rnd["parameters"]["sampling"]
    assert {k: train[k] for k in DEPARTURES} == {"flips": True, "weight_decay": 0.01, "max_grad_norm": 1.0,
                                                 "text_dropout": 0.0}
    assert (sampling["guidance"], sampling["steps"], sampling["temperature"]) == (9.0, 2, [2.0, 0.0])
    refused = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"text_dropout": 1.5})
    assert refused.status_code == 422


def test_later_rounds_draw_on_prompts_they_did_not_train_on_and_are_compared_held_out(stub_app):
    from app.domain import lifecycle
    from app.domain.lifecycle import JobStatus
    from app.domain.models import Evaluation
    from app.infra.db import session_factory
    from styledrop.prompt_sets import diverse_prompts

    from .factories import finish_round

    style = stub_app.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                          data={"content": "a house", "descriptor": "sticker"}).json()
    first = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"candidate_prompts": 2}).json()
    pool = diverse_prompts(2)
    ids = finish_round(stub_app.settings, first["id"], 2, contents=pool, text_scores=[0.3, 0.2],
                       style_scores=[0.5, 0.4])
    stub_app.put(f"{API}/candidates/{ids[0]}/selected", json={"selected": True})
    second = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={"candidate_prompts": 2}).json()
    prompts = second["parameters"]["candidates"]["prompts"]
    assert len(prompts) == 2 and pool[0] not in prompts  # not the prompt round 2 trains on
    assert prompts == [p for p in diverse_prompts(3) if p != pool[0]]
    finish_round(stub_app.settings, second["id"], 2, contents=prompts, text_scores=[0.9, 0.8],
                 style_scores=[0.5, 0.4])

    page = stub_app.get(f"/styles/{style['id']}").text
    assert "The held-out evaluation has not been run" in page and "Candidates' text" in page

    evaluation = stub_app.post(f"{API}/styles/{style['id']}/evaluations", json={"limit": 3, "per_prompt": 1}).json()
    rows = [{"name": name, "text_mean": text, "text_std": 0.0, "style_mean": 0.5, "style_std": 0.0, "count": 3}
            for name, text in (("base", 0.111), ("round 1", 0.222), ("round 2", 0.333))]
    with session_factory(stub_app.settings)() as session:  # ended as a worker ends it (claim, then finish)
        token = lifecycle.claim(session, Evaluation, evaluation["id"])
        assert lifecycle.finish(session, Evaluation, evaluation["id"], token, JobStatus.succeeded,
                                result={"clip_model": "tiny", "rows": rows})
    page = stub_app.get(f"/styles/{style['id']}").text
    assert "Held-out text" in page and f"Compared on the held-out evaluation {evaluation['id']}" in page
    assert "0.222" in page and "0.333" in page and "has not been run" not in page


# ---- a base model's own defaults (styledrop.model_profiles): the shapes world ---------------------------------

# The round settings a base model has its own defaults for; the tests' environment sets them all (FAST), so these
# clients leave them unset, as an administrator who never set them.
MODEL_DEFAULTED = ("train_steps", "batch_size", "sample_steps", "candidate_prompts", "clip_model")
WORLD_CANDIDATES = ["a circle", "a square", "a triangle", "a diamond", "a cross"]
WORLD_HELD_OUT = ["a star", "a heart", "a ring", "an arrow", "a moon"]


def _world_reference() -> bytes:
    from styledrop.world import scene as world

    buffer = io.BytesIO()
    world.render(world.reference_scene(world.EVAL_STYLES[0])).save(buffer, "PNG")
    return buffer.getvalue()


def _world_style(client) -> dict:
    response = client.post(f"{API}/styles", files={"image": ("ref.png", _world_reference(), "image/png")},
                           data={"content": "a house", "descriptor": "dusk striped on black",
                                 "base_model": "shapes-micro"})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_round_on_a_world_is_planned_with_the_worlds_defaults(micro_world, tmp_path):
    """λB 1 and λA 0 in every round, 150 steps at 2e-3 without flips, the world's candidate contents and live
    samples, its held-out contents refused as candidates and used by the evaluation; the stored plan says so."""
    with stub_client(tmp_path / "data", unset=MODEL_DEFAULTED, model="tiny",
                     base_models="shapes-micro") as client:
        style = _world_style(client)
        refused = client.post(f"{API}/styles/{style['id']}/rounds", json={"prompts": ["a circle", "a star"]})
        assert refused.status_code == 422 and "'a star'" in refused.json()["detail"]  # the world's held-out shape
        first = client.post(f"{API}/styles/{style['id']}/rounds", json={})
        assert first.status_code == 201, first.text
        plan = first.json()["parameters"]
        assert plan["model"] == "shapes-micro"
        assert {k: plan["sampling"][k] for k in ("guidance", "adapter_guidance", "steps")} == \
            {"guidance": 1.0, "adapter_guidance": 0.0, "steps": 12}
        train = plan["train"]
        assert (train["steps"], train["learning_rate"], train["batch_size"], train["flips"]) == (150, 2e-3, 8, False)
        assert train["sample_prompts"] == ["a circle", "a star"] and first.json()["total_steps"] == 150
        assert plan["candidates"]["prompts"] == WORLD_CANDIDATES
        assert plan["candidates"]["clip_model"] == "shapes-micro"  # the world's own CLIP

        ids = finish_round(client.settings, first.json()["id"], candidates=5, contents=WORLD_CANDIDATES)
        playground = client.get(f"/styles/{style['id']}/playground").text  # held-out shapes at the world's λ
        assert ">a star\na heart</textarea>" in playground
        assert "(round 1's defaults: λA 0, λB 1, 12 steps)" in playground
        for picked in ids[:2]:  # "a circle" and "a square": round 2 trains on them
            assert client.put(f"{API}/candidates/{picked}/selected", json={"selected": True}).status_code == 200
        second = client.post(f"{API}/styles/{style['id']}/rounds", json={})
        assert second.status_code == 201, second.text
        plan = second.json()["parameters"]
        assert (plan["number"], plan["sampling"]["guidance"], plan["sampling"]["adapter_guidance"]) == (2, 1.0, 0.0)
        assert plan["candidates"]["prompts"] == WORLD_CANDIDATES[2:]  # fresh: not what round 2 trains on
        assert plan["train"]["steps"] == 150

        panel = client.get(f"/styles/{style['id']}/evaluation").text  # the page's form offers the world's five
        assert 'name="limit" min="1" max="5" value="5"' in panel
        evaluation = client.post(f"{API}/styles/{style['id']}/evaluations", json={"per_prompt": 1})
        assert evaluation.status_code == 202, evaluation.text
        assert evaluation.json()["request"]["prompt_list"] == "the shapes-micro world's evaluation shapes"
        assert evaluation.json()["request"]["prompt_count"] == len(WORLD_HELD_OUT)


def test_an_administrators_setting_wins_over_the_worlds_default(micro_world, tmp_path):
    with stub_client(tmp_path / "data", unset=MODEL_DEFAULTED, model="tiny", base_models="shapes-micro",
                     train_steps=20) as client:
        style = _world_style(client)
        plan = client.post(f"{API}/styles/{style['id']}/rounds", json={}).json()["parameters"]
        assert plan["train"]["steps"] == 20  # STYLEDROP_TRAIN_STEPS, set
        assert (plan["train"]["learning_rate"], plan["sampling"]["guidance"]) == (2e-3, 1.0)  # the rest: the world's
        own = client.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                          data={"content": "a house", "descriptor": "sticker"}).json()  # on tiny: aMUSEd's recipe
        plan = client.post(f"{API}/styles/{own['id']}/rounds", json={"prompts": ["a star"]}).json()["parameters"]
        assert (plan["train"]["steps"], plan["sampling"]["guidance"], plan["train"]["flips"]) == (20, 9.0, True)


def test_the_new_style_page_leaves_the_steps_to_the_base_model(micro_world, tmp_path):
    """The form's training steps are empty unless the administrator set STYLEDROP_TRAIN_STEPS, so a style made on
    the page records none and its rounds take the chosen model's (150 on the world), not aMUSEd's 1,000."""
    from sqlalchemy import select

    from app.domain.models import Round
    from app.infra.db import session_factory

    from .pages.helpers import create_style

    with stub_client(tmp_path / "data", unset=MODEL_DEFAULTED, model="tiny", base_models="shapes-micro") as client:
        assert 'name="steps" value=""' in client.get("/styles/new").text
        create_style(client, base_model="shapes-micro", steps="", descriptor="dusk striped on black")
        with session_factory(client.settings)() as session:
            rnd = session.scalars(select(Round)).one()
            assert rnd.style.settings.get("steps") is None
            assert (rnd.plan.train.steps, rnd.total_steps, rnd.plan.sampling.guidance) == (150, 150, 1.0)
