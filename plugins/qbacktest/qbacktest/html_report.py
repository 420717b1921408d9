"""A self-contained HTML report of a backtest: inline SVG charts, no script and no external resource.

Charts (each an ``<svg class="chart" id="...">``): ``chart-equity`` (net value of the strategy against the
benchmark, and the excess), ``chart-drawdown``, ``chart-monthly`` (heatmap of monthly net returns),
``chart-turnover`` (daily turnover and cost), when a label is known ``chart-ic`` (daily IC and its 20-bar mean) and,
for a nested run, ``chart-execution-<freq>`` per level (fill rate and price advantage per day, weighted by traded
value). A table summarises the risk statistics with their conventions.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

WIDTH, HEIGHT = 920, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 18, 30
COLORS = ("#1f6fb4", "#e07b15", "#2a9d3c", "#8c4bb8")

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:960px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:16px;margin:28px 0 6px} .meta{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin-top:8px} td,th{border:1px solid #ddd;padding:4px 8px;
text-align:right} th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
svg.chart{display:block;background:#fff;border:1px solid #e4e4e4;margin-top:6px}
svg text{font-size:11px;fill:#444} .legend text{font-size:12px} .note{color:#777;font-size:13px}
"""


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt(value: float, percent: bool) -> str:
    value = value + 0.0  # no "-0"
    if abs(value) < 1e-12:
        return "0"
    if percent:
        digits = 0 if abs(value) >= 0.1 else 1 if abs(value) >= 0.01 else 2 if abs(value) >= 0.001 else 3
        return f"{value * 100:.{max(digits, 1) if abs(value) < 10 else 0}f}%"
    return f"{value:.3g}"


class _Plot:
    """One plotting area: maps bar positions and values to SVG coordinates and draws axes."""

    def __init__(self, n: int, lo: float, hi: float, top: float, height: float, percent: bool) -> None:
        self.ticks = _nice_ticks(lo, hi)
        self.lo, self.hi = min(self.ticks[0], lo), max(self.ticks[-1], hi)
        self.n, self.top, self.height, self.percent = n, top, height, percent
        self.width = WIDTH - LEFT - RIGHT

    def x(self, i: float) -> float:
        return LEFT + (i + 0.5) * self.width / max(self.n, 1)

    def y(self, v: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.top + (self.hi - v) / span * self.height

    def axes(self, dates: pd.DatetimeIndex, show_dates: bool = True) -> list[str]:
        out = []
        for tick in self.ticks:
            y = self.y(tick)
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick, self.percent)}</text>')
        if self.lo < 0 < self.hi:
            y0 = self.y(0.0)
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y0:.1f}" y2="{y0:.1f}" stroke="#999"/>')
        bottom = self.top + self.height
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom:.1f}" y2="{bottom:.1f}" stroke="#bbb"/>')
        if show_dates and len(dates):
            positions = np.unique(np.linspace(0, len(dates) - 1, min(7, len(dates))).round().astype(int))
            for k, i in enumerate(positions):
                anchor = "start" if k == 0 and len(positions) > 1 else "end" if k == len(positions) - 1 else "middle"
                out.append(f'<text x="{self.x(i):.1f}" y="{bottom + 16:.1f}" text-anchor="{anchor}">'
                           f'{dates[i].strftime("%Y-%m-%d")}</text>')  # fmt: skip
        return out

    def line(self, values: np.ndarray, color: str, name: str) -> str:
        points = [f"{self.x(i):.1f},{self.y(v):.1f}" for i, v in enumerate(values) if np.isfinite(v)]
        return (f'<polyline class="series" data-name="{html.escape(name)}" fill="none" stroke="{color}" '
                f'stroke-width="1.6" points="{" ".join(points)}"/>')  # fmt: skip

    def area(self, values: np.ndarray, color: str, name: str) -> str:
        pts = [f"{self.x(i):.1f},{self.y(v):.1f}" for i, v in enumerate(values) if np.isfinite(v)]
        base = self.y(0.0)
        path = f"M{self.x(0):.1f},{base:.1f} L" + " L".join(pts) + f" L{self.x(len(values) - 1):.1f},{base:.1f} Z"
        return f'<path class="series" data-name="{html.escape(name)}" d="{path}" fill="{color}" fill-opacity="0.35" ' \
               f'stroke="{color}"/>'

    def bars(self, values: np.ndarray, color: str, name: str) -> str:
        width = max(self.width / max(self.n, 1) * 0.8, 0.6)
        base = self.y(0.0)
        rects = []
        for i, v in enumerate(values):
            if not np.isfinite(v) or v == 0:
                continue
            y = self.y(v)
            rects.append(f'<rect x="{self.x(i) - width / 2:.1f}" y="{min(y, base):.1f}" width="{width:.2f}" '
                         f'height="{abs(base - y):.1f}"/>')  # fmt: skip
        return f'<g class="series" data-name="{html.escape(name)}" fill="{color}">{"".join(rects)}</g>'


def _legend(names: Sequence[str]) -> str:
    items = []
    x = LEFT + 8
    for i, name in enumerate(names):
        items.append(f'<rect x="{x}" y="6" width="12" height="3" fill="{COLORS[i % len(COLORS)]}"/>'
                     f'<text x="{x + 16}" y="12">{html.escape(name)}</text>')  # fmt: skip
        x += 24 + 7 * len(name)
    return f'<g class="legend">{"".join(items)}</g>'


def _svg(chart_id: str, title: str, body: Sequence[str], height: int = HEIGHT) -> str:
    return (f'<svg class="chart" id="{chart_id}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
            f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{html.escape(title)}">'
            f'<title>{html.escape(title)}</title>{"".join(body)}</svg>')  # fmt: skip


def _line_chart(chart_id: str, title: str, dates: pd.DatetimeIndex, series: Mapping[str, np.ndarray],
                percent: bool = True) -> str:  # fmt: skip
    values = np.concatenate([v[np.isfinite(v)] for v in series.values()] + [np.array([0.0])])
    plot = _Plot(len(dates), float(values.min()), float(values.max()), TOP + 10, HEIGHT - TOP - BOTTOM - 10, percent)
    body = plot.axes(dates)
    body += [plot.line(v, COLORS[i % len(COLORS)], name) for i, (name, v) in enumerate(series.items())]
    body.append(_legend(list(series)))
    return _svg(chart_id, title, body)


def equity_chart(report: pd.DataFrame) -> str:
    """Cumulative net return of the strategy, of the benchmark, and the excess (with cost, summed)."""
    net = (1.0 + report["return"] - report["cost"]).cumprod().to_numpy() - 1.0
    bench = (1.0 + report["bench"]).cumprod().to_numpy() - 1.0
    excess = (report["return"] - report["bench"] - report["cost"]).cumsum().to_numpy()
    return _line_chart("chart-equity", "Equity curve against the benchmark", pd.DatetimeIndex(report.index),
                       {"strategy (net of cost)": net, "benchmark": bench, "excess with cost (sum)": excess})


def drawdown_chart(report: pd.DataFrame) -> str:
    """Drawdown of the net value from its running peak."""
    curve = np.concatenate([[1.0], (1.0 + report["return"] - report["cost"]).cumprod().to_numpy()])
    drawdown = (curve / np.maximum.accumulate(curve) - 1.0)[1:]
    dates = pd.DatetimeIndex(report.index)
    plot = _Plot(len(dates), float(min(drawdown.min(), 0.0)), 0.0, TOP + 10, HEIGHT - TOP - BOTTOM - 10, True)
    body = [*plot.axes(dates), plot.area(drawdown, "#c0392b", "drawdown"), _legend(["drawdown"])]
    return _svg("chart-drawdown", "Drawdown of the net value", body)


def monthly_returns(report: pd.DataFrame) -> pd.DataFrame:
    """Compounded net return per month: rows are years, columns months 1..12."""
    net = 1.0 + report["return"] - report["cost"]
    index = pd.DatetimeIndex(report.index)
    monthly = net.groupby([index.year, index.month]).prod() - 1.0
    table = monthly.unstack()
    return table.reindex(columns=range(1, 13))


def monthly_chart(report: pd.DataFrame) -> str:
    """Heatmap of monthly net returns (green up, red down)."""
    table = monthly_returns(report)
    years = list(table.index)
    cell_w, cell_h = (WIDTH - LEFT - RIGHT) / 12, 26
    height = int(TOP + 20 + cell_h * max(len(years), 1) + 10)
    finite = table.to_numpy()[np.isfinite(table.to_numpy())]
    scale = float(np.abs(finite).max()) if len(finite) else 1.0
    body = []
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    for m, label in enumerate(months):
        body.append(f'<text x="{LEFT + (m + 0.5) * cell_w:.1f}" y="{TOP + 8}" text-anchor="middle">{label}</text>')
    for r, year in enumerate(years):
        y = TOP + 16 + r * cell_h
        body.append(f'<text x="{LEFT - 8}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">{year}</text>')
        for m in range(12):
            value = table.iloc[r, m]
            x = LEFT + m * cell_w
            if not np.isfinite(value):
                fill, text = "#f6f6f6", ""
            else:
                strength = min(abs(value) / (scale or 1.0), 1.0)
                base = (46, 160, 67) if value >= 0 else (200, 55, 45)
                rgb = tuple(int(255 - (255 - c) * (0.15 + 0.85 * strength)) for c in base)
                fill, text = f"rgb{rgb}", f"{value * 100:.1f}%"
            body.append(f'<rect class="cell" x="{x + 1:.1f}" y="{y + 1:.1f}" width="{cell_w - 2:.1f}" '
                        f'height="{cell_h - 2}" fill="{fill}"><title>{year}-{m + 1:02d}: {text}</title></rect>'
                        f'<text x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="middle">{text}'
                        "</text>")  # fmt: skip
    return _svg("chart-monthly", "Monthly net returns", body, height)


def turnover_chart(report: pd.DataFrame) -> str:
    """Daily turnover (top) and daily cost (bottom), both as shares of the account value."""
    dates = pd.DatetimeIndex(report.index)
    turnover, cost = report["turnover"].to_numpy(), report["cost"].to_numpy()
    half = (HEIGHT * 1.6 - TOP - BOTTOM - 30) / 2
    top = _Plot(len(dates), 0.0, float(np.nanmax(turnover, initial=0.0)), TOP + 10, half, True)
    bottom = _Plot(len(dates), 0.0, float(np.nanmax(cost, initial=0.0)), TOP + 30 + half, half, True)
    body = [*top.axes(dates, show_dates=False), top.bars(turnover, COLORS[0], "turnover")]
    body += [*bottom.axes(dates), bottom.bars(cost, COLORS[1], "cost")]
    body.append(_legend(["turnover", "cost (share of value)"]))
    return _svg("chart-turnover", "Turnover and cost", body, int(HEIGHT * 1.6))


def ic_chart(ic: pd.DataFrame) -> str:
    """Daily IC as bars with its 20-bar rolling mean."""
    dates = pd.DatetimeIndex(ic.index)
    values = ic["IC"].to_numpy(dtype=float)
    rolling = ic["IC"].rolling(20, min_periods=1).mean().to_numpy()
    finite = values[np.isfinite(values)]
    lo = float(min(finite.min(), 0.0)) if len(finite) else -0.1
    hi = float(max(finite.max(), 0.0)) if len(finite) else 0.1
    plot = _Plot(len(dates), lo, hi, TOP + 10, HEIGHT - TOP - BOTTOM - 10, False)
    body = [*plot.axes(dates), plot.bars(values, COLORS[0], "IC"), plot.line(rolling, COLORS[1], "IC 20-bar mean")]
    body.append(_legend(["IC", "IC 20-bar mean"]))
    return _svg("chart-ic", "Information coefficient over time", body)


def execution_chart(freq: str, indicators: pd.DataFrame) -> str:
    """A level's fill rate and price advantage per day (its bars' values weighted by their traded value)."""
    frame = indicators[indicators["count"] > 0]
    if frame.empty:
        return f"<p class='note' id='chart-execution-{html.escape(freq)}'>No order at {html.escape(freq)}.</p>"
    weight = frame["value"].abs().where(frame["value"].abs() > 0, 1.0)
    day = frame.index.normalize()
    series = {}
    for column in ("ffr", "pa"):
        valid = frame[column].notna()
        num = (frame[column] * weight)[valid].groupby(day[valid]).sum()
        den = weight[valid].groupby(day[valid]).sum()
        series[column] = num / den
    daily = pd.DataFrame(series).sort_index()
    return _line_chart(f"chart-execution-{freq}", f"Execution quality at {freq}: fill rate and price advantage",
                       pd.DatetimeIndex(daily.index), {"fill rate (ffr)": daily["ffr"].to_numpy(dtype=float),
                                                       "price advantage (pa)": daily["pa"].to_numpy(dtype=float)},
                       percent=False)  # fmt: skip


def _summary(risk: Mapping[str, Any], ic: pd.DataFrame | None) -> str:
    rows = []
    labels = (("excess_return_with_cost", "Excess return with cost"),
              ("excess_return_without_cost", "Excess return without cost"), ("return", "Strategy return (gross)"),
              ("benchmark", "Benchmark"))  # fmt: skip
    head = ("<tr><th>series</th><th>ann. return (sum, N=238)</th><th>IR (sum)</th><th>max DD (sum)</th>"
            "<th>ann. return (compounded, N=252)</th><th>Sharpe</th><th>Sortino</th><th>Calmar</th>"
            "<th>max DD</th><th>win rate</th><th>VaR 95%</th></tr>")  # fmt: skip
    for key, label in labels:
        if key not in risk:
            continue
        s, c = risk[key]["sum"], risk[key]["compounded"]
        cells = [s["annualized_return"], s["information_ratio"], s["max_drawdown"], c["annualized_return"],
                 c["sharpe"], c["sortino"], c["calmar"], c["max_drawdown"], c["win_rate"], c["var_95"]]  # fmt: skip
        pct = (True, False, True, True, False, False, False, True, True, True)
        text = "".join(f"<td>{_fmt(v, p) if np.isfinite(v) else '–'}</td>" for v, p in zip(cells, pct))
        rows.append(f"<tr><td>{label}</td>{text}</tr>")
    extra = ""
    if ic is not None and len(ic):
        mean, std = ic["IC"].mean(), ic["IC"].std()
        extra = (f"<p class='note'>IC mean {mean:.4f}, ICIR {mean / std if std else float('nan'):.3f}, "
                 f"Rank IC mean {ic['RankIC'].mean():.4f}</p>")  # fmt: skip
    conventions = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                          for k, v in risk.get("conventions", {}).items())  # fmt: skip
    return f"<table id='risk-table'>{head}{''.join(rows)}</table>{extra}<ul class='note'>{conventions}</ul>"


def render_html(report: pd.DataFrame, risk: Mapping[str, Any], *, ic: pd.DataFrame | None = None,
                title: str = "Backtest report", meta: Mapping[str, Any] | None = None,
                levels: Mapping[str, pd.DataFrame] | None = None, sections: Sequence[Any] = ()) -> str:  # fmt: skip
    """The report as one HTML document (inline SVG and CSS only).

    :param levels: a nested run's indicators by level frequency (``1day``, ``30min``...): one execution chart
        each.
    :param sections: other plugins' :class:`qcore.reporting.ReportSection` objects, placed after the backtest's own.
    """
    meta_text = " · ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in (meta or {}).items())
    first, last = (report.index[0].date(), report.index[-1].date()) if len(report) else ("", "")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>{first} – {last}, {len(report)} bars. {meta_text}</p>",
        "<h2>Summary</h2>", _summary(risk, ic),
        "<h2>Equity curve</h2>", equity_chart(report),
        "<h2>Drawdown</h2>", drawdown_chart(report),
        "<h2>Monthly returns</h2>", monthly_chart(report),
        "<h2>Turnover and cost</h2>", turnover_chart(report),
        "<h2>IC over time</h2>",
        ic_chart(ic) if ic is not None and len(ic) else "<p class='note' id='no-ic'>No label given: no IC.</p>",
    ]
    if levels:
        parts.append("<h2>Execution quality per level</h2>")
        parts += [execution_chart(freq, frame) for freq, frame in levels.items()]
    if sections:
        from qcore.reporting import sections_html

        parts.append(sections_html(sections))
    parts.append("</body></html>")
    return "".join(parts)


def write_html(path: str | os.PathLike[str], report: pd.DataFrame, risk: Mapping[str, Any], **kwargs: Any) -> None:
    """Render and write the report to ``path``."""
    from qcore.atomic import write_text

    write_text(path, render_html(report, risk, **kwargs))
