"""Progress bars of the long commands (training, decoding, candidates)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


@contextlib.contextmanager
def training_bar(total: int, desc: str) -> Iterator[Callable]:
    """A tqdm bar fed by the trainer's progress callback (step, loss, seconds per step; tqdm adds the ETA)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step")

    def on_progress(p) -> None:
        bar.n = p.step
        bar.set_postfix(loss=f"{p.loss:.4f}", s_per_step=f"{p.seconds_per_step:.3f}")
        bar.refresh()

    try:
        yield on_progress
    finally:
        bar.close()
