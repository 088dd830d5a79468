"""End to end through the REST API with a real Redis, a real Celery worker process and the tiny model."""

from __future__ import annotations

import json
import struct
import time

from .conftest import decode_png, png_bytes, wait_for

API = "/api/v1"
TINY_ROUND = {"steps": 10, "prompts": ["a cat", "a bridge"], "candidates_per_prompt": 1, "sample_steps": 2}


def _style(client, **form) -> dict:
    response = client.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": "watercolor painting"} | form)
    assert response.status_code == 201, response.text
    return response.json()


def _round(client, style_id: int, body: dict) -> dict:
    response = client.post(f"{API}/styles/{style_id}/rounds", json=body)
    assert response.status_code == 201, response.text
    rnd = wait_for(client, f"{API}/rounds/{response.json()['id']}")
    assert rnd["status"] == "succeeded", rnd
    return rnd


def _safetensors_metadata(data: bytes) -> dict:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]).get("__metadata__", {})


def test_human_feedback_loop(live):
    style = _style(live, steps="10", seed="1")
    first = _round(live, style["id"], TINY_ROUND)
    assert first["number"] == 1 and first["step"] == first["total_steps"] == 10
    assert first["loss"] is not None and first["attempts"] == 1 and first["progress"] == 1.0
    assert first["metrics"]["adapter"]["rank"] == 4 and first["metrics"]["adapter"]["shared"] is True

    candidates = live.get(f"{API}/rounds/{first['id']}/candidates").json()["items"]
    assert [c["content"] for c in candidates] == ["a cat", "a bridge"]
    assert candidates[0]["prompt"] == "A cat in watercolor painting style"
    assert len({c["seed"] for c in candidates}) == 2
    for c in candidates:
        assert decode_png(live.get(c["image_url"]).content).size[0] > 0
    live.put(f"{API}/candidates/{candidates[0]['id']}/rating", json={"value": 1})
    live.put(f"{API}/candidates/{candidates[1]['id']}/rating", json={"value": -1})
    assert live.put(f"{API}/candidates/{candidates[0]['id']}/selected", json={"selected": True}).json()["selected"]
    listed = live.get(f"{API}/rounds/{first['id']}/candidates").json()["items"]
    assert [(c["my_rating"], c["selected"]) for c in listed] == [(1, True), (-1, False)]

    second = _round(live, style["id"], {"steps": 10, "prompts": ["a cat"], "candidates_per_prompt": 1,
                                        "sample_steps": 2})
    assert second["number"] == 2 and second["feedback"] == "human"
    assert [t["content"] for t in second["parameters"]["training_set"]] == ["a house", "a cat"]
    assert second["metrics"]["adapter"] == {"kind": "styledrop", "rank": 32, "shared": False, "alpha": None,
                                            "target_modules": ["to_q", "to_k", "to_v"]}

    job = live.post(f"{API}/styles/{style['id']}/generations",
                    json={"prompts": ["a cat", "a boat"], "num_images": 2, "seed": 3, "steps": 2})
    assert job.status_code == 202, job.text
    done = wait_for(live, f"{API}/generations/{job.json()['id']}")
    assert done["status"] == "succeeded" and done["round_id"] == second["id"] and len(done["images"]) == 4
    assert decode_png(live.get(done["images"][3]).content).size[0] > 0
    assert [g["id"] for g in live.get(f"{API}/styles/{style['id']}/generations").json()["items"]] == [done["id"]]

    adapter = live.get(f"{API}/styles/{style['id']}/adapter")
    assert adapter.status_code == 200
    meta = _safetensors_metadata(adapter.content)
    assert "tiny" in json.dumps(meta)  # the base model is recorded in the file
    assert live.get(f"{API}/styles/{style['id']}").json()["adapter_url"] == f"{API}/styles/{style['id']}/adapter"


def test_clip_feedback_loop(live):
    style = _style(live)
    first = _round(live, style["id"], TINY_ROUND | {"candidates_per_prompt": 2})
    assert len(live.get(f"{API}/rounds/{first['id']}/candidates").json()["items"]) == 4
    picked = live.post(f"{API}/rounds/{first['id']}/auto-select").json()
    assert sorted(c["content"] for c in picked["selected"]) == ["a bridge", "a cat"]  # one per prompt
    second = _round(live, style["id"], {"feedback": "clip", "steps": 10, "prompts": ["a cat"],
                                        "candidates_per_prompt": 1, "sample_steps": 2})
    assert second["feedback"] == "clip" and len(second["parameters"]["training_set"]) == 3
    assert live.post(f"{API}/rounds/{second['id']}/auto-select").status_code == 200


def test_cancel_running_round_then_retry_resumes(live):
    style = _style(live)
    started = live.post(f"{API}/styles/{style['id']}/rounds", json=TINY_ROUND | {"steps": 4000})
    round_url = f"{API}/rounds/{started.json()['id']}"
    deadline = time.monotonic() + 60
    while (body := live.get(round_url).json())["step"] < 1:
        assert body["status"] in ("queued", "running"), body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["status"] == "running" and body["eta_seconds"] is not None and body["heartbeat_at"]
    conflict = live.post(f"{API}/styles/{style['id']}/rounds", json={})
    assert conflict.status_code == 409
    asked = time.monotonic()
    assert live.post(f"{round_url}/cancel").status_code == 202
    cancelled = wait_for(live, round_url, timeout=30)
    assert cancelled["status"] == "cancelled", cancelled
    assert time.monotonic() - asked < 10
    stopped_at = int(cancelled["error"].split("step ")[1].split(" ")[0])
    assert 0 < stopped_at < 4000 and cancelled["actions"] == ["retry"]
    # each attempt trains in its own folder (app.domain.fencing): attempt 1's checkpoints
    checkpoints = live.settings.storage_root / "styles" / str(style["id"]) / "rounds" / "1" / "attempts" / "1" / \
        "checkpoints"
    assert any(checkpoints.iterdir())

    # A retry resumes from the checkpoint written on the stop; cancel again quickly to keep the test short.
    retried = live.post(f"{round_url}/retry")
    # (an idle worker may claim it before the response is written: then it is already running)
    assert retried.status_code == 202 and retried.json()["status"] in ("queued", "running")
    deadline = time.monotonic() + 60
    while (body := live.get(round_url).json())["attempts"] < 2 or body["step"] <= stopped_at:
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["metrics"]["started_at_step"] == stopped_at  # resumed from the checkpoint, not from step 0
    live.post(f"{round_url}/cancel")
    again = wait_for(live, round_url, timeout=30)
    assert again["status"] == "cancelled" and again["attempts"] == 2
