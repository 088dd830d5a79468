"""Sample images while training: two fixed prompts drawn every N steps with the adapter as trained so far.

A person watching a round sees the style arrive (ai-toolkit shows the same), from step 0 (before the first
step: what the run starts from, the base model for a fresh adapter) on. The prompts, their seeds and the
sampling settings never change within a run, so consecutive samples differ only by the adapter: step 250's
cat and step 500's cat are the same draw of the same noise.

The training loop (styledrop.training.train) calls `on_sample(step)` between steps, under no_grad, with the
transformer in eval mode and under the training step's own autocast (the fast step holds the frozen weights in
bf16). Each image is drawn from its own seeded generator, so sampling never touches the training generator
and a resumed run still continues exactly where an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from PIL import Image

from .adapters import Adapter
from .models import Components
from .prompt_sets import SAMPLE_CONTENTS
from .prompts import style_prompt
from .sampling import SampleConfig, generate

SAMPLE_SEED = 2024  # image i is drawn with seed SAMPLE_SEED + i, in every run and every step
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def sample_name(step: int, index: int) -> str:
    """step-000250-a.png: sorts by step, then by prompt."""
    return f"step-{step:06d}-{LETTERS[index]}.png"


def sample_due(step: int, every: int, total: int) -> bool:
    """Samples at N, 2N, ... and at the last step (the adapter the run ends with); never when every is 0.
    (Step 0, before training, is drawn by a fresh run itself: styledrop.training.train.)"""
    return every > 0 and (step % every == 0 or step == total)


@dataclass
class TrainingSample:
    step: int
    index: int
    content: str
    prompt: str
    seed: int
    image: Image.Image

    @property
    def name(self) -> str:
        return sample_name(self.step, self.index)

    def describe(self) -> dict[str, Any]:
        """What is recorded beside the file (no image)."""
        return {"step": self.step, "index": self.index, "content": self.content, "prompt": self.prompt,
                "seed": self.seed, "name": self.name}


SamplesFn = Callable[[int, list[TrainingSample]], None]


class TrainingSampler:
    """Draws the fixed samples of one run with its adapter: `sampler(step)` returns them."""

    def __init__(self, components: Components, adapter: Adapter, descriptor: str | None,
                 config: SampleConfig | None = None, contents: tuple[str, ...] | list[str] = SAMPLE_CONTENTS,
                 seed: int = SAMPLE_SEED):
        self.components, self.adapter = components, adapter
        self.contents = list(contents)
        self.prompts = [style_prompt(c, descriptor) for c in self.contents]
        self.seeds = [seed + i for i in range(len(self.contents))]
        # One image per prompt, each from its own generator (styledrop.sampling.generate's per-image seeds).
        # Eager decoding steps: two images are not worth a CUDA graph, and between training steps one would be
        # captured beside the compiled step's own graphs (TrainConfig.fast) over weights held in bf16.
        self.config = replace(config or SampleConfig(), num_images=1, seed=self.seeds[0], graphs="off")

    def __call__(self, step: int) -> list[TrainingSample]:
        drawn = generate(self.components, self.prompts, self.config, adapter=self.adapter, seeds=self.seeds)
        return [TrainingSample(step, i, c, p, s, image)
                for i, (c, p, s, image) in enumerate(zip(self.contents, self.prompts, self.seeds, drawn.images))]


def sample_callback(sampler: TrainingSampler, on_samples: SamplesFn) -> Callable[[int], None]:
    """The training loop's on_sample: draw, then hand the images to whoever stores them."""
    def on_sample(step: int) -> None:
        on_samples(step, sampler(step))

    return on_sample
