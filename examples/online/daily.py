"""The online routine a desk runs after each close, day by day: update → retrain (when the schedule or the previous
days' drift flags say so) → predict → orders → monitor, each step a ``qcore online`` command (idempotent: running a
day again changes nothing).

.. code-block:: bash

    python examples/online/daily.py examples/online/workflow.yaml --date 2025-02-14 --positions positions.csv \
        [--source new_bars.csv] [--paper]

``--positions``: the desk's holdings at the close of DATE (``instrument, amount``/``shares``, a ``CASH`` row).
``--source``: the day's new bars (``qcore data import`` formats), appended to the store first.
``--paper``: paper trading: writes the positions after the orders (filled at DATE's close, no costs) to
``<online folder>/paper/positions-<next day>.csv``, the positions file of the next day's run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def qcore(*args: str) -> None:
    """Run one ``qcore`` command line in this process; a failure stops the routine with its message."""
    from qcore.cli import cli

    print("$ qcore " + " ".join(args), flush=True)
    try:
        cli.main(args=list(args), prog_name="qcore", standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    except Exception as exc:  # a click or qcore error: print it as qcore would, and stop
        fmt = getattr(exc, "format_message", None)
        message = fmt() if callable(fmt) else str(exc)
        print(f"Error: {message}", file=sys.stderr)
        raise SystemExit(1) from None


def paper_positions(folder: Path, date: str) -> Path:
    """The positions after DATE's orders filled at their reference prices (no costs): the next day's file."""
    import json

    import pandas as pd

    meta = json.loads((folder / "orders" / f"{date}.json").read_text())
    orders = pd.read_parquet(folder / "orders" / f"{date}.parquet")
    targets = pd.read_parquet(folder / "orders" / f"{date}.targets.parquet")
    signed = orders["value"].where(orders["direction"] == "sell", -orders["value"])
    cash = float(meta["cash"]) + float(signed.sum())
    rows = [{"instrument": "CASH", "amount": cash}] + [{"instrument": r.instrument, "amount": r.target_amount}
                                                       for r in targets.itertuples()]  # fmt: skip
    path = folder / "paper" / f"positions-{meta['trade_date']}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def routine(config: str, date: str, positions: str, *, source: str | None = None, paper: bool = False,
            folder: str | None = None) -> Path | None:  # fmt: skip
    """Run the day's steps; returns the next day's paper positions file (None without ``paper``)."""
    where = ("--folder", folder) if folder else ()
    if source:
        qcore("online", "update", config, "--source", source, *where)
    qcore("online", "retrain", config, "--date", date, *where)
    qcore("online", "predict", config, "--date", date, *where)
    qcore("online", "orders", config, "--date", date, "--positions", positions, *where)
    qcore("online", "monitor", config, "--date", date, *where)
    if not paper:
        return None
    if folder is None:
        import yaml

        folder = yaml.safe_load(Path(config).read_text())["online"]["folder"]
    return paper_positions(Path(folder), date)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--date", required=True)
    parser.add_argument("--positions", required=True)
    parser.add_argument("--source")
    parser.add_argument("--folder")
    parser.add_argument("--paper", action="store_true")
    args = parser.parse_args(argv)
    nxt = routine(args.config, args.date, args.positions, source=args.source, paper=args.paper, folder=args.folder)
    if nxt is not None:
        print(f"next day's positions (paper): {nxt}")


if __name__ == "__main__":
    main()
