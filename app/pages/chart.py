"""A small inline SVG chart of the mean CLIP text and style score per round (no JavaScript, no library)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

TEXT_COLOR = "#2563eb"
STYLE_COLOR = "#db2777"


@dataclass
class RoundScores:
    number: int
    text: float | None
    style: float | None


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def scores_chart(rows: list[RoundScores], width: int = 360, height: int = 180) -> Markup:
    """Two lines (text score, style score) over the rounds that have scores; an empty string if none has."""
    rows = [r for r in rows if r.text is not None or r.style is not None]
    if not rows:
        return Markup("")
    values = [v for r in rows for v in (r.text, r.style) if v is not None]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.15, 0.01)
    low, high = low - pad, high + pad
    left, right, top, bottom = 48, 30, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w / 2 if len(rows) == 1 else plot_w * i / (len(rows) - 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
             '<title id="chart-title">Mean CLIP scores per round</title>']
    desc = "; ".join(f"round {r.number}: text {_fmt(r.text) if r.text is not None else 'n/a'}, "
                     f"style {_fmt(r.style) if r.style is not None else 'n/a'}" for r in rows)
    parts.append(f'<desc id="chart-desc">{escape(desc)}</desc>')
    for k in range(3):  # horizontal grid lines with their values
        v = low + (high - low) * k / 2
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{_fmt(v)}</text>')
    for i, r in enumerate(rows):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="middle" class="tick">'
                     f'round {r.number}</text>')
    for attr, color, name in (("text", TEXT_COLOR, "text"), ("style", STYLE_COLOR, "style")):
        points = [(x(i), y(getattr(r, attr))) for i, r in enumerate(rows) if getattr(r, attr) is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (px, py), r in zip(points, [r for r in rows if getattr(r, attr) is not None], strict=True):
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{color}">'
                         f'<title>round {r.number}: {name} score {_fmt(getattr(r, attr))}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
