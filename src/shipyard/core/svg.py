"""Tiny inline-SVG charts for HTML reports: bars, histograms, reference-vs-current pairs."""

from __future__ import annotations

from html import escape

_BAR_COLOUR = "#c0392b"
_HIST_COLOUR = "#2e86c1"
_REFERENCE_COLOUR = "#aab7c4"
_CURRENT_COLOUR = "#2e86c1"


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


def paired_histogram(
    reference: list[float], current: list[float], low: float, high: float, *, width: int = 360
) -> str:
    """Two distributions over the same equal-width bins: reference bars behind current ones.

    ``reference`` and ``current`` are shares per bin (each summing to 1), so samples of
    different sizes compare directly.
    """
    height, axis_h = 120, 18
    plot_h = height - axis_h
    top = max([*reference, *current, 1e-12])
    bin_w = width / max(len(reference), 1)
    bars = []
    for index, (ref, cur) in enumerate(zip(reference, current, strict=True)):
        x = index * bin_w
        for share, colour, inset, name in (
            (ref, _REFERENCE_COLOUR, 0.5, "reference"),
            (cur, _CURRENT_COLOUR, bin_w * 0.3, "current"),
        ):
            bar_h = plot_h * share / top
            bars.append(
                f'<rect x="{x + inset:.1f}" y="{plot_h - bar_h:.1f}" '
                f'width="{max(bin_w - inset - 1, 0.5):.1f}" height="{bar_h:.1f}" '
                f'fill="{colour}"><title>{name}: {share:.2%}</title></rect>'
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


def paired_bars(
    labels: list[str], reference: list[float], current: list[float], *, width: int = 360
) -> str:
    """Per category, the reference share above the current share, as horizontal bars."""
    label_w, row_h = 90, 20
    plot_w = width - label_w - 50
    top = max([*reference, *current, 1e-12])
    rows = []
    for index, (label, ref, cur) in enumerate(zip(labels, reference, current, strict=True)):
        y = index * row_h
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
        )
        for offset, share, colour, name in (
            (2, ref, _REFERENCE_COLOUR, "reference"),
            (10, cur, _CURRENT_COLOUR, "current"),
        ):
            bar_w = max(plot_w * share / top, 0.5)
            rows.append(
                f'<rect x="{label_w}" y="{y + offset}" width="{bar_w:.1f}" '
                f'height="7" fill="{colour}"><title>{escape(label)} {name}: {share:.2%}</title>'
                "</rect>"
            )
    height = max(row_h * len(labels), row_h)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-size="11" '
        f'font-family="sans-serif">{"".join(rows)}</svg>'
    )
