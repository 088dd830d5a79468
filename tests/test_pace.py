"""The training ETA leaves out the first step (styledrop/pace.py): no ETA from it alone, then the pace since it
ended. The numbers are the ones a person saw: step 1 of 600 took 3.4 s (compiling), the other 599 took 28 s."""

from __future__ import annotations

from styledrop.pace import SteadyPace, steady_progress
from styledrop.training import TrainProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _report(step: int, total: int = 600, per_step: float = 3.4) -> TrainProgress:
    # what the trainer reports: its own seconds per step, averaged from the start (the first step included)
    return TrainProgress(step, total, 1.0, per_step, per_step * (total - step))


def test_no_eta_from_the_first_step_then_the_pace_after_it():
    clock = Clock()
    pace = SteadyPace(clock)
    clock.now = 3.4
    first = pace(_report(1))
    assert first.eta_seconds is None and first.step == 1  # the old ETA here: 3.4 x 599 = 34 min
    steady = 28 / 599
    clock.now = 3.4 + steady
    second = pace(_report(2, per_step=(3.4 + steady) / 2))
    assert abs(second.eta_seconds - steady * 598) < 1e-9 and abs(second.seconds_per_step - steady) < 1e-12
    clock.now = 3.4 + steady * 59
    tenth = pace(_report(60))
    assert abs(tenth.eta_seconds - (28 - steady * 59)) < 1e-6  # the time the run really had left
    clock.now = 3.4 + 28
    assert pace(_report(600)).eta_seconds == 0


def test_a_resumed_run_measures_from_its_own_first_step():
    clock = Clock()
    pace = SteadyPace(clock)
    clock.now = 5.0
    assert pace(_report(201)).eta_seconds is None  # resumed at 200: step 201 loads and compiles
    clock.now = 6.0
    assert pace(_report(211)).eta_seconds == 0.1 * (600 - 211)


def test_steady_progress_wraps_a_callback():
    seen = []
    wrapped = steady_progress(seen.append)
    wrapped(_report(1))
    wrapped(_report(2))
    assert seen[0].eta_seconds is None and seen[1].eta_seconds is not None
    assert steady_progress(None) is None
