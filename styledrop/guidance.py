"""StyleDrop's sampling logits (paper Eq. 4), and their weighted sum for composition (§3.4).

At each decoding step k, with Ĝ the model with adapter θ, G the frozen base model, t the prompt and n the
null (negative) prompt:

    l_k = Ĝ(v_k, t) + λA·(Ĝ(v_k, t) − G(v_k, t)) + λB·(G(v_k, t) − G(v_k, n))

λA is adapter guidance, λB classifier-free guidance. `guided_logits` is that equation, written once: `GuidedModel`
(sampling with one adapter, and composition's two) and the weight-merging comparison (composition.MergedLoraModel)
both call it. Composing a style and a content adapter mixes two such terms, l = (1 − γ)·l_s + γ·l_c: `GuidedModel`
sums weighted terms.

Speed lives beside the equation, not inside it: every pass of every term runs as one batched forward
(styledrop/batched_passes.py: text side computed once per call, each row routed to its own adapter), and
with `graphs` a whole step is replayed from one CUDA graph (styledrop/step_graph.py). Neither changes a logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .adapters import Adapter
from .batched_passes import BatchedPasses
from .conditioning import AESTHETIC_SCORE, TextConditioning
from .errors import StyleDropError
from .models import Components
from .step_graph import StepGraph


def guided_logits(adapted: torch.Tensor | None, base: torch.Tensor | None, null: torch.Tensor | None,
                  guidance: float, adapter_guidance: float) -> torch.Tensor:
    """Eq. 4 from its passes: adapted = Ĝ(t), base = G(t), null = G(n); guidance = λB, adapter_guidance = λA.

    A pass Eq. 4 does not need is None (see `passes_needed`): no adapter, or no guidance of either kind. The
    arithmetic is AmusedPipeline's own (G(n) + (1 + λB)·(G(t) − G(n))), so that without an adapter the logits
    are the pipeline's bit for bit."""
    logits = base if guidance == 0 else null + (1.0 + guidance) * (base - null)  # G(t) + λB·(G(t) − G(n))
    if adapted is None:
        return logits
    if logits is None:  # no guidance of either kind: Ĝ(t) alone
        return adapted
    return logits + (1.0 + adapter_guidance) * (adapted - base)  # + Ĝ(t) − G(t) + λA·(Ĝ(t) − G(t))


class Needed(NamedTuple):
    adapted: bool  # Ĝ(t)
    base: bool  # G(t)
    null: bool  # G(n)


def passes_needed(has_adapter: bool, guidance: float, adapter_guidance: float) -> Needed:
    """Which passes `guided_logits` reads: Ĝ(t) with an adapter, G(n) only with λB > 0, G(t) unless Eq. 4 is
    Ĝ(t) alone (an adapter, λA = λB = 0)."""
    return Needed(adapted=has_adapter, base=guidance > 0 or not has_adapter or adapter_guidance > 0,
                  null=guidance > 0)


@dataclass
class Term:
    """One Eq. 4 term: a prompt batch and the adapter that tunes it (None: the base model alone)."""

    cond: TextConditioning
    adapter: Adapter | None = None
    weight: float = 1.0


@dataclass
class TermPasses:
    """One term's passes at one decoding step (None where Eq. 4 does not read it)."""

    adapted: torch.Tensor | None  # Ĝ(t)
    base: torch.Tensor | None  # G(t)
    null: torch.Tensor | None  # G(n), shared by every term


NULL = (None, False)  # the row group of the null prompt: (term index or None, adapter on?)


class GuidedModel:
    """Σ_k w_k · Eq. 4_k for weighted terms: the logits function the sampler calls once per decoding step.

    One term is StyleDrop sampling; two terms weighted (1 − γ) and γ are the paper's composition of a style
    and a content adapter (§3.4). Terms with weight 0 are not computed at all. `forward_passes` gives every
    term's Ĝ(t), G(t), G(n) from one batched forward; with `graphs` (CUDA only) each step after the first is
    replayed from a CUDA graph of `logits`, whose row routing is held until `close()` (the sampler closes).
    """

    def __init__(self, components: Components, terms: list[Term], negative: TextConditioning, guidance: float,
                 adapter_guidance: float = 0.0, aesthetic_score: float = AESTHETIC_SCORE, graphs: bool = False):
        self.terms = [t for t in terms if t.weight != 0]
        if not self.terms:
            raise StyleDropError("At least one model must have a non-zero weight.")
        self.guidance, self.adapter_guidance = guidance, adapter_guidance
        needed = [passes_needed(t.adapter is not None, guidance, adapter_guidance) for t in self.terms]
        # Row groups of the batched forward: (term index, or None for the null prompt; adapter on?).
        self.groups: list[tuple[int | None, bool]] = [NULL] if any(n.null for n in needed) else []  # G(n) shared
        for k, n in enumerate(needed):
            if n.base:
                self.groups.append((k, False))
            if n.adapted:
                self.groups.append((k, True))
        self.batch = BatchedPasses(components, [(negative, None) if k is None else
                                                (self.terms[k].cond, self.terms[k].adapter if on else None)
                                                for k, on in self.groups], aesthetic_score)
        self._graph = StepGraph(self.logits) if graphs and self.batch.graph_safe else None

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Σ_k w_k · Eq. 4 of term k at this step, computed eagerly (`__call__` replays it from a CUDA graph)."""
        total = None
        for term, p in zip(self.terms, self.forward_passes(tokens)):
            logits = guided_logits(p.adapted, p.base, p.null, self.guidance, self.adapter_guidance)
            logits = logits if term.weight == 1.0 else term.weight * logits
            total = logits if total is None else total + logits
        return total

    @property
    def passes(self) -> int:
        """Row groups per step (3 for one adapter with both guidances: Ĝ(t), G(t), G(n))."""
        return len(self.groups)

    def forward_passes(self, tokens: torch.Tensor) -> list[TermPasses]:
        """Each term's passes at this step, from one batched forward."""
        out = dict(zip(self.groups, self.batch(tokens)))
        return [TermPasses(out.get((k, True)), out.get((k, False)), out.get(NULL)) for k in range(len(self.terms))]

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if self._graph is None:
            return self.logits(tokens)
        self.batch.hold_routing()  # the graph reads the routing masks its first step made
        return self._graph(tokens)

    def close(self) -> None:
        """Release the graph and the held routing (adapters back to their normal, all-rows state)."""
        if self._graph is not None:
            self._graph.close()
        self.batch.release_routing()

