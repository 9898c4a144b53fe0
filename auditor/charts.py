"""Inline SVG charts drawn on the server: no JavaScript, no chart library, nothing fetched from elsewhere.

Each chart carries a <title> and an aria-label with its figures, and the page shows the same figures as text, so
the chart is for the eye and never the only place a number appears.
"""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


def bar_chart(
    bars: list[tuple[str, int]], *, title: str, width: int = 720, height: int = 200, label_every: int = 1
) -> SafeString:
    """Vertical bars with the value above each non-zero bar and every `label_every`-th label below."""
    top, bottom, left = 18, 34, 8
    plot_h = height - top - bottom
    slot = (width - 2 * left) / max(len(bars), 1)
    peak = max([v for _, v in bars] + [1])
    parts = []
    for i, (label, value) in enumerate(bars):
        bar_h = round(plot_h * value / peak, 1)
        x = round(left + i * slot + slot * 0.12, 1)
        w = round(slot * 0.76, 1)
        y = top + plot_h - bar_h
        cx = round(left + (i + 0.5) * slot, 1)
        parts.append(
            format_html(
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>',
                x,
                y,
                w,
                max(bar_h, 0),
                label,
                value,
            )
        )
        if value:
            parts.append(format_html('<text class="value" x="{}" y="{}">{}</text>', cx, y - 4, value))
        if i % label_every == 0 or i == len(bars) - 1:
            parts.append(format_html('<text class="label" x="{}" y="{}">{}</text>', cx, height - 12, label))
    summary = ", ".join(f"{label}: {value}" for label, value in bars)
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{t}. {s}" '
        'preserveAspectRatio="xMidYMid meet"><title>{t}</title>'
        '<line class="axis" x1="{l}" x2="{r}" y1="{b}" y2="{b}"></line>{parts}</svg>',
        w=width,
        h=height,
        t=title,
        s=summary,
        l=left,
        r=width - left,
        b=top + plot_h,
        parts=format_html_join("", "{}", ((p,) for p in parts)),
    )
