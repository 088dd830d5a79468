"""The launch-free training step: one switch, `TrainConfig.fast`, and what it turns on.

On a GPU the eager step is bound by the CPU launching kernels, not by the GPU. With the switch on, beside the
training loop (styledrop.training.train) and never inside it:

- the frozen transformer is held in bf16 when training in bf16 (its fp32 weights wait on the CPU and are put
  back afterwards, bit for bit), and diffusers' RMSNorm — which upcasts every activation to fp32 and back —
  runs as one fused `F.rms_norm` for bf16 inputs;
- forward and loss (and with them AOTAutograd's backward) are compiled with `torch.compile`, mode
  "reduce-overhead" (CUDA graphs) on CUDA, the default inductor mode elsewhere (`CompiledLoss`);
- AdamW is the fused kernel (one launch for all adapter tensors, its step counters on the device).

A compile that fails (no C++ compiler on a CPU machine, an unsupported op) falls back to the eager loss with
a warning; the run goes on with identical randomness. "auto" switches it on for CUDA only: on a CPU the
compile costs more than a short run saves and needs a compiler.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Callable, Iterator

import torch
import torch._functorch.config as functorch_config
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

FAST_MODES = ("auto", "on", "off")


def fast_enabled(mode: str, device: torch.device) -> bool:
    """Whether the fast step runs: "on", "off", or "auto" (CUDA only)."""
    return mode == "on" or (mode == "auto" and device.type == "cuda")


@contextlib.contextmanager
def held_in_bf16(transformer: nn.Module, trainable: list[nn.Parameter]) -> Iterator[None]:
    """Hold the frozen floating-point weights in bf16 for the block; the trainable ones stay fp32.

    The fp32 originals are parked on the CPU (so the GPU holds only the bf16 copy) and restored exactly.
    """
    keep = {id(p) for p in trainable}
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    for tensor in list(transformer.parameters()) + list(transformer.buffers()):
        if id(tensor) in keep or not tensor.is_floating_point() or tensor.dtype == torch.bfloat16:
            continue
        saved.append((tensor, tensor.data.to("cpu", copy=True)))
        tensor.data = tensor.data.to(torch.bfloat16)
    try:
        yield
    finally:
        for tensor, original in saved:
            tensor.data = original.to(tensor.device)


def _fused_forward(module: nn.Module, original: Callable) -> Callable:
    def forward(hidden_states: torch.Tensor) -> torch.Tensor:
        weight = module.weight
        if weight is None or hidden_states.dtype != weight.dtype:
            return original(hidden_states)
        out = F.rms_norm(hidden_states, module.dim, weight, module.eps)  # fp32 statistics inside one kernel
        return out + module.bias if module.bias is not None else out

    return forward


@contextlib.contextmanager
def fused_rms_norms(transformer: nn.Module) -> Iterator[None]:
    """diffusers' RMSNorm casts a bf16 activation to fp32 and back; use torch's fused kernel instead."""
    from diffusers.models.normalization import RMSNorm

    patched = [m for m in transformer.modules() if isinstance(m, RMSNorm)]
    for module in patched:
        module.forward = _fused_forward(module, module.forward)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def make_optimizer(params: list[nn.Parameter], lr: float, weight_decay: float, fast: bool) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True if fast else None)


def after_load(optimizer: torch.optim.AdamW, fast: bool) -> None:
    """A checkpoint's optimizer state keeps the settings it was saved with; give it this run's kernel.

    The fused kernel wants its step counters as float32 tensors on the parameters' device.
    """
    for group in optimizer.param_groups:
        group["fused"] = True if fast else None
        group["foreach"] = None
        if not fast:
            continue
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and "step" in state:
                state["step"] = state["step"].to(p.device, torch.float32)


class CompiledLoss:
    """`loss_fn(*batch)` compiled; the eager `loss_fn` from the first failure to compile on.

    The backward graph is lowered together with the forward (torch lowers it lazily, at the first backward,
    by default), so that a failure to compile either one surfaces here, where the eager loss can take over,
    and not in the training loop's `loss.backward()`. The loss comes back as a clone: on CUDA the graph's
    output memory is overwritten by the next replay, and a clone passes the gradient through unchanged.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], device: torch.device):
        self.eager = loss_fn
        self.device = device
        torch.compiler.reset()  # each run closes over new tensors: start from an empty cache, not the limit
        mode = "reduce-overhead" if device.type == "cuda" else None
        self.compiled: Callable[..., torch.Tensor] | None = torch.compile(loss_fn, mode=mode, fullgraph=False,
                                                                          dynamic=False)
        self.fell_back: str | None = None

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                if self.device.type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()
                with functorch_config.patch(force_non_lazy_backward_lowering=True):
                    return self.compiled(*args).clone()
            except Exception as error:  # noqa: BLE001 — any compile failure: the eager loss is always correct
                self.fell_back = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                warnings.warn(f"Compiled training step failed, continuing eagerly ({self.fell_back})",
                              RuntimeWarning, stacklevel=2)
                log.warning("compiled training step failed, continuing eagerly: %s", self.fell_back)
                self.compiled = None
        return self.eager(*args)
