"""Candidate pools for iterative training (paper §3.3): N images for each of many content prompts.

The built-in prompts are deliberately diverse — different from any one reference's content — so that
selecting images with high CLIP *text* scores favours style without the reference's content leaking in.
The paper's pool (its Table S2) is 30 prompts × 64 images; ours has 64 prompts in eight categories.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Container

from PIL import Image

from .errors import StyleDropError
from .plan import CANDIDATE_BATCH
from .sampling import SampleConfig

CONTENT_PROMPTS: dict[str, list[str]] = {
    "animals": ["a chihuahua", "a cat sleeping on a sofa", "a fox in the snow", "an owl on a branch",
                "a horse running in a field", "a goldfish in a bowl", "a penguin on the ice", "a butterfly"],
    "objects": ["a banana on the table", "a teapot", "an alarm clock", "a pair of sneakers",
                "a guitar leaning on a wall", "a bouquet of flowers in a vase", "a laptop on a desk", "an umbrella"],
    "scenes": ["a mountain lake at sunrise", "a forest path in autumn", "a desert with cacti", "a waterfall",
               "a snowy village at night", "a beach with palm trees", "a city skyline at dusk", "a wheat field"],
    "people": ["a woman reading a book", "a man playing the violin", "a child flying a kite", "a chef cooking",
               "an astronaut", "a dancer mid-leap", "an old fisherman", "a couple walking in the rain"],
    "vehicles": ["a red bicycle", "a vintage car", "a steam train", "a sailboat on the sea",
                 "a hot air balloon", "a motorcycle", "a city bus", "an airplane in the clouds"],
    "food": ["a bowl of ramen", "a slice of pizza", "a stack of pancakes", "a cup of coffee",
             "a basket of strawberries", "a birthday cake", "a burger and fries", "a loaf of bread"],
    "buildings": ["a church on the beach", "a lighthouse on a cliff", "a castle on a hill", "a wooden cabin",
                  "a skyscraper", "a windmill", "a pagoda", "a bridge over a river"],
    "text": ["the letter A", "the letter Z", "the word \"hello\"", "the number 7", "the word \"love\"",
             "the letters \"abc\"", "the word \"style\"", "the number 42"],
}


def default_prompts(categories: list[str] | None = None) -> list[str]:
    """All built-in content prompts, category by category (or only the named categories)."""
    names = categories or list(CONTENT_PROMPTS)
    unknown = [n for n in names if n not in CONTENT_PROMPTS]
    if unknown:
        raise StyleDropError(f"Unknown prompt categories {unknown}; choose from {', '.join(CONTENT_PROMPTS)}.")
    return [prompt for name in names for prompt in CONTENT_PROMPTS[name]]


def read_prompt_file(path: str | Path) -> list[str]:
    """One content prompt per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    if not path.is_file():
        raise StyleDropError(f"Prompt file not found: {path}")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise StyleDropError(f"Prompt file {path} holds no prompts.")
    return prompts


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

    The one seed rule of the CLI and the worker. With the seed contract (README) candidate k is the image that
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
    uninterrupted run would have. Batches of `batch_size` images (bf16 autocast on CUDA); `on_candidate` is
    called once per finished candidate, `should_stop` is asked before each batch (stop: return what is made).
    """
    import torch

    from .sampling import generate

    if batch_size < 1:
        raise StyleDropError(f"Draw at least one candidate per batch, got {batch_size}.")
    todo = [slot for slot in candidate_slots(contents, per_prompt, seed) if slot.k not in done]
    base = SampleConfig(**{**vars(config or SampleConfig()), "num_images": 1})
    device = torch.device(style.components.device)
    made: list[Candidate] = []
    for start in range(0, len(todo), batch_size):
        if should_stop is not None and should_stop():
            break
        batch = todo[start:start + batch_size]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            samples = generate(style.components, [style.prompt(s.content) for s in batch], base,
                               adapter=style.adapter, seeds=[s.seed for s in batch])
        for slot, prompt, image in zip(batch, samples.prompts, samples.images):
            candidate = Candidate(slot.k, round_number, slot.content, prompt, slot.seed, slot.index, image=image)
            made.append(candidate)
            if on_candidate is not None:
                on_candidate(candidate)
    return made


def generate_candidates(style, contents: list[str], per_prompt: int, seed: int = 0, round_number: int = 1,
                        config: SampleConfig | None = None, scorer=None, reference=None,
                        on_progress: ProgressFn | None = None, batch_size: int = CANDIDATE_BATCH) -> list[Candidate]:
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
