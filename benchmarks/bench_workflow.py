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

qcore runs twice, with a fresh LightGBM dataset cache (``QCORE_CACHE_DIR`` in the working directory):

* **cold**: the config as it is; LightGBM builds its datasets and stores them in the cache;
* **warm**: new *model* parameters (``--warm-set``, default ``model.kwargs.learning_rate=0.1``), so the expression
  pipeline runs again but LightGBM's constructed datasets come from the cache (the log says ``cache hit``).

For each run: wall and CPU time, peak resident memory (the child's ``ru_maxrss`` from ``wait4``: the largest single
process, as ``/usr/bin/time`` reports it), and for qcore the time inside LightGBM (dataset construction, boosting,
from its ``-v`` log) and everything else (target: at most 2 s outside LightGBM). Then the ratios against ``qrun``
(target: qcore ≥ 5× faster; peak memory at most half of Qlib's) and each side's headline numbers (IC, Rank IC,
annualised excess return with cost, ...) read back from its MLflow records, to show that both did the same job; they
need not be identical (different LightGBM builds and data pipelines).

    .venv/bin/python benchmarks/bench_workflow.py [--store DIR] [--config YAML] [--no-qlib] [--qlib-env DIR]
                                                  [--warm-set KEY=VALUE ...]
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
from typing import Any

import attrs
from _common import ROOT, baseline_hint, default_qlib_env

QLIB_CONFIG = Path(__file__).resolve().parent / "qlib_workflow_lightgbm_alpha158.yaml"
TARGET = 5.0
MEMORY_TARGET = 0.5  # qcore's peak resident memory at most this share of Qlib's
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


def run_timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float, int, str, int]:
    """Run ``cmd`` in ``cwd``; ``(wall seconds, CPU seconds (user + system, its children included), exit code,
    output, peak resident bytes)``, the output also written to ``log``."""
    began = time.perf_counter()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - began
    cpu = usage.ru_utime + usage.ru_stime
    peak = int(usage.ru_maxrss) * 1024  # kilobytes on Linux
    return seconds, cpu, proc.returncode, log.read_text(errors="replace"), peak


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


#: the LightGBM model's ``-v`` log line: its time in LightGBM's dataset construction and boosting.
LGB_LOG = re.compile(r"lightgbm: datasets \S+: arrays ([\d.]+)s, construct ([\d.]+)s, cache (\w+) ([\d.]+)s; "
                     r"(\d+) boosting rounds in ([\d.]+)s")  # fmt: skip


@attrs.frozen
class Measured:
    """One timed run."""

    wall: float
    cpu: float
    peak: int
    metrics: dict[str, float]
    lightgbm: dict[str, Any] | None = None  # construct/boost seconds and the cache outcome (qcore only)


def run_qcore(config: Path, store: Path, work: Path, cache: Path, overrides: list[str]) -> Measured:
    """Time ``qcore -v run CONFIG [--set ...]`` in ``work`` with the LightGBM dataset cache at ``cache``."""
    env = {**os.environ, "QCORE_DATA": str(store), "QCORE_CACHE_DIR": str(cache)}
    env.pop("QCORE_LGB_DATASET_CACHE", None)
    cmd = [str(ROOT / ".venv" / "bin" / "qcore"), "-v", "run", str(config)]
    for item in overrides:
        cmd += ["--set", item]
    seconds, cpu, code, output, peak = run_timed(cmd, work, env, work / "qcore.log")
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
    lgb = None
    if found_lgb := LGB_LOG.search(output):
        arrays, construct, outcome, cache_s, rounds, boost = found_lgb.groups()
        lgb = {"arrays": float(arrays), "construct": float(construct), "cache": outcome, "cache_s": float(cache_s),
               "rounds": int(rounds), "boost": float(boost)}  # fmt: skip
    return Measured(seconds, cpu, peak, metrics, lgb)


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


def run_qlib(qrun: list[str], config: Path, store: Path, work: Path) -> tuple[Measured, str]:
    """Time Qlib's ``qrun CONFIG`` in ``work``; the measurement and its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCORE_")}
    env.update(QLIB_STORE=str(store), MLFLOW_ALLOW_FILE_STORE="true")
    log = work / "qlib.log"
    seconds, cpu, code, output, peak = run_timed([*qrun, str(config)], work, env, log)
    if code != 0 and "MLFLOW_ALLOW_FILE_STORE" in output:
        print("Qlib: mlflow refused the file store even with MLFLOW_ALLOW_FILE_STORE=true; rerunning with sqlite")
        seconds, cpu, code, output, peak = run_timed([*qrun, str(with_sqlite_tracking(config, work))], work, env, log)
    if code != 0:
        fail("Qlib", code, output, log)
    if (work / "mlflow.db").exists():
        metrics = sqlite_metrics(work / "mlflow.db")
    else:
        metrics = file_store_metrics(work / "mlruns")
    return Measured(seconds, cpu, peak, metrics), output


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(ROOT / "data" / "synth_cn"),
                        help="the Qlib-format store (built with `qcore data synth` if missing)")  # fmt: skip
    parser.add_argument("--config", default=str(ROOT / "examples" / "workflow_lightgbm_alpha158.yaml"),
                        help="qcore's workflow config")  # fmt: skip
    parser.add_argument("--qlib-config", default=str(QLIB_CONFIG), help="the same job in Qlib's format")
    parser.add_argument("--qlib-env", default=str(default_qlib_env()), help="Qlib's baseline environment")
    parser.add_argument("--no-qlib", action="store_true", help="time qcore only")
    parser.add_argument("--warm-set", action="append", default=None, metavar="KEY=VALUE",
                        help="model parameters of the warm run (default: model.kwargs.learning_rate=0.1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directories")
    args = parser.parse_args()
    args.warm_set = args.warm_set or ["model.kwargs.learning_rate=0.1"]

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
    cache = work_root / "cache"  # fresh: the cold run builds LightGBM's datasets, the warm one reuses them
    runs: dict[str, Measured] = {}
    for name, overrides in (("cold", []), ("warm", list(args.warm_set))):
        (work_root / f"qcore-{name}").mkdir()
        runs[name] = run_qcore(config, store, work_root / f"qcore-{name}", cache, overrides)
        m = runs[name]
        print(f"qcore {name}: {m.wall:.1f} s wall, {m.cpu:.1f} s CPU, peak {mib(m.peak)} (qcore run"
              f"{''.join(' --set ' + o for o in overrides)})")
    theirs: Measured | None = None
    if qrun is not None:
        (work_root / "qlib").mkdir()
        theirs, qlib_output = run_qlib(qrun, Path(args.qlib_config).resolve(), store, work_root / "qlib")
        stages = []
        for stage in QLIB_STAGES:
            found = re.search(rf"Time cost: ([\d.]+)s \| {re.escape(stage)} Done", qlib_output)
            if found:
                stages.append(f"{stage} {float(found.group(1)):.1f} s")
        print(f"Qlib:  {theirs.wall:.1f} s wall, {theirs.cpu:.1f} s CPU, peak {mib(theirs.peak)} "
              f"(qrun{'; ' + ', '.join(stages) if stages else ''})")

    print()
    print(f"{'run':14}{'wall s':>9}{'CPU s':>9}{'peak':>11}{'LGB construct':>15}{'LGB boost':>11}{'outside LGB':>13}"
          f"{'cache':>7}")
    for name, m in runs.items():
        lgb = m.lightgbm
        if lgb is None:
            print(f"qcore {name:8}{m.wall:9.1f}{m.cpu:9.1f}{mib(m.peak):>11}{'?':>15}{'?':>11}{'?':>13}{'?':>7}")
            continue
        outside = m.wall - lgb["construct"] - lgb["boost"]
        print(f"qcore {name:8}{m.wall:9.1f}{m.cpu:9.1f}{mib(m.peak):>11}{lgb['construct']:15.2f}{lgb['boost']:11.2f}"
              f"{outside:13.2f}{lgb['cache']:>7}")
    if theirs is not None:
        print(f"{'Qlib qrun':14}{theirs.wall:9.1f}{theirs.cpu:9.1f}{mib(theirs.peak):>11}")
    print("(outside LGB: wall time minus LightGBM's dataset construction and boosting; target ≤ 2 s)")

    print()
    print(f"{'':42}{'qcore':>10}{'Qlib':>10}")
    for label, our_key, their_key in HEADLINES:
        their = fmt(theirs.metrics.get(their_key)) if theirs is not None else "-"
        print(f"{label:42}{fmt(runs['cold'].metrics.get(our_key)):>10}{their:>10}")
    if theirs is not None:
        print()
        for name, m in runs.items():
            ratio = theirs.wall / m.wall
            verdict = "meets" if ratio >= TARGET else "BELOW"
            share = m.peak / theirs.peak
            print(f"{name}: speed-up {ratio:.2f}× wall ({theirs.wall:.1f} s / {m.wall:.1f} s; {verdict} the target of "
                  f"≥ {TARGET:g}×), {theirs.cpu / max(m.cpu, 1e-9):.2f}× CPU; peak memory {share:.2f}× Qlib's "
                  f"({'meets' if share <= MEMORY_TARGET else 'ABOVE'} the target of ≤ {MEMORY_TARGET:g}×)")
    if args.keep:
        print(f"working directories kept under {work_root}")
    else:
        import shutil

        shutil.rmtree(work_root, ignore_errors=True)


if __name__ == "__main__":
    main()
