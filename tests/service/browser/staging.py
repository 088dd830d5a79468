"""Staged states for the browser tests (the `staged` fixture): a style made through the pages, its round brought
to a step or to its end by writing the database as the worker would, and the geometry a test measures."""

from __future__ import annotations

from typing import Any

from ..factories import finish_round, run_round
from ..pages.helpers import create_style, latest_round

# A round-1 pool as the default settings draw it: 16 prompts x 4 candidates (styledrop/prompt_sets.py's kinds).
CONTENTS = ["a chihuahua", "a cat sleeping on a sofa", "a teapot", "an alarm clock", "a mountain lake at sunrise",
            "a waterfall", "a woman reading a book", "an astronaut", "a red bicycle", "a steam train",
            "a bowl of ramen", "a slice of pizza", "a church on the beach", "a lighthouse on a cliff",
            "the letter A", "the number 42"]
PER_PROMPT = 4
STAGED_SETTINGS = {"candidate_prompts": len(CONTENTS), "candidates_per_prompt": PER_PROMPT}


def running_style(client, step: int = 4, phase: str = "training", made: int = 0, **fields: str) -> tuple[int, int]:
    """A style whose round 1 runs at `step` of its 10 (`made` candidates drawn); returns (style id, round id)."""
    style_id = create_style(client, **fields)
    round_id = latest_round(client, style_id)
    run_round(client.settings, round_id, step=step, phase=phase, made=made)
    return style_id, round_id


def finished_style(client, **fields: str) -> tuple[int, int, list[int]]:
    """A style whose round 1 finished with the full pool of 64 scored candidates; returns (style, round, ids)."""
    style_id = create_style(client, **fields)
    round_id = latest_round(client, style_id)
    contents = [c for c in CONTENTS for _ in range(PER_PROMPT)]
    text = [0.20 + 0.001 * i for i in range(len(contents))]
    ids = finish_round(client.settings, round_id, len(contents), contents, text_scores=text)
    return style_id, round_id, ids


RECT = "el => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, " \
       "right: r.right, width: r.width, height: r.height}; }"


def rect(locator) -> dict[str, float]:
    """The element's box in CSS px, relative to the viewport."""
    return locator.evaluate(RECT)


def in_viewport(page, box: dict[str, float], below: float = 0.0) -> bool:
    """The box is wholly on screen (and below `below` px: under a sticky header it would be hidden)."""
    size: Any = page.viewport_size
    return box["height"] > 0 and box["top"] >= below - 0.5 and box["bottom"] <= size["height"] + 0.5 \
        and box["left"] >= -0.5 and box["right"] <= size["width"] + 0.5


def header_bottom(page) -> float:
    """Where the sticky header ends on screen now (0 when it has scrolled away)."""
    return page.locator("header.topbar").evaluate(
        "el => Math.max(0, el.getBoundingClientRect().bottom)")


def evaluated_style(client) -> int:
    """A style with round 1 finished and an evaluation finished (as the worker leaves it); returns the style id.
    Round 1 at the top right, its text score close to the base model's (the axis ticks need four decimals)."""
    from app.domain.models import Evaluation
    from app.infra.db import session_factory

    style_id, _, _ = finished_style(client)
    assert client.post(f"/styles/{style_id}/evaluation", data={"limit": "5", "per_prompt": "1"}).status_code == 200
    with session_factory(client.settings)() as session:
        evaluation = session.get(Evaluation, client.dispatcher.evaluations[-1])
        evaluation.status, evaluation.result = "succeeded", {"clip_model": "tiny", "rows": [
            {"name": "base", "text_mean": 0.3231, "text_std": 0.01, "style_mean": 0.556, "style_std": 0.02,
             "count": 5},
            {"name": "round 1", "text_mean": 0.3236, "text_std": 0.01, "style_mean": 0.705, "style_std": 0.02,
             "count": 5}]}
        session.commit()
    return style_id


# Every <text> of an SVG and the SVG itself, measured on screen, with the box that holds the SVG.
SVG_BOXES = """svg => {
    const box = r => ({top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height});
    return {svg: box(svg.getBoundingClientRect()), holder: box(svg.parentElement.getBoundingClientRect()),
            texts: [...svg.querySelectorAll('text')].map(t => ({
                text: t.textContent, rotated: t.hasAttribute('transform'), ...box(t.getBoundingClientRect())}))};
}"""


def outside(inner: dict[str, float], outer: dict[str, float], slack: float = 0.5) -> bool:
    return inner["left"] < outer["left"] - slack or inner["right"] > outer["right"] + slack \
        or inner["top"] < outer["top"] - slack or inner["bottom"] > outer["bottom"] + slack


def compared_style(client, text_scores: tuple[float, float] | None = None) -> int:
    """A style with two finished rounds of the full pool (the same prompts and seeds), their candidates' text
    scores each round's given one if asked; returns the style id."""
    contents = [c for c in CONTENTS for _ in range(PER_PROMPT)]
    style_id = create_style(client)
    first = [text_scores[0]] * len(contents) if text_scores else None
    ids = finish_round(client.settings, latest_round(client, style_id), len(contents), contents, text_scores=first)
    client.post(f"/candidates/{ids[0]}/selected")
    assert client.post(f"/styles/{style_id}/rounds", data={"feedback": "human"},
                       follow_redirects=False).status_code == 303
    second = [text_scores[1]] * len(contents) if text_scores else None
    finish_round(client.settings, latest_round(client, style_id), len(contents), contents, text_scores=second)
    return style_id
