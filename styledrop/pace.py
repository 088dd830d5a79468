"""The training ETA, measured after the first step.

The first step of a run (or of a resumed one) is not a step like the others: it compiles (torch.compile, CUDA
graphs), warms caches and, on a fresh run, follows the step-0 samples. Extrapolating from it told a person
"3 min 24 s" for a run that ended 28 s later. So the pace is measured from the end of the first step on: no ETA
after the first step alone (None: "estimating"), then (time since the first step ended) / (steps since), which
takes in what recurs (sampling every N steps, checkpoints) and leaves out what happens once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable


class SteadyPace:
    """Rewrites each progress report's seconds per step and ETA from the pace after the first report (the end
    of the run's first step: the trainer always reports it)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.first: tuple[int, float] | None = None  # (step, when) of the first report

    def __call__(self, progress: Any) -> Any:
        now = self.clock()
        if self.first is None:
            self.first = (progress.step, now)
        first_step, first_at = self.first
        if progress.step <= first_step:
            return replace(progress, eta_seconds=None)  # one step, and the unusual one: nothing to tell yet
        per_step = (now - first_at) / (progress.step - first_step)
        return replace(progress, seconds_per_step=per_step, eta_seconds=per_step * (progress.total - progress.step))


def steady_progress(on_progress: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    """`on_progress` fed reports whose ETA leaves out the first step (SteadyPace); None stays None."""
    if on_progress is None:
        return None
    pace = SteadyPace()
    return lambda progress: on_progress(pace(progress))
