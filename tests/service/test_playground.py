"""The playground's sampling controls (λA, λB, steps: the round's defaults, bounded by the API's own model) and
"download all": a generation's images as one zip with a manifest, ownership-checked like every route."""

from __future__ import annotations

import io
import json
import zipfile

from app.domain.models import Generation, Round
from app.infra import storage
from app.infra.db import session_factory
from app.security.accounts import create_token

from .conftest import png_bytes
from .factories import finish_generation, finish_round

API = "/api/v1"
FORM = {"content": "a house", "descriptor": "watercolor painting", "base_model": "tiny", "adapter": "styledrop",
        "steps": "10", "seed": "1"}


def _finished_style(client) -> tuple[int, int]:
    response = client.post("/styles/new", data=FORM, files={"image": ("ref.png", png_bytes(), "image/png")},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    style_id = int(response.headers["location"].rsplit("/", 1)[1].split("?")[0])
    with session_factory(client.settings)() as session:
        round_id = session.query(Round.id).filter(Round.style_id == style_id).scalar()
    finish_round(client.settings, round_id)
    return style_id, round_id


def _value(page: str, name: str) -> str:
    tag = page.split(f'id="{name}"', 1)[1].split(">", 1)[0]
    return tag.split('value="', 1)[1].split('"', 1)[0]


def test_sampling_controls_start_at_the_rounds_defaults_and_are_bounded_like_the_api(stub_app):
    style_id, round_id = _finished_style(stub_app)
    page = stub_app.get(f"/styles/{style_id}/playground").text
    # round 1's plan: λA 0, λB 9 (aMUSEd's), the server's decoding steps (STYLEDROP_SAMPLE_STEPS=2 in tests)
    assert (_value(page, "adapter_guidance"), _value(page, "guidance"), _value(page, "steps")) == ("0", "9", "2")
    assert '<label for="adapter_guidance">' in page and 'max="10.0"' in page

    bad = stub_app.post(f"/styles/{style_id}/playground", data={"prompts": "a cat", "num_images": "1", "seed": "1",
                                                                "adapter_guidance": "11", "guidance": "-1",
                                                                "steps": "abc"})
    assert bad.status_code == 422
    assert 'id="adapter_guidance-error"' in bad.text and "λA (adapter guidance) must be between 0 and 10.0" in bad.text
    assert 'id="guidance-error"' in bad.text and "λB (guidance) must be between 0 and 30.0" in bad.text
    assert 'id="steps-error"' in bad.text and "Sampling steps must be a whole number" in bad.text
    assert _value(bad.text, "adapter_guidance") == "11"  # what was typed stays
    assert stub_app.dispatcher.generations == []
    api = stub_app.post(f"{API}/styles/{style_id}/generations", json={"prompts": ["a cat"], "adapter_guidance": 11})
    assert api.status_code == 422  # the same model's bounds

    ok = stub_app.post(f"/styles/{style_id}/playground", data={"prompts": "a cat", "num_images": "1", "seed": "1",
                                                               "adapter_guidance": "1.5", "guidance": "5",
                                                               "steps": "3"}, follow_redirects=False)
    assert ok.status_code == 303, ok.text
    with session_factory(stub_app.settings)() as session:
        request = session.get(Generation, stub_app.dispatcher.generations[0]).request
    assert (request["adapter_guidance"], request["guidance"], request["steps"]) == (1.5, 5.0, 3)
    again = stub_app.get(f"/styles/{style_id}/playground").text  # starts from what was asked last time
    assert (_value(again, "adapter_guidance"), _value(again, "guidance"), _value(again, "steps")) == ("1.5", "5", "3")
    assert "λA 1.5 · λB 5 · steps 3" in again  # and the job's card says what drew it


def test_each_round_in_the_picker_carries_its_own_defaults(stub_app):
    """Round 1 samples with λA 0, round 2 with 2: picking a round sets its own (static/playground.js reads these)."""
    style_id, round_id = _finished_style(stub_app)
    with session_factory(stub_app.settings)() as session:
        candidate = session.get(Round, round_id).candidates[0].id
    assert stub_app.put(f"{API}/candidates/{candidate}/selected", json={"selected": True}).status_code == 200
    second = stub_app.post(f"{API}/styles/{style_id}/rounds", json={}).json()["id"]
    finish_round(stub_app.settings, second)
    page = stub_app.get(f"/styles/{style_id}/playground").text
    assert _value(page, "adapter_guidance") == "2"  # the latest round's, as before
    assert 'src="/static/playground.js' in page
    options = page.split('id="round_id"', 1)[1].split("</select>", 1)[0]
    assert 'value="" data-number="2" data-adapter_guidance="2" data-guidance="9" data-steps="2"' in options
    assert f'value="{round_id}" data-number="1" data-adapter_guidance="0" data-guidance="9" data-steps="2"' in options


def test_download_all_is_a_zip_of_the_images_with_a_manifest_and_only_for_its_owner(stub_app):
    style_id, round_id = _finished_style(stub_app)
    started = stub_app.post(f"{API}/styles/{style_id}/generations",
                            json={"prompts": ["a cat", "a red boat"], "num_images": 2, "seed": 7, "guidance": 4})
    gen_id = started.json()["id"]
    assert stub_app.get(f"{API}/generations/{gen_id}/images.zip").status_code == 404  # not drawn yet
    finish_generation(stub_app.settings, style_id, gen_id, 4)  # as the worker

    card = stub_app.get(f"/generations/{gen_id}/panel").text
    assert f'href="/api/v1/generations/{gen_id}/images.zip"' in card and "Download all (4 images, zip)" in card
    response = stub_app.get(f"{API}/generations/{gen_id}/images.zip")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert f'filename="style{style_id}-generation{gen_id}.zip"' in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert archive.namelist() == ["000-a-cat-seed7.png", "001-a-red-boat-seed8.png", "002-a-cat-seed9.png",
                                  "003-a-red-boat-seed10.png", "manifest.json"]
    on_disk = storage.resolve(stub_app.settings.storage_root, storage.generation_path(style_id, gen_id, 2))
    assert archive.read("002-a-cat-seed9.png") == on_disk.read_bytes()
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["generation"] == gen_id and manifest["round"] == 1
    assert manifest["settings"]["guidance"] == 4 and manifest["settings"]["seed"] == 7
    assert manifest["images"][1] == {"file": "001-a-red-boat-seed8.png", "content": "a red boat",
                                     "prompt": "A red boat in watercolor painting style", "seed": 8}

    with session_factory(stub_app.settings)() as session:
        bob = {"Authorization": f"Bearer {create_token(session, 'bob', 'test')}"}
    other = stub_app.get(f"{API}/generations/{gen_id}/images.zip", headers=bob)
    assert other.status_code == 404 and "does not exist" in other.json()["detail"]
