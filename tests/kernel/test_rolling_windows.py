"""Rolling windows: Qlib 0.9.7 RollingGen golden segments, calendar-period steps, gap, and the config section."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qcore.config import config_from_mapping
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.rolling.windows import Step, WindowError, parse_step, rolling_windows

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "rolling" / "qlib_rollinggen.json"
STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"


def _golden() -> tuple[pd.DatetimeIndex, list[dict[str, Any]]]:
    golden = json.loads(GOLDEN.read_text())
    cal = golden["calendar"]
    dates = pd.bdate_range(cal["start"], cal["end"]).difference(pd.DatetimeIndex(cal["business_days_without"]))
    return dates, golden["cases"]


@pytest.mark.parametrize("case", range(5))
def test_windows_equal_qlib_rollinggen(case: int) -> None:
    calendar, cases = _golden()
    spec = cases[case]
    gap = (spec["trunc_days"] or 1) - 1  # Qlib's trunc_days = gap + 1
    windows = rolling_windows(calendar, spec["segments"], spec["step"], spec["rtype"], gap)
    assert [w.describe() for w in windows] == spec["windows"]
    assert len(windows) > 5


def test_predict_spans_tile_the_test_segment() -> None:
    calendar, cases = _golden()
    spec = cases[4]  # its last window tests past the calendar (None) and past the test end
    windows = rolling_windows(calendar, spec["segments"], spec["step"], spec["rtype"], 2)
    assert windows[-1].segments["test"][1] is None
    days = [d for w in windows for d in calendar[(calendar >= w.predict[0]) & (calendar <= w.predict[1])]]
    lo, hi = pd.Timestamp(spec["segments"]["test"][0]), pd.Timestamp(spec["segments"]["test"][1])
    assert days == list(calendar[(calendar >= lo) & (calendar <= hi)])


def test_month_steps_start_on_the_first_trading_day_of_each_month() -> None:
    calendar, _ = _golden()
    segments = {"train": ("2010-01-01", "2016-06-30"), "test": ("2017-01-10", "2017-12-31")}
    windows = rolling_windows(calendar, segments, "1M", "sliding")
    starts = [w.predict[0] for w in windows]
    assert starts[0] == pd.Timestamp("2017-01-10")
    expected = [calendar[calendar.to_period("M") == p][0] for p in pd.period_range("2017-02", "2017-12", freq="M")]
    assert starts[1:] == expected
    for a, b in itertools.pairwise(windows):  # contiguous, no overlap
        assert calendar[calendar.get_loc(a.predict[1]) + 1] == b.predict[0]
    # sliding: the train segment moved by as many bars as the test start did
    shift = calendar.get_loc(starts[3]) - calendar.get_loc(starts[0])
    assert calendar.get_loc(windows[3].train[0]) - calendar.get_loc(windows[0].train[0]) == shift
    quarters = rolling_windows(calendar, segments, "1Q", "expanding")
    assert [w.predict[0].month for w in quarters] == [1, 4, 7, 10]
    assert {w.train[0] for w in quarters} == {windows[0].train[0]}


def test_week_steps_and_gap() -> None:
    calendar, _ = _golden()
    segments = {"train": ("2010-01-01", "2017-01-31"), "test": ("2017-01-04", "2017-02-28")}
    windows = rolling_windows(calendar, segments, "1W", gap=3)
    assert all(w.predict[0].dayofweek == 0 for w in windows[1:])
    first_test = calendar.get_loc(windows[0].predict[0])
    assert calendar.get_loc(windows[0].train[1]) == first_test - 4  # 3 bars between train end and test start
    for w in windows:
        assert calendar.get_loc(w.predict[0]) - calendar.get_loc(w.train[1]) == 4


@pytest.mark.parametrize("value, expected", [(40, Step(40)), ("20d", Step(20)), ("1M", Step(1, "M")),
                                             ("2W", Step(2, "W"))])  # fmt: skip
def test_parse_step(value: object, expected: Step) -> None:
    assert parse_step(value) == expected


@pytest.mark.parametrize("value", [0, "0d", "1H", True, "month", 1.5])
def test_parse_step_refuses(value: object) -> None:
    with pytest.raises(WindowError):
        parse_step(value)


def test_gap_that_eats_the_train_segment_is_refused() -> None:
    calendar, _ = _golden()
    with pytest.raises(WindowError, match="no trading day left"):
        rolling_windows(calendar, {"train": ("2007-12-03", "2007-12-06"), "test": ("2007-12-07", "2008-02-01")},
                        5, gap=10)  # fmt: skip


def _config(**rolling: Any) -> dict[str, Any]:
    return {
        "data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(STORE)}}},
        "dataset": {"features": "alpha158", "segments": {"train": ["2018-01-02", "2018-09-28"],
                                                         "test": ["2019-01-02", "2019-04-23"]}},
        "model": "linear",
        "rolling": rolling,
    }


def test_rolling_section_parses() -> None:
    config = config_from_mapping(_config(step="1M", rtype="sliding", gap=2), kernel=Kernel.load(use_env=False))
    assert config.rolling is not None
    assert (config.rolling.step, config.rolling.window, config.rolling.gap) == (Step(1, "M"), "sliding", 2)
    assert ("rolling.backend", "execution_backend", config.rolling.backend) in config.component_specs()


@pytest.mark.parametrize("rolling, path, message", [
    ({"step": "1H"}, "rolling.step", "period"),
    ({"step": 5, "window": "growing"}, "rolling.window", "expanding, sliding"),
    ({"step": 5, "window": "sliding", "rtype": "sliding"}, "rolling.rtype", "once"),
    ({"step": 5, "gap": -1}, "rolling.gap", "integer"),
    ({"step": 5, "stepp": 4}, "rolling.stepp", "did you mean 'step'"),
    ({"window": "sliding"}, "rolling", "step"),
])  # fmt: skip
def test_rolling_section_errors_name_the_key(rolling: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        config_from_mapping(_config(**rolling), kernel=Kernel.load(use_env=False))
    assert info.value.path == path


def test_rolling_refuses_a_fixed_fit_window() -> None:
    raw = _config(step=5)
    raw["dataset"]["fit_end"] = "2018-06-29"
    with pytest.raises(ConfigError, match="own train span") as info:
        config_from_mapping(raw, kernel=Kernel.load(use_env=False))
    assert info.value.path == "dataset.fit_end"


def test_rolling_section_has_line_numbers(tmp_path: Path) -> None:
    from qcore.config import load_config

    path = tmp_path / "wf.yaml"
    path.write_text(f"data:\n  provider: {{name: qlib_bin, kwargs: {{provider_uri: {STORE}}}}}\n"
                    "dataset:\n  features: alpha158\n  segments: {train: [2018-01-02, 2018-09-28], "
                    "test: [2019-01-02, 2019-04-23]}\nmodel: linear\nrolling:\n  step: 5\n  window: wide\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, kernel=Kernel.load(use_env=False))
    assert info.value.line == 9
