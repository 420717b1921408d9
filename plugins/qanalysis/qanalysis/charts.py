"""Small inline-SVG charts for the analysis sections: lines over dates, bars, scatter, a heatmap table.

Self-contained markup only (no script, no external resource); each point or bar carries a ``<title>``, so hovering
shows its value in any browser. Long series are thinned to at most :data:`MAX_POINTS` points to keep reports small.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

WIDTH, HEIGHT, PAD = 900, 220, 40
MAX_POINTS = 400
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _range(values: Sequence[np.ndarray]) -> tuple[float, float]:
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if not len(finite):
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def _y(value: float, lo: float, hi: float) -> float:
    return PAD / 2 + (HEIGHT - PAD) * (1 - (value - lo) / (hi - lo))


def _frame(chart_id: str, body: list[str], lo: float, hi: float, labels: Sequence[str]) -> str:
    axes = [f"<line x1='{PAD}' y1='{_y(lo, lo, hi):.1f}' x2='{WIDTH - 10}' y2='{_y(lo, lo, hi):.1f}' stroke='#999'/>",
            f"<text x='2' y='{_y(hi, lo, hi) + 4:.1f}' font-size='10'>{hi:.4g}</text>",
            f"<text x='2' y='{_y(lo, lo, hi):.1f}' font-size='10'>{lo:.4g}</text>"]  # fmt: skip
    if lo < 0 < hi:
        axes.append(f"<line x1='{PAD}' y1='{_y(0, lo, hi):.1f}' x2='{WIDTH - 10}' y2='{_y(0, lo, hi):.1f}' "
                    "stroke='#ccc' stroke-dasharray='3'/>")  # fmt: skip
    if labels:
        axes.append(f"<text x='{PAD}' y='{HEIGHT - 4}' font-size='10'>{html.escape(labels[0])}</text>"
                    f"<text x='{WIDTH - 10}' y='{HEIGHT - 4}' font-size='10' text-anchor='end'>"
                    f"{html.escape(labels[-1])}</text>")  # fmt: skip
    return (f"<svg id='{chart_id}' class='chart' width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' "
            f"xmlns='http://www.w3.org/2000/svg'>{''.join(axes)}{''.join(body)}</svg>")


def _legend(names: Sequence[str]) -> str:
    items = "".join(f"<span style='color:{COLORS[i % len(COLORS)]}'>&#9632; {html.escape(str(name))}</span> "
                    for i, name in enumerate(names))  # fmt: skip
    return f"<div class='legend note'>{items}</div>"


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    step = max(1, int(np.ceil(len(frame) / MAX_POINTS)))
    return frame.iloc[::step] if step > 1 else frame


def _labels(index: pd.Index) -> list[str]:
    return [v.strftime("%Y-%m-%d") if isinstance(v, pd.Timestamp) else str(v) for v in index]


def line_chart(chart_id: str, frame: pd.DataFrame) -> str:
    """One line per column of ``frame`` over its index (dates or numbers), with hoverable points."""
    frame = _thin(frame.astype(float))
    labels = _labels(frame.index)
    values = [frame[c].to_numpy(float) for c in frame.columns]
    lo, hi = _range(values)
    n = max(len(frame) - 1, 1)
    body = []
    for k, (name, v) in enumerate(zip(frame.columns, values)):
        color = COLORS[k % len(COLORS)]
        xs = PAD + (WIDTH - PAD - 10) * np.arange(len(v)) / n
        ok = np.isfinite(v)
        pts = " ".join(f"{x:.1f},{_y(y, lo, hi):.1f}" for x, y in zip(xs[ok], v[ok]))
        body.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.4' points='{pts}'/>")
        body.extend(f"<circle cx='{x:.1f}' cy='{_y(y, lo, hi):.1f}' r='2' fill='{color}' fill-opacity='0.01'>"
                    f"<title>{html.escape(str(name))} {labels[i]}: {y:.6g}</title></circle>"
                    for i, (x, y) in enumerate(zip(xs, v)) if ok[i])  # fmt: skip
    return _legend([str(c) for c in frame.columns]) + _frame(chart_id, body, lo, hi, labels)


def stacked_area_chart(chart_id: str, frame: pd.DataFrame) -> str:
    """The columns of ``frame`` (non-negative shares) stacked over its index, one hoverable band per column."""
    frame = _thin(frame.astype(float).fillna(0.0).clip(lower=0.0))
    labels = _labels(frame.index)
    tops = frame.cumsum(axis=1).to_numpy(float)
    lo, hi = _range([np.append(tops.ravel(), 0.0)])
    xs = PAD + (WIDTH - PAD - 10) * np.arange(len(frame)) / max(len(frame) - 1, 1)
    body, base = [], np.zeros(len(frame))
    for k, name in enumerate(frame.columns):
        top = tops[:, k]
        upper = " ".join(f"{x:.1f},{_y(y, lo, hi):.1f}" for x, y in zip(xs, top))
        lower = " ".join(f"{x:.1f},{_y(y, lo, hi):.1f}" for x, y in zip(xs[::-1], base[::-1]))
        shares = frame[name].to_numpy(float)
        tip = html.escape(f"{name}: mean {shares.mean():.4g}, last {shares[-1]:.4g}" if len(shares) else str(name))
        body.append(f"<polygon points='{upper} {lower}' fill='{COLORS[k % len(COLORS)]}' fill-opacity='0.75'>"
                    f"<title>{tip}</title></polygon>")  # fmt: skip
        body.extend(f"<circle cx='{x:.1f}' cy='{_y(y, lo, hi):.1f}' r='2' fill-opacity='0.01'>"
                    f"<title>{html.escape(str(name))} {labels[i]}: {shares[i]:.6g}</title></circle>"
                    for i, (x, y) in enumerate(zip(xs, top)))  # fmt: skip
        base = top
    return _legend([str(c) for c in frame.columns]) + _frame(chart_id, body, lo, hi, labels)


def bar_chart(chart_id: str, series: pd.Series) -> str:
    """One hoverable bar per value of ``series`` over its index."""
    series = _thin(series.astype(float).to_frame()).iloc[:, 0]
    labels = _labels(series.index)
    v = series.to_numpy(float)
    lo, hi = _range([np.append(v, 0.0)])
    width = (WIDTH - PAD - 10) / max(len(v), 1)
    body = []
    for i, y in enumerate(v):
        if not np.isfinite(y):
            continue
        top, base = _y(max(y, 0.0), lo, hi), _y(min(y, 0.0), lo, hi)
        color = COLORS[0] if y >= 0 else COLORS[1]
        body.append(f"<rect x='{PAD + i * width:.1f}' y='{top:.1f}' width='{max(width - 1, 0.5):.1f}' "
                    f"height='{max(base - top, 0.5):.1f}' fill='{color}'><title>{labels[i]}: {y:.6g}</title></rect>")
    return _frame(chart_id, body, lo, hi, labels)


def scatter_chart(chart_id: str, x: np.ndarray, y: np.ndarray, diagonal: bool = True) -> str:
    """Hoverable points of ``(x, y)`` with the 45° line (a Q-Q plot)."""
    lo, hi = _range([x, y])
    span = WIDTH - PAD - 10

    def px(value: float) -> float:
        return PAD + span * (value - lo) / (hi - lo)

    body = [f"<line x1='{px(lo):.1f}' y1='{_y(lo, lo, hi):.1f}' x2='{px(hi):.1f}' y2='{_y(hi, lo, hi):.1f}' "
            "stroke='#636efa'/>"] if diagonal else []  # fmt: skip
    body += [f"<circle cx='{px(a):.1f}' cy='{_y(b, lo, hi):.1f}' r='2.5' fill='#19d3f3'>"
             f"<title>({a:.3f}, {b:.3f})</title></circle>" for a, b in zip(x, y)]  # fmt: skip
    return _frame(chart_id, body, lo, hi, [])


def heatmap_table(table_id: str, table: pd.DataFrame, fmt: str = "{:.4f}") -> str:
    """A table whose cells are shaded by value (blue positive, red negative); empty cells for NaN."""
    values = table.to_numpy(float)
    scale = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for label, row in zip(table.index, values):
        cells = []
        for value in row:
            if not np.isfinite(value):
                cells.append("<td></td>")
                continue
            alpha = min(abs(value) / scale, 1.0) * 0.6 if scale else 0.0
            rgb = "31,119,180" if value >= 0 else "214,39,40"
            cells.append(f"<td style='background:rgba({rgb},{alpha:.2f})' title='{value:.6g}'>"
                         f"{fmt.format(value)}</td>")  # fmt: skip
        rows.append(f"<tr><th>{html.escape(str(label))}</th>{''.join(cells)}</tr>")
    return f"<table id='{table_id}'><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def value_table(table_id: str, rows: Mapping[str, float]) -> str:
    """A two-column table of named figures."""
    body = "".join(f"<tr><td style='text-align:left'>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
                   for k, v in rows.items())  # fmt: skip
    return f"<table id='{table_id}'>{body}</table>"
