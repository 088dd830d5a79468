"""Adapter training with Muse's masked visual token modeling (StyleDrop Eq. 3).

Encode every training image to VQ tokens and every prompt to CLIP embeddings once, then each step: draw
t ~ U(0, 1), mask a fraction cos(t·π/2) of the tokens (at least one), drop the text condition with a small
probability (so classifier-free guidance works), and minimise cross-entropy on the masked positions only.
All randomness comes from one seeded generator whose state is checkpointed with the adapter and optimizer,
so a resumed run continues exactly where an uninterrupted one would be (styledrop/checkpoints.py).

`train` reads as the loop it is: get a batch, forward and loss, backward, clip, optimizer step. The speed
switches (fast_training.py: torch.compile of the loss, frozen weights held in bf16, fused AdamW) are set up
beside the loop, and the loss log, the model's training mode and the samples between steps are helpers below.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .adapters import Adapter
from .adapters.base import only
from .checkpoints import Checkpoints, RunState
from .conditioning import AESTHETIC_SCORE, TextConditioning, encode_prompts
from .errors import StyleDropError
from .fast_training import (
    FAST_MODES,
    CompiledLoss,
    fast_enabled,
    fused_rms_norms,
    held_in_bf16,
    make_optimizer,
)
from .images import encode_to_tokens, prepare_image
from .models import Components
from .training_samples import sample_due

# Paper (§4.1): Adam, lr 3e-5, 1,000 steps, batch 8 for its adapter; diffusers' aMUSEd LoRA recipe: lr 4e-4.
DEFAULT_LR = {"styledrop": 3e-5, "lora": 4e-4}


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    learning_rate: float | None = None  # None: DEFAULT_LR for the adapter kind
    weight_decay: float = 1e-2
    grad_accumulation: int = 1
    max_grad_norm: float | None = 1.0
    warmup_steps: int = 0
    # Probability of training on the empty prompt. Off: Eq. 4's unconditional term G(n) comes from the frozen
    # base model with the adapter switched off, so the adapter never has to model the null prompt and dropout
    # would only spend a tenth of the steps away from the style. Kept as an option for other samplers.
    cond_dropout: float = 0.0
    min_masking_rate: float = 0.0
    augment: bool = True  # horizontal flips of every training image
    seed: int = 0
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    mixed_precision: str = "auto"  # "auto" (bf16 on CUDA), "bf16" or "no"
    gradient_checkpointing: bool = False
    # The launch-free step (styledrop/fast_training.py): "auto" (on for CUDA), "on" or "off" (eager).
    fast: str = "auto"
    # Sample images at step 0, every this many steps and at the last one (styledrop.training_samples); 0: none.
    sample_every: int = 0

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accumulation < 1:
            raise StyleDropError("Steps, batch size and gradient accumulation must all be at least 1.")
        if self.learning_rate is not None and not (0 < self.learning_rate < 1):
            raise StyleDropError(f"Learning rate {self.learning_rate} is out of range (0, 1).")
        if not 0 <= self.cond_dropout < 1:
            raise StyleDropError("Condition dropout must lie in [0, 1).")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise StyleDropError(f"Unknown mixed precision '{self.mixed_precision}' (auto, bf16 or no).")
        if self.fast not in FAST_MODES:
            raise StyleDropError(f"Unknown fast-step setting '{self.fast}' (auto, on or off).")
        if self.sample_every < 0:
            raise StyleDropError("Sample every N steps needs N >= 0 (0: no samples while training).")

    def lr_for(self, kind: str) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[kind]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Example:
    """One training image with its own full prompt ("A house in watercolor painting style")."""

    image: Image.Image
    prompt: str
    weight: float = 1.0  # loss weight; DreamBooth's prior-preservation images use λ_prior


@dataclass
class EncodedSet:
    """The training set as the model sees it, computed once: tokens per augmentation, embeddings, micro-conds."""

    tokens: torch.Tensor  # (N, V, h, w): V augmentation variants per example
    cond: TextConditioning  # (N, ...)
    empty: TextConditioning  # (1, ...) the empty prompt, for condition dropout
    micro: torch.Tensor  # (N, 5)
    prompts: list[str]
    weights: torch.Tensor | None = None  # (N,) per-example loss weights; None: all 1

    def __len__(self) -> int:
        return self.tokens.shape[0]


@torch.no_grad()
def encode_examples(components: Components, examples: list[Example], augment: bool) -> EncodedSet:
    if not examples:
        raise StyleDropError("The training set is empty.")
    resolution = components.resolution
    variants: list[torch.Tensor] = []
    micro_rows = []
    for example in examples:
        images = [example.image, ImageOps.mirror(example.image)] if augment else [example.image]
        prepared = [prepare_image(img, resolution) for img in images]
        variants.append(encode_to_tokens(components, torch.stack([p.pixels for p in prepared])))
        (w, h), (top, left) = prepared[0].original_size, prepared[0].crop
        micro_rows.append([w, h, top, left, AESTHETIC_SCORE])
    cond = encode_prompts(components, [e.prompt for e in examples])
    empty = encode_prompts(components, [""])
    micro = torch.tensor(micro_rows, dtype=cond.hidden.dtype, device=components.device)
    weights = None
    if any(e.weight != 1.0 for e in examples):
        weights = torch.tensor([e.weight for e in examples], dtype=torch.float32, device=components.device)
    return EncodedSet(torch.stack(variants), cond, empty, micro, [e.prompt for e in examples], weights)


@dataclass
class TrainProgress:
    step: int
    total: int
    loss: float
    seconds_per_step: float
    eta_seconds: float


@dataclass
class TrainResult:
    steps_done: int
    losses: list[float] = field(default_factory=list)
    stopped: bool = False
    resumed_from: int = 0
    seconds: float = 0.0
    compiled: bool = False  # the fast step ran compiled to the end (False: eager, or a compile fell back)


def mask_tokens(tokens: torch.Tensor, mask_id: int, generator: torch.Generator,
                min_masking_rate: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Muse's cosine masking: returns (input ids with masks, labels with -100 where not masked).

    The draws happen on the generator's device (the training device: no host round trip per step).
    """
    batch, seq_len = tokens.shape
    t = torch.rand(batch, generator=generator, device=generator.device)
    mask_prob = torch.cos(t * math.pi * 0.5).clip(min_masking_rate)
    num_masked = (seq_len * mask_prob).round().clamp(min=1)
    ranks = torch.rand(batch, seq_len, generator=generator, device=generator.device).argsort(dim=-1)
    mask = (ranks < num_masked.unsqueeze(-1)).to(tokens.device)
    return torch.where(mask, mask_id, tokens), torch.where(mask, tokens, -100)


def get_batch(data: EncodedSet, config: TrainConfig, mask_id: int, generator: torch.Generator,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One micro-batch: (input ids with masks, labels, example indexes, which prompts are dropped).

    Every draw comes from the run's generator, on the generator's device: which examples, which of their
    augmentation variants, which tokens are masked, which prompts are dropped. Their order is part of what a
    checkpoint resumes."""
    on = generator.device
    idx = torch.randint(len(data), (config.batch_size,), generator=generator, device=on)
    variant = torch.randint(data.tokens.shape[1], (config.batch_size,), generator=generator, device=on)
    idx, variant = idx.to(device), variant.to(device)
    input_ids, labels = mask_tokens(data.tokens[idx, variant].flatten(1), mask_id, generator, config.min_masking_rate)
    drop = torch.rand(config.batch_size, generator=generator, device=on) < config.cond_dropout
    return input_ids, labels, idx, drop.to(device)


def masked_token_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over the masked positions only; logits (B, V, h, w), labels (B, h*w).

    With per-sample `weights`, each sample's mean masked-token loss is weighted (DreamBooth's
    L_instance + λ·L_prior when a batch mixes subject and class images).
    """
    batch, codebook = logits.shape[:2]
    flat = logits.reshape(batch, codebook, -1).permute(0, 2, 1).reshape(-1, codebook)
    if weights is None:
        return F.cross_entropy(flat.float(), labels.reshape(-1), ignore_index=-100)
    per_token = F.cross_entropy(flat.float(), labels.reshape(-1), ignore_index=-100, reduction="none")
    masked = (labels != -100).float()
    per_sample = (per_token.view(batch, -1) * masked).sum(1) / masked.sum(1).clamp(min=1)
    return (per_sample * weights).sum() / batch


@contextlib.contextmanager
def checkpointed_layers(transformer: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Activation checkpointing per transformer layer (diffusers' own flag fails on UVit2DModel's kwargs)."""
    if not enabled:
        yield
        return
    from torch.utils.checkpoint import checkpoint

    layers = list(transformer.transformer_layers)
    for layer in layers:
        original = layer.forward
        layer.forward = functools.partial(checkpoint, original, use_reentrant=False)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _uses_bf16(device: torch.device, mode: str) -> bool:
    return mode == "bf16" or (mode == "auto" and device.type == "cuda")


def _autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    if _uses_bf16(device, mode):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _lr_lambda(warmup: int) -> Callable[[int], float]:
    return lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


ProgressFn = Callable[[TrainProgress], None]
SampleFn = Callable[[int], None]
LOSS_READ_SECONDS = 1.0  # on an accelerator the loss is copied to the host about this often, not every step


def _between_steps(transformer: torch.nn.Module, device: torch.device, mixed_precision: str,
                   work: Callable[[], None]) -> None:
    """Run `work` (sampling) between two training steps: no gradients, eval mode, and the training step's own
    autocast, which the fast step needs (its frozen weights are held in bf16 while the adapter stays fp32).
    The adapter stays the only one switched on, and train mode comes back even if `work` raises."""
    transformer.eval()
    try:
        with torch.no_grad(), _autocast(device, mixed_precision):
            work()
    finally:
        transformer.train()


def train(components: Components, adapter: Adapter, examples: list[Example] | EncodedSet, config: TrainConfig,
          checkpoint_dir: str | os.PathLike | None = None, on_progress: ProgressFn | None = None,
          should_stop: Callable[[], bool] | None = None, on_sample: SampleFn | None = None) -> TrainResult:
    """Train `adapter` (already attached to components.transformer) and return the loss history.

    With `checkpoint_dir`, state is saved every `checkpoint_every` steps and on a requested stop, and an
    existing checkpoint there is resumed from. `should_stop` is polled every step (cooperative cancel).
    `on_progress` is called each time the loss is read (LossLog). `on_sample(step)` is called before the
    first step of a fresh run (step 0), then between steps every `sample_every` steps and at the last one
    (before that step's checkpoint), with the model as sampling wants it (_between_steps).
    """
    config.validate()
    device, transformer = components.device, components.transformer
    data = examples if isinstance(examples, EncodedSet) else encode_examples(components, examples, config.augment)
    params = adapter.trainable_parameters()
    adapter.set_requires_grad(True)
    fast = fast_enabled(config.fast, device)  # the speed switch (fast_training.py): fused AdamW, compiled loss, bf16
    optimizer = make_optimizer(params, config.lr_for(adapter.kind), config.weight_decay, fast)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config.warmup_steps))
    checkpoints = Checkpoints(checkpoint_dir, config.keep_checkpoints)
    run = RunState.start(checkpoints.latest(), device, config, adapter, optimizer, scheduler, fast,
                         TrainResult(steps_done=0))
    result, grid = run.result, components.token_grid

    def forward_loss(input_ids: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor,
                     drop: torch.Tensor) -> torch.Tensor:
        """One micro-batch's loss (already divided for accumulation): the part that `fast` compiles."""
        cond = data.cond.index(idx)
        hidden = torch.where(drop[:, None, None], data.empty.hidden, cond.hidden)
        pooled = torch.where(drop[:, None], data.empty.pooled, cond.pooled)
        with _autocast(device, config.mixed_precision):
            logits = transformer(input_ids.reshape(-1, grid, grid), encoder_hidden_states=hidden,
                                 pooled_text_emb=pooled, micro_conds=data.micro[idx])
        weights = None if data.weights is None else data.weights[idx]
        return masked_token_loss(logits, labels, weights) / config.grad_accumulation

    loss_fn = CompiledLoss(forward_loss, device) if fast else forward_loss
    hold_bf16 = fast and _uses_bf16(device, config.mixed_precision)  # frozen weights held in bf16, fused RMSNorm
    log = LossLog(result, device, config.steps, on_progress)
    with training_mode(transformer, adapter, config.gradient_checkpointing, hold_bf16, params):
        if on_sample is not None and config.sample_every and result.steps_done == 0:
            # what the run starts from (the base model, for a fresh adapter): the first picture to compare with
            _between_steps(transformer, device, config.mixed_precision, lambda: on_sample(0))
        while result.steps_done < config.steps:
            if should_stop is not None and should_stop():
                result.stopped = True
                break
            micro_losses = []
            for _ in range(config.grad_accumulation):
                input_ids, labels, idx, drop = get_batch(data, config, components.mask_token_id, run.generator, device)
                loss = loss_fn(input_ids, labels, idx, drop)
                loss.backward()
                micro_losses.append(loss.detach())
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps_done += 1
            checkpoint_now = bool(config.checkpoint_every) and result.steps_done % config.checkpoint_every == 0
            log.add(torch.stack(micro_losses), read=checkpoint_now)
            if on_sample is not None and sample_due(result.steps_done, config.sample_every, config.steps):
                _between_steps(transformer, device, config.mixed_precision, lambda: on_sample(result.steps_done))
            if checkpoint_now:
                checkpoints.save(result.steps_done, run.state_dict())
        log.read()
    if result.stopped:
        checkpoints.save(result.steps_done, run.state_dict())
    result.compiled = isinstance(loss_fn, CompiledLoss) and loss_fn.is_compiled
    result.seconds = time.perf_counter() - log.started
    return result


# ---- beside the loop: the loss log and the model's training mode (checkpoints: styledrop/checkpoints.py) --------

class LossLog:
    """The loss history, copied to the host in batches: every step on a CPU (reading it costs nothing there),
    about once a second on an accelerator (a read waits for the device), and always for the first and the last
    step of a run and at checkpoints. Each read reports progress."""

    def __init__(self, result: TrainResult, device: torch.device, total: int, on_progress: ProgressFn | None):
        self.result, self.device, self.total, self.on_progress = result, device, total, on_progress
        self.pending: list[torch.Tensor] = []  # per step, the micro-batch losses not yet read on the host
        self.started = self.last_read = time.perf_counter()

    def add(self, step_losses: torch.Tensor, read: bool = False) -> None:
        self.pending.append(step_losses)
        result, now = self.result, time.perf_counter()
        if (self.device.type == "cpu" or read or result.steps_done in (result.resumed_from + 1, self.total)
                or now - self.last_read >= LOSS_READ_SECONDS):
            self.read()
            if self.on_progress is not None:
                per_step = (now - self.started) / (result.steps_done - result.resumed_from)
                self.on_progress(TrainProgress(result.steps_done, self.total, result.losses[-1], per_step,
                                               per_step * (self.total - result.steps_done)))

    def read(self) -> None:
        if self.pending:
            for row in torch.stack(self.pending).tolist():  # one device-to-host copy for all the steps since the last
                self.result.losses.append(sum(row))
            self.pending.clear()
        self.last_read = time.perf_counter()


@contextlib.contextmanager
def training_mode(transformer: torch.nn.Module, adapter: Adapter, gradient_checkpointing: bool, hold_bf16: bool,
                  trainable: list[torch.nn.Parameter]) -> Iterator[None]:
    """The model as the training step wants it, and as it was afterwards (even after an error): train mode,
    this adapter the only one switched on, activation checkpointing if asked, and with `hold_bf16` the frozen
    weights held in bf16 with fused RMSNorms (fast_training.py). The adapter's gradients end switched off."""
    was_training = transformer.training
    transformer.train()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(checkpointed_layers(transformer, gradient_checkpointing))
            stack.enter_context(only(transformer, adapter))
            if hold_bf16:
                stack.enter_context(held_in_bf16(transformer, trainable))
                stack.enter_context(fused_rms_norms(transformer))
            yield
    finally:
        adapter.set_requires_grad(False)
        transformer.train(was_training)
