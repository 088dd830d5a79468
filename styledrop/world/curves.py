"""The build's learning curves as one PNG: loss and accuracy against training time, per stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _smooth(values: list[float], window: int = 25) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_curves(manifest: dict[str, Any], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = manifest.get("stages", {})
    panels = [s for s in ("clip", "transformer") if s in stages]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), dpi=90, squeeze=False)
    for ax, name in zip(axes[0], panels):
        record = stages[name]
        losses = record.get("losses") or []
        steps = np.arange(1, len(losses) + 1)
        smooth = _smooth(losses)
        ax.plot(steps[len(steps) - len(smooth):], smooth, color="tab:gray", label="loss (smoothed)")
        ax.set_xlabel(f"step ({record.get('seconds', 0):.0f} s of training, {manifest.get('precision')})")
        ax.set_ylabel("loss")
        right = ax.twinx()
        curve = record.get("curve") or []
        keys = [k for k in sorted({k for c in curve for k in c})
                if k.startswith(("content_rank1", "content_accuracy", "style_match"))]
        colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
        for key, colour in zip(keys, colours):
            points = [(c["step"], c[key]) for c in curve if c.get(key) is not None]
            if points:
                right.plot(*zip(*points), marker="o", color=colour, label=key.replace("_", " "))
        right.set_ylim(0, 1.02)
        right.set_ylabel("share")
        lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        labels = ax.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
        right.legend(lines, labels, loc="center right", fontsize=7)
        ax.set_title(f"{manifest.get('name')}: {name}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
