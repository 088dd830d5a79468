"""Honest progress for a whole round: its phases (training, drawing n of N, scoring), each with its own
progress, and one ETA for the round, not just for its training.

The worker reports training progress on the round row (step, total_steps, the engine's ETA for training) and
the phase; the candidates drawn so far are rows of their own, so "drawing n of N" is a count. The time one
image takes is measured from the candidates' creation times: this round's once it has two, else the style's
previous round's. Scoring is one short CLIP call with no progress of its own; it is shown as a phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.lifecycle import JobStatus
from ..domain.models import Candidate, Round, as_utc, utcnow
from .rendering import duration

PHASES = ("training", "candidates", "scoring")
LABELS = {"training": "Training", "candidates": "Drawing", "scoring": "Scoring"}


def expected_candidates(rnd: Round) -> int:
    """How many candidates the round draws: prompts x per prompt, from its plan (or what it has, if more)."""
    return max(rnd.plan.candidates.total, len(rnd.candidates))


def seconds_per_image(candidates: list[Candidate]) -> float | None:
    """The time between consecutive candidates of one round (None with fewer than two)."""
    times = sorted(as_utc(c.created_at) for c in candidates if c.created_at is not None)
    if len(times) < 2:
        return None
    return max((times[-1] - times[0]).total_seconds() / (len(times) - 1), 0.0)


def _earlier_rate(rnd: Round) -> float | None:
    for other in sorted(rnd.style.rounds, key=lambda r: -r.number):
        if other.number < rnd.number and other.status == JobStatus.succeeded.value:
            rate = seconds_per_image(list(other.candidates))
            if rate is not None:
                return rate
    return None


@dataclass
class Phase:
    key: str
    label: str
    state: str  # done | now | next
    fraction: float | None  # None: no measurable progress (scoring)
    detail: str

    @property
    def percent(self) -> int:
        return round((self.fraction or 0.0) * 100)


def round_progress(rnd: Round, now: datetime | None = None) -> dict[str, Any]:
    """The phases of a queued or running round, the round's ETA in seconds (None while it cannot be told)
    and its overall progress (elapsed / (elapsed + ETA) once the ETA is known, else by phase)."""
    now = now or utcnow()
    phase = rnd.phase or ""
    made, expected = len(rnd.candidates), expected_candidates(rnd)
    position = PHASES.index(phase) if phase in PHASES else (-1 if rnd.status == JobStatus.queued.value
                                                            or phase in ("", "starting") else 0)
    total = rnd.total_steps or 0
    train_fraction = min(rnd.step / total, 1.0) if total else 0.0
    rate = seconds_per_image(list(rnd.candidates)) if phase == "candidates" else None
    rate = rate if rate is not None else _earlier_rate(rnd)

    def state(index: int) -> str:
        return "done" if index < position else ("now" if index == position else "next")

    phases = [
        Phase("training", LABELS["training"], state(0), 1.0 if position > 0 else train_fraction,
              f"step {rnd.step} of {total}"),
        Phase("candidates", LABELS["candidates"], state(1), (1.0 if position > 1 else made / expected if expected
                                                             else 0.0), f"{made} of {expected} images"),
        Phase("scoring", LABELS["scoring"], state(2), None, "with CLIP"),
    ]
    eta: float | None = None
    to_draw = max(expected - made, 0)
    if position <= 0:  # loading the model or training: the engine's training ETA, plus drawing
        if rnd.eta_seconds is not None and rate is not None and phase == "training":
            eta = rnd.eta_seconds + to_draw * rate
    elif position == 1:
        eta = to_draw * rate if rate is not None else None
    else:
        eta = 0.0
    started = as_utc(rnd.started_at)
    elapsed = (now - started).total_seconds() if started and rnd.status == JobStatus.running.value else 0.0
    if eta is not None and elapsed > 0 and position >= 0:
        overall = elapsed / (elapsed + eta) if elapsed + eta > 0 else 0.0
    else:  # by phase: training counts most
        overall = {-1: 0.0, 0: 0.8 * train_fraction, 1: 0.8 + 0.18 * (made / expected if expected else 0),
                   2: 0.98}[position]
    if position == 0 and rnd.eta_seconds is not None and eta is None and phase == "training":
        eta_text = f"training {duration(rnd.eta_seconds)} + drawing {expected} images"
    elif eta is None:
        eta_text = "estimating…" if rnd.status == JobStatus.running.value else "—"
    elif position == 2 or (position == 1 and eta < 1):
        # scoring, or drawing with under a second left by the pace so far (the images of one batch are saved
        # milliseconds apart; all of them may be drawn already): never "0 s" while the round still works
        eta_text = "a few seconds"
    else:
        eta_text = duration(eta)
    return {"phases": phases, "eta_seconds": eta, "eta_text": eta_text, "fraction": min(overall, 1.0),
            "percent": round(min(overall, 1.0) * 100), "made": made, "expected": expected,
            "phase_label": LABELS.get(phase, "Loading the model" if phase == "starting" else "Waiting")}
