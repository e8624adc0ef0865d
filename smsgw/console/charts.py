"""Bar charts as SVG, drawn on the server: no script, no library, readable at 360 px wide.

A chart is stacked bars, one bar per period, one colour per outcome (the stylesheet's
`.s-<key>` classes); each piece has a `<title>` (the browser's tooltip, and what a screen
reader says), and the page puts the same figures in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 200
LEFT, BOTTOM, TOP = 44, 22, 8


@dataclass(frozen=True)
class Series:
    key: str                 # css class suffix and data key
    label: str               # shown in the legend and tooltips
    values: Sequence[int]    # one per bar


def stacked_bars(labels: Sequence[str], series: Sequence[Series], *, title: str, label_every: int = 1) -> Markup:
    """An SVG of stacked bars: `labels[i]` under bar i, each series' values[i] stacked in order."""
    count = len(labels)
    totals = [sum(s.values[i] for s in series) for i in range(count)]
    top = _nice(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(count, 1)
    bar = max(1.0, slot * 0.8)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
             ' xmlns="http://www.w3.org/2000/svg">', f"<title>{escape(title)}</title>"]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - 4}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_short(top * fraction)}</text>')
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            height = plot_h * value / top
            y -= height
            parts.append(f'<rect class="s-{escape(s.key)}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}">'
                         f"<title>{escape(label)}: {escape(s.label)} {value:,}</title></rect>")
        if i % label_every == 0:
            parts.append(f'<text class="axis" x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                         f"{escape(label)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice(value: int) -> int:
    """A round top for the axis, at least `value` (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"
