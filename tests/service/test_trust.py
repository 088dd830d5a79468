"""Trust: attacks, each refused at the door with a 4xx and a message, nothing stored. Real parts: a migrated
SQLite database and the FastAPI app (TestClient); the job queue is the stub dispatcher.

- numbers out of range or of the wrong kind (seed 2**70, `steps: true`), which would otherwise fail the
  round in the worker ("Overflow when unpacking long long");
- any base model (a server path such as /etc), whose round's error would show server paths;
- storing without limit (40 styles in a second; a 13 MB JPEG stored as a 107 MB PNG);
- 20 concurrent round requests with a job limit of 10: exactly 10 accepted, never more.
"""

from __future__ import annotations

import io
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.domain.models import Generation, Round, Style
from app.errors import without_paths
from app.infra.db import session_factory

from .conftest import png_bytes, stub_client
from .factories import finish_round
from .test_api import create_style

API = "/api/v1"


def _count(client, model) -> int:
    with session_factory(client.settings)() as session:
        return session.scalar(select(func.count(model.id)))


def noisy_jpeg(width: int, height: int) -> bytes:
    """Noise compresses worst: the case that made a 107 MB PNG."""
    rng = random.Random(width * height)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


# ---- numbers ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form, field", [
    ({"seed": str(2**70)}, "seed"),
    ({"seed": "-1"}, "seed"),
    ({"steps": "true"}, "steps"),
    ({"steps": "2.5"}, "steps"),
    ({"steps": "0"}, "steps"),
])
def test_style_numbers_are_bounded_whole_numbers(stub_app, form, field):
    response = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"} | form,
                             files={"image": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 422, response.text
    assert field in response.text
    assert _count(stub_app, Style) == 0


@pytest.mark.parametrize("body", [
    {"steps": True}, {"seed": 2**70}, {"seed": 2**63}, {"seed": -1}, {"batch_size": True}, {"steps": 1.5},
    {"learning_rate": True}, {"adapter_guidance": False}, {"checkpoint_every": 10**12},
    {"candidate_prompts": 10**9}, {"sample_steps": [1]},
])
def test_round_numbers_are_bounded_whole_numbers(stub_app, body):
    style = create_style(stub_app)
    response = stub_app.post(f"{API}/styles/{style['id']}/rounds", json=body)
    assert response.status_code == 422, response.text
    assert _count(stub_app, Round) == 0 and stub_app.dispatcher.rounds == []


def test_the_largest_seed_is_accepted_and_reaches_the_round(stub_app):
    style = create_style(stub_app, seed=str(2**31 - 1))
    body = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    assert body["parameters"]["train"]["seed"] == 2**31 - 1


def test_generation_and_rating_numbers_are_strict(stub_app):
    style = create_style(stub_app)
    for body in ({"prompts": ["a cat"], "seed": 2**70}, {"prompts": ["a cat"], "num_images": True},
                 {"prompts": ["a cat"], "round_id": 2**40}):
        response = stub_app.post(f"{API}/styles/{style['id']}/generations", json=body)
        assert response.status_code == 422, (body, response.text)
    assert _count(stub_app, Generation) == 0
    # ids beyond the INTEGER columns are ids that cannot exist: 404, not a database error
    assert stub_app.get(f"{API}/styles/{2**40}").status_code == 404
    assert stub_app.get(f"{API}/rounds/{2**63}").status_code == 404
    rnd = stub_app.post(f"{API}/styles/{style['id']}/rounds", json={}).json()
    (candidate,) = finish_round(stub_app.settings, rnd["id"], candidates=1)
    assert stub_app.put(f"{API}/candidates/{candidate}/rating", json={"value": True}).status_code == 422
    assert stub_app.put(f"{API}/candidates/{candidate}/selected", json={"selected": 1}).status_code == 422
    assert stub_app.get(f"{API}/candidates/{candidate}").json()["ratings"] == []


# ---- base models ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["/etc", "../../data", "someone/any-model", "/work/data/files"])
def test_only_allowed_base_models_and_no_path_in_the_message(stub_app, name):
    response = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting",
                                                    "base_model": name},
                             files={"image": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "not offered here" in detail and "amused/amused-256" in detail and "STYLEDROP_BASE_MODELS" in detail
    assert name not in detail and str(stub_app.settings.data_dir) not in detail
    assert _count(stub_app, Style) == 0


def test_the_allow_list_is_an_admin_setting(tmp_path):
    with stub_client(tmp_path / "data", base_models="amused/amused-512") as client:
        assert create_style(client, base_model="amused/amused-512")["base_model"] == "amused/amused-512"
        assert create_style(client)["base_model"] == "tiny"  # STYLEDROP_MODEL, the default, is always allowed
        refused = client.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting",
                                                     "base_model": "amused/amused-256"},
                              files={"image": ("a.png", png_bytes(), "image/png")})
        assert refused.status_code == 422 and "tiny, amused/amused-512" in refused.json()["detail"]


def test_errors_stored_for_users_carry_no_server_paths():
    message = ("OSError: Error no file named config.json found in directory /etc. "
               "FileNotFoundError: '/srv/styledrop/data/files/styles/3/reference.png'")
    cleaned = without_paths(message)
    assert "/etc" not in cleaned and "/srv" not in cleaned and cleaned.count("[server path]") == 2
    assert without_paths("3/4 of https://huggingface.co/amused/amused-256") == \
        "3/4 of https://huggingface.co/amused/amused-256"


# ---- stored size and quotas ---------------------------------------------------------------------------------------

def test_a_large_noisy_reference_is_stored_small(tmp_path):
    with stub_client(tmp_path / "data") as client:
        upload = noisy_jpeg(2400, 1600)
        style = create_style(client, upload, filename="noise.jpg")
        with session_factory(client.settings)() as session:
            relative = session.get(Style, style["id"]).reference_path
        stored = client.settings.storage_root / relative
        assert stored.suffix == ".webp" and stored.stat().st_size < len(upload) / 2
        with Image.open(stored) as image:
            assert image.size == (1024, 683)
        served = client.get(style["reference_url"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        small = create_style(client, png_bytes(64))  # a small flat picture stays a lossless PNG
        assert client.get(small["reference_url"]).headers["content-type"] == "image/png"
        assert not list((client.settings.storage_root / "uploads").iterdir())  # nothing staged is left over


def test_styles_per_user_quota(tmp_path):
    with stub_client(tmp_path / "data", max_styles_per_user=2) as client:
        create_style(client)
        create_style(client)
        refused = client.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"},
                              files={"image": ("a.png", png_bytes(), "image/png")})
        assert refused.status_code == 429
        assert refused.json()["detail"] == ("You have 2 styles; the limit is 2 per user. "
                                            "Delete one to make another.")
        assert _count(client, Style) == 2


def test_stored_megabytes_quota(tmp_path):
    with stub_client(tmp_path / "data", max_stored_mb_per_user=1) as client:
        style = create_style(client)
        # the worker stored candidates and an adapter for it: 1.5 MB
        folder = client.settings.storage_root / "styles" / str(style["id"]) / "rounds" / "1"
        folder.mkdir(parents=True)
        (folder / "adapter.safetensors").write_bytes(b"\0" * (3 * 512 * 1024))
        refused = client.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"},
                              files={"image": ("a.png", png_bytes(), "image/png")})
        assert refused.status_code == 413
        detail = refused.json()["detail"]
        assert detail.startswith("You store 1.5 MB plus this upload's") and "the limit is 1 MB per user" in detail
        assert _count(client, Style) == 1
        round_refused = client.post(f"{API}/styles/{style['id']}/rounds", json={})
        assert round_refused.status_code == 413 and "You store 1.5 MB; the limit is 1 MB" in round_refused.text
        assert _count(client, Round) == 0
        client.delete(f"{API}/styles/{style['id']}")  # deleting makes room
        create_style(client)


# ---- the active-job limit under concurrency ---------------------------------------------------------------------

def test_the_job_limit_holds_under_twenty_concurrent_requests(tmp_path):
    with stub_client(tmp_path / "data", max_active_jobs=10) as client:
        styles = [create_style(client)["id"] for _ in range(20)]
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda sid: client.post(f"{API}/styles/{sid}/rounds", json={}), styles))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] * 10 + [429] * 10, [a.text for a in answers if a.status_code not in (201, 429)]
        assert _count(client, Round) == 10 and len(client.dispatcher.rounds) == 10
        assert all("the limit is 10 per user" in a.json()["detail"] for a in answers if a.status_code == 429)
