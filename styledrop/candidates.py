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
from typing import Callable, Container

from PIL import Image

from .errors import StyleDropError
from .plan import CANDIDATE_BATCH
from .prompt_sets import CONTENT_PROMPTS, default_prompts, diverse_prompts, read_prompt_file  # noqa: F401 (re-exported)
from .sampling import SampleConfig


@dataclass
class Candidate:
    """One generated image and how to make it again: its own seed (candidate_seed) and prompt; `index` is
    its number among its prompt's images."""

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
CandidateFn = Callable[["Candidate"], None]
SEED_STRIDE = 100_003


def candidate_seed(round_seed: int, k: int) -> int:
    """Candidate k's own seed (k counts from 0 over the pool, prompt by prompt): round_seed × 100,003 + k.

    The one seed rule of the CLI and the worker. With the seed contract (docs/method.md) candidate k is the image that
    seed draws alone for its prompt, so `styledrop generate --seed S` or the playground remake it."""
    return int(round_seed) * SEED_STRIDE + int(k)


@dataclass
class CandidateSlot:
    """A candidate still to be drawn: its number in the pool, content prompt, seed and index within its prompt."""

    k: int
    content: str
    seed: int
    index: int


def candidate_slots(contents: list[str], per_prompt: int, seed: int) -> list[CandidateSlot]:
    """The whole pool in order: prompt by prompt, `per_prompt` images each, candidate k with its own seed."""
    if per_prompt < 1:
        raise StyleDropError("Generate at least one candidate per prompt.")
    if not contents:
        raise StyleDropError("Give at least one content prompt for the candidates.")
    return [CandidateSlot(i * per_prompt + j, content, candidate_seed(seed, i * per_prompt + j), j)
            for i, content in enumerate(contents) for j in range(per_prompt)]


def draw_candidates(style, contents: list[str], per_prompt: int, seed: int = 0, round_number: int = 1,
                    config: SampleConfig | None = None, batch_size: int = CANDIDATE_BATCH,
                    done: Container[int] = (), on_candidate: CandidateFn | None = None,
                    should_stop: Callable[[], bool] | None = None) -> list[Candidate]:
    """The candidate pipeline of the CLI and the worker: draw the pool's missing candidates in batches.

    Candidates whose number is in `done` (made by an earlier, interrupted run) are skipped, so a run resumes
    from the first one missing and, every image having its own seed and generator, draws exactly what the
    uninterrupted run would have. Batches of `batch_size` images in config.precision (applied by `generate`, the
    playground's path too, so a seed draws the same image there); `on_candidate` is called once per finished
    candidate, `should_stop` is asked before each batch (stop: return what is made).
    """
    from .sampling import generate

    if batch_size < 1:
        raise StyleDropError(f"Draw at least one candidate per batch, got {batch_size}.")
    todo = [slot for slot in candidate_slots(contents, per_prompt, seed) if slot.k not in done]
    base = SampleConfig(**{**vars(config or SampleConfig()), "num_images": 1})
    made: list[Candidate] = []
    for start in range(0, len(todo), batch_size):
        if should_stop is not None and should_stop():
            break
        batch = todo[start:start + batch_size]
        samples = generate(style.components, [style.prompt(s.content) for s in batch], base,
                           adapter=style.adapter, seeds=[s.seed for s in batch])
        for slot, prompt, image in zip(batch, samples.prompts, samples.images):
            candidate = Candidate(slot.k, round_number, slot.content, prompt, slot.seed, slot.index, image=image)
            made.append(candidate)
            if on_candidate is not None:
                on_candidate(candidate)
    return made


def draw_scored_candidates(style, contents: list[str], per_prompt: int, seed: int = 0, round_number: int = 1,
                           config: SampleConfig | None = None, scorer=None, reference=None,
                           on_progress: ProgressFn | None = None,
                           batch_size: int = CANDIDATE_BATCH) -> list[Candidate]:
    """The whole pool (draw_candidates) and, with a scorer and a reference image (or its embedding), its
    CLIP text and style scores."""
    total = len(contents) * per_prompt
    count = {"n": 0}

    def progress(_: Candidate) -> None:
        count["n"] += 1
        if on_progress is not None:
            on_progress(count["n"], total)

    candidates = draw_candidates(style, contents, per_prompt, seed, round_number, config, batch_size,
                                 on_candidate=progress)
    if scorer is not None and reference is not None:
        score_candidates(scorer, candidates, reference)
    return candidates


def score_images(scorer, images: list[Image.Image], contents: list[str], reference) -> tuple[list[float], list[float]]:
    """(text scores, style scores) of images: text against the content prompt without the descriptor
    ("A chihuahua"), style against the reference (an image, a list of them, or its embedding). Batched on the
    scorer's device, each image embedded once."""
    from .prompts import style_prompt

    if not images:
        return [], []
    ref = reference if not isinstance(reference, (Image.Image, list)) else scorer.reference_embedding(reference)
    text, style = scorer.score(images, [style_prompt(c, None) for c in contents], ref)
    return [float(t) for t in text], [float(s) for s in style]


def score_candidates(scorer, candidates: list[Candidate], reference) -> None:
    """Fill the candidates' text and style scores (score_images)."""
    images = [c.image for c in candidates]
    if any(img is None for img in images):
        raise StyleDropError("Candidates must carry their images to be scored.")
    text, style_scores = score_images(scorer, images, [c.content for c in candidates], reference)
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
