"""A round's plan: what to train, how to draw its candidates, which adapter, which sampling defaults.

One typed `RoundPlan`, built in one place (`plan_round`) for round 1 and for round N+1, so the per-round
recipe of the paper (Table S3, §4.1) is written once:

    round 1:   StyleDrop adapter H=4, shared across layers;  adapter guidance λA = 0
    round ≥ 2: StyleDrop adapter H=32, not shared;            adapter guidance λA = 2

The sampling and training defaults, and the candidate and live-sample prompts, are the base model's
(styledrop.model_profiles: aMUSEd's above; a world's own, e.g. λA = 0 in every round on `shapes`); the plan
records the values it resolved, so a round can be reproduced from its row.

The web app stores the plan as JSON in `Round.parameters` and the worker, the pages and the CLI read it back.
Plain pydantic, no torch: the web app imports this module and must never pull the engine's heavy libraries.
Rows stored as plain settings dicts, without a plan, still load: `RoundPlan.from_stored` fills the defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The built-in defaults (aMUSEd's), written once in styledrop.model_profiles and named here as before: the
# service (STYLEDROP_CANDIDATE_PROMPTS / _PER_PROMPT), the plan and `styledrop candidates` all start from these.
from .model_profiles import (  # noqa: F401 (re-exported)
    DEFAULT_BATCH_SIZE,
    DEFAULT_CANDIDATE_PROMPTS,
    DEFAULT_FLIPS,
    DEFAULT_GUIDANCE,
    DEFAULT_SAMPLE_EVERY,
    DEFAULT_SAMPLE_STEPS,
    DEFAULT_TEMPERATURE,
    DEFAULT_TRAIN_STEPS,
    profile_for,
)

CANDIDATE_BATCH = 8  # candidates drawn per sampler call
DEFAULT_CANDIDATES_PER_PROMPT = 4  # images of each candidate prompt
# Our departures from the paper's training, each an option recorded in the plan (docs/method.md, "the paper's
# choice and ours"; the paper: Adam, lr 3e-5, nothing else stated); the flips' default is the model's
# (DEFAULT_FLIPS for aMUSEd).
DEFAULT_WEIGHT_DECAY = 1e-2  # AdamW's decoupled weight decay (the paper's Adam has none: 0)
DEFAULT_MAX_GRAD_NORM = 1.0  # gradient clipping by global norm (0: none, as the paper states none)
DEFAULT_TEXT_DROPOUT = 0.0  # share of steps trained on the empty prompt (Muse's pre-training drops ~10%)


class AdapterPlan(BaseModel):
    """The adapter's shape (engine: styledrop.adapters.AdapterConfig). `rank` is H (StyleDrop) or r (LoRA)."""

    model_config = ConfigDict(extra="ignore")

    kind: str = "styledrop"
    rank: int = Field(4, ge=1)
    shared: bool = True  # StyleDrop only: every layer's weights from one shared table
    alpha: float | None = None  # LoRA only

    def config_dict(self) -> dict[str, Any]:
        """The keyword arguments of the engine's AdapterConfig."""
        return self.model_dump()


class SamplingDefaults(BaseModel):
    """How a round's adapter samples unless told otherwise; every adapter file carries these (extra.sample_defaults)."""

    model_config = ConfigDict(extra="ignore")

    adapter_guidance: float = Field(0.0, ge=0)  # λA
    guidance: float = Field(DEFAULT_GUIDANCE, ge=0)  # λB
    steps: int = Field(DEFAULT_SAMPLE_STEPS, ge=1)
    temperature: tuple[float, float] = DEFAULT_TEMPERATURE


class TrainingPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    steps: int = Field(DEFAULT_TRAIN_STEPS, ge=1)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    learning_rate: float | None = None  # None: the engine's default for the adapter kind
    seed: int = 0
    checkpoint_every: int = Field(250, ge=1)
    # Sample images (two fixed prompts) at step 0, every N steps and at the last one; 0: none; None: the service's
    # setting (STYLEDROP_SAMPLE_EVERY, default DEFAULT_SAMPLE_EVERY). A new round's plan records the value used.
    sample_every: int | None = Field(None, ge=0)
    # What the live samples draw (contents, one image each); None (rows planned before the plan recorded them):
    # the base model's (styledrop.model_profiles).
    sample_prompts: list[str] | None = None
    # Departures from the paper (the DEFAULT_* above): options, recorded with every round.
    flips: bool = DEFAULT_FLIPS
    weight_decay: float = Field(DEFAULT_WEIGHT_DECAY, ge=0)
    max_grad_norm: float = Field(DEFAULT_MAX_GRAD_NORM, ge=0)  # 0: no clipping
    text_dropout: float = Field(DEFAULT_TEXT_DROPOUT, ge=0, lt=1)


class TrainingItem(BaseModel):
    """One training image (a stored path) with its own content; candidate_id for a selected candidate."""

    model_config = ConfigDict(extra="ignore")

    image: str
    content: str
    candidate_id: int | None = None
    picked_by: str | None = None  # a selected candidate's origin: "human", "clip" or "random"
    rule: str | None = None  # the rule that picked it (a CLIP rule's name, "random", "thumbs up"), if any

    @property
    def is_reference(self) -> bool:
        """A reference image of the style (every one is in every round's set), not a selected candidate."""
        return self.candidate_id is None


class CandidatePlan(BaseModel):
    """The candidate pool: `per_prompt` images of each prompt (the first `count` built-in prompts unless
    prompts are given). Candidate k's seed is styledrop.candidates.candidate_seed(seed, k)."""

    model_config = ConfigDict(extra="ignore")

    prompts: list[str] | None = None
    count: int = Field(DEFAULT_CANDIDATE_PROMPTS, ge=1)
    per_prompt: int = Field(DEFAULT_CANDIDATES_PER_PROMPT, ge=1)
    seed: int = 0
    batch_size: int = Field(CANDIDATE_BATCH, ge=1)
    clip_model: str | None = None  # styledrop.clip_scores.load_scorer name

    @property
    def total(self) -> int:
        return (len(self.prompts) if self.prompts else self.count) * self.per_prompt


class RoundPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number: int = Field(1, ge=1)
    model: str | None = None  # the base model (hub id, folder or preset); None: the style's
    adapter: AdapterPlan = Field(default_factory=AdapterPlan)
    train: TrainingPlan = Field(default_factory=TrainingPlan)
    training_set: list[TrainingItem] = Field(default_factory=list)

    @property
    def references(self) -> list[TrainingItem]:
        """The style's reference images of this round's training set (style scores compare with all of them)."""
        return [item for item in self.training_set if item.is_reference]
    based_on_round: int | None = None  # the database id of the round whose selection this one trains on
    candidates: CandidatePlan = Field(default_factory=CandidatePlan)
    sampling: SamplingDefaults = Field(default_factory=SamplingDefaults)

    @model_validator(mode="before")
    @classmethod
    def _from_older_rows(cls, data: Any) -> Any:
        """Rows stored without a plan: adapter None (the engine's default for `adapter_kind`), the sampling
        defaults inside `candidates` (sample_steps, adapter_guidance), no round number."""
        if not isinstance(data, dict) or "sampling" in data:
            return data
        data = dict(data)
        number = int(data.get("number") or (2 if data.get("based_on_round") else 1))
        data["number"] = number
        if not data.get("adapter"):
            data["adapter"] = adapter_recipe(number, data.get("adapter_kind") or "styledrop").model_dump()
        old = data.get("candidates") or {}
        data["candidates"] = {k: v for k, v in old.items() if v is not None}
        sampling = sampling_recipe(number, data.get("model")).model_dump()
        if old.get("sample_steps"):
            sampling["steps"] = old["sample_steps"]
        if old.get("adapter_guidance") is not None:
            sampling["adapter_guidance"] = old["adapter_guidance"]
        data["sampling"] = sampling
        train = {k: v for k, v in (data.get("train") or {}).items() if v is not None}
        data["train"] = train
        return data

    @classmethod
    def from_stored(cls, data: dict[str, Any] | None, number: int | None = None) -> "RoundPlan":
        """A plan from a database row's JSON (this model's dump, or an older plain dict); `number`: the row's
        round number, for older rows that did not record it."""
        data = dict(data or {})
        if number is not None and not data.get("number"):
            data["number"] = number
        return cls.model_validate(data)

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---- the per-round recipe (paper Table S3 and §4.1), written once ---------------------------------------------

def adapter_recipe(number: int, kind: str = "styledrop", rank: int | None = None) -> AdapterPlan:
    """Round 1: StyleDrop H=4 shared; later rounds: H=32 not shared. LoRA: diffusers' aMUSEd recipe (r=16,
    alpha=r) in every round. `rank` overrides the size."""
    if kind == "lora":
        r = rank or 16
        return AdapterPlan(kind="lora", rank=r, shared=False, alpha=float(r))
    if number <= 1:
        return AdapterPlan(kind=kind, rank=rank or 4, shared=True)
    return large_adapter(kind, rank)


def large_adapter(kind: str = "styledrop", rank: int | None = None) -> AdapterPlan:
    """The paper's larger adapter (H=32, not shared): rounds ≥ 2, and content (subject) adapters."""
    return AdapterPlan(kind=kind, rank=rank or 32, shared=False)


def sampling_recipe(number: int, model: str | None = None, **overrides: Any) -> SamplingDefaults:
    """Round `number`'s sampling defaults for a base model (styledrop.model_profiles): for aMUSEd, λA = 0 for a
    round-1 adapter and 2 from round 2 on (paper §4.1), λB 9, 12 steps; a world's own (λB 1, λA 0 on `shapes`).
    Overrides that are not None win."""
    values = profile_for(model).sampling(number)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SamplingDefaults(**values)


def plan_round(number: int, *, model: str | None, adapter_kind: str = "styledrop",
               training_set: list[dict[str, Any]] | list[TrainingItem] | None = None,
               based_on_round: int | None = None, rank: int | None = None, adapter: AdapterPlan | None = None,
               train: dict[str, Any] | None = None, candidates: dict[str, Any] | None = None,
               sampling: dict[str, Any] | None = None) -> RoundPlan:
    """The one place a round's plan is made, for round 1 and round N+1 alike (web app and CLI).

    `train`, `candidates`, `sampling`: overrides of the base model's defaults (styledrop.model_profiles; None
    values are ignored). The plan holds what was resolved, the candidate and live-sample prompts included, so
    the round can be drawn again from its row whatever the defaults become."""
    def given(values: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (values or {}).items() if v is not None}

    profile = profile_for(model)
    training = TrainingPlan(**(profile.training() | given(train)))
    if not training.sample_prompts:
        training.sample_prompts = list(profile.sample_contents)
    pool = CandidatePlan(**({"count": profile.candidate_count} | given(candidates)))
    if not pool.prompts:
        pool.prompts = profile.candidate_prompts(pool.count)
    return RoundPlan(number=number, model=model,
                     adapter=adapter or adapter_recipe(number, adapter_kind, rank),
                     train=training,
                     training_set=[TrainingItem.model_validate(t) for t in (training_set or [])],
                     based_on_round=based_on_round,
                     candidates=pool,
                     sampling=sampling_recipe(number, model, **given(sampling)))
