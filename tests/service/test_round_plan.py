"""A round's plan is the one source of its settings for everything drawn from it: candidates, training samples,
generations, the adapter file and the evaluation. Tested with a round whose λA, λB and decoding steps all differ
from the server's defaults (the live worker's STYLEDROP_SAMPLE_STEPS is 2, λA 0 for round 1, λB 9)."""

from __future__ import annotations

import json
import struct

from .conftest import png_bytes, wait_for

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
