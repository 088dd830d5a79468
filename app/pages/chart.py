"""A small inline SVG chart of the mean CLIP text and style score per round (no JavaScript, no library),
each score on its own axis fitted to its values."""

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


TICK_PX = 11  # the charts' label size (static/app.css: .chart .tick), in viewBox units
CHAR_PX = 0.62 * TICK_PX  # about how wide one character of a label is


def _label(x: float, y: float, text: str, width: float, gap: float = 7) -> str:
    """A point's label, beside it on the right, or on its left where the right would run out of the chart, and
    below it where above would: every label stays inside the viewBox, none is clipped."""
    wide = len(text) * CHAR_PX
    anchor, lx = ("start", x + gap) if x + gap + wide <= width - 2 else ("end", x - gap)
    ly = y - 6 if y - 6 - TICK_PX >= 0 else y + 6 + TICK_PX
    return f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" class="tick">{escape(text)}</text>'


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _fit(values: list[float]) -> tuple[float, float, int]:
    """The axis range fitted to the values (a little margin, never a zero span) and the decimals its ticks
    need to tell the values apart: rounds 0.001 apart must not look flat."""
    low, high = min(values), max(values)
    span = high - low
    pad = span * 0.15 if span > 0 else max(abs(high) * 0.01, 0.001)
    low, high = low - pad, high + pad
    digits = 3
    while digits < 6 and (high - low) / 2 < 10 ** -digits * 2:
        digits += 1
    return low, high, digits


def scores_chart(rows: list[RoundScores], width: int = 360, height: int = 220) -> Markup:
    """Two bands, text score above and style score below, each with its own axis fitted to its own values
    (the two scores live on different scales, so one shared axis flattens both); an empty string if no
    round has scores."""
    rows = [r for r in rows if r.text is not None or r.style is not None]
    if not rows:
        return Markup("")
    fits = {attr: _fit([getattr(r, attr) for r in rows if getattr(r, attr) is not None] or [0.0])
            for attr in ("text", "style")}
    widest = max(len(_fmt(v, digits)) for low, high, digits in fits.values() for v in (low, high))
    left, right, top, bottom, gap = max(52, round(widest * CHAR_PX) + 12), 30, 10, 24, 24  # room for "-0.116397"
    band_h = (height - top - bottom - gap) / 2
    plot_w = width - left - right

    def x(i: int) -> float:
        return left + (plot_w / 2 if len(rows) == 1 else plot_w * i / (len(rows) - 1))

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
             '<title id="chart-title">Mean CLIP scores per round</title>']
    desc = "; ".join(f"round {r.number}: text {_fmt(r.text) if r.text is not None else 'n/a'}, "
                     f"style {_fmt(r.style) if r.style is not None else 'n/a'}" for r in rows)
    parts.append(f'<desc id="chart-desc">{escape(desc)}</desc>')
    for band, (attr, color, name) in enumerate((("text", TEXT_COLOR, "text"), ("style", STYLE_COLOR, "style"))):
        values = [getattr(r, attr) for r in rows if getattr(r, attr) is not None]
        band_top = top + band * (band_h + gap)
        parts.append(f'<text x="{left}" y="{band_top + 9:.1f}" class="tick band-name">{name} score</text>')
        if not values:
            continue
        low, high, digits = fits[attr]

        def y(v: float, band_top: float = band_top, low: float = low, high: float = high) -> float:
            return band_top + band_h * (1 - (v - low) / (high - low))

        for k in range(3):  # horizontal grid lines with their values
            v = low + (high - low) * k / 2
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
            parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">'
                         f'{_fmt(v, digits)}</text>')
        scored = [(i, r) for i, r in enumerate(rows) if getattr(r, attr) is not None]
        points = [(x(i), y(getattr(r, attr))) for i, r in scored]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (px, py), (_, r) in zip(points, scored, strict=True):
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{color}">'
                         f'<title>round {r.number}: {name} score {_fmt(getattr(r, attr), digits)}</title></circle>')
    for i, r in enumerate(rows):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 6}" text-anchor="middle" class="tick">'
                     f'round {r.number}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def loss_chart(points: list, total_steps: int, width: int = 360, height: int = 120) -> Markup:
    """The training loss over the steps so far (x spans the whole run, so the curve grows to the right as
    training goes); an empty string with fewer than two points."""
    points = [(float(p[0]), float(p[1])) for p in points or [] if len(p) == 2]
    if len(points) < 2:
        return Markup("")
    left, right, top, bottom = 44, 10, 8, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    steps = max(float(total_steps or 0), points[-1][0], 1.0)
    low, high, digits = _fit([loss for _, loss in points])
    digits = min(digits, 4)

    def x(step: float) -> float:
        return left + plot_w * step / steps

    def y(loss: float) -> float:
        return top + plot_h * (1 - (loss - low) / (high - low))

    path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
    last_step, last_loss = points[-1]
    parts = [f'<svg class="chart loss-chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Training loss: {_fmt(points[0][1], digits)} at step {points[0][0]:.0f}, '
             f'{_fmt(last_loss, digits)} at step {last_step:.0f} of {steps:.0f}" xmlns="http://www.w3.org/2000/svg">']
    for k in (0, 2):
        v = low + (high - low) * k / 2
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 5}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{_fmt(v, digits)}</text>')
    parts.append(f'<text x="{left}" y="{height - 6}" class="tick">step 0</text>')
    parts.append(f'<text x="{width - right}" y="{height - 6}" text-anchor="end" class="tick">{steps:.0f}</text>')
    parts.append(f'<polyline points="{path}" fill="none" stroke="{TEXT_COLOR}" stroke-width="1.6"/>')
    parts.append(f'<circle cx="{x(last_step):.1f}" cy="{y(last_loss):.1f}" r="3" fill="{TEXT_COLOR}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def evaluation_chart(rows: list[dict], width: int = 360, height: int = 240) -> Markup:
    """The paper's Figure 6 view of an evaluation: one point per model (base, round 1, …) at (text score,
    style score), each axis fitted to the values, so trading text fidelity for style is visible at a glance."""
    rows = [r for r in rows if r.get("text_mean") is not None and r.get("style_mean") is not None]
    if not rows:
        return Markup("")
    left, right, top, bottom = 52, 16, 12, 34
    xs, ys = [r["text_mean"] for r in rows], [r["style_mean"] for r in rows]
    (x_low, x_high, x_digits), (y_low, y_high, y_digits) = _fit(xs), _fit(ys)

    def px(v: float) -> float:
        return left + (width - left - right) * (v - x_low) / (x_high - x_low)

    def py(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - y_low) / (y_high - y_low))

    desc = "; ".join(f"{r['name']}: text {_fmt(r['text_mean'])}, style {_fmt(r['style_mean'])}" for r in rows)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="eval-title eval-desc" '
             f'xmlns="http://www.w3.org/2000/svg">', '<title id="eval-title">CLIP text score against style score</title>',
             f'<desc id="eval-desc">{escape(desc)}</desc>']
    for k in range(3):
        vx, vy = x_low + (x_high - x_low) * k / 2, y_low + (y_high - y_low) * k / 2
        anchor = ("start", "middle", "end")[k]  # the end ticks' labels stay inside the plot's width
        parts.append(f'<line x1="{px(vx):.1f}" x2="{px(vx):.1f}" y1="{top}" y2="{height - bottom}" class="grid"/>')
        parts.append(f'<text x="{px(vx):.1f}" y="{height - bottom + 14}" text-anchor="{anchor}" class="tick">'
                     f'{_fmt(vx, x_digits)}</text>')
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(vy):.1f}" y2="{py(vy):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{py(vy) + 4:.1f}" text-anchor="end" class="tick">{_fmt(vy, y_digits)}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 4}" text-anchor="middle" class="tick">'
                 'text score →</text>')
    parts.append(f'<text x="12" y="{(top + height - bottom) / 2:.1f}" text-anchor="middle" class="tick" '
                 f'transform="rotate(-90 12 {(top + height - bottom) / 2:.1f})">style score →</text>')
    points = [(px(r["text_mean"]), py(r["style_mean"])) for r in rows]
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{STYLE_COLOR}" stroke-width="1.5" '
                     'stroke-dasharray="4 3"/>')
    for (x, y), r in zip(points, rows, strict=True):
        color = TEXT_COLOR if r["name"] == "base" else STYLE_COLOR
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}"><title>{escape(r["name"])}: text '
                     f'{_fmt(r["text_mean"])}, style {_fmt(r["style_mean"])}</title></circle>')
        parts.append(_label(x, y, r["name"], width))
    parts.append("</svg>")
    return Markup("".join(parts))
