"""Per base model: how its rounds sample and train by default, and which prompts it draws and is scored on.

The paper's recipe (λB as aMUSEd's pipeline, λA = 2 from round 2, 1,000 steps, flipped copies) and the built-in
prompt lists (styledrop.prompt_sets) fit aMUSEd; on the shapes world they draw noise: its base model knows only
its twelve shapes and draws them at λB = 1 and λA = 0 (docs/world.md). So nothing reads those globals directly:
the round plan (styledrop.plan), the service, the worker, the evaluation and the CLI ask `profile_for(model)`.
A world's profile comes from its spec (styledrop.world.spec.WorldSpec: sampling, round_sampling, round_training)
and its content splits (styledrop.world.scene), so the world is described in one place.

Precedence, applied by the callers: what a request, a CLI flag or a style setting gives; then a setting the
administrator explicitly set in the environment (app.settings.Settings.explicit); then the model's profile;
then the built-in defaults below (aMUSEd's), which every model that is not a world keeps exactly.

Torch-free (the web app imports it through styledrop.plan); the world's scene brings numpy and PIL only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .prompt_sets import SAMPLE_CONTENTS, diverse_prompts, eval_prompts, overlap
from .world.spec import WORLDS, is_world

# aMUSEd's own decoding defaults (AmusedPipeline: 12 steps, guidance scale 10 = 1 + λB, temperature 2 → 0).
DEFAULT_SAMPLE_STEPS = 12
DEFAULT_GUIDANCE = 9.0
DEFAULT_TEMPERATURE = (2.0, 0.0)
# λA: 0 for a round-1 adapter, 2 from round 2 on (paper §4.1).
DEFAULT_ADAPTER_GUIDANCE = (0.0, 2.0)
DEFAULT_TRAIN_STEPS = 1000  # the paper's budget per round
DEFAULT_BATCH_SIZE = 8  # the paper's batch
DEFAULT_SAMPLE_EVERY = 250  # training samples every 250 steps (4 sets in a 1,000-step round)
DEFAULT_FLIPS = True  # ours: horizontal flips of every training image (they mirror lettering: turn off for text)
# A candidate pool's default size: 16 built-in prompts (two of each of the eight categories, so a person or CLIP
# can pick more than animals). The paper's CLIP pool was 30 prompts.
DEFAULT_CANDIDATE_PROMPTS = 16
BUILT_IN_HELD_OUT = "built-in held-out list"


@dataclass(frozen=True)
class ModelProfile:
    """A base model's defaults. `candidates` are ordered so that the first `candidate_count` make a good pool."""

    name: str
    guidance: float = DEFAULT_GUIDANCE  # λB
    adapter_guidance: tuple[float, float] = DEFAULT_ADAPTER_GUIDANCE  # λA of round 1, of every later round
    sample_steps: int = DEFAULT_SAMPLE_STEPS
    temperature: tuple[float, float] = DEFAULT_TEMPERATURE
    train_steps: int = DEFAULT_TRAIN_STEPS
    learning_rate: float | None = None  # None: the engine's default for the adapter kind (styledrop.training)
    batch_size: int = DEFAULT_BATCH_SIZE
    flips: bool = DEFAULT_FLIPS
    sample_every: int = DEFAULT_SAMPLE_EVERY  # live samples while a round trains, every N steps
    candidates: tuple[str, ...] = field(default_factory=lambda: tuple(diverse_prompts()))
    candidate_count: int = DEFAULT_CANDIDATE_PROMPTS
    sample_contents: tuple[str, ...] = SAMPLE_CONTENTS
    held_out: tuple[str, ...] = field(default_factory=lambda: tuple(eval_prompts()))
    held_out_name: str = BUILT_IN_HELD_OUT  # how reports and the API name the evaluation list
    # what the playground first offers to draw: contents the model knows, other than the reference's
    playground_prompts: tuple[str, ...] = ("a cat", "a bridge")

    def sampling(self, number: int) -> dict[str, Any]:
        """Round `number`'s sampling defaults (styledrop.plan.SamplingDefaults fields)."""
        return {"adapter_guidance": self.adapter_guidance[0 if number <= 1 else 1], "guidance": self.guidance,
                "steps": self.sample_steps, "temperature": self.temperature}

    def training(self) -> dict[str, Any]:
        """A round's training defaults (styledrop.plan.TrainingPlan fields)."""
        return {"steps": self.train_steps, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "flips": self.flips, "sample_every": self.sample_every}

    def candidate_prompts(self, count: int | None = None) -> list[str]:
        """The first `count` candidate prompts (default `candidate_count`; never fewer than one)."""
        return list(self.candidates[: max(1, count or self.candidate_count)])

    def fresh_candidates(self, trained: list[str], count: int | None = None) -> list[str]:
        """A later round's candidate prompts: the first `count` (all when None or 0) of the candidate prompts it
        does not train on, so its candidates, and their scores, are not drawn on its own training prompts. A world
        has only a few; once the rounds have trained on all of them, the whole list (a pool never draws the
        held-out evaluation contents). The service and `styledrop candidates` both ask this."""
        fresh = [p for p in self.candidates if not overlap([p], trained)] or list(self.candidates)
        return fresh[:count] if count else fresh

    def eval_prompts(self) -> list[str]:
        """The held-out evaluation prompts: never a candidate prompt, never trained on by a round."""
        return list(self.held_out)


AMUSED = ModelProfile(name="aMUSEd")


@lru_cache
def _world_profile(name: str) -> ModelProfile:
    from .world import scene  # numpy and PIL: only when a world is asked for

    spec = WORLDS[name]
    base = spec.sampling | spec.round_sampling
    training = spec.round_training
    adapter_guidance = base.get("adapter_guidance", 0.0)
    if not isinstance(adapter_guidance, (list, tuple)):
        adapter_guidance = (adapter_guidance, adapter_guidance)
    candidates = tuple(scene.content_of(s) for s in scene.CANDIDATE_SHAPES)
    return ModelProfile(
        name=name, guidance=float(base.get("guidance", DEFAULT_GUIDANCE)),
        adapter_guidance=(float(adapter_guidance[0]), float(adapter_guidance[1])),
        sample_steps=int(base.get("steps", DEFAULT_SAMPLE_STEPS)),
        temperature=tuple(base.get("temperature", DEFAULT_TEMPERATURE)),
        train_steps=int(training.get("steps", DEFAULT_TRAIN_STEPS)), learning_rate=training.get("learning_rate"),
        batch_size=int(training.get("batch_size", DEFAULT_BATCH_SIZE)),
        flips=bool(training.get("flips", DEFAULT_FLIPS)),
        sample_every=int(training.get("sample_every", DEFAULT_SAMPLE_EVERY)),
        candidates=candidates, candidate_count=len(candidates),
        sample_contents=tuple(scene.content_of(s) for s in scene.SAMPLE_SHAPES),
        held_out=tuple(scene.content_of(s) for s in scene.EVAL_SHAPES),
        held_out_name=f"the {name} world's evaluation shapes",
        playground_prompts=tuple(scene.content_of(s) for s in scene.EVAL_SHAPES[:2]))


def profile_for(model: str | None) -> ModelProfile:
    """The defaults of a base model: a world's own (styledrop.world), else aMUSEd's (hub ids, folders, presets)."""
    if is_world(model):
        return _world_profile((model or "").strip())
    return AMUSED
