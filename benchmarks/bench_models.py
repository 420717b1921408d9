#!/usr/bin/env python
"""Model-zoo benchmark: every model on the embedded synthetic market, with Qlib's benchmark configurations.

    python benchmarks/bench_models.py [--instruments 300] [--days 2500] [--seed 0] [--store DIR] [--market all]
                                      [--models lightgbm,lstm,...] [--feature-sets alpha158,alpha360]
                                      [--epochs 20] [--threads N] [--topk 50] [--n-drop 5] [--no-backtest]
                                      [--json OUT]

The store (``$TMPDIR/qcore-bench/synth_<N>x<D>_s<seed>`` unless ``--store``) is built when missing with
``qdata_cn.synth.synthesize``. The calendar after a 60-day warm-up (and before the last two days, whose label is
unknown) is split 60/20/20 into train/valid/test, as Qlib's benchmark splits 2008-2020. Each feature set is
evaluated once; datasets apply the processors of Qlib's benchmark YAMLs:

- trees (LightGBM, DoubleEnsemble): no infer processors; learn: ``DropnaLabel`` and ``CSZScoreNorm(label)`` on
  Alpha158 (the handler's default), ``CSRankNorm(label)`` on Alpha360 (Qlib's LightGBM Alpha360 YAML);
- linear and networks: infer ``RobustZScoreNorm(feature, clip_outlier)``, ``Fillna(feature)``; learn
  ``DropnaLabel``, ``CSRankNorm(label)``. On Alpha158 the sequence models read the 20 features of Qlib's
  ``FilterCol`` list as 20-day windows (``TSDatasetH``, ``step_len=20``); on Alpha360 they read each row as
  6 fields × 60 days (``d_feat=6``).

Model arguments are those of Qlib's benchmark YAMLs, except that ``--epochs`` caps the networks' epochs (the MLP's
``max_steps`` becomes ``epochs × eval_steps``) and ``--threads`` sets LightGBM's ``num_threads`` and torch's
threads. IC, ICIR, Rank IC and Rank ICIR are computed on the test segment against the raw label, as Qlib's
``SigAnaRecord``. Unless ``--no-backtest``, the predictions drive a ``TopkDropout`` backtest over the test segment
with Qlib's exchange settings (close price, 0.05%/0.15% costs, min cost 5, limit 9.5%) against ``SH000300``; the
table shows the excess return with cost (annualised, information ratio, max drawdown; Qlib's ``sum`` mode, N=238).
Wall seconds cover fit + predict (not the feature evaluation, which is shared, nor the backtest).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from _common import ensure_store, store_path

from qcore.dataset import PanelDataset, make_processor
from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel

#: Qlib's 20 Alpha158 features (FilterCol) for the sequence models' benchmark on Alpha158.
ALPHA158_20 = ["RESI5", "WVMA5", "RSQR5", "KLEN", "RSQR10", "CORR5", "CORD5", "CORR10", "ROC60", "RESI10",
               "VSTD5", "RSQR60", "CORR60", "WVMA60", "STD5", "RSQR20", "CORD60", "CORD10", "CORR20", "KLOW"]
LGB = {"loss": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.2, "subsample": 0.8789, "lambda_l1": 205.6999,
       "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210}
LGB_360 = {"loss": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.0421, "subsample": 0.8789,
           "lambda_l1": 205.6999, "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210}
DENSEMBLE = {"base_model": "gbm", "loss": "mse", "num_models": 6, "enable_sr": True, "enable_fs": True, "alpha1": 1,
             "alpha2": 1, "bins_sr": 10, "bins_fs": 5, "decay": 0.5, "sample_ratios": [0.8, 0.7, 0.6, 0.5, 0.4],
             "sub_weights": [1, 0.2, 0.2, 0.2, 0.2, 0.2], "epochs": 28, **{k: v for k, v in LGB.items() if k != "loss"}}
RNN = {"hidden_size": 64, "num_layers": 2, "dropout": 0.0, "n_epochs": 200, "lr": 1e-3, "early_stop": 20,
       "batch_size": 800, "metric": "loss", "loss": "mse", "seed": 0}
MLP = {"loss": "mse", "lr": 0.002, "optimizer": "adam", "max_steps": 8000, "batch_size": 8192,
       "weight_decay": 0.0002, "seed": 0}


def runs(feature_sets: Sequence[str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(model, feature set, processing profile, kwargs) of every benchmark row, in table order."""
    rows: list[tuple[str, str, str, dict[str, Any]]] = []
    if "alpha158" in feature_sets:
        rows += [
            ("linear", "alpha158", "nn", {"estimator": "ols"}),
            ("lightgbm", "alpha158", "tree", dict(LGB)),
            ("double_ensemble", "alpha158", "tree", dict(DENSEMBLE)),
            ("mlp", "alpha158", "nn", dict(MLP)),
            ("lstm", "alpha158", "nn20", {**RNN, "d_feat": 20, "step_len": 20}),
            ("gru", "alpha158", "nn20", {**RNN, "d_feat": 20, "step_len": 20, "early_stop": 10}),
            ("alstm", "alpha158", "nn20", {**RNN, "d_feat": 20, "step_len": 20, "early_stop": 10, "rnn_type": "GRU"}),
            ("transformer", "alpha158", "nn20", {"d_feat": 20, "step_len": 20, "seed": 0}),
        ]
    if "alpha360" in feature_sets:
        rows += [
            ("lightgbm", "alpha360", "tree_rank", dict(LGB_360)),
            ("mlp", "alpha360", "nn", dict(MLP)),
            ("lstm", "alpha360", "nn", {**RNN, "d_feat": 6}),
            ("gru", "alpha360", "nn", {**RNN, "d_feat": 6}),
            ("alstm", "alpha360", "nn", {**RNN, "d_feat": 6, "rnn_type": "GRU"}),
            ("transformer", "alpha360", "nn", {"d_feat": 6, "seed": 0}),
        ]
    return rows


def build_store(args: argparse.Namespace) -> Path:
    """The synthetic store, built when missing."""
    store = Path(args.store) if args.store else store_path(args.instruments, args.days, args.seed)
    return ensure_store(store, args.instruments, args.days, args.seed)


def segments(calendar: pd.DatetimeIndex) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """60/20/20 train/valid/test over the calendar after a 60-day warm-up and before the last two days."""
    dates = calendar[60:-2]
    a, b = int(len(dates) * 0.6), int(len(dates) * 0.8)
    return {"train": (dates[0], dates[a - 1]), "valid": (dates[a], dates[b - 1]), "test": (dates[b], dates[-1])}


def make_dataset(kernel: Kernel, frame: pd.DataFrame, segs: dict[str, Any], profile: str) -> PanelDataset:
    """A dataset over an evaluated frame with the processors of ``profile`` (see the module doc)."""
    fit = segs["train"]

    def processor(name: str, **kwargs: Any) -> Any:
        return make_processor(kernel.registry("processor").get(name), kwargs, *fit)

    if profile.startswith("tree"):
        infer: list[Any] = []
        norm = "CSRankNorm" if profile == "tree_rank" else "CSZScoreNorm"
        learn = [processor("DropnaLabel"), processor(norm, fields_group="label")]
    else:
        infer = [processor("RobustZScoreNorm", fields_group="feature", clip_outlier=True),
                 processor("Fillna", fields_group="feature")]
        learn = [processor("DropnaLabel"), processor("CSRankNorm", fields_group="label")]
    if profile == "nn20":
        keep = [("feature", name) for name in ALPHA158_20] + [c for c in frame.columns if c[0] == "label"]
        frame = frame.loc[:, keep]
    return PanelDataset(frame, segs, infer_processors=infer, learn_processors=learn)


def evaluate_features(engine: ExpressionEngine, kernel: Kernel, name: str, market: str,
                      segs: dict[str, Any]) -> pd.DataFrame:
    """The feature set's features and label over the benchmark span, with two-level columns."""
    feature_set = kernel.create("feature_set", name)
    start, end = segs["train"][0], segs["test"][1]
    expressions = {**feature_set.features, **feature_set.labels}
    frame = engine.evaluate(expressions, market, start, end)
    groups = ["feature"] * len(feature_set.features) + ["label"] * len(feature_set.labels)
    frame.columns = pd.MultiIndex.from_arrays([groups, list(expressions)])
    return frame


def cap_epochs(name: str, kwargs: dict[str, Any], epochs: int | None) -> dict[str, Any]:
    """Apply ``--epochs`` to the networks."""
    if epochs is None:
        return kwargs
    if name == "mlp":
        return {**kwargs, "max_steps": min(kwargs.get("max_steps", 300), epochs * kwargs.get("eval_steps", 20))}
    if name in ("lstm", "gru", "alstm", "transformer"):
        return {**kwargs, "n_epochs": min(kwargs.get("n_epochs", 200 if name != "transformer" else 100), epochs)}
    return kwargs


def backtest(kernel: Kernel, provider: Any, pred: pd.Series, args: argparse.Namespace) -> dict[str, float]:
    """Excess return with cost of a TopkDropout backtest on ``pred`` (Qlib's sum mode)."""
    from qbacktest.backtest import run_backtest

    strategy = kernel.create("strategy", "TopkDropout", signal=pred, topk=args.topk, n_drop=args.n_drop)
    result = run_backtest(
        provider, strategy, kernel.create("executor", "simulator"), account=1e8, benchmark="SH000300",
        exchange_kwargs={"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
                         "close_cost": 0.0015, "min_cost": 5},
        kernel=kernel,
    )
    stats = result.risk()["excess_return_with_cost"]["sum"]
    return {"Ann. Return": stats["annualized_return"], "Info Ratio": stats["information_ratio"],
            "Max DD": stats["max_drawdown"]}


def run_one(kernel: Kernel, name: str, kwargs: dict[str, Any], dataset: PanelDataset) -> tuple[pd.Series, float]:
    """Fit and predict the test segment; returns the scores and the wall seconds."""
    began = time.perf_counter()
    model = kernel.create("model", name, **kwargs)
    model.fit(dataset)
    pred = model.predict(dataset, "test")
    return pred, time.perf_counter() - began


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table in Qlib's benchmark layout."""
    columns = ["Model", "Dataset", "IC", "ICIR", "Rank IC", "Rank ICIR", "Ann. Return", "Info Ratio", "Max DD",
               "Seconds"]
    columns = [c for c in columns if any(c in row for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            if isinstance(value, float):
                value = f"{value:.1f}" if column == "Seconds" else ("nan" if math.isnan(value) else f"{value:.4f}")
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default=None)
    parser.add_argument("--market", default="all")
    parser.add_argument("--models", default=None, help="comma-separated registry names (default: all)")
    parser.add_argument("--feature-sets", default="alpha158,alpha360")
    parser.add_argument("--epochs", type=int, default=None, help="cap on the networks' epochs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--topk", type=int, default=50)
    parser.add_argument("--n-drop", type=int, default=5)
    parser.add_argument("--no-backtest", action="store_true")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    from qmodel_zoo.analysis import calc_ic, ic_summary

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(build_store(args)))
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    segs = segments(provider.calendar())
    wanted = set(args.models.split(",")) if args.models else None
    plan = [r for r in runs(args.feature_sets.split(",")) if wanted is None or r[0] in wanted]
    frames: dict[str, pd.DataFrame] = {}
    datasets: dict[tuple[str, str], PanelDataset] = {}
    rows: list[dict[str, Any]] = []
    for name, feature_set, profile, kwargs in plan:
        if torch is None and name in ("mlp", "lstm", "gru", "alstm", "transformer"):
            print(f"skipping {name}: torch is not installed", file=sys.stderr)
            continue
        if feature_set not in frames:
            began = time.perf_counter()
            frames[feature_set] = evaluate_features(engine, kernel, feature_set, args.market, segs)
            print(f"{feature_set}: {frames[feature_set].shape} in {time.perf_counter() - began:.1f}s", file=sys.stderr)
        key = (feature_set, profile)
        if key not in datasets:
            datasets[key] = make_dataset(kernel, frames[feature_set], segs, profile)
        kwargs = cap_epochs(name, kwargs, args.epochs)
        if name in ("lightgbm", "double_ensemble"):
            kwargs["num_threads"] = args.threads
        pred, seconds = run_one(kernel, name, kwargs, datasets[key])
        _, label = datasets[key].xy("test", data_key="raw")
        row: dict[str, Any] = {"Model": name, "Dataset": feature_set, **ic_summary(calc_ic(pred, label))}
        if not args.no_backtest:
            row.update(backtest(kernel, provider, pred, args))
        row["Seconds"] = seconds
        rows.append(row)
        print(format_table([row]).splitlines()[-1], file=sys.stderr)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "segments": {k: [str(d) for d in v]
                                                                              for k, v in segs.items()},
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
