"""MaskGIT iterative parallel decoding with StyleDrop's adapter guidance (paper Eq. 4).

Each step predicts every token, keeps the most confident ones by the cosine schedule and re-masks the rest,
with Gumbel noise on the confidences annealed by a temperature schedule. Without an adapter this loop
reproduces diffusers' AmusedPipeline token for token (same RNG calls in the same order). With an adapter
the logits of each step are Eq. 4's, l = Ĝ(t) + λA·(Ĝ(t) − G(t)) + λB·(G(t) − G(n)): `guided_model` builds
that logits function (styledrop/guidance.py); `sample_tokens` accepts any function of the same shape, which
is how two adapters are mixed per step (composition).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from PIL import Image

from .adapters import Adapter
from .conditioning import AESTHETIC_SCORE, encode_prompts
from .errors import StyleDropError
from .guidance import GuidedModel, Term
from .images import decode_each, decode_tokens
from .models import Components
from .step_graph import MODES as GRAPH_MODES
from .step_graph import graphs_wanted

PRECISIONS = ("auto", "bf16", "fp32")


def native_bf16(device: torch.device | str) -> bool:
    """Whether the device multiplies bf16 natively: any CUDA GPU torch supports bf16 on, or a CPU with
    AVX512-BF16 or AMX (there oneDNN's bf16 matmuls and convolutions run about twice as fast as fp32's;
    elsewhere bf16 would be emulated, slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence looked up with care
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def sampling_precision(mode: str, device: torch.device | str) -> str:
    """What `mode` means on `device`: auto is bf16 where the device computes it natively, else fp32."""
    if mode not in PRECISIONS:
        raise StyleDropError(f"precision must be one of {', '.join(PRECISIONS)}, got '{mode}'.")
    if mode == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return mode


def precision_context(mode: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the whole call (text encoder, decoding steps, VQ decoder) or nothing of its own: fp32
    keeps the caller's context, so samples drawn between training steps still run under the step's autocast
    (the fast step holds the frozen weights in bf16)."""
    device = torch.device(device)
    if sampling_precision(mode, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class SampleConfig:
    """Decoding settings. Defaults are aMUSEd's own (AmusedPipeline: 12 steps, guidance 10, temperature 2→0).

    `guidance` is the paper's λB; diffusers' `guidance_scale` equals 1 + λB. `adapter_guidance` is λA
    (paper: 0–2 for round-1 adapters, 2.0 for round 2).
    """

    steps: int = 12
    guidance: float = 9.0
    adapter_guidance: float = 0.0
    temperature: tuple[float, float] = (2.0, 0.0)
    num_images: int = 1
    seed: int | None = 0
    negative_prompt: str = ""
    aesthetic_score: float = AESTHETIC_SCORE
    masking_schedule: str = "cosine"
    graphs: str = "auto"  # decoding steps replayed from a CUDA graph (styledrop/step_graph.py): auto/on = on CUDA
    precision: str = "auto"  # bf16 autocast where the device computes bf16 natively (sampling_precision), or fp32

    def validate(self) -> None:
        if self.steps < 1:
            raise StyleDropError(f"Sampling needs at least one step, got {self.steps}.")
        if self.num_images < 1:
            raise StyleDropError(f"Ask for at least one image per prompt, got {self.num_images}.")
        if self.guidance < 0 or self.adapter_guidance < 0:
            raise StyleDropError("Guidance scales cannot be negative.")
        if self.masking_schedule not in ("cosine", "linear"):
            raise StyleDropError(f"Unknown masking schedule '{self.masking_schedule}' (cosine or linear).")
        if self.graphs not in GRAPH_MODES:
            raise StyleDropError(f"graphs must be one of {', '.join(GRAPH_MODES)}, got '{self.graphs}'.")
        if self.precision not in PRECISIONS:
            raise StyleDropError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'.")


def sample_config(defaults: Any, **overrides: Any) -> SampleConfig:
    """A SampleConfig from sampling defaults (styledrop.plan.SamplingDefaults, or the dict an adapter file
    carries in extra.sample_defaults); overrides that are None keep the default."""
    values = defaults.model_dump() if hasattr(defaults, "model_dump") else dict(defaults or {})
    known = {k: v for k, v in values.items() if k in ("adapter_guidance", "guidance", "steps", "temperature")}
    if "temperature" in known:
        known["temperature"] = tuple(known["temperature"])
    known.update({k: v for k, v in overrides.items() if v is not None})
    return SampleConfig(**known)


class LogitsFn(Protocol):
    def __call__(self, tokens: torch.Tensor) -> torch.Tensor: ...


def guided_model(components: Components, prompts: list[str], config: SampleConfig,
                 adapter: Adapter | None = None) -> GuidedModel:
    """Encode prompts (tiled num_images times, as AmusedPipeline does) and build their Eq. 4 logits function."""
    cond = encode_prompts(components, prompts).repeat(config.num_images)
    negative = encode_prompts(components, [config.negative_prompt] * len(prompts)).repeat(config.num_images)
    return GuidedModel(components, [Term(cond, adapter)], negative, config.guidance, config.adapter_guidance,
                       config.aesthetic_score, graphs=graphs_wanted(config.graphs, components.device))


def temperatures(config: SampleConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    low, high = config.temperature
    return torch.linspace(low, high, config.steps, device=device)


Generators = torch.Generator | list[torch.Generator] | None


def _gumbel(like: torch.Tensor, generator: Generators) -> torch.Tensor:
    if isinstance(generator, list):  # one row per image, each from its own generator on the sampling device
        rows = [torch.empty(like.shape[1:], dtype=like.dtype, device=g.device).uniform_(0, 1, generator=g)
                for g in generator]
        noise = torch.stack(rows).to(like.device)
    else:
        device = generator.device if generator is not None else like.device
        noise = torch.zeros_like(like, device=device).uniform_(0, 1, generator=generator).to(like.device)
    return -torch.log((-torch.log(noise.clamp(1e-20))).clamp(1e-20))


def _draw_tokens(probs: torch.Tensor, generator: Generators) -> torch.Tensor:
    """One token per position from (batch, positions, codebook) probabilities: (batch, positions).

    A list of generators draws each image's tokens from its own generator, so an image never depends on its
    batchmates; one generator (parity mode) draws the whole batch at once, as AmusedPipeline does."""
    batch, positions, codebook = probs.shape
    if isinstance(generator, list):
        if len(generator) != batch:
            raise StyleDropError(f"{len(generator)} generators for a batch of {batch} images.")
        return torch.stack([torch.multinomial(probs[b].to(g.device).float(), 1, generator=g)[:, 0].to(probs.device)
                            for b, g in enumerate(generator)])
    flat = probs.to(generator.device) if generator is not None else probs
    if flat.device.type == "cpu" and flat.dtype != torch.float32:
        flat = flat.float()
    return torch.multinomial(flat.reshape(-1, codebook), 1, generator=generator).to(probs.device).view(batch, -1)


def maskgit_step(logits: torch.Tensor, tokens: torch.Tensor, step: int, config: SampleConfig,
                 temps: torch.Tensor, mask_id: int, generator: Generators) -> torch.Tensor:
    """One decoding step: sample every masked token, then re-mask the least confident by the schedule.

    `generator`: one per image (a list; the product's rule) or one for the whole batch (parity mode)."""
    batch, codebook, height, width = logits.shape
    sample = tokens.reshape(batch, height * width)
    logits = logits.reshape(batch, codebook, height * width).permute(0, 2, 1)
    unknown = sample == mask_id
    probs = logits.softmax(dim=-1)
    predicted = torch.where(unknown, _draw_tokens(probs, generator), sample)
    if step == config.steps - 1:
        return predicted.reshape(batch, height, width)
    ratio = torch.tensor([[step + 1]], device=logits.device) / config.steps
    mask_ratio = torch.cos(ratio * math.pi / 2) if config.masking_schedule == "cosine" else 1 - ratio
    mask_len = (sample.shape[1] * mask_ratio).floor()
    mask_len = torch.min(unknown.sum(dim=-1, keepdim=True) - 1, mask_len)  # never re-mask more than was masked
    mask_len = torch.max(torch.tensor([1], device=logits.device), mask_len)  # mask at least one
    confidence = torch.gather(probs, -1, predicted[:, :, None])[:, :, 0]
    confidence = torch.where(unknown, confidence, torch.finfo(confidence.dtype).max)
    scored = torch.log(confidence.clamp(1e-20)) + temps[step] * _gumbel(confidence, generator)
    cut_off = torch.gather(torch.sort(scored, dim=-1).values, 1, mask_len.long())
    remask = scored < cut_off
    return torch.where(remask, mask_id, predicted).reshape(batch, height, width)


StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


@torch.no_grad()
def sample_tokens(logits_fn: LogitsFn, batch: int, grid: int, mask_id: int, config: SampleConfig,
                  device: torch.device, generator: Generators = None,
                  on_step: StepCallback | None = None) -> torch.Tensor:
    """Decode a (batch, grid, grid) token image from all-masked; on_step(step, total, logits, tokens).

    The logits passed to on_step are valid until the next step (a graphed model reuses their memory)."""
    config.validate()
    tokens = torch.full((batch, grid, grid), mask_id, dtype=torch.long, device=device)
    temps = temperatures(config, device)
    try:
        for step in range(config.steps):
            logits = logits_fn(tokens)
            tokens = maskgit_step(logits, tokens, step, config, temps, mask_id, generator)
            if on_step is not None:
                on_step(step, config.steps, logits, tokens)
    finally:
        close = getattr(logits_fn, "close", None)
        if close is not None:
            close()
    return tokens


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def image_seeds(seed: int | None, count: int) -> list[int]:
    """The seeds of a call's images in batch order: seed, seed + 1, ... (a random base when seed is None).

    Image j of a request with seed s is the image that seed s + j draws alone: the seed contract (docs/method.md)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    return [int(seed) + j for j in range(count)]


def image_generators(seeds: list[int], device: torch.device | str) -> list[torch.Generator]:
    """One generator per image, on the sampling device (no host copies of the probabilities)."""
    return [make_generator(s, device) for s in seeds]


@dataclass
class Samples:
    prompts: list[str]  # one per image, in batch order
    tokens: torch.Tensor
    images: list[Image.Image]
    seed: int | None
    seeds: list[int] | None = None  # each image's own seed (None in parity mode: one generator for the call)
    precision: str = "fp32"  # what config.precision meant on the device (bf16 or fp32)


def draw(components: Components, build_model: Callable[[], LogitsFn], prompts: list[str], config: SampleConfig,
         on_step: StepCallback | None = None, generator: torch.Generator | None = None,
         seeds: list[int] | None = None) -> Samples:
    """Decode config.num_images images per prompt with the logits function `build_model()` makes: the one
    sampling path of `generate` and of composition (styledrop.composition.generate_composed).

    With `seeds` (one per image, in batch order: prompts tiled num_images times) every image is drawn from
    its own generator on the sampling device and decoded alone, so it does not depend on its batchmates — the
    product's rule. Without them, one generator (`generator`, or config.seed's CPU generator) draws the whole
    call and the batch is decoded at once, exactly as AmusedPipeline does: parity mode (with precision="fp32"
    the pipeline's own precision). config.precision covers the whole call, the model's text encoding
    included, so a seed draws the same image on every path."""
    config.validate()
    if not prompts:
        raise StyleDropError("Give at least one prompt.")
    batch = len(prompts) * config.num_images
    if seeds is not None:
        if generator is not None:
            raise StyleDropError("Give either per-image seeds or one generator, not both.")
        if len(seeds) != batch:
            raise StyleDropError(f"{len(seeds)} seeds for {batch} images: give one seed per image.")
    rng: Generators = (image_generators(seeds, components.device) if seeds is not None
                       else generator or make_generator(config.seed))
    precision = sampling_precision(config.precision, components.device)
    with precision_context(precision, components.device):
        tokens = sample_tokens(build_model(), batch, components.token_grid, components.mask_token_id, config,
                               components.device, rng, on_step)
        images = decode_each(components, tokens) if seeds is not None else decode_tokens(components, tokens)
    return Samples(prompts * config.num_images, tokens, images, config.seed,
                   list(seeds) if seeds is not None else None, precision)


def generate(components: Components, prompts: list[str], config: SampleConfig | None = None,
             adapter: Adapter | None = None, on_step: StepCallback | None = None,
             generator: torch.Generator | None = None, seeds: list[int] | None = None) -> Samples:
    """Generate config.num_images images for each prompt (full prompts: descriptor already included), by
    `draw` (its seeds, parity mode and precision). Every caller — the candidate pool, the playground,
    `styledrop generate`, training samples — comes through here."""
    config = config or SampleConfig()
    return draw(components, lambda: guided_model(components, prompts, config, adapter), prompts, config,
                on_step, generator, seeds)
