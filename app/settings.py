"""One settings object for the app and the worker, read from environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from styledrop.plan import (  # torch-free: the defaults of a round's plan, written once
    DEFAULT_BATCH_SIZE,
    DEFAULT_CANDIDATE_PROMPTS,
    DEFAULT_CANDIDATES_PER_PROMPT,
    DEFAULT_SAMPLE_STEPS,
    DEFAULT_TRAIN_STEPS,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STYLEDROP_", extra="ignore", populate_by_name=True)

    # Where everything lives: the SQLite database (unless DATABASE_URL is set) and the file storage root.
    data_dir: Path = Field(default=Path("data"), validation_alias=AliasChoices("STYLEDROP_DATA", "data_dir"))
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url"))
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    # `styledrop serve`'s port when --port is not given (STYLEDROP_PORT).
    port: int = Field(default=8000, ge=1, le=65535)
    # Base model for new styles: a hub id, a local diffusers folder or a preset ("tiny" runs offline on CPU).
    model: str = Field(default="amused/amused-256", validation_alias=AliasChoices("STYLEDROP_MODEL", "model"))
    # "local": the embedded single-user run; every browser and every request without a token is the one
    # local user, logged in automatically. "accounts" (alias "token"): people sign up and log in on the
    # pages, programs send `Authorization: Bearer <token>` (tokens are made on the settings page).
    auth: Literal["local", "accounts", "token"] = "local"
    local_user: str = "local"
    signup: Literal["open", "closed"] = "open"  # closed: only `python -m app.admin user NAME` makes accounts
    session_days: float = 14.0  # a log-in lasts this long
    # The session cookie's Secure flag: "auto" sets it when the request came over https (a proxy must pass
    # X-Forwarded-Proto and be trusted: forwarded_allow_ips), "always" for deployments behind TLS.
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    # Proxies trusted to say who the client is (X-Forwarded-For) and how it came (X-Forwarded-Proto):
    # comma-separated addresses or networks, "*" for any. Empty: the socket's peer is the client, whatever
    # the headers say (the log-in throttle counts per client address; trusting anyone's X-Forwarded-For would
    # let a guesser rotate addresses). `styledrop serve --forwarded-allow-ips` sets it too. The servers we
    # start run uvicorn without its own proxy handling (which trusts 127.0.0.1 by default): only this decides.
    forwarded_allow_ips: str = ""
    # Admin setting: every signed-in user may view (never change) every style, its rounds and its adapter.
    public_styles: bool = False

    # Limits.
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_pending_generations: int = 8  # queued or running generation jobs per user before 429
    max_generation_images: int = 64  # prompts x num_images of one generation request
    max_train_steps: int = 20_000
    # Text: content, descriptor and each prompt. CLIP's text encoder reads 77 tokens (~300 characters) and
    # cuts the rest, so longer text buys nothing; the database columns hold 500.
    max_prompt_chars: int = Field(default=300, ge=1, le=500)
    max_prompts: int = 64  # prompts of one request: a round's prompts or candidate_prompts, a generation's prompts
    max_round_candidates: int = 256  # prompts x candidates_per_prompt of one round (64 built-in prompts x 4)
    max_active_jobs: int = 10  # queued or running rounds, generations and evaluations of one user, before 429
    max_evaluation_images: int = 1024  # prompts x per_prompt x (finished rounds + the base model) of one evaluation
    # Log-in throttling (app/security/throttle.py): wrong passwords allowed per account name at one client
    # address and per client address before each further attempt waits 30 s, doubling, at most
    # login_max_wait_seconds (429, Retry-After). Never per account alone: that would let anyone lock its owner out.
    login_free_attempts: int = 10
    login_free_attempts_per_address: int = 30
    login_max_wait_seconds: float = 900.0
    # Per-user storage quotas: styles (429 beyond), and stored megabytes (references, candidates, adapters,
    # generations; 413 beyond, for a new style and for new rounds and generations). 0: no limit.
    max_styles_per_user: int = Field(default=100, ge=0)
    max_stored_mb_per_user: int = Field(default=2048, ge=0)
    # References are stored at most this many pixels on their longest side (the models read 256-512 px).
    reference_max_side: int = Field(default=1024, ge=64, le=4096)
    # Reference images of one style (StyleDrop works from one image, "sometimes a few"); each one trains every round.
    max_references: int = Field(default=4, ge=1, le=16)
    # Base models a style may use, comma-separated: hub ids, local folders, offline presets, or the shapes world
    # (`styledrop world build` makes it; styledrop.world). STYLEDROP_MODEL (the default for new styles) is
    # always allowed.
    base_models: str = "amused/amused-256,amused/amused-512,tiny,amused-256-random,amused-512-random,shapes"

    # Rounds and candidates. Where a field below is the base model's to say (training steps, batch, candidate
    # prompts, decoding steps), its default here is aMUSEd's: a round on another model (the shapes world) takes
    # that model's own (styledrop.model_profiles) unless the administrator set the variable (`explicit`).
    train_steps: int = DEFAULT_TRAIN_STEPS  # default training steps of a round (paper: 1,000)
    batch_size: int = DEFAULT_BATCH_SIZE
    checkpoint_every: int = 250
    # Sample images while a round trains: two fixed prompts at step 0, every N steps and at the last (the round
    # panel shows them); 0: none. A round's plan may set its own (POST /rounds sample_every).
    sample_every: int = Field(default=250, ge=0)
    candidates_per_prompt: int = Field(default=DEFAULT_CANDIDATES_PER_PROMPT, ge=1)
    # Built-in prompts of a round's pool, drawn across all eight categories (styledrop.prompt_sets): 16 gives
    # two of each, so a person (or CLIP) can pick more than animals. The paper's CLIP pool was 30 prompts.
    candidate_prompts: int = Field(default=DEFAULT_CANDIDATE_PROMPTS, ge=1)
    # CLIP feedback's rule (styledrop.selection): "paper" (best text score per prompt), "guarded" (ours: drops the
    # pool's lowest style-score quarter first, so a prompt can get no pick), "random" (the paper's baseline, no
    # CLIP). The API may name another.
    clip_rule: Literal["paper", "guarded", "random"] = "guarded"
    # Decoding steps of a new round's plan (its candidates, training samples, generations and evaluation draw
    # with the round's own); default aMUSEd's, written once in styledrop.plan.
    sample_steps: int = Field(default=DEFAULT_SAMPLE_STEPS, ge=1)
    # The workers' sampling precision (styledrop.sampling.SampleConfig.precision) for candidates and generations
    # alike: auto = bf16 autocast on CUDA and on CPUs with native bf16, else fp32. A seed draws another image
    # in another precision; a round records what drew its candidates (metrics.candidates_precision).
    sampling_precision: Literal["auto", "bf16", "fp32"] = "auto"
    # styledrop.clip_scores.load_scorer name; unset: "tiny" for the offline presets, the world's own CLIP for a
    # world (shapes), else "default" (ViT-L-14).
    clip_model: str | None = None
    # The example references the new-style page offers ("Try an example"): examples/shapes/*.png for a world,
    # examples/house.png otherwise. Default: the repository's examples/ folder.
    examples_dir: Path = Path(__file__).resolve().parents[1] / "examples"
    # torch's CPU threads of a world build run by a worker (styledrop.world.build_world `threads`); 0: torch's
    # default. One is much faster on a machine busy with other work (docs/world.md, Timings).
    world_build_threads: int = Field(default=1, ge=0)

    # Webhooks (app/domain/webhooks.py): comma-separated host names, *.domains and CIDR networks. Empty: any host with
    # only public addresses; set: only what it names (which may then be private, e.g. "127.0.0.1/32").
    webhook_allow: str = ""
    webhook_attempts: int = Field(default=6, ge=1)  # deliveries tried before giving up
    webhook_backoff_seconds: float = 10.0  # wait before the first retry; doubles each time (capped at 1 h)
    webhook_timeout_seconds: float = 10.0

    # Worker robustness.
    # `styledrop serve` restarts a worker that died at most this many times within the window; then the worker
    # rests for the window (new jobs get 503, /api/v1/health "degraded") and starts again with a whole budget.
    worker_restart_limit: int = Field(default=5, ge=0)
    worker_restart_window_seconds: float = Field(default=600.0, gt=0)
    heartbeat_seconds: float = 5.0
    heartbeat_stale_seconds: float = 120.0
    reap_interval_seconds: float = 60.0  # how often beat queues the reaper (worker/celery_app.py)
    progress_interval_seconds: float = 1.0  # at most ~1 progress write per second
    stop_check_seconds: float = 0.5  # how often training reads the cancel flag
    max_attempts: int = 3
    # A round put back in the queue after its worker stopped is failed (with a retry action) when no worker
    # has taken it up this long while no worker shows signs of life: it would otherwise wait for no one.
    requeue_wait_seconds: float = 900.0
    task_time_limit: int = 6 * 3600  # seconds; the broker's visibility timeout is longer than this

    def explicit(self, name: str) -> Any:
        """The field's value if the administrator set it (an environment variable, or a value given to Settings),
        else None: a set STYLEDROP_TRAIN_STEPS wins over a base model's own default (styledrop.model_profiles),
        an unset one does not, so the shapes world trains its 150 steps unless told otherwise."""
        return getattr(self, name) if name in self.model_fields_set else None

    def sample_every_for(self, base_model: str | None) -> int:
        """What a round that sets no "live samples every" uses: STYLEDROP_SAMPLE_EVERY if the administrator set
        it, else the base model's own (styledrop.model_profiles: every 250 steps on aMUSEd, 50 on the world)."""
        from styledrop.model_profiles import profile_for  # torch-free

        explicit = self.explicit("sample_every")
        return explicit if explicit is not None else profile_for(base_model).sample_every

    def clip_scorer(self, base_model: str | None = None) -> str:
        """The CLIP scorer for a base model: the engine's rule (offline presets → "tiny"), unless configured."""
        from styledrop.presets import scorer_for  # plain data, no torch

        return scorer_for(base_model or self.model, self.clip_model)

    @property
    def allowed_base_models(self) -> list[str]:
        """STYLEDROP_BASE_MODELS as a list, the default model first."""
        listed = [m.strip() for m in self.base_models.split(",") if m.strip()]
        return [self.model] + [m for m in listed if m != self.model]

    @property
    def accounts(self) -> bool:
        """People log in (rather than the embedded run's one automatic local user)."""
        return self.auth != "local"

    @property
    def storage_root(self) -> Path:
        return Path(self.data_dir) / "files"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://"):]
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://"):]
            return url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'styledrop.db'}"

    @property
    def broker_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"


@lru_cache
def get_settings() -> Settings:
    return Settings()
