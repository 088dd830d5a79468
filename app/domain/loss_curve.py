"""A round's loss curve as training goes: [[step, loss], ...] on the round row (rounds.loss_curve), written by
the worker with its progress and drawn by the pages (app/pages/chart.py:loss_chart).

Bounded: past LOSS_POINTS points every other point is dropped (the first and the latest always stay), so a
long training run keeps its shape in a small, fixed-size column.
"""

from __future__ import annotations

import math
from typing import Any

LOSS_POINTS = 400


def add_loss_point(curve: list[Any], step: int, loss: float) -> list[list[float]]:
    """The curve with (step, loss) appended; a non-finite loss is left out, the same step replaced."""
    points = [list(p) for p in curve if p[0] < step]
    if math.isfinite(loss):
        points.append([step, round(loss, 5)])
    if len(points) > LOSS_POINTS:
        points = points[:-1:2] + [points[-1]]
    return points
