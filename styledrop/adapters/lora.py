"""LoRA through peft on the transformer's attention projections: the adapter diffusers users already load."""

from __future__ import annotations

import itertools

import torch
from peft import LoraConfig
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from ..errors import StyleDropError
from .base import Adapter, AdapterConfig, attached_adapters

_names = itertools.count()
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


class LoraAdapter(Adapter):
    kind = "lora"

    def __init__(self, config: AdapterConfig):
        super().__init__(config)
        self.name = f"styledrop_{next(_names)}"
        self.transformer: nn.Module | None = None

    @property
    def alpha(self) -> float:
        return float(self.config.alpha if self.config.alpha is not None else self.config.rank)

    def peft_config(self) -> LoraConfig:
        return LoraConfig(r=self.config.rank, lora_alpha=self.alpha, target_modules=list(self.config.target_modules),
                          init_lora_weights=True)

    def attach(self, transformer: nn.Module) -> None:
        self.detach()
        transformer.add_adapter(self.peft_config(), adapter_name=self.name)
        self.transformer = transformer
        self._register(transformer)
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    def detach(self) -> None:
        if self.transformer is not None:
            transformer = self.transformer
            self._unregister(transformer)
            transformer.delete_adapters(self.name)
            self.transformer = None
            _router(transformer).refresh()
            remaining = [a.name for a in attached_adapters(transformer) if isinstance(a, LoraAdapter)]
            if remaining:
                transformer.set_adapters(remaining[-1])

    def _layers(self) -> list[LoraLayer]:
        assert self.transformer is not None, "attach the adapter first"
        return [m for m in self.transformer.modules() if isinstance(m, LoraLayer) and self.name in m.lora_A]

    def trainable_parameters(self) -> list[nn.Parameter]:
        params: list[nn.Parameter] = []
        for layer in self._layers():
            params += list(layer.lora_A[self.name].parameters()) + list(layer.lora_B[self.name].parameters())
        return params

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        state = get_peft_model_state_dict(self.transformer, adapter_name=self.name)
        return {k: v.detach().clone() for k, v in state.items()}

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        result = set_peft_model_state_dict(self.transformer, state, adapter_name=self.name)
        missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k and self.name in k]
        if getattr(result, "unexpected_keys", None) or missing:
            raise ValueError(f"LoRA weights do not fit this model: unexpected {result.unexpected_keys}, "
                             f"missing {missing}")

    def _on_enabled_changed(self) -> None:
        # peft's own switch would turn off every adapter on the model; we route rows through "__base__".
        _router(self.transformer).refresh()

    def _on_sample_mask_changed(self) -> None:
        _router(self.transformer).refresh()


class _LoraRouter:
    """Routes each batch row to one LoRA adapter (or to the base weights) with peft's mixed-batch forward.

    One router per transformer, so several LoRA adapters (a style and a content adapter) share one set of
    hooks. Without any switch or mask in force, peft's ordinary forward runs and no hook is installed.
    """

    def __init__(self, transformer: nn.Module):
        self.transformer = transformer
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def _adapters(self) -> list[LoraAdapter]:
        return [a for a in attached_adapters(self.transformer) if isinstance(a, LoraAdapter)]

    def refresh(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        adapters = self._adapters()
        if all(a._enabled and a._sample_mask is None for a in adapters):
            return
        for module in self.transformer.modules():
            if isinstance(module, LoraLayer):
                self.handles.append(module.register_forward_pre_hook(self._route, with_kwargs=True))

    def names(self, batch: int) -> list[str]:
        names = []
        for row in range(batch):
            owners = [a.name for a in self._adapters()
                      if a._enabled and (a._sample_mask is None or bool(a._sample_mask[row]))]
            if len(owners) > 1:
                raise StyleDropError("Two LoRA adapters cannot both run on one batch row; mix their logits "
                                     "(composition) or merge them with weights instead.")
            names.append(owners[0] if owners else BASE)
        return names

    def _route(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "adapter_names": self.names(args[0].shape[0])}


def _router(transformer: nn.Module) -> _LoraRouter:
    router = transformer.__dict__.get("_styledrop_lora_router")
    if router is None:
        router = transformer.__dict__["_styledrop_lora_router"] = _LoraRouter(transformer)
    return router
