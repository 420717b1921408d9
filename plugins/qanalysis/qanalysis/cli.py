"""``qcore analyze``: the signal (and, given a backtest's outputs, position) analysis of predictions made anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from qcore.errors import ConfigError, DataError


def read_frame(path: str, what: str) -> Any:
    """A Parquet or CSV file as a frame indexed ``(datetime, instrument)`` (CSV: columns datetime, instrument, …)."""
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{what}: no file {path}")
    try:
        frame = pd.read_csv(file) if file.suffix.lower() == ".csv" else pd.read_parquet(file)
    except Exception as exc:
        raise DataError(f"{what}: cannot read {path}: {exc}") from exc
    if {"datetime", "instrument"} <= set(frame.columns):
        frame = frame.set_index(["datetime", "instrument"])
    if set(frame.index.names) != {"datetime", "instrument"}:
        raise DataError(f"{what}: {path} needs datetime and instrument (columns or index), got "
                        f"{list(frame.index.names) + list(frame.columns)}")  # fmt: skip
    if list(frame.index.names) != ["datetime", "instrument"]:
        frame = frame.swaplevel()
    dates = pd.to_datetime(frame.index.get_level_values("datetime"), errors="coerce")
    if dates.isna().any():
        raise DataError(f"{what}: {path} has {int(dates.isna().sum())} unreadable datetime value(s)")
    frame.index = pd.MultiIndex.from_arrays([dates, frame.index.get_level_values("instrument").astype(str)],
                                            names=["datetime", "instrument"])  # fmt: skip
    return frame.sort_index()


def _column(frame: Any, names: tuple[str, ...], what: str, path: str) -> Any:
    for name in names:
        if name in frame.columns:
            return frame[name].astype("float64")
    if len(frame.columns) == 1:
        return frame.iloc[:, 0].astype("float64")
    raise DataError(f"{what}: {path} has no column {' or '.join(names)} (columns: {list(frame.columns)})")


@click.command("analyze")
@click.option("--pred", "pred_path", required=True, help="Predictions: Parquet or CSV (datetime, instrument, score).")
@click.option("--label", "label_path", default=None, help="Labels: Parquet or CSV (datetime, instrument, label).")
@click.option("--provider-uri", default=None, help="A store to compute the labels from (instead of --label).")
@click.option("--provider", "provider_name", default="qlib_bin", show_default=True, help="Data provider.")
@click.option("--report", "report_dir", default=None,
              help="A backtest's output folder (report_normal_1day and positions_normal_1day Parquet files).")
@click.option("--groups", default=5, show_default=True, type=click.IntRange(1, 100), help="Score quantile groups.")
@click.option("--ic-decay", default=20, show_default=True, type=click.IntRange(0, 60),
              help="Label horizons of the IC decay (needs --provider-uri; 0: none).")
@click.option("--bench-weight", default=None,
              help="With --provider-uri and --report: the store's benchmark weight field (such as $csi300_weight) "
                   "for the active industry exposure.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.pass_context
def analyze_command(ctx: click.Context, pred_path: str, label_path: str | None, provider_uri: str | None,
                    provider_name: str, report_dir: str | None, groups: int, ic_decay: int, bench_weight: str | None,
                    out_dir: str) -> None:  # fmt: skip
    """Analyse predictions against labels: groups, IC, IC decay, auto-correlation, turnover; write Parquet/JSON
    artifacts and a self-contained analysis.html. With --report and --provider-uri, also the weight per industry
    when the store has an $industry field (and the active exposure given --bench-weight)."""
    import pandas as pd

    from qanalysis.analyse import (
        industry_sections,
        position_analysis,
        position_sections,
        signal_analysis,
        signal_sections,
    )
    from qanalysis.industry import industry_analysis
    from qanalysis.signal import horizon_label, horizon_labels
    from qcore.reporting import render_page

    if (label_path is None) == (provider_uri is None):
        raise ConfigError("qcore analyze: give exactly one of --label and --provider-uri")
    pred = _column(read_frame(pred_path, "--pred"), ("score",), "--pred", pred_path)
    report = positions = None
    if report_dir is not None:  # read the backtest's files before any computation
        folder = Path(report_dir)
        files = {name: folder / f"{name}_normal_1day.parquet" for name in ("report", "positions")}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise ConfigError(f"--report: missing {', '.join(missing)}")
        report, positions = pd.read_parquet(files["report"]), pd.read_parquet(files["positions"])
    if bench_weight is not None and (provider_uri is None or report_dir is None):
        raise ConfigError("qcore analyze: --bench-weight needs --provider-uri and --report")
    decay = engine = None
    if label_path is not None:
        label = _column(read_frame(label_path, "--label"), ("label", "LABEL0"), "--label", label_path)
    else:
        from qcore.cli import get_kernel
        from qcore.expr.engine import ExpressionEngine

        kernel = get_kernel(ctx)
        provider = kernel.create("data_provider", provider_name, provider_uri=provider_uri)
        engine = ExpressionEngine(provider, kernel.registry("operator"))
        dates = pred.index.get_level_values("datetime")
        names = sorted(set(pred.index.get_level_values("instrument")))
        label = engine.evaluate({"label": horizon_label(1)}, names, dates.min(), dates.max())["label"].astype(float)
        if ic_decay:
            decay = horizon_labels(engine, names, dates.min(), dates.max(), range(1, ic_decay + 1))
    result = signal_analysis(pred, label, n_groups=groups, decay_labels=decay)
    sections = signal_sections(result)
    if report is not None:
        more = position_analysis(report, positions, label)
        result.update(more)
        sections += position_sections(more)
        if engine is not None:
            industry = industry_analysis(engine, positions, bench_weight=bench_weight)
            result.update(industry)
            sections += industry_sections(industry)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, value in result.items():
        if isinstance(value, pd.DataFrame):
            frame = value.copy()
            frame.columns = [str(c) for c in frame.columns]
            if isinstance(frame.index, pd.PeriodIndex):
                frame.index = frame.index.astype(str)
            frame.to_parquet(out / f"{name}.parquet")
            written.append(f"{name}.parquet")
        else:
            (out / f"{name}.json").write_text(json.dumps(value, indent=1, default=float))
            written.append(f"{name}.json")
    (out / "analysis.html").write_text(render_page(f"qcore analysis: {Path(pred_path).name}", sections,
                                                   meta=f"{len(pred)} predictions"), encoding="utf-8")  # fmt: skip
    summary = result["summary"]
    click.echo(" ".join(f"{k} {v:.4f}" for k, v in summary.items()))
    click.echo(f"wrote {len(written) + 1} files to {out} (report: {out / 'analysis.html'})")
