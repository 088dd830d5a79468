"""Every pass of a decoding step in one forward: Eq. 4's G(n), G(t) and Ĝ(t) (of every term) batched as rows.

Three speed mechanisms, none of which changes a logit (tests/test_sampling.py compares them with plain
forwards, and the sampler with AmusedPipeline):

* the rows' conditioning (prompt embeddings, micro-conditioning) is assembled once per sampling call, since the
  batch is the same at every step;
* each row group runs with its own adapter only (`route_rows`: the others are off for those rows), so Ĝ(t)
  and G(t) share one forward;
* the text side of the batch (encoder projection, AdaLN modulations, cross-attention K/V) is computed on the
  first step and reused after (styledrop/text_side.py).

For a CUDA graph of the step (styledrop/step_graph.py) the row routing can be held open across steps
(`hold_routing`), since the graph replays the routing masks its first step made.
"""

from __future__ import annotations

import contextlib

import torch

from .adapters import Adapter
from .adapters.base import route_rows
from .conditioning import AESTHETIC_SCORE, TextConditioning, micro_conds
from .models import Components
from .text_side import TextSideCache


class BatchedPasses:
    """Logits of several (prompt batch, adapter or None) groups of equal size, from one forward per step."""

    def __init__(self, components: Components, groups: list[tuple[TextConditioning, Adapter | None]],
                 aesthetic_score: float = AESTHETIC_SCORE):
        self.transformer = components.transformer
        self.count = len(groups)
        self.cond = TextConditioning.cat([cond for cond, _ in groups])
        side = components.resolution
        self.micro = micro_conds(side, side, len(self.cond), self.cond.hidden.device, self.cond.hidden.dtype,
                                 aesthetic=aesthetic_score)
        self.owners = [adapter for cond, adapter in groups for _ in range(len(cond))]  # each row's adapter
        self.text_side = TextSideCache(self.transformer, self.cond.hidden, self.cond.pooled, self.micro)
        self._held: contextlib.ExitStack | None = None

    @property
    def graph_safe(self) -> bool:
        """Whether the row routing can be captured in a CUDA graph: adapters that own some rows but not all
        must route rows on the device (LoRA's routing, peft's adapter_names, indexes rows from the host)."""
        owners = {id(o): o for o in self.owners}
        return len(owners) == 1 or all(getattr(o, "graph_safe_rows", False) for o in owners.values() if o is not None)

    def __call__(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One logits tensor per group, in the order of the groups."""
        rows = tokens.repeat(self.count, 1, 1)
        if self._held is not None:
            out = self.text_side(rows)
        else:
            with route_rows(self.transformer, self.owners):
                out = self.text_side(rows)
        return out.chunk(self.count)

    def hold_routing(self) -> None:
        """Keep the row routing in force from now until `release_routing`."""
        if self._held is None:
            self._held = contextlib.ExitStack()
            self._held.enter_context(route_rows(self.transformer, self.owners))

    def release_routing(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
