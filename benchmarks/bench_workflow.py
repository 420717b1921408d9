"""End-to-end speed of the main job against Qlib: LightGBM on Alpha158 over the synthetic A-share market.

Measures the wall-clock time of the whole workflow as a user runs it, each side in a fresh temporary working
directory (where its MLflow tracking data lands), from process start to exit: loading the 300 × 2500 store, computing
Alpha158 on the csi300-like universe, the DropnaLabel + CSZScoreNorm(label) processors, LightGBM training with early
stopping (2 threads), predicting the test segment, IC analysis, the TopkDropout 50/5 backtest with A-share costs and
recording everything.

* qcore: ``.venv/bin/qcore run CONFIG`` with ``QCORE_DATA=STORE`` (CONFIG defaults to
  ``examples/workflow_lightgbm_alpha158.yaml``).
* Qlib: its own ``qrun`` in the separate baseline environment (pyqlib 0.9.7, built by
  ``../shared/tools/qlib-baseline-env.sh``) on ``benchmarks/qlib_workflow_lightgbm_alpha158.yaml``, the same job
  in Qlib's format (``kernels: 2``, no expression or dataset cache), with ``MLFLOW_ALLOW_FILE_STORE=true``; should
  mlflow still refuse the file store, it is rerun with a sqlite tracking uri.

Both times, their ratio (target: qcore ≥ 5× faster) and each side's headline numbers (IC, Rank IC, annualised excess
return with cost, ...) read back from its MLflow records are printed, to show that both did the same job; they need
not be identical (different LightGBM builds and data pipelines).

    .venv/bin/python benchmarks/bench_workflow.py [--store DIR] [--config YAML] [--no-qlib] [--qlib-env DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, baseline_hint, default_qlib_env

QLIB_CONFIG = Path(__file__).resolve().parent / "qlib_workflow_lightgbm_alpha158.yaml"
TARGET = 5.0
# (label, qcore metric, Qlib metric): the headline numbers of each side's records.
HEADLINES = [
    ("IC", "signal.IC", "IC"),
    ("ICIR", "signal.ICIR", "ICIR"),
    ("Rank IC", "signal.Rank_IC", "Rank IC"),
    ("Rank ICIR", "signal.Rank_ICIR", "Rank ICIR"),
    ("Annualised excess return (without cost)", "backtest.excess.annualized_return",
     "1day.excess_return_without_cost.annualized_return"),
    ("Annualised excess return (with cost)", "backtest.excess_cost.annualized_return",
     "1day.excess_return_with_cost.annualized_return"),
    ("Information ratio (with cost)", "backtest.excess_cost.information_ratio",
     "1day.excess_return_with_cost.information_ratio"),
    ("Max drawdown (with cost)", "backtest.excess_cost.max_drawdown", "1day.excess_return_with_cost.max_drawdown"),
]  # fmt: skip
# Qlib's own stage timers ("Time cost: 75.728s | Loading data Done"), shown as a breakdown of its run.
QLIB_STAGES = ["Loading data", "fit & process data", "Init data"]


def run_timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float, int, str]:
    """Run ``cmd`` in ``cwd``; ``(wall seconds, CPU seconds (user + system, its children included), exit code,
    output)``, the output also written to ``log``."""
    cpu_before = os.times()
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - began
    after = os.times()
    cpu = after.children_user - cpu_before.children_user + after.children_system - cpu_before.children_system
    log.write_text(proc.stdout)
    return seconds, cpu, proc.returncode, proc.stdout


def fail(side: str, code: int, output: str, log: Path) -> None:
    sys.stderr.write(output[-4000:])
    raise SystemExit(f"{side} run failed with exit code {code} (full output: {log})")


def sqlite_metrics(db: Path) -> dict[str, float]:
    """The latest value of every metric in an MLflow sqlite store (one run is expected)."""
    with sqlite3.connect(db) as conn:
        return {key: float(value) for key, value in conn.execute("SELECT key, value FROM latest_metrics")}


def file_store_metrics(mlruns: Path) -> dict[str, float]:
    """The last value of every metric in an MLflow file store (``mlruns/EXP/RUN/metrics/KEY``: ``ts value step``)."""
    metrics: dict[str, float] = {}
    for metrics_dir in mlruns.glob("*/*/metrics"):
        for path in metrics_dir.rglob("*"):
            lines = path.read_text().split("\n") if path.is_file() else []
            lines = [line for line in lines if line.strip()]
            if lines:
                metrics[path.relative_to(metrics_dir).as_posix()] = float(lines[-1].split()[1])
    return metrics


def run_qcore(config: Path, store: Path, work: Path) -> tuple[float, float, dict[str, float]]:
    """Time ``qcore run CONFIG`` in ``work``; its wall and CPU times and recorded metrics."""
    env = {**os.environ, "QCORE_DATA": str(store)}
    seconds, cpu, code, output = run_timed([str(ROOT / ".venv" / "bin" / "qcore"), "run", str(config)], work, env,
                                           work / "qcore.log")  # fmt: skip
    if code != 0:
        fail("qcore", code, output, work / "qcore.log")
    if (work / "mlflow.db").exists():
        metrics = sqlite_metrics(work / "mlflow.db")
    else:  # another recorder: read the printed summary ("  IC   0.0316")
        metrics = {}
        for label, key, _ in HEADLINES:
            found = re.search(rf"^\s*{re.escape(label)}\s+(-?[\d.]+(?:e-?\d+)?)\s*$", output, re.MULTILINE)
            if found:
                metrics[key] = float(found.group(1))
    return seconds, cpu, metrics


def check_qlib_env(qlib_env: Path) -> list[str]:
    """The command that runs a Qlib workflow config in ``qlib_env``, or a clear error if that env is unusable."""
    python = qlib_env / "bin" / "python"
    hint = f"{baseline_hint(qlib_env)}, pass --qlib-env DIR, or run with --no-qlib"
    if not python.exists():
        raise SystemExit(f"Qlib baseline environment not found at {qlib_env}: {hint}")
    probe = subprocess.run([str(python), "-c", "import qlib, lightgbm, mlflow; print(qlib.__version__)"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        raise SystemExit(f"Qlib baseline environment at {qlib_env} is broken ({probe.stderr.strip()[-500:]}): {hint}")
    qrun = qlib_env / "bin" / "qrun"
    # Without the console script, Qlib's CLI module does the same (qlib.cli.run.workflow through fire).
    return [str(qrun)] if qrun.exists() else [str(python), "-m", "qlib.cli.run"]


def with_sqlite_tracking(config: Path, work: Path) -> Path:
    """A copy of the Qlib config whose ``qlib_init`` points Qlib's experiment manager at ``work/mlflow.db``."""
    text = config.read_text()
    entry = ('  exp_manager: {class: MLflowExpManager, module_path: qlib.workflow.expm, '
             f'kwargs: {{uri: "sqlite:///{work / "mlflow.db"}", default_exp_name: Experiment}}}}\n')  # fmt: skip
    text, count = re.subn(r"^qlib_init:\s*\n", lambda m: m.group(0) + entry, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise SystemExit(f"{config}: no block-style `qlib_init:` section to add a sqlite exp_manager to")
    path = work / "qlib_workflow_sqlite.yaml"
    path.write_text(text)
    return path


def run_qlib(qrun: list[str], config: Path, store: Path, work: Path) -> tuple[float, float, dict[str, float], str]:
    """Time Qlib's ``qrun CONFIG`` in ``work``; its wall and CPU times, recorded metrics and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCORE_")}
    env.update(QLIB_STORE=str(store), MLFLOW_ALLOW_FILE_STORE="true")
    log = work / "qlib.log"
    seconds, cpu, code, output = run_timed([*qrun, str(config)], work, env, log)
    if code != 0 and "MLFLOW_ALLOW_FILE_STORE" in output:
        print("Qlib: mlflow refused the file store even with MLFLOW_ALLOW_FILE_STORE=true; rerunning with sqlite")
        seconds, cpu, code, output = run_timed([*qrun, str(with_sqlite_tracking(config, work))], work, env, log)
    if code != 0:
        fail("Qlib", code, output, log)
    if (work / "mlflow.db").exists():
        metrics = sqlite_metrics(work / "mlflow.db")
    else:
        metrics = file_store_metrics(work / "mlruns")
    return seconds, cpu, metrics, output


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(ROOT / "data" / "synth_cn"),
                        help="the Qlib-format store (built with `qcore data synth` if missing)")  # fmt: skip
    parser.add_argument("--config", default=str(ROOT / "examples" / "workflow_lightgbm_alpha158.yaml"),
                        help="qcore's workflow config")  # fmt: skip
    parser.add_argument("--qlib-config", default=str(QLIB_CONFIG), help="the same job in Qlib's format")
    parser.add_argument("--qlib-env", default=str(default_qlib_env()), help="Qlib's baseline environment")
    parser.add_argument("--no-qlib", action="store_true", help="time qcore only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directories")
    args = parser.parse_args()

    store = Path(args.store).resolve()
    config = Path(args.config).resolve()
    if not config.exists():
        raise SystemExit(f"config not found: {config}")
    qrun = None if args.no_qlib else check_qlib_env(Path(args.qlib_env))
    if not (store / "calendars" / "day.txt").exists():
        print(f"building the synthetic store at {store} (300 instruments × 2500 days)")
        subprocess.run([str(ROOT / ".venv" / "bin" / "qcore"), "data", "synth", "--out", str(store),
                        "--instruments", "300", "--days", "2500", "--seed", "0"], check=True)  # fmt: skip
    days = sum(1 for line in (store / "calendars" / "day.txt").read_text().splitlines() if line.strip())
    names = sum(1 for line in (store / "instruments" / "all.txt").read_text().splitlines() if line.strip())
    print(f"workflow {config.name} on {store} ({names} instruments incl. the index, {days} days)")

    work_root = Path(tempfile.mkdtemp(prefix="qcore-bench-workflow-"))
    (work_root / "qcore").mkdir()
    ours, our_cpu, our_metrics = run_qcore(config, store, work_root / "qcore")
    print(f"qcore: {ours:.1f} s wall, {our_cpu:.1f} s CPU (qcore run)")
    theirs, their_cpu, their_metrics, qlib_output = None, 0.0, {}, ""
    if qrun is not None:
        (work_root / "qlib").mkdir()
        theirs, their_cpu, their_metrics, qlib_output = run_qlib(qrun, Path(args.qlib_config).resolve(), store,
                                                                 work_root / "qlib")  # fmt: skip
        stages = []
        for stage in QLIB_STAGES:
            found = re.search(rf"Time cost: ([\d.]+)s \| {re.escape(stage)} Done", qlib_output)
            if found:
                stages.append(f"{stage} {float(found.group(1)):.1f} s")
        print(f"Qlib:  {theirs:.1f} s wall, {their_cpu:.1f} s CPU (qrun{'; ' + ', '.join(stages) if stages else ''})")

    print()
    print(f"{'':42}{'qcore':>10}{'Qlib':>10}")
    for label, our_key, their_key in HEADLINES:
        their = fmt(their_metrics.get(their_key)) if theirs is not None else "-"
        print(f"{label:42}{fmt(our_metrics.get(our_key)):>10}{their:>10}")
    if theirs is not None:
        ratio = theirs / ours
        verdict = "meets" if ratio >= TARGET else "BELOW"
        print(
            f"\nspeed-up: {ratio:.2f}× wall ({theirs:.1f} s / {ours:.1f} s; {verdict} the target of ≥ {TARGET:g}×), "
            f"{their_cpu / max(our_cpu, 1e-9):.2f}× CPU"
        )
    if args.keep:
        print(f"working directories kept under {work_root}")
    else:
        import shutil

        shutil.rmtree(work_root, ignore_errors=True)


if __name__ == "__main__":
    main()
