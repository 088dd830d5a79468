"""The evaluation job: every round of a style scored on held-out prompts, through a real worker."""

from __future__ import annotations

from .conftest import png_bytes, wait_for

API = "/api/v1"
TINY_ROUND = {"steps": 6, "prompts": ["a cat", "a bridge"], "candidates_per_prompt": 1, "sample_steps": 2}


def _style(client) -> dict:
    response = client.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": "watercolor painting", "steps": "6"})
    assert response.status_code == 201, response.text
    return response.json()


def _round(client, style_id: int) -> dict:
    response = client.post(f"{API}/styles/{style_id}/rounds", json=TINY_ROUND)
    assert response.status_code == 201, response.text
    rnd = wait_for(client, f"{API}/rounds/{response.json()['id']}")
    assert rnd["status"] == "succeeded", rnd
    return rnd


def test_an_evaluation_scores_every_round_on_held_out_prompts(live):
    style = _style(live)
    refused = live.post(f"{API}/styles/{style['id']}/evaluations", json={})
    assert refused.status_code == 409 and "no finished round" in refused.json()["detail"]

    first = _round(live, style["id"])
    cat = next(c for c in live.get(f"{API}/rounds/{first['id']}/candidates").json()["items"] if c["content"] == "a cat")
    assert live.put(f"{API}/candidates/{cat['id']}/selected", json={"selected": True}).status_code == 200
    _round(live, style["id"])  # round 2 trains on the reference ("a house") and the cat

    overlap = live.post(f"{API}/styles/{style['id']}/evaluations",
                        json={"prompts": ["a wolf", "A cat", "a house"], "per_prompt": 1})
    assert overlap.status_code == 422
    detail = overlap.json()["detail"]
    assert "2 prompt(s) were trained on" in detail and "'A cat'" in detail and "allow_overlap" in detail

    started = live.post(f"{API}/styles/{style['id']}/evaluations", json={"limit": 3, "per_prompt": 1})
    assert started.status_code == 202, started.text
    assert started.json()["request"]["prompt_list"] == "built-in held-out list"
    done = wait_for(live, f"{API}/evaluations/{started.json()['id']}")
    assert done["status"] == "succeeded", done
    assert [r["name"] for r in done["rows"]] == ["base", "round 1", "round 2"]
    assert all(r["count"] == 3 and -1 <= r["text_mean"] <= 1 and -1 <= r["style_mean"] <= 1 for r in done["rows"])
    assert done["clip_model"].startswith("tiny")  # the offline preset's scorer, as the CLI picks
    assert [e["id"] for e in live.get(f"{API}/styles/{style['id']}/evaluations").json()["items"]] == [done["id"]]
    assert live.get(f"{API}/evaluations/999999").status_code == 404
