"""LoRA through peft on the transformer's attention projections: the adapter diffusers users already load."""

from __future__ import annotations

import itertools

import torch
from peft import LoraConfig
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from .base import Adapter, AdapterConfig

_names = itertools.count()


class LoraAdapter(Adapter):
    kind = "lora"

    def __init__(self, config: AdapterConfig):
        super().__init__(config)
        self.name = f"styledrop_{next(_names)}"
        self.transformer: nn.Module | None = None
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

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
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    def detach(self) -> None:
        if self.transformer is not None:
            self._remove_hooks()
            self.transformer.delete_adapters(self.name)
            self.transformer = None

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
        # peft's own switch would turn off every adapter on the model; we route through "__base__" instead.
        self._install_routing()

    def _on_sample_mask_changed(self) -> None:
        self._install_routing()

    def _remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def _install_routing(self) -> None:
        """Route each batch row to this adapter or to the base weights with peft's mixed-batch forward."""
        self._remove_hooks()
        if self._enabled and self._sample_mask is None:
            return
        for layer in self._layers():
            self._hooks.append(layer.register_forward_pre_hook(self._route, with_kwargs=True))

    def _route(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        batch = args[0].shape[0]
        if not self._enabled:
            names = ["__base__"] * batch
        else:
            mask = self._sample_mask
            names = [self.name if bool(m) else "__base__" for m in mask.tolist()]
        return args, {**kwargs, "adapter_names": names}
