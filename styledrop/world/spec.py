"""What a world build makes, and where it lives. Torch-free: the web app and `styledrop.presets` read it.

A world is named ("shapes", the standard one; "shapes-micro", small enough to build inside a test) and fixed
by its spec and seed: the same spec and seed build the same weights. It is a cache, rebuilt from its seed,
kept in `$STYLEDROP_WORLD_DIR/<name>` (default `~/.cache/styledrop/worlds/<name>`), where
`load_components("shapes")`, the CLI (`--model shapes`) and `STYLEDROP_MODEL=shapes styledrop serve` find it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

WORLD_DIR_ENV = "STYLEDROP_WORLD_DIR"
MANIFEST = "world.json"


@dataclass(frozen=True)
class StageSpec:
    """One training stage: steps, batch, peak learning rate (linear warm-up, cosine decay to a tenth)."""

    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int = 50
    weight_decay: float = 0.01
    checkpoint_every: int = 100
    eval_every: int = 100


@dataclass(frozen=True)
class WorldSpec:
    name: str
    description: str
    clip: dict[str, Any]  # styledrop.world.clip.ClipSpec fields
    clip_training: StageSpec
    transformer: dict[str, Any]  # UVit2DModel config, less what the world fixes (vocabulary, text sizes)
    transformer_training: StageSpec
    # captions of the base model's pretraining: the full prompt, the content alone, the empty prompt
    caption_mix: tuple[float, float, float] = (0.8, 0.1, 0.1)
    eval_images: int = 96  # base-model images drawn to measure it when the build ends
    curve_images: int = 24  # base-model images drawn at each point of the learning curve
    # The base model's sampling defaults (styledrop.sampling.SampleConfig fields): what the measurements and the
    # experiment use; aMUSEd's own (12 steps, λB = 9, temperature 2 → 0) are measured beside them.
    sampling: dict[str, Any] = field(default_factory=lambda: {"guidance": 1.0})
    curve_guidances: tuple[float, ...] = (0.0, 3.0)  # the learning curve is drawn at these λB
    # How StyleDrop's rounds run on this base model (styledrop.model_profiles reads these for the round plan, the
    # service, the worker and the CLI; bench/table2.py's settings, chosen on the development styles). λA in every
    # round: the paper's 2 for round 2 scatters the style's colours over the whole canvas here (docs/world.md).
    round_sampling: dict[str, Any] = field(default_factory=lambda: {"adapter_guidance": 0.0})
    # A round's training: short and fast for this small model, and no horizontal flips, since the textures are
    # anchored to the canvas (a mirrored picture shows another style).
    # Live samples every 50 steps: four sets in a 150-step round.
    round_training: dict[str, Any] = field(default_factory=lambda: {"steps": 150, "learning_rate": 2e-3,
                                                                      "batch_size": 8, "flips": False,
                                                                      "sample_every": 50})
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # About how long a build takes on one idle CPU core (docs/world.md's timings): what the pages say before one.
    build_minutes: int = 30

    def fingerprint(self) -> dict[str, Any]:
        """What fixes the weights (a build resumes only into the same): not the description, nor what is
        measured afterwards (a change there measures again), nor how StyleDrop's rounds use the built model, nor
        the time a build is said to take."""
        return {k: v for k, v in asdict(self).items()
                if k not in ("description", "eval_images", "sampling", "round_sampling", "round_training",
                             "build_minutes")}


_TRANSFORMER = dict(hidden_size=96, use_bias=False, hidden_dropout=0.0, micro_cond_encode_dim=8,
                    micro_cond_embed_dim=40, in_channels=32, block_out_channels=48, num_res_blocks=3,
                    downsample=True, upsample=True, block_num_heads=2, num_hidden_layers=4, num_attention_heads=4,
                    attention_dropout=0.0, intermediate_size=256, layer_norm_eps=1e-6, ln_elementwise_affine=True)

WORLDS: dict[str, WorldSpec] = {
    "shapes": WorldSpec(
        name="shapes",
        description="12 shapes in 288 styles; 64 px pictures, 16×16 tokens; a small UVit2DModel",
        clip=dict(embed_dim=64, patch=4, vision_width=96, vision_layers=3, text_width=64, text_layers=3),
        clip_training=StageSpec(steps=1200, batch_size=128, learning_rate=2e-3, warmup_steps=50, eval_every=100,
                                checkpoint_every=100),
        transformer=_TRANSFORMER,
        transformer_training=StageSpec(steps=4800, batch_size=32, learning_rate=2e-3, warmup_steps=100,
                                       eval_every=200, checkpoint_every=100),
    ),
    "shapes-micro": WorldSpec(
        name="shapes-micro",
        description="the shapes world, trained briefly: for tests (styles learned, shapes hardly)",
        clip=dict(embed_dim=32, patch=4, vision_width=64, vision_layers=2, text_width=32, text_layers=2),
        clip_training=StageSpec(steps=200, batch_size=64, learning_rate=3e-3, warmup_steps=20, eval_every=200,
                                checkpoint_every=100),
        transformer=dict(_TRANSFORMER, hidden_size=64, block_out_channels=32, in_channels=16, num_res_blocks=1,
                         num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
        transformer_training=StageSpec(steps=800, batch_size=16, learning_rate=3e-3, warmup_steps=40,
                                       eval_every=400, checkpoint_every=200),
        eval_images=12,
        curve_images=12,
        curve_guidances=(1.0,),
        build_minutes=3,
    ),
}


def world_names() -> tuple[str, ...]:
    return tuple(WORLDS)


def is_world(source: str | None) -> bool:
    return (source or "").strip() in WORLDS


def cache_root() -> Path:
    configured = os.environ.get(WORLD_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "styledrop" / "worlds"


def world_dir(name: str) -> Path:
    return cache_root() / name


def is_built(name: str) -> bool:
    import json

    manifest = world_dir(name) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return bool(json.loads(manifest.read_text()).get("complete"))
    except ValueError:
        return False
