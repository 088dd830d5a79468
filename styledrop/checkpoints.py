"""Training checkpoints: what a run saves so that a resumed run continues exactly where an uninterrupted one
would (tests/test_training.py: same losses and weights, bit for bit, with or without samples between steps).

A checkpoint is a step-NNNNNN.pt file in the run's checkpoint folder; the newest `keep` are kept, and a
finished run's folder is removed by whoever owns it (styledrop.styles).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .adapters import Adapter
from .fast_training import after_load

if TYPE_CHECKING:
    from .training import TrainConfig, TrainResult


class Checkpoints:
    """step-NNNNNN.pt files holding adapter, optimizer and RNG state; written atomically, the newest kept."""

    def __init__(self, folder: str | os.PathLike | None, keep: int):
        self.folder = Path(folder) if folder else None
        self.keep = keep

    def latest(self) -> Path | None:
        if self.folder is None or not self.folder.is_dir():
            return None
        files = sorted(self.folder.glob("step-*.pt"))
        return files[-1] if files else None

    def save(self, step: int, state: dict[str, Any]) -> Path | None:
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step-{step:06d}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        for old in sorted(self.folder.glob("step-*.pt"))[: -self.keep]:
            old.unlink(missing_ok=True)
        return path


@dataclass
class RunState:
    """What a checkpoint holds, so that a resumed run continues exactly where an uninterrupted one would: the
    adapter, optimizer and scheduler states, the generator of every draw, the step and the loss history."""

    adapter: Adapter
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    result: TrainResult
    config: TrainConfig

    @classmethod
    def start(cls, checkpoint: Path | None, device: torch.device, config: TrainConfig, adapter: Adapter,
              optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, fast: bool,
              result: TrainResult) -> "RunState":
        """A fresh run (its generator seeded on the training device), or the checkpoint's run restored."""
        state = torch.load(checkpoint, map_location=device, weights_only=False) if checkpoint is not None else None
        # A checkpoint names its generator's device (the CPU when it names none): resume there, exactly.
        generator_device = device if state is None else torch.device(state.get("generator_device", "cpu"))
        run = cls(adapter, optimizer, scheduler, torch.Generator(device=generator_device).manual_seed(config.seed),
                  result, config)
        if state is not None:
            adapter.load_adapter_state_dict(state["adapter"])
            optimizer.load_state_dict(state["optimizer"])
            after_load(optimizer, fast)
            scheduler.load_state_dict(state["scheduler"])
            run.generator.set_state(state["generator"])
            run.result.steps_done = run.result.resumed_from = int(state["step"])
            run.result.losses = list(state["losses"])
        return run

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.result.steps_done, "adapter": self.adapter.adapter_state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(), "generator_device": self.generator.device.type,
                "losses": self.result.losses, "config": self.config.to_dict()}
