"""Sample images while a round trains: the worker draws two fixed prompts every N steps (and at the last), the
round's current attempt stores them (fenced: a stale attempt writes nothing), and the API and the round panel
list them while it runs and after it has ended."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import update

from app.domain.fencing import Attempt
from app.domain.lifecycle import StaleAttempt, claim_round
from app.domain.models import Round, utcnow
from app.infra import storage
from app.infra.db import session_factory

from .conftest import decode_png, png_bytes, wait_for

API = "/api/v1"


def _style(client) -> dict:
    response = client.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": "watercolor painting"})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_round_draws_samples_every_n_steps_and_its_panel_shows_them(live):
    style = _style(live)
    response = live.post(f"{API}/styles/{style['id']}/rounds",
                         json={"steps": 5, "sample_every": 2, "prompts": ["a cat"], "candidates_per_prompt": 1,
                               "sample_steps": 2})
    assert response.status_code == 201, response.text
    assert response.json()["parameters"]["train"]["sample_every"] == 2
    rnd = wait_for(live, f"{API}/rounds/{response.json()['id']}")
    assert rnd["status"] == "succeeded", rnd
    samples = rnd["training_samples"]
    assert [s["step"] for s in samples] == [0, 0, 2, 2, 4, 4, 5, 5]  # before training, every 2 steps, the last
    assert [s["prompt"] for s in samples[:2]] == ["A cat sleeping on a sofa in watercolor painting style",
                                                  "A lighthouse on a cliff in watercolor painting style"]
    assert {s["seed"] for s in samples[::2]} == {samples[0]["seed"]}  # the same seed at every step
    for sample in samples:
        assert decode_png(live.get(sample["image_url"]).content).size == (64, 64)
    root = live.settings.storage_root
    assert storage.resolve(root, f"styles/{style['id']}/rounds/1/samples/step-000004-b.png").is_file()
    assert live.get(f"{API}/rounds/{rnd['id']}/samples/8").status_code == 404

    panel = live.get(f"/rounds/{rnd['id']}/panel").text
    assert "Samples while training" in panel
    assert panel.index('data-step="5"') < panel.index('data-step="2"') < panel.index('data-step="0"')  # newest first
    assert all(s["image_url"] in panel for s in samples)
    assert "Samples while training" in live.get(f"/styles/{style['id']}").text  # still there once it ended


def test_no_samples_when_sample_every_is_0(live):
    style = _style(live)
    response = live.post(f"{API}/styles/{style['id']}/rounds",
                         json={"steps": 3, "sample_every": 0, "prompts": ["a cat"], "candidates_per_prompt": 1})
    rnd = wait_for(live, f"{API}/rounds/{response.json()['id']}")
    assert rnd["status"] == "succeeded" and rnd["training_samples"] == []
    assert "Samples while training" not in live.get(f"/rounds/{rnd['id']}/panel").text


def test_a_stale_attempt_stores_no_samples(stub_app):
    """An attempt that lost the round (another claim raised the token) has its samples refused: no file in the
    round's folder, nothing recorded; the current attempt's replace what was drawn at the same step."""
    settings = stub_app.settings
    style = _style(stub_app)
    round_id = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()["id"]
    with session_factory(settings)() as session:  # attempt 1 went silent and attempt 2 took the round over
        assert claim_round(session, settings, round_id, "first") == "claimed"
        session.execute(update(Round).where(Round.id == round_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        session.commit()
        assert claim_round(session, settings, round_id, "second") == "claimed"
    image = Image.new("RGB", (8, 8), "red")
    record = {"step": 4, "index": 0, "content": "a cat", "prompt": "A cat", "seed": 1, "name": "step-000004-a.png"}
    final = storage.resolve(settings.storage_root, f"styles/{style['id']}/rounds/1/samples/step-000004-a.png")

    stale = Attempt(settings, round_id, 1, style["id"], 1)
    with pytest.raises(StaleAttempt):
        stale.add_training_samples(4, [(image, record)])
    assert not final.exists()
    assert stub_app.get(f"{API}/rounds/{round_id}").json()["training_samples"] == []

    current = Attempt(settings, round_id, 2, style["id"], 1)
    current.add_training_samples(4, [(image, record)])
    current.add_training_samples(4, [(Image.new("RGB", (8, 8), "blue"), record)])  # drawn again at step 4
    listed = stub_app.get(f"{API}/rounds/{round_id}").json()["training_samples"]
    assert [(s["step"], s["content"]) for s in listed] == [(4, "a cat")]
    assert Image.open(final).getpixel((0, 0)) == (0, 0, 255)
