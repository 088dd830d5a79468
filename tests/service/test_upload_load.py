"""Three large noisy uploads at once, while a round trains and a person rates: the re-encode (seconds each)
must not hold SQLite's write lock, or an upload answers 500, a rating PUT answers 500 after 30 s, and a running
round fails with "database is locked". Real parts: SQLite, Redis, a Celery worker training a round, the API.

No wall-clock assertion: every request must be answered without a 5xx and the round must succeed."""

from __future__ import annotations

import io
import random
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from .conftest import png_bytes, wait_for

API = "/api/v1"


def noisy_jpeg(side: int, seed: int) -> bytes:
    """Noise: the worst case for every encoder (about 10 MB at 3,600 px)."""
    image = Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _style(client, descriptor: str) -> int:
    response = client.post(f"{API}/styles", files={"image": ("r.png", png_bytes(), "image/png")},
                           data={"content": "a house", "descriptor": descriptor})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_large_uploads_do_not_fail_ratings_or_a_training_round(live):
    rated = live.post(f"{API}/styles/{_style(live, 'pencil sketch')}/rounds",
                      json={"steps": 3, "prompts": ["a cat"], "candidates_per_prompt": 1, "sample_steps": 2}).json()
    assert wait_for(live, f"{API}/rounds/{rated['id']}")["status"] == "succeeded"
    (candidate,) = live.get(f"{API}/rounds/{rated['id']}/candidates").json()["items"]

    training = live.post(f"{API}/styles/{_style(live, 'charcoal drawing')}/rounds",
                         json={"steps": 80, "prompts": ["a dog"], "candidates_per_prompt": 1, "sample_steps": 2}
                         ).json()
    url = f"{API}/rounds/{training['id']}"
    wait_for(live, url, done=("running", "succeeded", "failed"))
    uploads = [noisy_jpeg(3600, seed) for seed in range(3)]
    assert all(len(u) > 5_000_000 for u in uploads)

    def upload(data: bytes):
        return live.post(f"{API}/styles", files={"image": ("noise.jpg", data, "image/jpeg")},
                         data={"content": "static", "descriptor": "noise art"})

    def rate(value: int):
        return live.put(f"{API}/candidates/{candidate['id']}/rating", json={"value": value})

    with ThreadPoolExecutor(8) as pool:
        uploaded = [pool.submit(upload, data) for data in uploads]
        ratings = [pool.submit(rate, 1 + i % 5) for i in range(10)]
        answers = [f.result() for f in uploaded + ratings]
    assert [a.status_code for a in answers] == [201] * 3 + [200] * 10, [a.text[:300] for a in answers]
    for answer in answers[:3]:
        reference = live.get(answer.json()["reference_url"])
        assert reference.headers["content-type"] == "image/webp" and len(reference.content) < 2_000_000
        with Image.open(io.BytesIO(reference.content)) as image:
            assert image.size == (1024, 1024)
    body = wait_for(live, url, timeout=600)
    assert body["status"] == "succeeded", body
    assert live.get(f"{API}/candidates/{candidate['id']}").json()["my_rating"] in (1, 2, 3, 4, 5)
