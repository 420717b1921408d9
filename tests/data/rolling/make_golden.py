"""Regenerate ``qlib_rollinggen.json``: Qlib 0.9.7's ``RollingGen`` segments for Qlib's example configuration.

Run with the Qlib baseline environment (not qcore's)::

    .bench/qlib-baseline/bin/python tests/data/rolling/make_golden.py

The calendar is business days 2007-12-03..2020-12-31 without the listed holidays (New Year's day, the first week of
October), written as a minimal Qlib data folder; it starts before the train segment because Qlib's ``truncate``
asserts a nonzero index (#902). The JSON stores that rule, not the dates. Each case is Qlib's LightGBM/Alpha158
example task (its segments) rolled by ``RollingGen(step, rtype, trunc_days)``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
CAL_START, CAL_END = "2007-12-03", "2020-12-31"
SEGMENTS = {"train": ["2008-01-01", "2014-12-31"], "valid": ["2015-01-01", "2016-12-31"],
            "test": ["2017-01-01", "2020-08-01"]}
CASES = [
    {"step": 40, "rtype": "expanding", "trunc_days": None, "segments": SEGMENTS},
    {"step": 40, "rtype": "sliding", "trunc_days": None, "segments": SEGMENTS},
    {"step": 20, "rtype": "expanding", "trunc_days": 21, "segments": SEGMENTS},
    {"step": 20, "rtype": "sliding", "trunc_days": 21, "segments": SEGMENTS},
    {"step": 60, "rtype": "expanding", "trunc_days": 3,
     "segments": {**SEGMENTS, "test": ["2019-06-01", "2022-01-01"]}},
]


def holidays() -> list[str]:
    days = []
    for year in range(2007, 2021):
        days.append(f"{year}-01-01")
        days += [str(d.date()) for d in pd.bdate_range(f"{year}-10-01", f"{year}-10-07")]
    return days


def main() -> None:
    import qlib
    from qlib.workflow.task.gen import RollingGen

    calendar = pd.bdate_range(CAL_START, CAL_END).difference(pd.DatetimeIndex(holidays()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "calendars").mkdir()
        (root / "instruments").mkdir()
        (root / "features").mkdir()
        text = "\n".join(str(d.date()) for d in calendar) + "\n"
        (root / "calendars" / "day.txt").write_text(text)
        (root / "calendars" / "day_future.txt").write_text(text)
        (root / "instruments" / "all.txt").write_text(f"SH600000\t{CAL_START}\t{CAL_END}\n")
        qlib.init(provider_uri=str(root), region="cn")
        cases = []
        for case in CASES:
            task = {"model": {"class": "LGBModel"},
                    "dataset": {"class": "DatasetH", "kwargs": {"handler": {"class": "Alpha158", "kwargs": {
                        "start_time": "2008-01-01", "end_time": case["segments"]["test"][1]}},
                        "segments": {k: tuple(v) for k, v in case["segments"].items()}}}}
            gen = RollingGen(step=case["step"], rtype=case["rtype"], trunc_days=case["trunc_days"])
            windows = []
            for t in gen.generate(task):
                segs = t["dataset"]["kwargs"]["segments"]
                windows.append({k: [None if d is None else str(pd.Timestamp(d).date()) for d in v]
                                for k, v in segs.items()})
            cases.append({**case, "windows": windows})
    golden = {"qlib_version": qlib.__version__, "calendar": {"start": CAL_START, "end": CAL_END,
              "business_days_without": holidays()}, "cases": cases}
    (HERE / "qlib_rollinggen.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
