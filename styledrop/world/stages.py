"""A resumable training stage: AdamW, linear warm-up then cosine decay, checkpoints, progress, a curve.

A stage's randomness is a numpy generator (which pictures) and a torch generator (masks, caption choice),
both seeded from the world's seed and saved in every checkpoint with the model, optimizer and schedule, so an
interrupted build resumed from its last checkpoint continues as the uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .spec import StageSpec


@dataclass
class Progress:
    """Where a build is: stage (name, its number, how many), step of total, last loss, timing."""

    stage: str
    index: int
    stages: int
    step: int
    total: int
    loss: float | None = None
    seconds_per_step: float | None = None
    eta_seconds: float | None = None
    note: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass
class StageResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)  # evaluations: step, seconds, metrics
    seconds: float = 0.0  # wall-clock seconds of training (all sessions of a resumed stage)
    cpu_seconds: float = 0.0  # process CPU seconds of training (load-independent-ish)
    resumed_from: int = 0


def schedule(spec: StageSpec) -> Callable[[int], float]:
    """Linear warm-up to the peak, then cosine decay to a tenth of it at the last step."""
    def factor(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def autocast_for(precision: str) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def run_stage(name: str, index: int, stages: int, spec: StageSpec, model: torch.nn.Module,
              loss_fn: Callable[[np.random.Generator, torch.Generator], torch.Tensor],
              evaluate: Callable[[int], dict[str, Any]] | None, checkpoint: Path, seed: int,
              on_progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
              parameters: list[torch.nn.Parameter] | None = None,
              after_step: Callable[[], None] | None = None) -> StageResult:
    """Train `model` for spec.steps steps of `loss_fn(rng, generator)`; evaluate every spec.eval_every steps and at
    the end. Resumes from `checkpoint` when it exists; returns early (stopped) when `should_stop()` says so."""
    params = parameters or [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=spec.learning_rate,
                                  betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(spec))
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    result = StageResult(steps=0)
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        generator.set_state(state["generator"])
        result = StageResult(state["step"], state["losses"], state["curve"], state["seconds"], state["cpu_seconds"],
                             resumed_from=state["step"])

    def save() -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"step": result.steps, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": rng.bit_generator.state,
                    "generator": generator.get_state(), "losses": result.losses, "curve": result.curve,
                    "seconds": result.seconds, "cpu_seconds": result.cpu_seconds}, tmp)
        os.replace(tmp, checkpoint)

    def run_eval() -> None:
        if evaluate is None:
            return
        model.eval()
        try:
            with torch.no_grad():
                metrics = evaluate(result.steps)
        finally:
            model.train()
        result.curve.append({"step": result.steps, "seconds": round(result.seconds, 1),
                             "cpu_seconds": round(result.cpu_seconds, 1),
                             "loss": round(float(np.mean(result.losses[-20:])), 4) if result.losses else None,
                             **metrics})

    model.train()
    if result.steps == 0 and evaluate is not None and not result.curve:
        run_eval()  # the untrained start of the curve
    session_start, session_steps = time.perf_counter(), 0
    while result.steps < spec.steps:
        if should_stop is not None and should_stop():
            save()
            break
        wall, cpu = time.perf_counter(), time.process_time()
        loss = loss_fn(rng, generator)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if after_step is not None:
            after_step()
        result.steps += 1
        session_steps += 1
        result.losses.append(round(float(loss.detach()), 5))
        result.seconds += time.perf_counter() - wall
        result.cpu_seconds += time.process_time() - cpu
        if result.steps % spec.eval_every == 0 or result.steps == spec.steps:
            run_eval()
        if result.steps % spec.checkpoint_every == 0 or result.steps == spec.steps:
            save()
        if on_progress is not None:
            per_step = (time.perf_counter() - session_start) / session_steps
            on_progress(Progress(name, index, stages, result.steps, spec.steps, result.losses[-1], per_step,
                                 per_step * (spec.steps - result.steps)))
    model.eval()
    return result
