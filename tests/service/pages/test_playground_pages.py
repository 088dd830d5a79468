"""The playground page: a generation started from the form, its panel polling until its images are there.

FastAPI's TestClient, no worker, no browser: rounds are brought to "running" or "succeeded" by
writing the database as the worker would (tests/service/factories.py)."""

from __future__ import annotations

import re

from app.domain.models import Generation

from ..factories import finish_generation, finish_round
from .helpers import create_style, latest_round, session_of


def test_playground_starts_a_generation_and_polls_it(stub_app):
    style_id = create_style(stub_app)
    round_id = latest_round(stub_app, style_id)
    before = stub_app.get(f"/styles/{style_id}/playground").text
    assert "no finished round yet" in before and 'id="generate" disabled' in before
    finish_round(stub_app.settings, round_id)
    page = stub_app.get(f"/styles/{style_id}/playground").text
    assert '<label for="prompts">' in page and '<label for="num_images">' in page and '<label for="seed">' in page
    assert "disabled" not in page.split('id="generate"')[1].split(">")[0]

    bad = stub_app.post(f"/styles/{style_id}/playground", data={"prompts": " \n ", "num_images": "99", "seed": "1"})
    assert bad.status_code == 422 and "Write at least one prompt" in bad.text and "between 1 and 16" in bad.text
    started = stub_app.post(f"/styles/{style_id}/playground",
                            data={"prompts": "a cat\n\na boat\n", "num_images": "2", "seed": "7"},
                            follow_redirects=False)
    assert started.status_code == 303
    assert len(stub_app.dispatcher.generations) == 1
    gen_id = stub_app.dispatcher.generations[0]
    with session_of(stub_app) as session:
        generation = session.get(Generation, gen_id)
        assert generation.request["prompts"] == ["a cat", "a boat"] and generation.request["seed"] == 7
    queued = stub_app.get(f"/generations/{gen_id}/panel").text
    assert 'hx-trigger="every 2s"' in queued and queued.count('class="slot"') == 4

    finish_generation(stub_app.settings, style_id, gen_id, 4)  # as the worker
    done = stub_app.get(f"/generations/{gen_id}/panel").text
    assert "hx-trigger" not in done and done.count("Download</a>") == 4
    assert (f'href="/api/v1/generations/{gen_id}/images/3" '  # style, generation, index, prompt and seed
            f'download="watercolor-painting-generation{gen_id}-003-a-boat-seed10.png"') in done
    assert done.count(">a cat<") == 2 and done.count(">a boat<") == 2  # tiled prompts
    assert all(f"seed {7 + j} · #{j + 1}" in done for j in range(4))  # each image's own seed: the request's + j
    assert stub_app.get(f"/api/v1/generations/{gen_id}/images/3").status_code == 200


def test_a_generations_summary_says_its_descriptor_override(stub_app):
    """A job drawn with another descriptor (or none) says so in its header, beside its seed and λs."""
    style_id = create_style(stub_app)
    finish_round(stub_app.settings, latest_round(stub_app, style_id))
    for fields in ({"descriptor": "oil painting"}, {"no_descriptor": "on"}, {}):
        assert stub_app.post(f"/styles/{style_id}/playground", data={"prompts": "a cat", "num_images": "1",
                                                                     "seed": "1"} | fields,
                             follow_redirects=False).status_code == 303
    other, none, own = (stub_app.get(f"/generations/{g}/panel").text for g in stub_app.dispatcher.generations)
    header = re.compile(r'<span class="muted small gen-settings">([^<]*)</span>')
    assert "descriptor “oil painting”" in header.search(other).group(1)
    assert "no descriptor" in header.search(none).group(1)
    assert "descriptor" not in header.search(own).group(1)  # the style's own: nothing to say
