"""The portfolio plugin's sections of a run's HTML report: tracking error (ex ante and realised) and active factor
exposures over time. Inline SVG and tables only (the report stays offline)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

#: colours of the lines, in order.
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")  # fmt: skip
#: the most factors drawn in the exposure chart (the largest mean absolute exposures).
MAX_FACTORS = len(COLOURS)


def line_chart(chart_id: str, frame: pd.DataFrame, *, width: int = 900, height: int = 260) -> str:
    """An inline SVG line chart of ``frame``'s columns over its index (NaN breaks a line), with a legend."""
    left, right, top, bottom = 60, 10, 10, 24
    values = frame.to_numpy(np.float64)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    n = len(frame)
    span_x = max(n - 1, 1)

    def x(i: int) -> float:
        return left + (width - left - right) * i / span_x

    def y(v: float) -> float:
        return top + (height - top - bottom) * (hi - v) / (hi - lo)

    parts = [f"<svg id='{html.escape(chart_id, quote=True)}' width='{width}' height='{height}' "
             f"xmlns='http://www.w3.org/2000/svg' font-size='11'>",
             f"<rect x='{left}' y='{top}' width='{width - left - right}' height='{height - top - bottom}' "
             "fill='none' stroke='#ccc'/>"]  # fmt: skip
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(f"<text x='{left - 4}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:.4g}</text>")
    if lo < 0 < hi:
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y(0):.1f}' y2='{y(0):.1f}' stroke='#999' "
                     "stroke-dasharray='3,3'/>")  # fmt: skip
    if n:
        labels = [pd.Timestamp(d).strftime("%Y-%m-%d") if isinstance(d, pd.Timestamp | np.datetime64) else str(d)
                  for d in (frame.index[0], frame.index[-1])]  # fmt: skip
        parts.append(f"<text x='{left}' y='{height - 6}'>{html.escape(labels[0])}</text>")
        parts.append(f"<text x='{width - right}' y='{height - 6}' text-anchor='end'>{html.escape(labels[1])}</text>")
    for k in range(len(frame.columns)):
        colour = COLOURS[k % len(COLOURS)]
        segment: list[str] = []
        for i, v in enumerate(values[:, k]):
            if math.isfinite(v):
                segment.append(f"{x(i):.1f},{y(v):.1f}")
                continue
            if segment:
                parts.append(f"<polyline fill='none' stroke='{colour}' points='{' '.join(segment)}'/>")
            segment = []
        if segment:
            parts.append(f"<polyline fill='none' stroke='{colour}' points='{' '.join(segment)}'/>")
    parts.append("</svg>")
    legend = " ".join(f"<span style='color:{COLOURS[k % len(COLOURS)]}'>&#9632; {html.escape(str(c))}</span>"
                      for k, c in enumerate(frame.columns))  # fmt: skip
    return "".join(parts) + f"<p class='note'>{legend}</p>"


def _table(table_id: str, rows: Mapping[str, Any]) -> str:
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>"
                   f"{'-' if v is None or (isinstance(v, float) and not math.isfinite(v)) else f'{v:.4f}'}</td></tr>"
                   for k, v in rows.items())  # fmt: skip
    return f"<table id='{table_id}'>{body}</table>"


def tracking_sections(metrics: Mapping[str, float], risk: pd.DataFrame | None, exposures: pd.DataFrame | None,
                      rolling_te: pd.Series, scale: float) -> list[Any]:  # fmt: skip
    """``Tracking error`` (summary table; ex-ante TE with its factor and specific parts, and the rolling realised
    TE, annualised) and, with risk data, ``Active factor exposures`` (chart and table)."""
    from qcore.reporting import ReportSection

    rows = {
        "Realised tracking error (annualised)": metrics.get("portfolio.tracking_error"),
        "Active return (annualised, without cost)": metrics.get("portfolio.active_return"),
        "Information ratio (without cost)": metrics.get("portfolio.information_ratio"),
        "Information ratio (with cost)": metrics.get("portfolio.information_ratio_with_cost"),
        "Ex-ante tracking error (mean, annualised)": metrics.get("portfolio.ex_ante_te"),
        "Ex-ante factor part (mean, annualised)": metrics.get("portfolio.ex_ante_factor_te"),
        "Ex-ante specific part (mean, annualised)": metrics.get("portfolio.ex_ante_specific_te"),
        "Factor share of the active variance (mean)": metrics.get("portfolio.ex_ante_factor_share"),
    }
    curves = pd.DataFrame({"realised (20-bar rolling)": rolling_te})
    if risk is not None and not risk.empty:
        curves = curves.join(pd.DataFrame({"ex ante": risk["te"] * scale, "ex ante, factor part":
                                           risk["factor_te"] * scale, "ex ante, specific part":
                                           risk["specific_te"] * scale}), how="outer")  # fmt: skip
    note = ("<p class='note'>Ex ante: the holdings at each bar end against that day's risk data and benchmark "
            "weights, √(v'Σv + Σσ²d²) with d the active weights and v = F'd; realised: the standard deviation of the "
            "daily active return (portfolio − benchmark), × √252.</p>")  # fmt: skip
    sections = [ReportSection("Tracking error", _table("portfolio-tracking", rows) + note +
                              line_chart("portfolio-te-chart", curves), "portfolio-tracking")]  # fmt: skip
    if exposures is not None and not exposures.empty:
        order = exposures.abs().mean().sort_values(ascending=False).index
        shown = exposures[list(order[:MAX_FACTORS])]
        stats = pd.DataFrame({"mean": exposures.mean(), "mean |v|": exposures.abs().mean(),
                              "max |v|": exposures.abs().max(), "last": exposures.iloc[-1]}).loc[order]  # fmt: skip
        head = "".join(f"<th>{html.escape(c)}</th>" for c in stats.columns)
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(name))}</th>"
                       + "".join(f"<td>{v:.4g}</td>" for v in row) + "</tr>"
                       for name, row in zip(stats.index, stats.to_numpy(), strict=True))  # fmt: skip
        more = (f"<p class='note'>The {MAX_FACTORS} largest of {exposures.shape[1]} factors are drawn.</p>"
                if exposures.shape[1] > MAX_FACTORS else "")  # fmt: skip
        sections.append(ReportSection("Active factor exposures", line_chart("portfolio-exposure-chart", shown) + more
                                      + f"<table id='portfolio-exposures'><tr><th>factor</th>{head}</tr>{body}"
                                      "</table>", "portfolio-exposures"))  # fmt: skip
    return sections
