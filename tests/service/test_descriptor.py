"""The descriptor at sampling (paper §4.4.2): a generation uses the style's descriptor, another one, or none,
and records which."""

from __future__ import annotations

from .conftest import png_bytes, wait_for

API = "/api/v1"


def test_a_generation_takes_the_styles_descriptor_another_or_none(live):
    style = live.post(f"{API}/styles", files={"image": ("ref.png", png_bytes(), "image/png")},
                      data={"content": "a house", "descriptor": "melting golden 3d rendering", "steps": "4"}).json()
    rnd = live.post(f"{API}/styles/{style['id']}/rounds",
                    json={"steps": 4, "prompts": ["a cat"], "candidates_per_prompt": 1, "sample_steps": 2}).json()
    assert wait_for(live, f"{API}/rounds/{rnd['id']}")["status"] == "succeeded"
    used = {}
    for label, extra in (("stored", {}), ("edited", {"descriptor": "golden 3d rendering"}), ("none", {"descriptor": ""})):
        response = live.post(f"{API}/styles/{style['id']}/generations",
                             json={"prompts": ["a cat"], "steps": 2} | extra)
        assert response.status_code == 202, response.text
        done = wait_for(live, f"{API}/generations/{response.json()['id']}")
        assert done["status"] == "succeeded" and len(done["images"]) == 1, done
        used[label] = done["request"]["descriptor"]
    assert used == {"stored": "melting golden 3d rendering", "edited": "golden 3d rendering", "none": ""}
    refused = live.post(f"{API}/styles/{style['id']}/generations", json={"prompts": ["a cat"], "descriptor": "a\x00b"})
    assert refused.status_code == 422
