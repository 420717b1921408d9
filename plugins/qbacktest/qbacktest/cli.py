"""``qcore backtest``: run a backtest from a score file and a Qlib-style ``BT.yaml``; write the results.

Outputs in ``OUTDIR``: ``report.parquet`` (Qlib's daily report), ``positions.parquet``, ``indicators.parquet``,
``fills.parquet``, ``risk.json`` and ``report.html`` (self-contained; ``--no-html`` skips it). With ``--label`` (an
expression such as ``Ref($close, -2)/Ref($close, -1) - 1``) the IC of the scores is computed (``ic.parquet``) and
drawn in the HTML report. A nested executor adds, per level, ``report_<freq>.parquet``, ``positions_<freq>.parquet``,
``indicators_<freq>.parquet`` and ``orders_<freq>.parquet`` (``freq``: ``1day``, ``30min``...).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _labels(provider: Any, kernel: Any, scores: Any, expression: str) -> Any:
    import pandas as pd

    from qcore.expr.engine import ExpressionEngine

    known = provider.universe("all")
    symbols = sorted({s for s in scores.index.get_level_values(1) if s in known})
    dates = scores.index.get_level_values(0)
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    frame = engine.evaluate({"label": expression}, symbols, dates.min(), dates.max())
    return frame["label"].astype("float64").reindex(pd.MultiIndex.from_arrays(
        [dates, scores.index.get_level_values(1)], names=["datetime", "instrument"]))  # fmt: skip


@click.command("backtest")
@click.option("--provider", "provider_name", default="qlib_bin", show_default=True, help="Data provider.")
@click.option("--provider-uri", required=True, help="The store's location (a Qlib data directory).")
@click.option("--score", "score_path", required=True, type=click.Path(dir_okay=False),
              help="Scores: Parquet (or CSV) indexed (datetime, instrument) with a 'score' column.")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="BT.yaml in the shape of Qlib's port_analysis_config.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--label", "label_expr", default=None, help="Label expression for the IC (e.g. Ref($close,-2)/...).")
@click.option("--unknown-instruments", type=click.Choice(["keep", "drop", "error"]), default="keep",
              show_default=True, help="Scores of instruments the store lacks: keep (never tradable), drop, error.")
@click.option("--html/--no-html", "with_html", default=True, show_default=True, help="Write report.html.")
@click.pass_context
def backtest_command(ctx: click.Context, provider_name: str, provider_uri: str, score_path: str, config_path: str,
                     out_dir: str, label_expr: str | None, unknown_instruments: str, with_html: bool) -> None:
    """Backtest the scores in SCORE with the strategy and exchange of CONFIG; write the results to OUT."""
    from qbacktest.api import backtest_from_spec
    from qbacktest.config import load_backtest_config
    from qbacktest.report import ic_frame
    from qbacktest.signal import Signal, read_scores
    from qcore import atomic
    from qcore.cli import get_kernel
    from qcore.tables import write_table

    kernel = get_kernel(ctx)
    spec = load_backtest_config(config_path)
    scores = read_scores(score_path)
    provider = kernel.create("data_provider", provider_name, provider_uri=provider_uri)
    signal = Signal(scores, unknown=unknown_instruments, source=score_path)
    # everything the inputs can get wrong is found before the backtest runs
    signal.check_dates(provider.calendar("day"))
    signal.check_instruments(provider.universe("all"))
    label = _labels(provider, kernel, scores, label_expr) if label_expr else None
    result = backtest_from_spec(spec, provider, kernel, signal=signal, provider_uri=provider_uri)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("report", result.report), ("positions", result.positions),
                        ("indicators", result.indicators), ("fills", result.fills)):  # fmt: skip
        write_table(frame, out / f"{name}.parquet")
        written.append(f"{name}.parquet")
    for freq, level in result.levels.items():
        for name, frame in (("report", level.report), ("positions", level.positions),
                            ("indicators", level.indicators), ("orders", level.orders)):  # fmt: skip
            write_table(frame, out / f"{name}_{freq}.parquet")
            written.append(f"{name}_{freq}.parquet")
    risk = result.risk()
    atomic.write_text(out / "risk.json", json.dumps(_clean(risk), indent=1))
    written.append("risk.json")
    ic = None
    if label is not None:
        ic = ic_frame(scores, label)
        if not ic["IC"].notna().any():
            click.echo(f"Warning: the label {label_expr!r} gives no IC on any date (it is missing or constant "
                       "where the scores are)", err=True)  # fmt: skip
        write_table(ic, out / "ic.parquet")
        written.append("ic.parquet")
    if with_html:
        from qbacktest.html_report import write_html

        meta = {"strategy": spec.strategy.name, "exchange": result.exchange.description}
        write_html(out / "report.html", result.report, risk, ic=ic, title="qcore backtest", meta=meta,
                   levels={freq: level.indicators for freq, level in result.levels.items()})
        written.append("report.html")
    sums = risk["excess_return_with_cost"]["sum"]
    click.echo(f"{len(result.report)} bars {result.report.index[0].date()}..{result.report.index[-1].date()}; "
               f"excess return with cost: annualised {sums['annualized_return']:.4f}, "
               f"IR {sums['information_ratio']:.3f}, max drawdown {sums['max_drawdown']:.4f}")  # fmt: skip
    click.echo(f"wrote {', '.join(written)} to {out}")
