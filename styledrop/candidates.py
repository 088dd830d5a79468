"""Candidate pools for iterative training (paper §3.3): N images for each of many content prompts.

The built-in prompts (styledrop.prompt_sets) are deliberately diverse — different from any one reference's
content — so that selecting images with high CLIP *text* scores favours style without the reference's
content leaking in. The paper's pool (its Table S2) is 30 prompts × 64 images; ours has 64 prompts in eight
categories, and a pool is drawn across all of them (`diverse_prompts`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from .errors import StyleDropError
from .prompt_sets import CONTENT_PROMPTS, default_prompts, diverse_prompts, read_prompt_file  # noqa: F401 (re-exported)
from .sampling import SampleConfig

@dataclass
class Candidate:
    """One generated image and how to make it again: prompt, seed and its index in that seed's batch."""

    id: int
    round: int
    content: str
    prompt: str
    seed: int
    index: int
    text_score: float | None = None
    style_score: float | None = None
    file: str | None = None
    image: Image.Image | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "image"}


ProgressFn = Callable[[int, int], None]


def generate_candidates(style, contents: list[str], per_prompt: int, seed: int = 0, round_number: int = 1,
                        config: SampleConfig | None = None, scorer=None, reference=None,
                        on_progress: ProgressFn | None = None) -> list[Candidate]:
    """Generate `per_prompt` images for each content prompt with a loaded style, and CLIP-score them.

    Prompt i uses seed `seed + i`, so any candidate can be regenerated alone. With a scorer and a
    reference image (or its embedding), text and style scores are filled in.
    """
    from .styles import generate_with_style

    if per_prompt < 1:
        raise StyleDropError("Generate at least one candidate per prompt.")
    if not contents:
        raise StyleDropError("Give at least one content prompt for the candidates.")
    base = config or SampleConfig()
    candidates: list[Candidate] = []
    for i, content in enumerate(contents):
        run = SampleConfig(**{**vars(base), "num_images": per_prompt, "seed": seed + i})
        samples = generate_with_style(style, [content], run)
        for index, (prompt, image) in enumerate(zip(samples.prompts, samples.images)):
            candidates.append(Candidate(len(candidates), round_number, content, prompt, seed + i, index, image=image))
        if on_progress is not None:
            on_progress(i + 1, len(contents))
    if scorer is not None and reference is not None:
        score_candidates(scorer, candidates, reference)
    return candidates


def score_candidates(scorer, candidates: list[Candidate], reference) -> None:
    """Fill text scores (against the content prompt, no descriptor) and style scores (against the reference)."""
    from .prompts import style_prompt

    ref = reference if not isinstance(reference, (Image.Image, list)) else scorer.reference_embedding(reference)
    images = [c.image for c in candidates]
    if any(img is None for img in images):
        raise StyleDropError("Candidates must carry their images to be scored.")
    text, style_scores = scorer.score(images, [style_prompt(c.content, None) for c in candidates], ref)
    for candidate, t, s in zip(candidates, text, style_scores):
        candidate.text_score, candidate.style_score = round(t, 6), round(s, 6)


def save_candidates(folder: str | Path, candidates: list[Candidate]) -> Path:
    """PNG files named by candidate id plus candidates.json with prompts, seeds and scores."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for c in candidates:
        if c.image is not None:
            c.file = f"cand-{c.id:05d}.png"
            c.image.save(folder / c.file)
    (folder / "candidates.json").write_text(json.dumps([c.record() for c in candidates], indent=1) + "\n")
    return folder


def load_candidates(folder: str | Path, with_images: bool = True) -> list[Candidate]:
    folder = Path(folder)
    manifest = folder / "candidates.json"
    if not manifest.is_file():
        raise StyleDropError(f"No candidates in {folder}: run `styledrop candidates` first.")
    candidates = [Candidate(**row) for row in json.loads(manifest.read_text())]
    if with_images:
        for c in candidates:
            if c.file:
                with Image.open(folder / c.file) as img:
                    c.image = img.convert("RGB")
    return candidates
