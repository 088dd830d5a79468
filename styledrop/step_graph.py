"""A decoding step replayed from a CUDA graph: one launch per step instead of thousands.

At 256 px a decoding step of amused-256 is about 2,000 small kernels whose launches cost more CPU time than
the GPU spends running them (docs/benchmarks.md). Within one sampling call every step runs the same kernels
on tensors of the same shapes — only the image tokens change — so the step is captured once and replayed:

* the first call runs eagerly on a side stream, as torch.cuda.graphs asks of a warm-up (it fills the text-side
  cache, the adapter's generated weights, autocast's weight casts and cuBLAS' workspaces: nothing lazy may
  happen during capture);
* the second call captures the step with a static input and replays it; every later call copies its tokens
  into the static input and replays.

The graph belongs to one sampling call (one `GuidedModel`): its text side, adapter weights and row routing
are constants of that call, held alive by the model while the graph exists. The logits it returns live in
the graph's static output and are overwritten by the next step (the sampler reads them before that).
A capture that fails (an op that synchronises with the host, e.g. LoRA's per-row routing) falls back to
eager steps for the rest of the call, with the same results.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import torch

log = logging.getLogger(__name__)
MODES = ("auto", "on", "off")


def graphs_wanted(mode: str, device: torch.device | str) -> bool:
    """CUDA graphs for decoding steps: `auto` (the default) and `on` use them on CUDA, `off` never; the
    environment variable STYLEDROP_SAMPLING_GRAPHS=off turns them off everywhere (a safety valve)."""
    if mode not in MODES:
        raise ValueError(f"graphs must be one of {MODES}, got {mode!r}")
    if os.environ.get("STYLEDROP_SAMPLING_GRAPHS", "").lower() in ("0", "off", "false"):
        return False
    return mode != "off" and torch.device(device).type == "cuda" and torch.cuda.is_available()


class StepGraph:
    """fn(x) for same-shaped x: eager on the first call, then captured once and replayed."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = fn
        self.calls = 0
        self.failed = False
        self._graph: torch.cuda.CUDAGraph | None = None
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.failed:
            return self.fn(x)
        if self._graph is None and self.calls == 1:
            return self._warm_up(x)
        if self._graph is None:
            self._capture(x)
            if self._graph is None:
                return self.fn(x)
        self._input.copy_(x)
        self._graph.replay()
        return self._output

    def _warm_up(self, x: torch.Tensor) -> torch.Tensor:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = self.fn(x)
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def _capture(self, x: torch.Tensor) -> None:
        self._input = x.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._output = self.fn(self._input)
        except Exception as exc:  # capture refused an op: stay eager for this call
            log.warning("decoding step not captured in a CUDA graph (%s: %s); running it eagerly",
                        type(exc).__name__, exc)
            self.failed, self._input, self._output = True, None, None
            torch.cuda.synchronize()
            return
        self._graph = graph

    def close(self) -> None:
        """Free the graph's memory pool (the end of a sampling call)."""
        self._graph, self._input, self._output = None, None, None
