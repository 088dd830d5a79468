"""MaskGIT iterative parallel decoding with StyleDrop's adapter guidance (paper Eq. 4).

Each step predicts every token, keeps the most confident ones by the cosine schedule and re-masks the rest,
with Gumbel noise on the confidences annealed by a temperature schedule. Without an adapter this loop
reproduces diffusers' AmusedPipeline token for token (same RNG calls in the same order). With an adapter
the logits are

    l = Ĝ(t) + λA·(Ĝ(t) − G(t)) + λB·(G(t) − G(n))

computed from one batched forward pass over [n, t, t] rows, the last rows with the adapter switched on.
`GuidedModel` is that logits function; `sample_tokens` accepts any function of the same shape, which is how
two adapters are mixed per step (composition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from PIL import Image

from .adapters import Adapter
from .conditioning import AESTHETIC_SCORE, TextConditioning, encode_prompts, micro_conds
from .errors import StyleDropError
from .images import decode_tokens
from .models import Components


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

    def validate(self) -> None:
        if self.steps < 1:
            raise StyleDropError(f"Sampling needs at least one step, got {self.steps}.")
        if self.num_images < 1:
            raise StyleDropError(f"Ask for at least one image per prompt, got {self.num_images}.")
        if self.guidance < 0 or self.adapter_guidance < 0:
            raise StyleDropError("Guidance scales cannot be negative.")
        if self.masking_schedule not in ("cosine", "linear"):
            raise StyleDropError(f"Unknown masking schedule '{self.masking_schedule}' (cosine or linear).")


class LogitsFn(Protocol):
    def __call__(self, tokens: torch.Tensor) -> torch.Tensor: ...


@dataclass
class GuidedModel:
    """Eq. 4 logits for a fixed batch of prompts: call it with the current (B, h, w) tokens."""

    components: Components
    cond: TextConditioning
    negative: TextConditioning
    guidance: float
    adapter: Adapter | None = None
    adapter_guidance: float = 0.0
    aesthetic_score: float = AESTHETIC_SCORE
    _plan: list[tuple[str, bool]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        # Which row groups one forward pass needs: ("n"|"t", adapter on?).
        plan: list[tuple[str, bool]] = []
        if self.guidance > 0:
            plan.append(("n", False))
        if self.guidance > 0 or self.adapter is None or self.adapter_guidance > 0:
            plan.append(("t", False))
        if self.adapter is not None:
            plan.append(("t", True))
        self._plan = plan

    @property
    def passes(self) -> int:
        """Row groups per step (3 for Eq. 4 with an adapter and guidance: Ĝ(t), G(t), G(n))."""
        return len(self._plan)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        batch = tokens.shape[0]
        groups = [self.negative if which == "n" else self.cond for which, _ in self._plan]
        cond = TextConditioning.cat(groups)
        transformer = self.components.transformer
        side = self.components.resolution
        micro = micro_conds(side, side, len(cond), tokens.device, cond.hidden.dtype, aesthetic=self.aesthetic_score)
        model_input = tokens.repeat(len(self._plan), 1, 1)
        kwargs = dict(micro_conds=micro, pooled_text_emb=cond.pooled, encoder_hidden_states=cond.hidden)
        if self.adapter is None:
            out = transformer(model_input, **kwargs)
        else:
            mask = torch.tensor([on for _, on in self._plan], device=tokens.device).repeat_interleave(batch)
            with self.adapter.per_sample(mask):
                out = transformer(model_input, **kwargs)
        parts = dict(zip(self._plan, out.chunk(len(self._plan))))
        return self._combine(parts)

    def _combine(self, parts: dict[tuple[str, bool], torch.Tensor]) -> torch.Tensor:
        g_t = parts.get(("t", False))
        if self.guidance > 0:
            g_n = parts[("n", False)]
            logits = g_n + (1.0 + self.guidance) * (g_t - g_n)  # = G(t) + λB (G(t) − G(n)), pipeline's form
        else:
            logits = g_t
        if self.adapter is not None:
            adapted = parts[("t", True)]
            if logits is None:  # no guidance of either kind: Ĝ(t) alone
                return adapted
            logits = logits + (1.0 + self.adapter_guidance) * (adapted - g_t)
        return logits


def guided_model(components: Components, prompts: list[str], config: SampleConfig,
                 adapter: Adapter | None = None) -> GuidedModel:
    """Encode prompts (tiled num_images times, as AmusedPipeline does) and build their Eq. 4 logits function."""
    cond = encode_prompts(components, prompts).repeat(config.num_images)
    negative = encode_prompts(components, [config.negative_prompt] * len(prompts)).repeat(config.num_images)
    return GuidedModel(components, cond, negative, config.guidance, adapter, config.adapter_guidance,
                       config.aesthetic_score)


def temperatures(config: SampleConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    low, high = config.temperature
    return torch.linspace(low, high, config.steps, device=device)


def _gumbel(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    noise = torch.zeros_like(like, device=device).uniform_(0, 1, generator=generator).to(like.device)
    return -torch.log((-torch.log(noise.clamp(1e-20))).clamp(1e-20))


def maskgit_step(logits: torch.Tensor, tokens: torch.Tensor, step: int, config: SampleConfig,
                 temps: torch.Tensor, mask_id: int, generator: torch.Generator | None) -> torch.Tensor:
    """One decoding step: sample every masked token, then re-mask the least confident by the schedule."""
    batch, codebook, height, width = logits.shape
    sample = tokens.reshape(batch, height * width)
    logits = logits.reshape(batch, codebook, height * width).permute(0, 2, 1)
    unknown = sample == mask_id
    probs = logits.softmax(dim=-1)
    flat = probs.to(generator.device) if generator is not None else probs
    if flat.device.type == "cpu" and flat.dtype != torch.float32:
        flat = flat.float()
    drawn = torch.multinomial(flat.reshape(-1, codebook), 1, generator=generator).to(probs.device)
    predicted = torch.where(unknown, drawn[:, 0].view(batch, -1), sample)
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
                  device: torch.device, generator: torch.Generator | None = None,
                  on_step: StepCallback | None = None) -> torch.Tensor:
    """Decode a (batch, grid, grid) token image from all-masked; on_step(step, total, logits, tokens)."""
    config.validate()
    tokens = torch.full((batch, grid, grid), mask_id, dtype=torch.long, device=device)
    temps = temperatures(config, device)
    for step in range(config.steps):
        logits = logits_fn(tokens)
        tokens = maskgit_step(logits, tokens, step, config, temps, mask_id, generator)
        if on_step is not None:
            on_step(step, config.steps, logits, tokens)
    return tokens


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


@dataclass
class Samples:
    prompts: list[str]  # one per image, in batch order
    tokens: torch.Tensor
    images: list[Image.Image]
    seed: int | None


def generate(components: Components, prompts: list[str], config: SampleConfig | None = None,
             adapter: Adapter | None = None, on_step: StepCallback | None = None,
             generator: torch.Generator | None = None) -> Samples:
    """Generate config.num_images images for each prompt (full prompts: descriptor already included)."""
    config = config or SampleConfig()
    config.validate()
    if not prompts:
        raise StyleDropError("Give at least one prompt.")
    model = guided_model(components, prompts, config, adapter)
    generator = generator or make_generator(config.seed)
    batch = len(prompts) * config.num_images
    tokens = sample_tokens(model, batch, components.token_grid, components.mask_token_id, config,
                           components.device, generator, on_step)
    return Samples(prompts * config.num_images, tokens, decode_tokens(components, tokens), config.seed)
