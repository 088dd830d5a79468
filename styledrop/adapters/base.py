"""One interface for every adapter kind, so training, sampling and files never ask which kind they hold."""

from __future__ import annotations

import abc
import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch


@dataclass
class AdapterConfig:
    """How an adapter is shaped. `rank` is the bottleneck width H (StyleDrop) or the LoRA rank r."""

    kind: str = "styledrop"
    rank: int = 4
    shared: bool = True  # StyleDrop only: generate every layer's weights from one shared table (paper B.1.1)
    alpha: float | None = None  # LoRA only: scaling numerator (defaults to rank, i.e. scale 1)
    # LoRA only; diffusers' aMUSEd recipe (examples/amused/train_amused.py) targets the q, k, v projections.
    target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdapterConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Adapter(abc.ABC):
    """Trainable weights attached to a frozen UVit2DModel.

    An adapter must be an exact no-op until trained, must be switchable off (to evaluate the frozen base
    model G next to the adapted model Ĝ, Eq. 4) and must accept a per-sample on/off mask so that Ĝ(t), G(t)
    and G(n) run as one batched forward pass.
    """

    kind: str

    def __init__(self, config: AdapterConfig):
        self.config = config
        self._enabled = True
        self._sample_mask: torch.Tensor | None = None

    @abc.abstractmethod
    def attach(self, transformer: torch.nn.Module) -> None: ...

    @abc.abstractmethod
    def detach(self) -> None: ...

    @abc.abstractmethod
    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    @abc.abstractmethod
    def adapter_state_dict(self) -> dict[str, torch.Tensor]: ...

    @abc.abstractmethod
    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def set_requires_grad(self, flag: bool) -> None:
        for p in self.trainable_parameters():
            p.requires_grad_(flag)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Run the frozen base model G inside this block."""
        previous, self._enabled = self._enabled, False
        self._on_enabled_changed()
        try:
            yield
        finally:
            self._enabled = previous
            self._on_enabled_changed()

    @contextlib.contextmanager
    def per_sample(self, mask: torch.Tensor) -> Iterator[None]:
        """Apply the adapter only to the batch rows where mask is True (one forward for Ĝ and G)."""
        self._sample_mask = mask.bool()
        self._on_sample_mask_changed()
        try:
            yield
        finally:
            self._sample_mask = None
            self._on_sample_mask_changed()

    def _register(self, transformer: torch.nn.Module) -> None:
        registry = transformer.__dict__.setdefault("_styledrop_adapters", [])
        if self not in registry:
            registry.append(self)

    def _unregister(self, transformer: torch.nn.Module) -> None:
        registry = transformer.__dict__.get("_styledrop_adapters", [])
        if self in registry:
            registry.remove(self)

    def _on_enabled_changed(self) -> None:
        """Kinds that keep their own on/off switch (peft) mirror `_enabled` here."""

    def _on_sample_mask_changed(self) -> None:
        """Kinds that route per-sample through the library (peft) mirror `_sample_mask` here."""


def attached_adapters(transformer: torch.nn.Module) -> list[Adapter]:
    """Every adapter currently attached to this transformer, in attach order."""
    return list(transformer.__dict__.get("_styledrop_adapters", []))


@contextlib.contextmanager
def route_rows(transformer: torch.nn.Module, owners: list[Adapter | None]) -> Iterator[None]:
    """One forward pass in which batch row i runs with adapter owners[i] only (None: the frozen base).

    Every attached adapter gets a per-row mask, so adapters that own no row are off for the whole batch.
    """
    with contextlib.ExitStack() as stack:
        for adapter in attached_adapters(transformer):
            mask = torch.tensor([owner is adapter for owner in owners])
            if not mask.any():
                stack.enter_context(adapter.disabled())  # owns no row: skip its work entirely
            elif not mask.all():
                stack.enter_context(adapter.per_sample(mask))
        yield


@contextlib.contextmanager
def only(transformer: torch.nn.Module, adapter: Adapter | None) -> Iterator[None]:
    """Plain forward passes with just this adapter on (or none): the others attached are switched off."""
    with contextlib.ExitStack() as stack:
        for other in attached_adapters(transformer):
            if other is not adapter:
                stack.enter_context(other.disabled())
        yield
