"""``qcore rl ensemble``: FinRL's rolling ensemble — per window, train every agent, pick the one with the best
validation Sharpe, trade the next window with it.

Windows roll over the loaded rows: window ``i`` trains on the ``train_days + i * trade_days`` rows before its
validation rows (expanding, as FinRL's), validates on the next ``valid_days`` rows and trades the ``trade_days``
rows after them. Each window fits its own feature scaler and turbulence threshold on its own train rows. The
chosen agent's trade-window return is compounded across windows, as is each baseline's (every trade window starts
from cash, a simplification of FinRL's carried-over state); nothing after a window's validation rows decides its
agent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from qcore.errors import ConfigError
from qrl.config import DAILY_ENVS
from qrl.splits import Splits

if TYPE_CHECKING:
    from qcore.kernel import Kernel
    from qrl.config import RLConfig

KEY = "cumulative_return"


def windows(n_rows: int, train_days: int, valid_days: int, trade_days: int) -> list[tuple[slice, slice, slice]]:
    """``(train, valid, trade)`` row slices of each window over ``n_rows`` rows (the last trade window may be
    shorter, never under 2 rows)."""
    if min(train_days, valid_days, trade_days) < 3:
        raise ConfigError("train, valid and trade windows need at least 3 days each", path="--trade-days")
    out = []
    start = train_days
    while start + valid_days + 2 <= n_rows:
        trade_end = min(start + valid_days + trade_days, n_rows)
        out.append((slice(0, start), slice(start, start + valid_days), slice(start + valid_days, trade_end)))
        start += trade_days
    if not out:
        raise ConfigError(f"{n_rows} rows hold no window of {train_days} train + {valid_days} valid + 2 trade days",
                          path="--train-days")
    return out


def ensemble(cfg: RLConfig, kernel: Kernel, agents: Sequence[str], *, train_days: int, valid_days: int,
             trade_days: int) -> dict[str, Any]:
    """Run the rolling ensemble of ``agents`` on ``cfg``'s data (its ``data.splits`` are replaced by the windows);
    writes ``ensemble.json`` into the output folder."""
    from qcore.atomic import write_text
    from qrl import workflow

    if cfg.env not in DAILY_ENVS:
        raise ConfigError(f"the rolling ensemble trades the daily environments, not {cfg.env!r}", path="env",
                          source=cfg.source)
    for name in agents:
        kernel.registry("rl_algorithm").entry(name)
    full, manifest = workflow.load_full_with_manifest(cfg, kernel)
    dates = full.dates
    out_windows = []
    growth: dict[str, float] = {}
    for i, (tr, va, te) in enumerate(windows(len(dates), train_days, valid_days, trade_days)):
        ranges = {"train": (dates[tr.start], dates[tr.stop - 1]), "valid": (dates[va.start], dates[va.stop - 1]),
                  "test": (dates[te.start], dates[te.stop - 1])}
        wcfg = replace(cfg, splits=Splits(ranges=ranges))
        split = workflow.split_data(wcfg, full, manifest=manifest)
        scores, tests = {}, {}
        for name in agents:
            spec = replace(cfg.spec, algorithm=name,
                           algorithm_kwargs=cfg.spec.algorithm_kwargs if name == cfg.spec.algorithm else {})
            res = workflow.train(replace(wcfg, spec=spec, out_dir=cfg.out_dir / f"window{i}" / name), kernel,
                                 data=split)
            scores[name] = float(res["valid"]["policy"]["sharpe"])
            tests[name] = res["metrics"]
        chosen = max(agents, key=lambda a: (scores[a], -list(agents).index(a)))
        picked = {"ensemble": tests[chosen]["policy"], **{a: tests[a]["policy"] for a in agents},
                  **{b: m for b, m in tests[chosen].items() if b != "policy"}}
        for who, m in picked.items():
            growth[who] = growth.get(who, 1.0) * (1.0 + float(m[KEY]))
        out_windows.append({"window": i, "dates": {k: [str(a.date()), str(b.date())] for k, (a, b) in ranges.items()},
                            "valid_sharpe": scores, "chosen": chosen,
                            "trade": {who: float(m[KEY]) for who, m in picked.items()}})
    result = {"agents": list(agents), "windows": out_windows,
              "cumulative_return": {who: g - 1.0 for who, g in growth.items()},
              "chosen_counts": {a: sum(w["chosen"] == a for w in out_windows) for a in agents},
              "dataset": manifest}
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    write_text(cfg.out_dir / "ensemble.json", json.dumps(result, indent=2, default=str))
    return result


def format_result(result: dict[str, Any]) -> list[str]:
    """One line per window (dates, chosen agent, validation Sharpes) and the compounded trade returns."""
    lines = []
    for w in result["windows"]:
        sharpes = ", ".join(f"{a} {s:.2f}" for a, s in w["valid_sharpe"].items())
        lines.append(f"window {w['window']}: trade {w['dates']['test'][0]} .. {w['dates']['test'][1]} with "
                     f"{w['chosen']} (valid Sharpe {sharpes}): {w['trade']['ensemble']:+.2%}")
    lines.append("compounded over the trade windows:")
    for who, r in sorted(result["cumulative_return"].items(), key=lambda kv: -kv[1]):
        lines.append(f"{who:>14}: {r:+.2%}")
    return lines



