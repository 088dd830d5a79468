"""The pages on the shapes world (issue 24), in a real browser: headless Chromium against the real app, a real
Celery worker and Redis, SQLite, and a world base model with its own CLIP.

A newcomer's walk: choose a held-out style from "Try an example", watch round 1 train with the world's recipe
(its live samples, candidates on the world's candidate shapes), like a few candidates, train round 2 on them,
evaluate both rounds on the held-out shapes, compare their pictures, draw held-out shapes in the playground.
Screenshots of each page go to test-artifacts/pages/world-*.png.

In the suite it runs on the session's micro world (`micro_world`, built in about 3 minutes; its pictures have the
styles and rough shapes). With a standard world built (`styledrop world build`), the same walk takes the pictures
that docs/world.md shows:

    STYLEDROP_TOUR_WORLD=shapes STYLEDROP_TOUR_WORLD_DIR=~/.cache/styledrop/worlds \
        .venv/bin/python -m pytest tests/service/browser/test_world_tour.py
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from PIL import Image

from ..conftest import FAST, make_settings
from ..servers import WEB_READY, WORKER_READY, free_port, started, wait_for_log, web_args, worker_args
from .chromium import ARTIFACTS, DESKTOP, require_browser, shot, watch_errors
from .conftest import _env

EXAMPLE = "candy checkered on navy: a house"  # examples/shapes/: a held-out combination of seen words
# FAST's service settings, less what would replace the world's own recipe (steps, batch, pool, decoding steps)
WORLD_ENV = {k: v for k, v in FAST.items() if k not in (
    "STYLEDROP_MODEL", "STYLEDROP_CLIP_MODEL", "STYLEDROP_TRAIN_STEPS", "STYLEDROP_BATCH_SIZE",
    "STYLEDROP_SAMPLE_STEPS", "STYLEDROP_CANDIDATE_PROMPTS", "STYLEDROP_CANDIDATES_PER_PROMPT")}


def _tour_world(request) -> tuple[str, Path]:
    """The world the walk runs on and the cache folder that holds it."""
    name = os.environ.get("STYLEDROP_TOUR_WORLD", "shapes-micro")
    if name == "shapes-micro" and "STYLEDROP_TOUR_WORLD_DIR" not in os.environ:
        folder, _ = request.getfixturevalue("micro_world")
        return name, Path(folder).parent
    root = Path(os.environ.get("STYLEDROP_TOUR_WORLD_DIR", "~/.cache/styledrop/worlds")).expanduser()
    if not (root / name / "world.json").is_file():
        pytest.skip(f"no '{name}' world built in {root}")
    return name, root


@pytest.fixture
def served_world(tmp_path, redis_url, request) -> Iterator[dict[str, Any]]:
    """The app and a worker on a world base model: the server's default and its only choice, with every round
    setting left to the world's profile (styledrop.model_profiles)."""
    require_browser()
    from app.infra.migrate import upgrade

    name, worlds = _tour_world(request)
    data = tmp_path / "data"
    upgrade(make_settings(data, redis_url=redis_url))
    env = _env(data, **WORLD_ENV, REDIS_URL=redis_url, STYLEDROP_MODEL=name, STYLEDROP_BASE_MODELS=name,
               STYLEDROP_WORLD_DIR=str(worlds))
    for unset in ("STYLEDROP_TRAIN_STEPS", "STYLEDROP_BATCH_SIZE", "STYLEDROP_SAMPLE_STEPS",
                  "STYLEDROP_CANDIDATE_PROMPTS", "STYLEDROP_CANDIDATES_PER_PROMPT", "STYLEDROP_CLIP_MODEL",
                  "STYLEDROP_SAMPLE_EVERY"):
        env.pop(unset, None)
    port = free_port()
    worker_log, web_log = tmp_path / "worker.log", tmp_path / "web.log"
    with started(worker_args("world-tour"), env, worker_log) as worker, started(web_args(port), env, web_log) as web:
        wait_for_log(web, web_log, WEB_READY, 60, "web server")
        wait_for_log(worker, worker_log, WORKER_READY, 90, "worker")
        yield {"url": f"http://127.0.0.1:{port}", "world": name, "worker_log": worker_log, "web_log": web_log}


def test_a_held_out_style_on_the_world_in_the_browser(served_world):
    from playwright.sync_api import expect, sync_playwright

    from styledrop.world import oracle
    from styledrop.world import scene as world

    from .chromium import launch

    base = served_world["url"]

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                         for p in (served_world["worker_log"], served_world["web_log"]))

    def finished(section, count: int) -> None:
        try:
            expect(section.locator(".card")).to_have_count(count, timeout=900_000)  # a busy machine: wait on work
        except AssertionError:
            raise AssertionError(f"the round did not finish in the page:\n{logs()}") from None

    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors = watch_errors(page)
        api = page.request
        try:
            # 1. A held-out style from the examples: no upload, the world's steps.
            page.goto(base + "/styles/new")
            expect(page.locator("#world-build")).to_have_attribute("data-state", "built")
            page.get_by_alt_text(EXAMPLE).click()
            expect(page.locator("#descriptor")).to_have_value("candy checkered on navy")
            shot(page, "world-01-new-style")
            page.get_by_role("button", name="Create style and start round 1").click()

            # 2. Round 1 on the world's recipe: the live samples, then the pool on the candidate shapes.
            expect(page.get_by_role("heading", name="Candy checkered on navy", exact=True)).to_be_visible()
            style_id = int(re.search(r"/styles/(\d+)", page.url).group(1))
            subject = world.content_of(world.EVAL_SHAPES[0]).capitalize()  # the world's first playground prompt
            expect(page.get_by_text(f"{subject} in candy checkered on navy style")).to_be_visible()
            first = page.locator("section.round").first
            pool = len(world.CANDIDATE_SHAPES) * 4
            finished(first, pool)
            round1 = next(r for r in api.get(f"{base}/api/v1/styles/{style_id}/rounds").json()["items"]
                          if r["number"] == 1)
            plan = round1["parameters"]
            assert (plan["train"]["steps"], plan["train"]["learning_rate"], plan["train"]["flips"]) == (150, 2e-3,
                                                                                                        False)
            assert (plan["sampling"]["guidance"], plan["sampling"]["adapter_guidance"]) == (1.0, 0.0)
            # the world's live samples: every 50 steps, on a circle and a star, newest first
            expect(first.locator(".sample-label")).to_have_text(["step 150", "step 100", "step 50", "step 0"])
            candidates = api.get(f"{base}/api/v1/rounds/{round1['id']}/candidates?limit=100").json()["items"]
            assert {c["content"] for c in candidates} == {world.content_of(s) for s in world.CANDIDATE_SHAPES}
            # the pictures are in the reference's style, as the world's style oracle reads them
            reference = world.render(world.reference_scene(world.Style.parse("candy checkered on navy")))
            images = [Image.open(io.BytesIO(api.get(f"{base}/api/v1/candidates/{c['id']}/image").body()))
                      for c in candidates]
            matches = oracle.style_matches(images, reference)
            assert sum(matches) / len(matches) > 0.5, matches
            shot(page, "world-02-round-1")
            first.locator(".samples-box").screenshot(path=str(ARTIFACTS / "world-02b-round-1-samples.png"))

            # 3. Like the candidates the oracle reads as their prompt's shape (a person who can see), up to 6.
            readings = oracle.read_contents(images)
            right = [c["id"] for c, r in zip(candidates, readings) if r.shows(world.shape_of(c["content"]))]
            # nothing drawn right (a micro world may not): the first two, as a person keeping the style would
            liked = (right or [c["id"] for c in candidates[:2]])[:6]
            for candidate_id in liked:
                page.locator(f"#cand-{candidate_id}").locator('[data-action="up"]').click()
                expect(page.locator(f"#cand-{candidate_id}")).to_have_class(re.compile(r"\bliked\b"))
            expect(page.locator(".selbar .count")).to_have_text(str(len(liked)))
            shot(page, "world-03-rated")

            # 4. Round 2 on the picks: its pool draws candidate shapes it did not train on.
            page.locator("#train-next").click()
            second = page.locator("section.round").first
            expect(second.get_by_role("heading", name="Round 2", exact=True)).to_be_visible()
            rounds = api.get(f"{base}/api/v1/styles/{style_id}/rounds").json()["items"]
            round2 = next(r for r in rounds if r["number"] == 2)
            assert round2["parameters"]["sampling"]["adapter_guidance"] == 0.0  # the world's λA, not the paper's 2
            expect(second.locator(".card")).not_to_have_count(0, timeout=900_000)
            expect(second.locator("[hx-trigger]")).to_have_count(0, timeout=900_000)
            shot(page, "world-04-round-2")

            # 5. The held-out evaluation (the world's evaluation shapes), then both rounds' pictures side by side.
            evaluation = page.locator("#evaluation")
            expect(evaluation.locator('input[name="limit"]')).to_have_value(str(len(world.EVAL_SHAPES)))
            evaluation.get_by_role("button", name="Evaluate every round").click()
            expect(page.locator("#evaluation-table tbody tr")).to_have_count(3, timeout=900_000)  # base, 1, 2
            expect(page.locator("#evaluation")).to_contain_text(f"{len(world.EVAL_SHAPES)} prompts")
            shot(page, "world-05-evaluated")
            page.get_by_role("link", name="Compare the rounds' pictures").click()
            expect(page.get_by_role("heading", name="Compare rounds", exact=True)).to_be_visible()
            expect(page.locator(".side-by-side tbody td:not(.ref-cell) img")).not_to_have_count(0)
            shot(page, "world-06-compare")
            page.go_back()

            # 6. The playground: held-out shapes (never trained on, never drawn as candidates) in the style.
            page.get_by_role("link", name="Open the playground").click()
            prompts = page.get_by_label("Prompts, one per line")
            expect(prompts).to_have_value(re.compile(r"a star"))
            expect(page.get_by_label("λB guidance")).to_have_value("1")
            page.get_by_label("Images per prompt").fill("2")
            count = 2 * len([line for line in prompts.input_value().splitlines() if line.strip()])
            page.get_by_role("button", name="Generate").click()
            expect(page.locator(".generation .gen-images img")).to_have_count(count, timeout=900_000)
            shot(page, "world-07-playground")
            assert not errors, errors
        finally:
            context.close()
            browser.close()
