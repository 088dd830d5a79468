"""Load aMUSEd's parts (transformer, VQ-GAN, CLIP text encoder, tokenizer) from one *source*.

A source is a hub id (`amused/amused-256`), a local folder in the diffusers layout, an offline preset
(`tiny`, `amused-256-random`, `amused-512-random`), or a world built on this machine (`shapes`: see
styledrop.world). Only the transformer is ever tuned; the other parts are
frozen, so they are returned in eval mode with gradients off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import UVit2DModel, VQModel
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

from .errors import StyleDropError
from .model_sources import DEFAULT_MODEL, HUB_MODELS, ModelUnavailableError
from .presets import PRESETS, Preset
from .tokenizer import clip_tokenizer
from .world.spec import WORLDS, is_built, is_world, world_dir


@dataclass
class Components:
    """The frozen and tunable parts of one base model, plus what the engine needs to know about it."""

    source: str
    transformer: UVit2DModel
    vqvae: VQModel
    text_encoder: CLIPTextModelWithProjection
    tokenizer: CLIPTokenizer
    mask_token_id: int

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def codebook_size(self) -> int:
        return int(self.transformer.config.codebook_size)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vqvae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """Native image side in pixels (256 for amused-256, 64 for tiny)."""
        return int(self.transformer.config.sample_size) * self.vae_scale_factor

    @property
    def token_grid(self) -> int:
        return self.resolution // self.vae_scale_factor

    def fingerprint(self) -> dict[str, Any]:
        """What an adapter must match to be loaded: the transformer's shape, not the source's name."""
        cfg = self.transformer.config
        keys = ("hidden_size", "num_hidden_layers", "codebook_size", "vocab_size", "block_out_channels",
                "encoder_hidden_size", "downsample", "sample_size", "intermediate_size")
        return {k: cfg[k] for k in keys} | {"resolution": self.resolution}

    def to(self, device: str | torch.device) -> "Components":
        for module in (self.transformer, self.vqvae, self.text_encoder):
            module.to(device)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.transformer.parameters())


def _freeze(module: torch.nn.Module) -> None:
    module.eval()
    module.requires_grad_(False)


def build_preset(preset: Preset) -> Components:
    """Build a preset's random weights deterministically (same seed, same weights, on any machine)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(preset.seed)
        transformer = UVit2DModel(**preset.transformer)
        vqvae = VQModel(**preset.vqvae)
        # diffusers initialises the codebook within ±1/n, so every token would decode to the same picture;
        # unit-scale codes make a random preset's images (noise, still) differ with their tokens.
        torch.nn.init.normal_(vqvae.quantize.embedding.weight)
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**preset.text_encoder))
    return _assemble(preset.name, transformer, vqvae, text_encoder, clip_tokenizer(),
                     mask_token_id=preset.transformer["vocab_size"] - 1)


def _assemble(source: str, transformer: UVit2DModel, vqvae: VQModel, text_encoder: CLIPTextModelWithProjection,
              tokenizer: CLIPTokenizer, mask_token_id: int) -> Components:
    for module in (transformer, vqvae, text_encoder):
        _freeze(module)
    return Components(source, transformer, vqvae, text_encoder, tokenizer, mask_token_id)


def _quiet_libraries() -> None:
    """Our own progress bars report loading and training; the libraries' per-shard bars are noise."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()


def _load_pretrained(source: str) -> Components:
    from diffusers import AmusedScheduler

    _quiet_libraries()
    local = os.path.isdir(source)
    kwargs: dict[str, Any] = {"local_files_only": True} if local else {}
    try:
        transformer = UVit2DModel.from_pretrained(source, subfolder="transformer", **kwargs)
        vqvae = VQModel.from_pretrained(source, subfolder="vqvae", **kwargs)
        text_encoder = CLIPTextModelWithProjection.from_pretrained(source, subfolder="text_encoder", **kwargs)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kwargs)
        scheduler = AmusedScheduler.from_pretrained(source, subfolder="scheduler", **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        if local:
            raise StyleDropError(
                f"'{source}' is not an aMUSEd model folder in the diffusers layout "
                f"(transformer/, vqvae/, text_encoder/, tokenizer/, scheduler/): {exc}"
            ) from exc
        raise ModelUnavailableError(source) from exc
    return _assemble(source, transformer, vqvae, text_encoder, tokenizer, int(scheduler.config.mask_token_id))


def _load_world(name: str) -> Components:
    """A world's base model from its cache folder (styledrop.world), recorded under the world's name."""
    folder = world_dir(name)
    if not is_built(name):
        raise StyleDropError(
            f"The '{name}' world is not built yet: run `styledrop world build {name}` once (it trains its base "
            f"model from scratch on this machine, reproducibly from its seed, and caches it in {folder}).")
    components = _load_pretrained(str(folder))
    components.source = name
    return components


def load_components(source: str = DEFAULT_MODEL, device: str | torch.device | None = None) -> Components:
    """Load a base model from a preset name, a local diffusers folder or a hub id."""
    # CPU arithmetic on denormal floats is 10-20x slower; tiny adapters and random weights produce many.
    torch.set_flush_denormal(True)
    source = (source or DEFAULT_MODEL).strip()
    if source in PRESETS:
        components = build_preset(PRESETS[source])
    elif is_world(source):
        components = _load_world(source)
    elif os.path.isdir(source) or "/" in source:
        components = _load_pretrained(source)
    else:
        raise StyleDropError(
            f"Unknown model '{source}': use a preset ({', '.join(PRESETS)}), a world ({', '.join(WORLDS)}), a hub id such as "
            f"{' or '.join(HUB_MODELS)}, or a local folder in the diffusers layout."
        )
    if device is not None:
        components.to(device)
    return components


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
