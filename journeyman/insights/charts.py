"""Static, accessible SVG charts drawn in Python: no JavaScript, no external resources.

Every chart is a `<figure>` holding one `<svg class="chart" role="img">` with a `<title>` and a
`<desc>`, labelled axes with units, and an HTML legend. Colours come from the Okabe–Ito palette
(safe for the common colour-vision deficiencies); heat maps use a viridis-like ramp. Each mark
carries a `<title>`, which browsers show as a tooltip. A chart with nothing to draw is a short
`<p class="empty">` instead, so that every `svg.chart` in a report has marks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

#: Okabe & Ito (2008), ordered for contrast on white
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: viridis anchors, dark to light (perceptually uniform, readable in greyscale)
RAMP = ("#440154", "#3B528B", "#21908C", "#5DC863", "#FDE725")
WIDTH, HEIGHT = 560, 300
MARGIN = (24, 24, 56, 72)  # top, right, bottom, left

Format = Callable[[float], str]


def number(value: float) -> str:
    """A compact number: 3 significant digits, thousands separated, a real minus sign."""
    if value is None or not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 1 or magnitude == 0:
        text = f"{value:,.3g}" if magnitude < 100 else f"{value:,.0f}"
    else:
        decimals = max(1 - math.floor(math.log10(magnitude)), 0)
        text = f"{value:.{decimals}f}"
    return text.replace("-", "\u2212")


def percent(value: float) -> str:
    """A share as a percentage, e.g. 0.125 → '12.5 %'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:.3g} %".replace("-", "\u2212")


@dataclass(frozen=True)
class Series:
    """One named line (optionally with a 95 % band) or one bar / area layer."""

    name: str
    values: Sequence[float | None]
    low: Sequence[float | None] | None = None
    high: Sequence[float | None] | None = None
    color: str | None = None


def _color(s: Series, k: int) -> str:
    return s.color or PALETTE[k % len(PALETTE)]


@dataclass(frozen=True)
class Estimate:
    """One row of a forest plot: a label, a point estimate and its interval."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    note: str = ""
    significant: bool | None = None  # drawn hollow when False (the interval includes 0)


@dataclass(frozen=True)
class Cell:
    """One heat-map cell: the value that sets the colour, its text and its tooltip."""

    value: float | None
    text: str
    tooltip: str


class _Scale:
    """A linear map from a data interval onto a pixel interval."""

    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float) -> None:
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
        self.lo, self.hi, self.out_lo, self.out_hi = lo, hi, out_lo, out_hi

    def __call__(self, value: float) -> float:
        share = (value - self.lo) / (self.hi - self.lo)
        return round(self.out_lo + share * (self.out_hi - self.out_lo), 2)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 × a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _svg(
    chart_id: str, title: str, desc: str, body: list[str], width: int, height: int = HEIGHT
) -> str:
    head = (
        f'<svg class="chart" id="{escape(chart_id)}" role="img" viewBox="0 0 {width} {height}" '
        f'style="max-width:{round(width * 1.25)}px" '
        f'aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>'
    )
    return head + "".join(body) + "</svg>"


def _figure(title: str, svg: str, legend: Sequence[tuple[str, str]] = (), note: str = "") -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{color}"></span>{escape(name)}</li>'
        for name, color in legend
    )
    legend_html = f'<ul class="legend">{items}</ul>' if items else ""
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return (
        f'<figure class="chart-figure"><figcaption>{escape(title)}</figcaption>'
        f"{svg}{legend_html}{note_html}</figure>"
    )


def empty(title: str, reason: str) -> str:
    """What stands in for a chart with no data."""
    return f'<p class="empty"><strong>{escape(title)}:</strong> {escape(reason)}</p>'


def tick_labels(ticks: Sequence[float], fmt: Format) -> list[str]:
    """Tick texts; plain numbers share one number of decimals (0.80, 1.00 — not 0.80, 1)."""
    if fmt is not number or len(ticks) < 2:
        return [fmt(t) for t in ticks]
    step = ticks[1] - ticks[0]
    decimals = max(0, math.ceil(-math.log10(step) - 1e-9))
    if abs(round(step * 10**decimals) - step * 10**decimals) > 1e-6:
        decimals += 1  # e.g. a step of 2.5 or 0.25
    return [f"{t:,.{decimals}f}".replace("-", "\u2212") for t in ticks]


def _y_axis(
    scale: _Scale, ticks: list[float], fmt: Format, label: str, x0: float, x1: float
) -> list[str]:
    parts = []
    for tick, text in zip(ticks, tick_labels(ticks, fmt), strict=True):
        y = scale(tick)
        parts.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y}" y2="{y}"/>')
        parts.append(f'<text class="tick" x="{x0 - 6}" y="{y + 4}" text-anchor="end">')
        parts.append(f"{escape(text)}</text>")
    mid = (scale.out_lo + scale.out_hi) / 2
    parts.append(
        f'<text class="axis-label" transform="translate(16 {mid}) rotate(-90)" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    return parts


def _x_axis_dates(days: Sequence[date], scale: _Scale, y: float, label: str) -> list[str]:
    parts = [f'<line class="axis" x1="{scale.out_lo}" x2="{scale.out_hi}" y1="{y}" y2="{y}"/>']
    step = max(1, math.ceil(len(days) / 8))
    for i in range(0, len(days), step):
        x = scale(i)
        parts.append(f'<line class="axis" x1="{x}" x2="{x}" y1="{y}" y2="{y + 4}"/>')
        parts.append(f'<text class="tick" x="{x}" y="{y + 18}" text-anchor="middle">')
        parts.append(f"{days[i]:%b %d}</text>")
    mid = (scale.out_lo + scale.out_hi) / 2
    parts.append(f'<text class="axis-label" x="{mid}" y="{y + 42}" text-anchor="middle">')
    parts.append(f"{escape(label)}</text>")
    return parts


def _frame(width: int) -> tuple[float, float, float, float]:
    top, right, bottom, left = MARGIN
    return left, width - right, top, HEIGHT - bottom


def _polyline(points: list[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{x},{y}" for x, y in points)


def _runs(index: Sequence[int], *columns: Sequence[float | None]) -> list[list[int]]:
    """Consecutive positions where every column has a finite value (gaps break a line)."""
    runs: list[list[int]] = [[]]
    for i in index:
        if all(c[i] is not None and math.isfinite(c[i]) for c in columns):
            runs[-1].append(i)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def line_chart(
    chart_id: str,
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    fmt: Format = number,
    note: str = "",
    width: int = WIDTH,
    domain: tuple[float, float] | None = None,
) -> str:
    """Lines over days, each with its 95 % interval as a translucent band when given."""
    values = [v for s in series for col in (s.values, s.low or (), s.high or ()) for v in col]
    finite = _finite(values)
    if not days or not finite:
        return empty(title, "no data for this period yet.")
    x0, x1, y0, y1 = _frame(width)
    lo, hi = domain or (min(0.0, min(finite)), max(finite))
    ticks = nice_ticks(lo, hi)
    ys = _Scale(ticks[0], ticks[-1], y1, y0)
    xs = _Scale(0, max(len(days) - 1, 1), x0, x1)
    body = _y_axis(ys, ticks, fmt, y_label, x0, x1) + _x_axis_dates(days, xs, y1, x_label)
    index = range(len(days))
    for k, s in enumerate(series):
        color = _color(s, k)
        if s.low is not None and s.high is not None:
            for run in _runs(index, s.low, s.high):
                upper = [(xs(i), ys(s.high[i])) for i in run]
                lower = [(xs(i), ys(s.low[i])) for i in reversed(run)]
                body.append(
                    f'<path class="band" d="{_polyline(upper + lower)} Z" fill="{color}" '
                    f'fill-opacity="0.18" stroke="none"><title>{escape(s.name)}: 95 % interval'
                    "</title></path>"
                )
        for run in _runs(index, s.values):
            points = [(xs(i), ys(s.values[i])) for i in run]
            if len(points) == 1:
                x, y = points[0]
                points = [(x - 2, y), (x + 2, y)]
            last = s.values[run[-1]]
            tip = f"{s.name}: {fmt(last)} on {days[run[-1]]:%b %d}"
            body.append(
                f'<path class="line" d="{_polyline(points)}" fill="none" stroke="{color}" '
                f'stroke-width="2.5"><title>{escape(tip)}</title></path>'
            )
    desc = f"{y_label} by day for {', '.join(s.name for s in series)}."
    legend = [(s.name, _color(s, k)) for k, s in enumerate(series)]
    return _figure(title, _svg(chart_id, title, desc, body, width), legend, note)


def stacked_area(
    chart_id: str,
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str = "share of decisions",
    note: str = "",
    width: int = WIDTH,
) -> str:
    """Shares over days stacked to 100 % (missing values count as 0)."""
    if not days or not series:
        return empty(title, "no decisions in this period yet.")
    x0, x1, y0, y1 = _frame(width)
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    ys = _Scale(0.0, 1.0, y1, y0)
    xs = _Scale(0, max(len(days) - 1, 1), x0, x1)
    body = _y_axis(ys, ticks, percent, y_label, x0, x1) + _x_axis_dates(days, xs, y1, x_label)
    base = [0.0] * len(days)
    for k, s in enumerate(series):
        color = _color(s, k)
        top = [b + (v or 0.0) for b, v in zip(base, s.values, strict=True)]
        upper = [(xs(i), ys(min(t, 1.0))) for i, t in enumerate(top)]
        lower = [(xs(i), ys(min(b, 1.0))) for i, b in reversed(list(enumerate(base)))]
        if len(days) == 1:  # one day: a column wide enough to see
            upper = [(x0, upper[0][1]), (x1, upper[0][1])]
            lower = [(x1, lower[0][1]), (x0, lower[0][1])]
        last = s.values[-1] or 0.0
        tip = f"{s.name}: {percent(last)} on {days[-1]:%b %d}"
        body.append(
            f'<path class="area" d="{_polyline(upper + lower)} Z" fill="{color}" '
            f'fill-opacity="0.85" stroke="#fff" stroke-width="0.5"><title>{escape(tip)}</title>'
            "</path>"
        )
        base = top
    desc = f"{y_label} by day, stacked: {', '.join(s.name for s in series)}."
    legend = [(s.name, _color(s, k)) for k, s in enumerate(series)]
    return _figure(title, _svg(chart_id, title, desc, body, width), legend, note)


def forest_plot(
    chart_id: str,
    title: str,
    rows: Sequence[Estimate],
    *,
    x_label: str,
    fmt: Format = number,
    reference: float | None = 0.0,
    note: str = "",
    width: int = WIDTH,
    label_width: int = 200,
) -> str:
    """Point estimates with their intervals, one row each, against a reference line."""
    drawn = [r for r in rows if r.value is not None and math.isfinite(r.value)]
    finite = _finite([v for r in drawn for v in (r.value, r.low, r.high)])
    if not drawn:
        return empty(title, "no estimate yet.")
    if reference is not None:
        finite.append(reference)
    left, right, top, row_h = label_width, width - 24, 16, 28
    height = top + row_h * len(drawn) + 56
    bottom = height - 56
    ticks = nice_ticks(min(finite), max(finite))
    xs = _Scale(ticks[0], ticks[-1], left, right)
    body = []
    for tick, text in zip(ticks, tick_labels(ticks, fmt), strict=True):
        x = xs(tick)
        body.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/>')
        body.append(f'<text class="tick" x="{x}" y="{bottom + 18}" text-anchor="middle">')
        body.append(f"{escape(text)}</text>")
    if reference is not None:
        x = xs(reference)
        body.append(f'<line class="reference" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/>')
    for i, r in enumerate(drawn):
        body.extend(_forest_row(r, xs, top + row_h * i + row_h / 2, left, fmt))
    body.append(f'<text class="axis-label" x="{(left + right) / 2}" y="{bottom + 42}" ')
    body.append(f'text-anchor="middle">{escape(x_label)}</text>')
    desc = f"{x_label}: point estimates with 95 % intervals for {len(drawn)} rows."
    legend = [("estimate with its 95 % interval", PALETTE[0])]
    if any(r.significant is False for r in drawn):
        legend.append(("hollow: not significant (the interval includes 0)", "#ffffff"))
    return _figure(title, _svg(chart_id, title, desc, body, width, height), legend, note)


def _forest_row(r: Estimate, xs: _Scale, y: float, left: float, fmt: Format) -> list[str]:
    has_interval = r.low is not None and r.high is not None
    tip = f"{r.label}: {fmt(r.value)}"
    if has_interval:
        tip += f" (95 % interval {fmt(r.low)} to {fmt(r.high)})"
    if r.note:
        tip += f"; {r.note}"
    parts = [
        f'<g class="row"><title>{escape(tip)}</title>',
        f'<text class="row-label" x="{left - 10}" y="{y + 4}" text-anchor="end">'
        f"{escape(r.label)}</text>",
    ]
    if has_interval:
        x_lo, x_hi = xs(r.low), xs(r.high)
        parts.append(
            f'<line class="whisker" x1="{x_lo}" x2="{x_hi}" y1="{y}" y2="{y}" '
            f'stroke="{PALETTE[0]}" stroke-width="2"/>'
        )
    x = xs(r.value)
    fill = "#ffffff" if r.significant is False else PALETTE[0]
    parts.append(
        f'<rect class="point" x="{x - 5}" y="{y - 5}" width="10" height="10" '
        f'fill="{fill}" stroke="{PALETTE[0]}" stroke-width="2"/></g>'
    )
    return parts


def ramp(share: float) -> str:
    """The heat-map colour of a share in [0, 1] (viridis-like, linear between anchors)."""
    share = min(max(share, 0.0), 1.0) * (len(RAMP) - 1)
    k = min(int(share), len(RAMP) - 2)
    t = share - k
    a = [int(RAMP[k][i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(RAMP[k + 1][i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def heat_map(
    chart_id: str,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Sequence[Sequence[Cell | None]],
    *,
    x_label: str,
    y_label: str,
    scale_label: str,
    note: str = "",
    width: int = WIDTH,
    label_width: int = 200,
    domain: tuple[float, float] | None = None,
) -> str:
    """A grid of coloured cells (rows × columns) with each value written in its cell; the
    colour scale spans `domain` (default: the values' range)."""
    finite = _finite([c.value for row in cells for c in row if c is not None])
    if not rows or not columns or not finite:
        return empty(title, "no data yet.")
    left, top, cell_h = label_width, 28, 30
    cell_w = (width - left - 24) / len(columns)
    height = top + cell_h * len(rows) + 72
    lo, hi = domain or (min(finite), max(finite))
    body = []
    for j, name in enumerate(columns):
        x = left + cell_w * (j + 0.5)
        y = top + cell_h * len(rows) + 16
        lines = _wrap(name, max(int(cell_w / 6.8), 4))
        spans = "".join(
            f'<tspan x="{x:.1f}" dy="{0 if k == 0 else 13}">{escape(line)}</tspan>'
            for k, line in enumerate(lines)
        )
        body.append(f'<text class="tick" x="{x:.1f}" y="{y}" text-anchor="middle">{spans}</text>')
    for i, name in enumerate(rows):
        y = top + cell_h * i
        body.append(f'<text class="row-label" x="{left - 8}" y="{y + cell_h / 2 + 4}" ')
        body.append(f'text-anchor="end">{escape(name)}</text>')
        for j, cell in enumerate(cells[i]):
            body.extend(_heat_cell(cell, left + cell_w * j, y, cell_w, cell_h, lo, hi))
    body.append(f'<text class="axis-label" x="{(left + width - 24) / 2}" y="{height - 12}" ')
    body.append(f'text-anchor="middle">{escape(x_label)}</text>')
    body.append(f'<text class="axis-label" x="{left - 8}" y="{top - 8}" text-anchor="end">')
    body.append(f"{escape(y_label)}</text>")
    desc = f"{scale_label} by {y_label} and {x_label}; darker is lower, lighter is higher."
    legend = [(f"lowest {scale_label}", RAMP[0]), (f"highest {scale_label}", RAMP[-1])]
    return _figure(title, _svg(chart_id, title, desc, body, width, height), legend, note)


def _wrap(text: str, width: int, max_lines: int = 2) -> list[str]:
    """Words of text in lines of about `width` characters (the last line takes the rest)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        elif len(lines) < max_lines:
            lines.append(word)
        else:
            lines[-1] += " " + word
    return lines or [""]


def _heat_cell(
    cell: Cell | None, x: float, y: float, w: float, h: float, lo: float, hi: float
) -> list[str]:
    if cell is None or cell.value is None or not math.isfinite(cell.value):
        return [
            f'<rect class="cell empty-cell" x="{x:.1f}" y="{y}" width="{w - 2:.1f}" '
            f'height="{h - 2}" fill="#eeeeee"><title>no data</title></rect>'
        ]
    share = (cell.value - lo) / (hi - lo) if hi > lo else 0.5
    ink = "dark" if share > 0.55 else "light"
    return [
        f'<g class="cell"><title>{escape(cell.tooltip)}</title>',
        f'<rect x="{x:.1f}" y="{y}" width="{w - 2:.1f}" height="{h - 2}" fill="{ramp(share)}"/>',
        f'<text class="cell-text {ink}" x="{x + w / 2 - 1:.1f}" y="{y + h / 2 + 3}" '
        f'text-anchor="middle">{escape(cell.text)}</text></g>',
    ]


def bar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    fmt: Format = number,
    note: str = "",
    width: int = WIDTH,
) -> str:
    """Grouped bars: one group per category, one bar per series."""
    finite = _finite([v for s in series for v in s.values])
    if not categories or not finite or max(finite) <= 0 and min(finite) >= 0:
        return empty(title, "nothing to show for this period yet.")
    x0, x1, y0, y1 = _frame(width)
    ticks = nice_ticks(min(0.0, min(finite)), max(finite))
    ys = _Scale(ticks[0], ticks[-1], y1, y0)
    group_w = (x1 - x0) / len(categories)
    bar_w = group_w * 0.8 / len(series)
    body = _y_axis(ys, ticks, fmt, y_label, x0, x1)
    step = max(1, math.ceil(len(categories) / 10))
    for i, name in enumerate(categories):
        gx = x0 + group_w * i + group_w * 0.1
        for k, s in enumerate(series):
            value = s.values[i]
            if value is None or not math.isfinite(value):
                continue
            top, base = ys(max(value, 0.0)), ys(min(value, 0.0))
            body.append(
                f'<rect class="bar" x="{gx + bar_w * k:.1f}" y="{top}" width="{bar_w:.1f}" '
                f'height="{max(base - top, 0.5):.2f}" fill="{_color(s, k)}">'
                f"<title>{escape(f'{name}, {s.name}: {fmt(value)}')}</title></rect>"
            )
        if i % step == 0:
            cx = x0 + group_w * (i + 0.5)
            body.append(f'<text class="tick" x="{cx:.1f}" y="{y1 + 18}" text-anchor="middle">')
            body.append(f"{escape(name)}</text>")
    body.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{ys(0.0)}" y2="{ys(0.0)}"/>')
    body.append(f'<text class="axis-label" x="{(x0 + x1) / 2}" y="{y1 + 42}" ')
    body.append(f'text-anchor="middle">{escape(x_label)}</text>')
    desc = f"{y_label} by {x_label} for {', '.join(s.name for s in series)}."
    legend = [(s.name, _color(s, k)) for k, s in enumerate(series)]
    return _figure(title, _svg(chart_id, title, desc, body, width), legend, note)
