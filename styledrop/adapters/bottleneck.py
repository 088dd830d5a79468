"""The paper's adapter (StyleDrop §3.2, Fig. 2, Appendix B.1.1).

Two residual bottlenecks in every transformer layer, one on the output of the cross-attention block and one
on the output of the MLP block: `x + up(gelu(down(x)))`, with `up` zero-initialised so the untrained adapter
is an exact no-op. With `shared=True` the per-layer weights are *generated* from one shared table plus a
small per-layer embedding (down: D×H table + an H-vector per layer; up: H×D table + a D-vector per layer),
which divides the parameter count by about the number of layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Adapter, AdapterConfig

SITES = ("attn2", "ff")  # after cross-attention, after the MLP


class _SiteWeights(nn.Module):
    """The down/up weights of one adapter site (e.g. every layer's cross-attention output)."""

    def __init__(self, dim: int, rank: int, layers: int, shared: bool):
        super().__init__()
        self.shared = shared
        if shared:
            self.down_table = nn.Parameter(torch.empty(dim, rank))
            self.down_embed = nn.Parameter(torch.empty(layers, rank))
            self.up_table = nn.Parameter(torch.zeros(rank, dim))
            self.up_embed = nn.Parameter(torch.zeros(layers, dim))
            nn.init.trunc_normal_(self.down_table, std=0.02)
            nn.init.trunc_normal_(self.down_embed, std=0.02)
        else:
            self.down = nn.Parameter(torch.empty(layers, dim, rank))
            self.up = nn.Parameter(torch.zeros(layers, rank, dim))
            nn.init.trunc_normal_(self.down, std=0.02)

    def weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shared:
            down = self.down_table + self.down_embed[layer].unsqueeze(0)
            up = self.up_table + self.up_embed[layer].unsqueeze(0)
            return down, up
        return self.down[layer], self.up[layer]

    def all_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's (down, up) at once, (L, D, H) and (L, H, D): one kernel each instead of one per layer.

        Element for element the same additions as `weights(layer)`, so the result is bit-identical.
        """
        if self.shared:
            return self.down_table.unsqueeze(0) + self.down_embed.unsqueeze(1), \
                self.up_table.unsqueeze(0) + self.up_embed.unsqueeze(1)
        return self.down, self.up


class StyleDropAdapter(Adapter, nn.Module):
    kind = "styledrop"
    graph_safe_rows = True  # per-row routing is a device-side scale: decoding steps can be CUDA graphs

    def __init__(self, config: AdapterConfig, dim: int, layers: int):
        Adapter.__init__(self, config)
        nn.Module.__init__(self)
        self.dim, self.layers = dim, layers
        self.sites = nn.ModuleDict({s: _SiteWeights(dim, config.rank, layers, config.shared) for s in SITES})
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.__dict__["_transformer"] = None  # not a submodule: its weights are not ours
        self._row_scale: torch.Tensor | None = None  # the per-sample mask, on the adapter's device
        # Per forward pass: every layer's weights generated once ({site: (down, up)}) and cast once per dtype.
        # Without gradients (sampling) they are kept across passes until a parameter changes (its version).
        self._weights: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._cast: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self._weights_key: tuple | None = None

    @classmethod
    def for_transformer(cls, config: AdapterConfig, transformer: nn.Module) -> "StyleDropAdapter":
        adapter = cls(config, transformer.config.hidden_size, len(transformer.transformer_layers))
        return adapter.to(next(transformer.parameters()).device)

    def attach(self, transformer: nn.Module) -> None:
        self.detach()
        self.__dict__["_transformer"] = transformer
        self._register(transformer)
        self._handles.append(transformer.register_forward_pre_hook(self._prepare_weights))
        for layer_idx, block in enumerate(transformer.transformer_layers):
            for site in SITES:
                hook = self._make_hook(site, layer_idx)
                self._handles.append(getattr(block, site).register_forward_hook(hook))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._weights, self._cast, self._weights_key = None, {}, None
        if getattr(self, "_transformer", None) is not None:
            self._unregister(self._transformer)
            self.__dict__["_transformer"] = None

    def _prepare_weights(self, module: nn.Module, args: tuple) -> None:
        """Transformer pre-hook: generate all 2×L weight pairs once for this forward pass (not in each hook)."""
        if not self._enabled:
            return
        if not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            key = tuple((id(p), p._version, p.data_ptr(), p.dtype) for p in self.parameters())
            if key == self._weights_key and self._weights is not None:
                return  # sampling: the same weights as the previous decoding step
            self._weights_key = key
        else:
            self._weights_key = None
        self._weights = {site: weights.all_weights() for site, weights in self.sites.items()}
        self._cast = {}

    def _site_weights(self, site: str, layer_idx: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if self._weights is None:  # a layer called outside the transformer's forward
            down, up = self.sites[site].weights(layer_idx)
            return down.to(dtype), up.to(dtype)
        cast = self._cast.get((site, dtype))
        if cast is None:
            down, up = self._weights[site]
            cast = self._cast[(site, dtype)] = (down.to(dtype), up.to(dtype))
        return cast[0][layer_idx], cast[1][layer_idx]

    def _make_hook(self, site: str, layer_idx: int):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if not self._enabled:
                return output
            down, up = self._site_weights(site, layer_idx, output.dtype)
            delta = F.gelu(output @ down) @ up
            if self._row_scale is not None:
                delta = delta * self._row_scale.to(delta.dtype).view(-1, *([1] * (delta.dim() - 1)))
            return output + delta

        return hook

    def _on_sample_mask_changed(self) -> None:
        # route_rows builds the mask on the CPU (LoRA routing reads it row by row there); copy it to the
        # adapter's device once per forward pass instead of once per hooked layer (and never mix devices).
        mask = self._sample_mask
        device = next(self.parameters()).device
        self._row_scale = None if mask is None else mask.to(device)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.state_dict().items()}

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, strict=True)
