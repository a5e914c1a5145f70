"""Tiny inline-SVG charts for the HTML report: horizontal bars and histograms, no dependency."""

from __future__ import annotations

from html import escape

_BAR_COLOUR = "#c0392b"
_HIST_COLOUR = "#2e86c1"


def bar_chart(items: list[tuple[str, int]], *, width: int = 760) -> str:
    """One labelled horizontal bar per (label, count), longest first as given."""
    if not items:
        return '<p class="none">No failing checks.</p>'
    label_w, row_h, count_w = 260, 22, 90
    plot_w = width - label_w - count_w
    top = max(count for _, count in items) or 1
    rows = []
    for index, (label, count) in enumerate(items):
        y = index * row_h
        bar_w = max(1.0, plot_w * count / top)
        rows.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w:.1f}" height="{row_h - 6}" '
            f'fill="{_BAR_COLOUR}"><title>{escape(label)}: {count:,}</title></rect>'
            f'<text x="{label_w + bar_w + 6:.1f}" y="{y + 15}">{count:,}</text>'
        )
    height = row_h * len(items)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-size="12" '
        f'font-family="sans-serif">{"".join(rows)}</svg>'
    )


def histogram(counts: list[int], low: float, high: float, *, width: int = 360) -> str:
    """Equal-width bins from ``low`` to ``high``, with the range written under the axis."""
    height, axis_h = 120, 18
    plot_h = height - axis_h
    top = max([*counts, 1])
    bin_w = width / max(len(counts), 1)
    bars = []
    for index, count in enumerate(counts):
        bar_h = plot_h * count / top
        bars.append(
            f'<rect x="{index * bin_w + 0.5:.1f}" y="{plot_h - bar_h:.1f}" '
            f'width="{max(bin_w - 1, 0.5):.1f}" height="{bar_h:.1f}" fill="{_HIST_COLOUR}">'
            f"<title>{count:,}</title></rect>"
        )
    axis = (
        f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#888"/>'
        f'<text x="0" y="{height - 4}">{low:,.4g}</text>'
        f'<text x="{width}" y="{height - 4}" text-anchor="end">{high:,.4g}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-size="11" '
        f'font-family="sans-serif">{"".join(bars)}{axis}</svg>'
    )
