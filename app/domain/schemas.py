"""JSON shapes of the REST API (OpenAPI documents them)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .clip_rules import RULE_HELP
from .plain_text import PlainText, UrlText

API = "/api/v1"
RULES_DESCRIBED = "; ".join(f"{name}: {what}" for name, what in RULE_HELP.items())  # the rules as they are

# ---- limits on numbers: one place for the API's JSON and the pages' forms ----------------------------------
# Every number a user sends is bounded here, so nothing out of range reaches the database (PostgreSQL's
# INTEGER is 32 bits) or the worker (torch seeds, step counts); booleans are refused where a number is asked
# (JSON `true` is not 1), and so are fractions where a whole number is.
MAX_ID = 2**31 - 1  # ids are INTEGER columns; a larger one cannot exist
SEED_MAX = 2**31 - 1  # one seed range everywhere: a 32-bit signed int, which every RNG and database column takes
MAX_SEED = SEED_MAX
STYLE_NAME_CHARS = 100  # what a person calls a style (Style.name's column)
MAX_SAMPLE_PROMPTS = 4  # live samples are drawn at every sample step: a few
MAX_STEPS = 100_000  # training steps (STYLEDROP_MAX_TRAIN_STEPS, default 20,000, is the tighter admin limit)
MAX_BATCH_SIZE = 64
MAX_CANDIDATES_PER_PROMPT = 64
MAX_COUNT = 1_000  # counts checked against the settings as well (candidate_prompts <= STYLEDROP_MAX_PROMPTS)
MAX_SAMPLE_STEPS = 100
MAX_IMAGES_PER_PROMPT = 16
MAX_ADAPTER_GUIDANCE = 10.0
MAX_GUIDANCE = 30.0  # λB; aMUSEd's own is 9 (guidance_scale 10)
MAX_RANK = 256


def _whole_number(value: Any) -> Any:
    """A whole number: an int, or a string of digits (a form field). Not a boolean, not 2.5, not "1e3".
    The errors carry pydantic's own types (int_type, int_parsing), which the pages' forms turn into words."""
    if isinstance(value, bool | float):
        raise PydanticCustomError("int_type", "Input should be a whole number, not {kind}",
                                  {"kind": "true/false" if isinstance(value, bool) else "a fraction"})
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
            raise PydanticCustomError("int_parsing", "Input should be a whole number")
        return int(text)
    return value


def _real_number(value: Any) -> Any:
    """A number (int or float, or a numeric string from a form), never a boolean."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a number, not true/false")
    return value


def whole(low: int, high: int, description: str | None = None) -> Any:
    """A strict, bounded integer type (JSON and forms alike)."""
    return Annotated[int, BeforeValidator(_whole_number), Field(ge=low, le=high, description=description)]


def real(low: float, high: float, description: str | None = None, open_low: bool = False,
         open_high: bool = False) -> Any:
    """A bounded, finite float type that refuses booleans."""
    bounds = ({"gt": low} if open_low else {"ge": low}) | ({"lt": high} if open_high else {"le": high})
    return Annotated[float, BeforeValidator(_real_number), Field(allow_inf_nan=False, description=description,
                                                                 **bounds)]


Id = whole(1, MAX_ID)
Seed = whole(0, SEED_MAX, f"random seed, 0 to {SEED_MAX}")
TrainSteps = whole(1, MAX_STEPS, "training steps (at most STYLEDROP_MAX_TRAIN_STEPS)")
SampleEvery = whole(0, MAX_STEPS, "live samples at step 0, every N training steps and at the last; 0: none "
                                  "(default: the style's, else STYLEDROP_SAMPLE_EVERY, 250)")
SamplePrompts = Annotated[list[str], Field(min_length=1, max_length=MAX_SAMPLE_PROMPTS, description=(
    'what the live samples draw, one image each, e.g. ["a cat", "a bridge"] (default: the style\'s, else the base '
    "model's: a cat on a sofa and a lighthouse on aMUSEd, a circle and a star on the shapes world)"))]

# Every stored time is UTC; SQLite hands them back without a zone, so say it in the JSON.
Utc = Annotated[datetime, AfterValidator(lambda v: v if v.tzinfo else v.replace(tzinfo=timezone.utc))]


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong and what to do about it, in a sentence")


_REFUSALS = {
    400: "the upload is empty",
    404: "no such id (or not yours)",
    409: "conflicts with the current state, e.g. a round of the style is queued or running",
    413: "the upload is too large",
    415: "the upload is not a PNG, JPEG or WebP image",
    422: "invalid input, or more than one request may ask for: text longer than STYLEDROP_MAX_PROMPT_CHARS, "
         "more prompts than STYLEDROP_MAX_PROMPTS, more images than the image limits, more training steps",
    429: "you already have STYLEDROP_MAX_ACTIVE_JOBS jobs (rounds and generations) queued or running, or "
         "STYLEDROP_MAX_PENDING_GENERATIONS generations; retry after Retry-After seconds",
    503: "no worker can run the job now (the job queue is not reachable, or the embedded worker is restarting "
         "after dying repeatedly); nothing was started; retry after Retry-After seconds",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's refusals, so clients (and the schema fuzzer) know them: every one
    is `{"detail": "message"}`, and a 429 carries Retry-After."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorOut, "description": _REFUSALS[status]}
        if status in (429, 503):
            out[status]["headers"] = {"Retry-After": {"description": "seconds until a job is expected to end"
                                                      if status == 429 else "seconds until a worker is expected",
                                                      "schema": {"type": "integer"}}}
    return out


# ---- what a new style takes (the limits themselves are at the top of this file) ------------------------------
# (limits that an administrator sets, like prompt length or training steps, are in app/settings.py and checked
# by app/domain/limits.py)

class StyleCreate(BaseModel):
    """A new style: what POST /api/v1/styles takes as form fields beside the image, and what the new-style page
    parses its form into. Text is cleaned and checked against the settings by app.domain.styles.create_style."""

    content: PlainText = Field(description='what the reference shows, e.g. "a house" (the first image\'s, with '
                                           'several)')
    contents: list[PlainText] | None = Field(None, description='with several reference images: what each one '
                                                               'shows, in order (image first, then more_images), '
                                                               'e.g. ["a house", "a lighthouse"]; the first is '
                                                               '`content`. Default: `content` for every image')
    descriptor: PlainText = Field(description='the style in words, e.g. "watercolor painting"')
    name: PlainText | None = Field(None, max_length=STYLE_NAME_CHARS,
                                   description="what you call the style (the gallery's title); its descriptor if "
                                               "left out")
    base_model: PlainText | None = Field(None, description="one of STYLEDROP_BASE_MODELS (hub id or preset)")
    adapter: Literal["styledrop", "lora"] = "styledrop"
    steps: TrainSteps | None = Field(None, description="training steps per round")
    learning_rate: real(0, 1, open_low=True, open_high=True) | None = Field(
        None, description="learning rate of every round")
    rank: whole(1, MAX_RANK) | None = Field(None, description="round 1's adapter width (StyleDrop H, LoRA r)")
    seed: Seed | None = Field(None, description="random seed of every round")
    sample_every: SampleEvery | None = None
    sample_prompts: SamplePrompts | None = None


def field_bounds(model: type[BaseModel], name: str) -> dict[str, Any]:
    """A field's numeric bounds (ge/gt/le/lt), also inside `Annotated[...] | None`: for the API's form
    parameters (OpenAPI) and the pages' messages, so both read the limits from the model."""
    field = model.model_fields[name]
    metadata = list(field.metadata)
    for arg in get_args(field.annotation):
        if get_origin(arg) is Annotated:
            for extra in get_args(arg)[1:]:
                metadata += list(getattr(extra, "metadata", [extra]))
    return {key: getattr(item, key) for item in metadata for key in ("ge", "gt", "le", "lt")
            if getattr(item, key, None) is not None}


class RoundSummary(BaseModel):
    id: int
    number: int
    status: str
    url: str


class StyleUpdate(BaseModel):
    """PATCH /styles/{id}: what may change after creation. A field left out stays; both are checked before
    either changes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Sunny watercolors"}, {"name": "Sunny watercolors", "descriptor": "bright watercolor painting"}]})

    name: PlainText | None = Field(None, max_length=STYLE_NAME_CHARS,
                                   description="what you call the style; null or blank shows its descriptor")
    descriptor: PlainText | None = Field(None, description="for the rounds started from now on; refused (409) "
                                                           "while a round is queued or running")


class StyleOut(BaseModel):
    id: int
    name: str | None = Field(description="what the person calls it; null: the descriptor names it")
    content: str
    descriptor: str
    base_model: str
    adapter_kind: str
    settings: dict[str, Any]
    created_at: Utc
    reference_url: str
    reference_urls: list[str] = Field(description="every reference image of the style, the first one first")
    reference_contents: list[str] = Field(description="what each reference image shows, parallel to "
                                                      "reference_urls: each trains with its own content")
    rounds: list[RoundSummary]
    adapter_url: str | None = Field(description="download of the latest finished round's adapter, if any")
    editable: bool = Field(True, description="yours; false for another user's style shown read-only "
                                             "(STYLEDROP_PUBLIC_STYLES)")


CALLBACK_URL = Field(None, max_length=2000,
                     description="https URL that gets a signed JSON event (POST) when the job ends: succeeded, "
                                 "failed or cancelled. Signature: X-StyleDrop-Signature = 'sha256=' + "
                                 "HMAC-SHA256(your webhook secret, X-StyleDrop-Timestamp + '.' + body)")


class RoundCreate(BaseModel):
    """Settings of a new round; anything left out comes from the style, then a setting the administrator set, then
    the base model's defaults (styledrop.model_profiles: aMUSEd's, or the shapes world's own)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"train_steps": 1000, "prompts": ["a chihuahua", "a church on the beach"], "candidates_per_prompt": 4},
        {"feedback": "clip", "callback_url": "https://example.com/styledrop-hook"}]})

    feedback: Literal["human", "clip"] | None = Field(
        None, description="round >= 2: train on the human selection (default) or let CLIP select")
    clip_rule: Literal["paper", "guarded", "random"] | None = Field(
        None, description="with feedback clip: the rule that picks the training images (default "
                          f"STYLEDROP_CLIP_RULE, guarded). {RULES_DESCRIBED}")
    train_steps: TrainSteps | None = None
    steps: TrainSteps | None = Field(None, deprecated="use train_steps",
                                     description="deprecated: the old name of train_steps, still accepted")
    batch_size: whole(1, MAX_BATCH_SIZE) | None = None
    learning_rate: real(0, 1, open_low=True, open_high=True) | None = None
    seed: Seed | None = None
    checkpoint_every: whole(1, MAX_STEPS) | None = None
    sample_every: SampleEvery | None = None
    sample_prompts: SamplePrompts | None = None
    prompts: list[PlainText] | None = Field(None, min_length=1,
                                            description='contents for candidates, e.g. ["a chihuahua", "a church"]; '
                                                        'at most STYLEDROP_MAX_PROMPTS (64), each at most '
                                                        'STYLEDROP_MAX_PROMPT_CHARS (300) characters')
    allow_eval_overlap: bool = Field(False, description="accept candidate prompts that are on the base model's "
                                     "held-out evaluation list (refused by default: the evaluation would score what a later "
                                     "round trained on)")
    candidate_prompts: whole(1, MAX_COUNT, "how many default prompts (at most STYLEDROP_MAX_PROMPTS)") | None = None
    candidates_per_prompt: whole(1, MAX_CANDIDATES_PER_PROMPT) | None = None
    sample_steps: whole(1, MAX_SAMPLE_STEPS, "decoding steps of everything drawn with this round: candidates, "
                        "training samples, generations, evaluation (default STYLEDROP_SAMPLE_STEPS if set, else "
                        "the base model's, 12)") | None = None
    adapter_guidance: real(0, MAX_ADAPTER_GUIDANCE, "λA, adapter guidance of this round's sampling (paper Eq. 4; "
                           "default the base model's: on aMUSEd 0 for round 1, 2 later; on the shapes world 0)"
                           ) | None = None
    guidance: real(0, MAX_GUIDANCE, "λB, classifier-free guidance of this round's sampling (default the base "
                   "model's: 9 on aMUSEd, its guidance_scale 10, the paper: 5; 1 on the shapes world)") | None = None
    temperature: tuple[real(0, 100), real(0, 100)] | None = Field(
        None, description="Gumbel temperature of this round's sampling, [start, end] annealed linearly (default "
                          "[2, 0], aMUSEd's; the paper's Muse: 4.5)")
    # our departures from the paper's training, each an option recorded in the round's plan (docs/method.md)
    flips: StrictBool | None = Field(None, description="horizontal flips of every training image (default the "
                                                      "base model's: true on aMUSEd, ours, the paper does not flip, "
                                                      "they mirror lettering; false on the shapes world)")
    weight_decay: real(0, 1) | None = Field(None, description="AdamW weight decay (default 0.01, ours; 0 is the "
                                                             "paper's Adam)")
    max_grad_norm: real(0, 1000) | None = Field(None, description="gradient clipping by global norm (default 1, "
                                                                 "ours; 0: none, as in the paper)")
    text_dropout: real(0, 0.99) | None = Field(None, description="share of training steps on the empty prompt "
                                                                "(default 0: Eq. 4 takes G(n) from the base model)")
    callback_url: UrlText | None = CALLBACK_URL

    @model_validator(mode="after")
    def _steps_is_the_old_name_of_train_steps(self) -> RoundCreate:
        """`steps` (training steps here, decoding steps in GenerationCreate) became `train_steps`; a client that
        still sends `steps` gets what it asked for. Read through __dict__: the attribute warns that it is old."""
        old = self.__dict__.get("steps")
        if old is not None:
            if self.train_steps is not None and self.train_steps != old:
                raise ValueError(f"steps ({old}) is the old name of train_steps ({self.train_steps}); send only "
                                 "train_steps")
            self.__dict__.update(train_steps=old, steps=None)
        return self


class TrainingSampleOut(BaseModel):
    step: int = Field(description="the training step whose adapter drew it")
    content: str
    prompt: str
    seed: int | None
    image_url: str


class RoundOut(BaseModel):
    id: int
    style_id: int
    number: int
    status: str
    phase: str | None
    feedback: str | None = Field(description="who picked the selected images it trains on: human, clip (a CLIP "
                                             "rule), random (the random baseline) or mixed; each training_set item "
                                             "of parameters records its own picked_by and rule")
    step: int
    total_steps: int
    progress: float
    loss: float | None
    eta_seconds: float | None
    error: str | None
    cancel_requested: bool
    attempts: int
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    created_at: Utc
    started_at: Utc | None
    finished_at: Utc | None
    heartbeat_at: Utc | None
    adapter_url: str | None
    candidates_url: str
    training_samples: list[TrainingSampleOut] = Field(
        default_factory=list, description="images of two fixed prompts drawn every N training steps (sample_every), "
                                          "by step; the same seeds at every step, so they compare")
    actions: list[str] = Field(description="what can be done now: cancel, retry, auto-select, next-round")


class RatingOut(BaseModel):
    user: str
    value: int


class CandidateOut(BaseModel):
    id: int
    round_id: int
    content: str
    prompt: str
    seed: int
    image_url: str
    clip_text_score: float | None
    clip_style_score: float | None
    selection_rule: str | None = Field(None, description="how it was selected: a CLIP rule's name, 'random', 'thumbs up', "
                                                        "or null for a person's pick")
    ratings: list[RatingOut]
    rating_mean: float | None
    my_rating: int | None
    selected: bool
    selected_by: str | None = Field(description="who selected it: 'human' (a person), 'clip' (a CLIP rule, named "
                                                "in selection_rule) or 'random' (the paper's random baseline)")


class RatingIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"value": 1}, {"value": 4}]})

    value: whole(-1, 5, "-1 / +1 (thumbs) or 1..5 (stars)")

    @field_validator("value")
    @classmethod
    def _value(cls, value: int) -> int:
        if value not in (-1, 1, 2, 3, 4, 5):
            raise ValueError("a rating is -1 or +1 (thumbs) or 1 to 5 (stars)")
        return value


class SelectedIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"selected": True}]})

    selected: StrictBool


class AutoSelectIn(BaseModel):
    """Which CLIP rule selects (styledrop.selection): the paper's, ours, or the paper's random baseline."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rule": "paper"}]})

    rule: Literal["paper", "guarded", "random"] | None = Field(
        None, description=f"default STYLEDROP_CLIP_RULE (guarded). {RULES_DESCRIBED}")
    top_k: whole(1, 8, "images per prompt") = 1
    seed: Seed = 0


class AutoSelectOut(BaseModel):
    round_id: int
    rule: str
    method: str
    selected: list[CandidateOut]


class GenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompts": ["a cat", "a bridge"], "num_images": 2, "seed": 1,
         "callback_url": "https://example.com/styledrop-hook"}]})

    # Lengths and counts are checked against the settings (app.domain.limits.clean_prompts), not fixed here.
    prompts: list[PlainText] = Field(min_length=1, description='contents, e.g. ["a cat", "a bridge"]; at most '
                                                               'STYLEDROP_MAX_PROMPTS (64), each at most '
                                                               'STYLEDROP_MAX_PROMPT_CHARS (300) characters')
    num_images: whole(1, MAX_IMAGES_PER_PROMPT) = 1
    seed: Seed | None = 0
    round_id: whole(1, MAX_ID, "which round's adapter (default: the latest finished)") | None = None
    steps: whole(1, MAX_SAMPLE_STEPS, "decoding steps of each image (default: the round's sample_steps)") | None = None
    adapter_guidance: real(0, MAX_ADAPTER_GUIDANCE, "λA, adapter guidance (paper Eq. 4; default: the round's, 0 "
                                                    "for round 1, 2 later)") | None = None
    guidance: real(0, MAX_GUIDANCE, "λB, classifier-free guidance (default: the round's, 9)") | None = None
    descriptor: PlainText | None = Field(None, description='the style descriptor for these images: omitted or null = '
                                                           'the style\'s own, "" = none, or another one (the paper '
                                                           'edits descriptors at sampling, e.g. "golden 3d '
                                                           'rendering")')
    callback_url: UrlText | None = CALLBACK_URL


class StylePage(BaseModel):
    items: list[StyleOut]
    next: str | None = Field(description="URL of the next page; null on the last page")


class RoundPage(BaseModel):
    items: list[RoundOut]
    next: str | None = Field(description="URL of the next page; null on the last page")


class CandidatePage(BaseModel):
    items: list[CandidateOut]
    next: str | None = Field(description="URL of the next page; null on the last page")


class GenerationOut(BaseModel):
    id: int
    style_id: int
    round_id: int | None
    status: str
    request: dict[str, Any]
    images: list[str]
    error: str | None
    created_at: Utc
    finished_at: Utc | None


class GenerationPage(BaseModel):
    items: list[GenerationOut]
    next: str | None = Field(description="URL of the next page; null on the last page")


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key of your webhook signatures")


class ExampleOut(BaseModel):
    """An example reference a new style may start from (app.domain.examples)."""

    id: str = Field(description='what a client names it by, e.g. "shapes-dusk-striped-on-black--house"')
    name: str
    descriptor: str = Field(description="the style descriptor it goes with")
    content: str = Field(description="what it shows")
    image_url: str = Field(description="the picture (GET)")


class WorldOut(BaseModel):
    """Where a world base model's build stands on this server (app.domain.worlds)."""

    name: str
    description: str
    build_minutes: int = Field(description="about how long a build takes on one idle CPU core")
    built: bool
    state: Literal["built", "not built", "queued", "running", "stopped", "failed"] = Field(
        description="stopped: a worker stopped mid-build; a new build goes on from its checkpoints")
    stage: str | None = Field(None, description="tokenizer, clip, transformer or measure")
    stage_index: int | None = None
    stages: int | None = None
    step: int | None = Field(None, description="training step of the stage")
    total: int | None = Field(None, description="the stage's steps")
    percent: int | None = Field(None, description="of the stage")
    eta_seconds: int | None = Field(None, description="the stage's time left")
    note: str = ""
    error: str | None = Field(None, description="why it failed")
    started_at: float | None = Field(None, description="Unix time")
    updated_at: float | None = Field(None, description="Unix time")
