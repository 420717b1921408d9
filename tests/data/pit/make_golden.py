"""Regenerate the point-in-time parity fixtures in this folder (run from the repository root, in two steps).

1. ``.venv/bin/python tests/data/pit/make_golden.py store``: writes ``reports.csv`` (random quarterly and annual reports
   with publication lags, gaps and amendments, seed 24) and ``store/`` (a small synthetic market, then
   ``qcore data import-pit reports.csv``: the PIT files are our importer's).
2. ``.bench/qlib-baseline/bin/python tests/data/pit/make_golden.py golden``: Qlib 0.9.7 reads ``store/`` (bars and PIT
   files) and writes ``golden.csv``, the values of :data:`EXPRESSIONS` on every instrument and day.
3. ``qlib_dumped/financial/`` is the output of Qlib's own ``scripts/dump_pit.py`` (Qlib 0.9.7, tag ``v0.9.7``, commit
   ``da920b7f954f48ab1bb64117c976710de198373e``; not part of the ``pyqlib`` wheel, never copied into this repository)
   on the same records as ``reports.csv``::

       git -C QLIB_CHECKOUT show v0.9.7:scripts/dump_pit.py > /tmp/qlib_scripts/dump_pit.py
       .bench/qlib-baseline/bin/python tests/data/pit/make_golden.py qlib_dump /tmp/qlib_scripts/dump_pit.py

   It splits ``reports.csv`` into the per-instrument CSVs (``<instrument>.csv``: ``date,period,field,value``, the field
   without its ``_q``/``_a`` suffix) that ``dump_pit.py`` reads, quarterly and annual fields in separate folders, and
   runs ``python dump_pit.py dump --csv_path DIR --qlib_dir OUT --interval {quarterly,annual} --max_workers 1`` once
   per folder (``dump_pit.py`` stores values as float32-rounded doubles, as Qlib's own data has them).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORE = HERE / "store"
REPORTS = HERE / "reports.csv"
GOLDEN = HERE / "golden.csv"
QLIB_DUMPED = HERE / "qlib_dumped"

#: Name → expression, read by Qlib (golden) and by qcore (tests/pit/test_pit_parity.py).
EXPRESSIONS = {
    "eps": "P($$eps_q)",
    "eps_mean4": "P(Mean($$eps_q, 4))",
    "eps_201903": "PRef($$eps_q, 201903)",
    "bps_annual": "P($$bps_a)",
    "ep": "P($$eps_q)/$close",
    "eps_change": "P($$eps_q - Ref($$eps_q, 1))",
    "roe_sum4_x": "P(Sum($$roe_q, 4)) * $volume / 1000000",
    "eps_max3": "P(Max($$eps_q, 3))",
}


def write_store() -> None:
    """Step 1 (qcore's environment)."""
    import numpy as np
    import pandas as pd
    from qdata_cn.pit_import import import_pit
    from qdata_cn.synth import synthesize

    synthesize(STORE, instruments=6, days=320, seed=24, start="2019-01-02", overwrite=True)
    symbols = sorted(p.name.upper() for p in (STORE / "features").iterdir() if p.is_dir())
    rng = np.random.default_rng(24)
    rows = []
    for symbol in symbols[:-1]:  # the last instrument has no reports
        eps = rng.normal(0.5, 0.2)
        for year in range(2016, 2021):
            for quarter in range(1, 5):
                period = year * 100 + quarter
                end = pd.Timestamp(year=year, month=3 * quarter, day=1) + pd.offsets.MonthEnd(0)
                lag = int(rng.integers(30, 121)) if quarter < 4 else int(rng.integers(60, 121))
                published = end + pd.Timedelta(days=lag)
                if published > pd.Timestamp("2020-06-30") or rng.random() < 0.08:  # not yet out, or never
                    continue
                eps = eps * (1 + rng.normal(0.02, 0.1))
                roe = eps / 4 + rng.normal(0, 0.01)
                rows.append((symbol, published, period, "eps_q", round(eps, 6)))
                rows.append((symbol, published + pd.Timedelta(days=int(rng.integers(0, 3))), period, "roe_q",
                             round(roe, 6)))  # fmt: skip
                if rng.random() < 0.15:  # an amendment, weeks later
                    fixed = published + pd.Timedelta(days=int(rng.integers(5, 90)))
                    rows.append((symbol, fixed, period, "eps_q", round(eps * (1 + rng.normal(0, 0.05)), 6)))
            annual = pd.Timestamp(year=year + 1, month=4, day=1) + pd.Timedelta(days=int(rng.integers(0, 29)))
            if annual <= pd.Timestamp("2020-06-30"):
                rows.append((symbol, annual, year, "bps_a", round(abs(eps) * 8 + rng.normal(0, 0.1), 6)))
    frame = pd.DataFrame(rows, columns=["instrument", "date", "period", "field", "value"])
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.to_csv(REPORTS, index=False)
    import_pit(REPORTS, STORE)


def write_golden() -> None:
    """Step 2 (the Qlib baseline environment)."""
    import qlib
    from qlib.data import D

    qlib.init(provider_uri=str(STORE), region="cn")
    instruments = D.instruments("all")
    frame = D.features(instruments, list(EXPRESSIONS.values()), freq="day")
    frame.columns = list(EXPRESSIONS)
    frame = frame.swaplevel().sort_index()
    frame.index.names = ["datetime", "instrument"]
    frame.to_csv(GOLDEN, float_format="%.9g")


def write_qlib_dumped(dump_pit: str) -> None:
    """Step 3 (the Qlib baseline environment): ``qlib_dumped/financial/`` written by Qlib's ``dump_pit.py``."""
    import shutil
    import subprocess
    import tempfile

    import pandas as pd

    reports = pd.read_csv(REPORTS)
    shutil.rmtree(QLIB_DUMPED, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        for suffix, interval in (("_q", "quarterly"), ("_a", "annual")):
            folder = Path(tmp) / interval
            folder.mkdir()
            part = reports[reports["field"].str.endswith(suffix)].copy()
            part["field"] = part["field"].str.removesuffix(suffix)
            for symbol, rows in part.groupby("instrument"):
                rows[["date", "period", "field", "value"]].to_csv(folder / f"{symbol.lower()}.csv", index=False)
            subprocess.run([sys.executable, dump_pit, "dump", "--csv_path", str(folder), "--qlib_dir", str(QLIB_DUMPED),
                            "--interval", interval, "--max_workers", "1"], check=True)  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "qlib_dump":
        write_qlib_dumped(sys.argv[2])
    else:
        {"store": write_store, "golden": write_golden}[sys.argv[1]]()
