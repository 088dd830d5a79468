"""Offline model presets: the real aMUSEd architectures, built from config with random weights.

`tiny` is small enough to train for a few hundred steps on a laptop CPU inside a test; the `-random`
presets have the exact shapes of the published checkpoints so benchmarks measure real speed and memory.
Configurations follow diffusers' aMUSEd conversion script (VQ-GAN: five levels, 8192 codes, 64-d latents;
transformer: 22 layers of width 1024; text encoder: CLIP ViT-L/14's text tower).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    transformer: dict[str, Any]
    vqvae: dict[str, Any]
    text_encoder: dict[str, Any]
    seed: int = 0
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_AMUSED_VQ = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 256, 512, 768],
    down_block_types=["DownEncoderBlock2D"] * 5,
    in_channels=3,
    latent_channels=64,
    layers_per_block=2,
    norm_num_groups=32,
    num_vq_embeddings=8192,
    out_channels=3,
    sample_size=32,
    up_block_types=["UpDecoderBlock2D"] * 5,
    mid_block_add_attention=False,
    lookup_from_codebook=True,
)

_CLIP_L_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    projection_dim=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="gelu",
)

_AMUSED_TRANSFORMER = dict(
    hidden_size=1024,
    use_bias=False,
    hidden_dropout=0.0,
    cond_embed_dim=768,
    micro_cond_encode_dim=256,
    micro_cond_embed_dim=1280,
    encoder_hidden_size=768,
    vocab_size=8256,
    codebook_size=8192,
    in_channels=768,
    block_out_channels=768,
    num_res_blocks=3,
    block_num_heads=12,
    num_hidden_layers=22,
    num_attention_heads=16,
    attention_dropout=0.0,
    intermediate_size=2816,
    layer_norm_eps=1e-6,
    ln_elementwise_affine=True,
)

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        description="random 64x64 model with 8x8 tokens and a 256-code VQ; builds in about a second",
        transformer=dict(
            hidden_size=64,
            use_bias=False,
            hidden_dropout=0.0,
            cond_embed_dim=32,
            micro_cond_encode_dim=4,
            micro_cond_embed_dim=20,
            encoder_hidden_size=32,
            vocab_size=257,
            codebook_size=256,
            in_channels=32,
            block_out_channels=32,
            num_res_blocks=1,
            downsample=False,
            upsample=False,
            block_num_heads=2,
            num_hidden_layers=4,
            num_attention_heads=4,
            attention_dropout=0.0,
            intermediate_size=128,
            layer_norm_eps=1e-6,
            ln_elementwise_affine=True,
            sample_size=8,
        ),
        vqvae=dict(
            act_fn="silu",
            block_out_channels=[16, 16, 32, 32],
            down_block_types=["DownEncoderBlock2D"] * 4,
            in_channels=3,
            latent_channels=16,
            layers_per_block=1,
            norm_num_groups=8,
            num_vq_embeddings=256,
            out_channels=3,
            sample_size=64,
            up_block_types=["UpDecoderBlock2D"] * 4,
            mid_block_add_attention=False,
            lookup_from_codebook=True,
        ),
        text_encoder=dict(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            hidden_act="gelu",
        ),
    ),
    "amused-256-random": Preset(
        name="amused-256-random",
        description="amused/amused-256's architecture (256x256, 16x16 tokens) with random weights",
        transformer=dict(_AMUSED_TRANSFORMER, downsample=False, upsample=False, sample_size=16),
        vqvae=_AMUSED_VQ,
        text_encoder=_CLIP_L_TEXT,
    ),
    "amused-512-random": Preset(
        name="amused-512-random",
        description="amused/amused-512's architecture (512x512, 32x32 tokens) with random weights",
        transformer=dict(_AMUSED_TRANSFORMER, downsample=True, upsample=True, sample_size=32),
        vqvae=_AMUSED_VQ,
        text_encoder=_CLIP_L_TEXT,
    ),
}


def scorer_for(base_model: str | None, override: str | None = None) -> str:
    """The CLIP scorer for a style's base model, the one rule the CLI, the worker and evaluation share.

    Random presets draw noise, so scoring them with a 400 MB CLIP would only cost a download (and fail
    offline): they get the offline "tiny" scorer. Real models get "default" (open_clip ViT-L-14/openai).
    A world's base model (`shapes`) gets the world's own CLIP, the CLIP its text encoder comes from. An explicit
    override (`--scorer`, STYLEDROP_CLIP_MODEL) always wins.
    """
    from .world.spec import is_world

    if override:
        return override
    if is_world(base_model):
        return str(base_model).strip()
    return "tiny" if base_model in PRESETS else "default"
