"""Adapters: the paper's bottleneck adapter and peft LoRA behind one interface."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import StyleDropError
from .base import Adapter, AdapterConfig
from .bottleneck import StyleDropAdapter
from .lora import LoraAdapter

KINDS = ("styledrop", "lora")


def create_adapter(config: AdapterConfig, transformer: nn.Module, seed: int = 0) -> Adapter:
    """Build an untrained adapter of the configured kind and attach it to the transformer.

    Its random initial weights depend only on `seed`, so a training run is reproducible end to end.
    """
    if config.rank < 1:
        raise StyleDropError(f"Adapter rank must be at least 1, got {config.rank}.")
    if config.kind not in KINDS:
        raise StyleDropError(f"Unknown adapter kind '{config.kind}': choose one of {', '.join(KINDS)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.kind == "styledrop":
            adapter: Adapter = StyleDropAdapter.for_transformer(config, transformer)
        else:
            adapter = LoraAdapter(config)
        adapter.attach(transformer)
    return adapter


__all__ = ["Adapter", "AdapterConfig", "KINDS", "LoraAdapter", "StyleDropAdapter", "create_adapter"]
