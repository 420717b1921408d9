#!/usr/bin/env python
"""Qlib's benchmark table on the synthetic market: Qlib's own model YAMLs, several seeds, qcore (and Qlib 0.9.7).

    python benchmarks/bench_zoo.py [--models lightgbm,xgboost,...] [--seeds 3] [--quick] [--qlib]
                                   [--instruments 300] [--days 1000] [--epochs 10] [--threads 2]
                                   [--markdown OUT.md] [--json OUT.json] [--keep DIR]

Each model runs the benchmark YAML Qlib ships for it (``tests/data/qlib_examples/``: the same files as
``examples/benchmarks/`` of microsoft/qlib), rewritten for a small synthetic store (built once under
``.bench/stores/``): the store's folder as ``provider_uri``, its ``csi300`` universe and ``SH000300`` benchmark, the
calendar after a 60-day warm-up (and before the last two days, whose label is unknown) split 60/20/20 into
train/valid/test (Qlib splits 2008-2020 the same way), the backtest over the test segment with ``TopkDropout``
``topk``/``n_drop`` scaled to the universe (``--topk``, ``--n-drop``). Model arguments are Qlib's, except: the seed
(``seed``, CatBoost's ``random_seed``) is set per run; thread counts are ``--threads``; networks' epochs are capped
by ``--epochs`` (the MLP's ``max_steps`` becomes 50 × epochs); GATs trains its base from scratch (Qlib's config
loads a pre-trained LSTM file); CatBoost uses the Bernoulli bootstrap (Qlib's config asks for Poisson, which
CatBoost has on the GPU only); the linear model is given Qlib's ``fit_intercept: false`` explicitly (qcore's default
is true). The rewritten YAML is written once per model and seed and run unchanged by
``qcore run`` (in this process) and, with ``--qlib``, by Qlib's ``task_train`` in the Qlib baseline environment
(``.bench/qlib-baseline``; torch, xgboost and catboost must be installed there for those models; the driver drops
the ``verbose`` keyword Qlib 0.9.7 passes to torch's ``ReduceLROnPlateau``, which torch 2.7+ refuses, because Qlib
compares torch versions as strings).

The table has Qlib's benchmark columns — IC, ICIR, Rank IC, Rank ICIR of the test predictions, and the excess
return with cost of the backtest (annualised return, information ratio, max drawdown) — as mean ± std over the
seeds. With ``--qlib``, a last column says whether the two mean ICs are within the seed spread (the larger of the
two standard deviations; two deterministic runs must agree to 1e-4).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml
from _common import ROOT, baseline_hint, default_qlib_env, default_qlib_python, ensure_store, store_path

EXAMPLES = ROOT / "tests" / "data" / "qlib_examples"
#: table columns: label, qcore metric, Qlib metric.
COLUMNS = (
    ("IC", "signal.IC", "IC"),
    ("ICIR", "signal.ICIR", "ICIR"),
    ("Rank IC", "signal.Rank_IC", "Rank IC"),
    ("Rank ICIR", "signal.Rank_ICIR", "Rank ICIR"),
    ("Annualized Return", "backtest.excess_cost.annualized_return", "1day.excess_return_with_cost.annualized_return"),
    ("Information Ratio", "backtest.excess_cost.information_ratio", "1day.excess_return_with_cost.information_ratio"),
    ("Max Drawdown", "backtest.excess_cost.max_drawdown", "1day.excess_return_with_cost.max_drawdown"),
)


@attrs.frozen
class ModelRun:
    """How one model's Qlib YAML is adapted: the file, its seed and thread arguments, epoch cap, fixed overrides."""

    yaml: str
    seed: str | None = "seed"
    threads: str | None = None
    epochs: str | None = None
    overrides: dict[str, Any] = attrs.field(factory=dict)
    drop: tuple[str, ...] = ()
    #: the Python packages Qlib's environment needs for this model.
    needs: tuple[str, ...] = ()


MODELS: dict[str, ModelRun] = {
    "lightgbm": ModelRun("LightGBM/workflow_config_lightgbm_Alpha158.yaml", threads="num_threads"),
    "xgboost": ModelRun("XGBoost/workflow_config_xgboost_Alpha158.yaml", threads="nthread", needs=("xgboost",)),
    # qcore's XGBModel with Qlib's prediction from every round grown (Qlib's XGBModel hands the key to XGBoost,
    # which ignores it with a warning): the same numbers as Qlib's, where ``xgboost`` uses the best round
    "xgboost_all_rounds": ModelRun("XGBoost/workflow_config_xgboost_Alpha158.yaml", threads="nthread",
                                   overrides={"use_best_model": False}, needs=("xgboost",)),
    "catboost": ModelRun("CatBoost/workflow_config_catboost_Alpha158.yaml", seed="random_seed",
                         threads="thread_count", overrides={"bootstrap_type": "Bernoulli"}, needs=("catboost",)),
    "linear": ModelRun("Linear/workflow_config_linear_Alpha158.yaml", seed=None, overrides={"fit_intercept": False}),
    "mlp": ModelRun("MLP/workflow_config_mlp_Alpha360.yaml", epochs="max_steps", needs=("torch",)),
    "lstm": ModelRun("LSTM/workflow_config_lstm_Alpha360.yaml", epochs="n_epochs", needs=("torch",)),
    "gru": ModelRun("GRU/workflow_config_gru_Alpha360.yaml", epochs="n_epochs", needs=("torch",)),
    "alstm": ModelRun("ALSTM/workflow_config_alstm_Alpha360.yaml", epochs="n_epochs", needs=("torch",)),
    "transformer": ModelRun("Transformer/workflow_config_transformer_Alpha360.yaml", epochs="n_epochs",
                            needs=("torch",)),
    "tabnet": ModelRun("TabNet/workflow_config_TabNet_Alpha360.yaml", epochs="n_epochs", needs=("torch",)),
    "tcn": ModelRun("TCN/workflow_config_tcn_Alpha360.yaml", epochs="n_epochs", needs=("torch",)),
    "gats": ModelRun("GATs/workflow_config_gats_Alpha360.yaml", epochs="n_epochs", drop=("model_path",),
                     needs=("torch",)),
}

#: the driver Qlib's environment runs: ``task_train`` on the rewritten YAML, the recorder's metrics as JSON.
QLIB_DRIVER = r"""
import json, sys, time
from ruamel.yaml import YAML
path, out, mlruns, threads = sys.argv[1:5]
config = YAML(typ="safe", pure=True).load(open(path))
try:
    import torch
    torch.set_num_threads(int(threads))

    class _Plateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
        # Qlib 0.9.7 compares torch versions as strings ("2.13.0" <= "2.6.0") and passes `verbose`, which torch
        # >= 2.7 no longer takes; it only printed, so it is dropped
        def __init__(self, *args, verbose=None, **kwargs):
            super().__init__(*args, **kwargs)

    torch.optim.lr_scheduler.ReduceLROnPlateau = _Plateau
except ImportError:
    pass
import qlib
from qlib.model.trainer import task_train
qlib.init(**config["qlib_init"], exp_manager={"class": "MLflowExpManager", "module_path": "qlib.workflow.expm",
                                              "kwargs": {"uri": "file:" + mlruns, "default_exp_name": "Experiment"}})
began = time.perf_counter()
recorder = task_train(config["task"], experiment_name="bench_zoo")
json.dump({"metrics": recorder.list_metrics(), "wall": time.perf_counter() - began}, open(out, "w"))
"""


def calendar(store: Path) -> list[str]:
    """The store's trading days (``calendars/day.txt``)."""
    return [line.strip() for line in (store / "calendars" / "day.txt").read_text().splitlines() if line.strip()]


def split(days: list[str], warmup: int = 60) -> dict[str, list[str]]:
    """Train/valid/test as 60/20/20 of the calendar after ``warmup`` days and before the last two."""
    usable = days[warmup:-2]
    a, b = int(len(usable) * 0.6), int(len(usable) * 0.8)
    return {"train": [usable[0], usable[a - 1]], "valid": [usable[a], usable[b - 1]], "test": [usable[b], usable[-1]]}


def rewrite(run: ModelRun, store: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The model's Qlib YAML (anchors expanded) adapted to the store, the seed and the run's size."""
    config = yaml.safe_load((EXAMPLES / run.yaml).read_text().replace(
        "${QCORE_QLIB_DATA:-~/.qlib/qlib_data/cn_data}", str(store)))
    segments = split(calendar(store))
    config["qlib_init"] = {"provider_uri": str(store), "region": "cn", "kernels": args.threads}
    task = config["task"]
    handler = task["dataset"]["kwargs"]["handler"]["kwargs"]
    handler.update({"start_time": segments["train"][0], "end_time": segments["test"][1], "instruments": "csi300",
                    "fit_start_time": segments["train"][0], "fit_end_time": segments["train"][1]})
    named = dict(task["dataset"]["kwargs"]["segments"])
    task["dataset"]["kwargs"]["segments"] = {
        name: segments["train"] if name.startswith("pretrain") and "valid" not in name
        else segments["valid"] if name.startswith("pretrain") else segments[name] for name in named}
    kwargs = task["model"].setdefault("kwargs", {})
    for key in run.drop:
        kwargs.pop(key, None)
    kwargs.update(run.overrides)
    if run.seed:
        kwargs[run.seed] = seed
    if run.threads:
        kwargs[run.threads] = args.threads
    if run.epochs and args.epochs:
        kwargs[run.epochs] = args.epochs * 50 if run.epochs == "max_steps" else args.epochs
        if "pretrain_n_epochs" in kwargs or run.yaml.startswith("TabNet"):
            kwargs["pretrain_n_epochs"] = args.epochs
    for record in task["record"]:
        if record["class"] == "PortAnaRecord":
            port = record["kwargs"]["config"]
            port["strategy"]["kwargs"].update({"topk": args.topk, "n_drop": args.n_drop})
            port["backtest"].update({"start_time": segments["test"][0], "end_time": segments["test"][1],
                                     "benchmark": "SH000300"})
        if record["class"] == "SigAnaRecord":
            record["kwargs"]["ana_long_short"] = False
    return {"qlib_init": config["qlib_init"], "task": task}


def run_qcore(path: Path, folder: Path, threads: int) -> dict[str, Any]:
    """``qcore run`` of the YAML in this process (local recorder under ``folder``): metrics and wall seconds."""
    import qcore

    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    began = time.perf_counter()
    result = qcore.run(path, overrides=["recorder.name=local", f"recorder.kwargs.uri={folder / 'runs'}"])
    return {"metrics": dict(result.metrics), "wall": time.perf_counter() - began}


def run_qlib(path: Path, folder: Path, threads: int, python: str) -> dict[str, Any]:
    """Qlib's ``task_train`` of the YAML in Qlib's environment: its recorder's metrics and wall seconds."""
    out = folder / "qlib_metrics.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "MLFLOW_ALLOW_FILE_STORE": "true"}  # Qlib 0.9.7 tracks into mlflow's file store
    proc = subprocess.run([python, "-c", QLIB_DRIVER, str(path), str(out), str(folder / "mlruns"), str(threads)],
                          cwd=folder, env=env, capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"Qlib failed on {path.name}: {' | '.join(tail)}")
    return json.loads(out.read_text())


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) of the finite values; NaN when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))


def summarise(results: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per model and framework: mean and std of every column, seeds and mean wall seconds."""
    rows = []
    for model, frameworks in results.items():
        for framework, runs in frameworks.items():
            row: dict[str, Any] = {"model": model, "framework": framework, "seeds": len(runs)}
            for label, ours, theirs in COLUMNS:
                key = ours if framework == "qcore" else theirs
                row[label] = mean_std([r["metrics"].get(key, math.nan) for r in runs])
            row["wall"] = mean_std([r["wall"] for r in runs])[0]
            rows.append(row)
    return rows


def within_spread(rows: list[dict[str, Any]], model: str) -> str:
    """Whether the two frameworks' mean ICs of ``model`` differ by no more than the larger seed std."""
    found = {r["framework"]: r["IC"] for r in rows if r["model"] == model}
    if set(found) != {"qcore", "qlib"}:
        return ""
    (mq, sq), (ml, sl) = found["qcore"], found["qlib"]
    if any(math.isnan(v) for v in (mq, ml)):
        return "n/a"
    spread = max(sq, sl)
    ok = abs(mq - ml) <= (spread if spread > 0 else 1e-4)
    return f"{'yes' if ok else 'NO'} (Δ {mq - ml:+.4f}, spread {spread:.4f})"


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The table in the form of Qlib's benchmark README."""
    labels = [c[0] for c in COLUMNS]
    compare = any(r["framework"] == "qlib" for r in rows)
    head = ["Model", "Framework", "Seeds", *labels, "Wall s/run", *(["IC within seed spread"] if compare else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["framework"], str(r["seeds"])]
        for label in labels:
            mean, std = r[label]
            cells.append("n/a" if math.isnan(mean) else f"{mean:.4f}±{std:.4f}")
        cells.append(f"{r['wall']:.1f}")
        if compare:
            cells.append(within_spread(rows, r["model"]) if r["framework"] == "qcore" else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Synthetic store {args.instruments} instruments × {args.days} days (seed 0), csi300 universe, "
                 f"seeds {', '.join(map(str, range(args.seeds)))}, TopkDropout {args.topk}/{args.n_drop}, "
                 f"{'epochs capped at ' + str(args.epochs) if args.epochs else 'Qlib epochs'}, {args.threads} "
                 "threads.")
    return "\n".join(lines)


def missing_packages(python: str, packages: Sequence[str]) -> list[str]:
    """Which of ``packages`` Qlib's environment cannot import."""
    missing = []
    for package in packages:
        if subprocess.run([python, "-c", f"import {package}"], capture_output=True).returncode != 0:
            missing.append(package)
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    """Run the models and print (and write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lightgbm,xgboost,catboost,linear,mlp,lstm,gru,alstm,transformer,tcn",
                        help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (--quick: 2)")
    parser.add_argument("--quick", action="store_true",
                        help="60 instruments × 500 days, 2 seeds, 2 epochs (a smoke run: Qlib's heavily regularised "
                             "tree configs may not split on so few rows)")
    parser.add_argument("--qlib", action="store_true", help="also run each YAML through Qlib 0.9.7")
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10, help="cap on the networks' epochs (0: Qlib's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--topk", type=int, default=None, help="default: a fifth of the instruments")
    parser.add_argument("--n-drop", type=int, default=None, help="default: a fifth of topk")
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", default=None, help="keep the rewritten YAMLs and runs in this folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.instruments, args.days, args.epochs = 60, 500, 2
    args.seeds = args.seeds or (2 if args.quick else 3)
    args.topk = args.topk or max(5, args.instruments // 5)
    args.n_drop = args.n_drop or max(1, args.topk // 5)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})")
    python = default_qlib_python()
    if args.qlib and not Path(python).exists():
        parser.error(f"no Qlib environment at {default_qlib_env()}: {baseline_hint(default_qlib_env())}")
    store = ensure_store(store_path(args.instruments, args.days, 0), args.instruments, args.days, 0)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-zoo-"))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        run = MODELS[name]
        lacking = missing_packages(python, run.needs) if args.qlib else []
        for seed in range(args.seeds):
            folder = work / name / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "workflow.yaml"
            path.write_text(yaml.safe_dump(rewrite(run, store, seed, args), sort_keys=False))
            frameworks = [("qcore", lambda p=path, f=folder: run_qcore(p, f / "qcore", args.threads))]
            if args.qlib and not lacking:
                frameworks.append(("qlib", lambda p=path, f=folder: run_qlib(p, f, args.threads, python)))
            for framework, call in frameworks:
                try:
                    outcome = call()
                except Exception as exc:  # a model that fails is reported, the table goes on
                    skipped[f"{name}/{framework}"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    print(f"{name} seed {seed} {framework}: FAILED {skipped[f'{name}/{framework}']}", file=sys.stderr)
                    continue
                results.setdefault(name, {}).setdefault(framework, []).append(outcome)
                ic = outcome["metrics"].get("signal.IC" if framework == "qcore" else "IC", math.nan)
                print(f"{name} seed {seed} {framework}: IC {ic:.4f} in {outcome['wall']:.1f}s", file=sys.stderr)
        if lacking:
            skipped[f"{name}/qlib"] = f"Qlib's environment lacks {', '.join(lacking)}"
    rows = summarise(results)
    table = markdown(rows, args)
    if skipped:
        table += "\n\nNot measured: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "skipped": skipped, "args": vars(args)}, indent=1,
                                              default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
