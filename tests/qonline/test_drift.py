"""qonline drift: PSI by hand, a planted feature shift, IC against labels realised by the date, the monitor step
(written once per inputs, printed, flags a retrain), and the retrain step on the rolling schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qonline.drift import assess, daily_ic, feature_psi, psi
from qonline.routine import monitor, retrain, simulate, status
from qonline.store import OnlineFolder

from qcore.cli import cli
from qcore.config import config_from_mapping
from qcore.errors import ConfigError, DataError
from qcore.kernel import Kernel
from tests.qonline.test_online import _provider, kernel, online_config, rolled  # noqa: F401 - fixtures


def test_psi_computed_by_hand() -> None:
    # train 1..10 cut at its median 5.5: shares (0.5, 0.5); recent (1, 2, 3, 8): (0.75, 0.25)
    expected = 0.25 * math.log(1.5) - 0.25 * math.log(0.5)  # = 0.25 ln 3
    assert psi(np.arange(1.0, 11.0), np.array([1.0, 2.0, 3.0, 8.0, np.nan]), bins=2) == pytest.approx(expected)
    assert psi(np.arange(1.0, 11.0), np.arange(1.0, 11.0), bins=5) == pytest.approx(0.0)
    # an empty recent bin counts as 1e-6, not as log(0)
    assert math.isfinite(psi(np.arange(1.0, 11.0), np.array([1.0, 2.0]), bins=2))
    assert math.isnan(psi(np.array([np.nan]), np.array([1.0])))


def test_planted_feature_shift_flags_a_retrain() -> None:
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"A": rng.normal(size=2000), "B": rng.normal(size=2000)})
    recent = pd.DataFrame({"A": rng.normal(size=300), "B": rng.normal(loc=1.5, size=300)})
    values = feature_psi(train, recent, bins=10)
    assert values["A"] < 0.1 < 0.25 < values["B"]
    report = assess(pd.Series(dtype="float64"), values, ic_window=5, ic_min=0.0, psi_max=0.25)
    assert report["drifted_features"] == ["B"] and report["retrain"]
    assert report["ic"]["days"] == 0 and report["ic"]["rolling"] is None


def test_ic_per_day_and_the_window_threshold() -> None:
    days = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06"])
    names = ["a", "b", "c", "d"]
    index = pd.MultiIndex.from_product([days, names], names=["datetime", "instrument"])
    score = pd.Series(np.tile([1.0, 2.0, 3.0, 4.0], 3), index=index)
    label = pd.Series(np.concatenate([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [np.nan] * 4]), index=index)
    ic = daily_ic(score, label)
    assert list(ic.index) == list(days[:2])  # the last day's labels are not realised yet
    np.testing.assert_allclose(ic.to_numpy(), [1.0, -1.0])
    assert assess(ic, {}, ic_window=2, ic_min=0.1, psi_max=1.0)["retrain"]  # mean 0 < 0.1 over a full window
    assert not assess(ic, {}, ic_window=3, ic_min=0.1, psi_max=1.0)["retrain"]  # two days of three: no verdict


def test_monitor_step(tmp_path: Path, kernel: Kernel, rolled: tuple[Any, pd.Series],  # noqa: F811
                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import yaml

    raw = online_config(tmp_path)
    raw["online"]["drift"] = {"ic_window": 5, "ic_min": -1.0, "psi_max": 10.0, "psi_window": 10, "bins": 5}
    config = config_from_mapping(raw, kernel=kernel)
    provider = _provider(config, kernel)
    folder = OnlineFolder(tmp_path / "online")
    day = pd.Timestamp("2019-03-20")
    with pytest.raises(DataError, match="no prediction up to 2019-03-20"):
        monitor(config, kernel, provider, folder, day)
    simulate(config, kernel, provider, folder, pd.Timestamp("2019-03-07"), day)
    path, body, computed = monitor(config, kernel, provider, folder, day)
    assert computed and path == tmp_path / "online" / "monitor" / "2019-03-20.json"
    assert json.loads(path.read_text()) == body
    # only labels realised by the 20th count (LABEL0 needs two more bars): the last IC day is the 18th
    assert list(body["ic"]["daily"])[-1] == "2019-03-18" and body["ic"]["days"] == 5
    assert set(body["psi"]) == {"RET5", "VOL", "MA"} and not body["retrain"]
    assert body["model"].startswith("rolling:window-") and body["recent_window"] == ["2019-03-07", "2019-03-20"]
    # each day's IC: Pearson across names of the stored score and Ref($close, -2)/Ref($close, -1) - 1
    score = pd.concat([folder.read_prediction(pd.Timestamp(d)) for d in body["ic"]["daily"]])
    names = sorted(set(score.index.get_level_values("instrument")))
    panel = provider.load(["close"], names, pd.Timestamp("2019-03-07"), day)
    close = pd.DataFrame(np.asarray(panel["close"], dtype=np.float64), index=panel.dates, columns=names)
    label = (close.shift(-2) / close.shift(-1) - 1).stack().rename("label")
    label.index.names = ["datetime", "instrument"]
    joined = pd.concat([score.rename("score"), label], axis=1, join="inner").dropna()
    by_hand = joined.groupby(level="datetime").apply(lambda g: g["score"].corr(g["label"]))
    np.testing.assert_allclose(list(body["ic"]["daily"].values()), by_hand.to_numpy(), rtol=1e-5)
    again = monitor(config, kernel, provider, folder, day)
    assert not again[2] and path.stat().st_mtime_ns == again[0].stat().st_mtime_ns
    # the same data with a PSI threshold no feature passes: flagged
    raw["online"]["drift"]["psi_max"] = 0.0
    flagged = config_from_mapping(raw, kernel=kernel)
    _, body, computed = monitor(flagged, kernel, provider, folder, day)
    assert computed and body["retrain"] and len(body["drifted_features"]) == 3
    config_path = tmp_path / "wf.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr("qcore.cli.get_kernel", lambda ctx, extra_selection=None: kernel)
    out = CliRunner().invoke(cli, ["online", "monitor", str(config_path), "--date", "2019-03-20"])
    assert out.exit_code == 0, out.output
    assert "up to date" in out.output and "rolling IC" in out.output and "retrain                  yes" in out.output
    log = [e for e in folder.read_log() if e["step"] == "monitor"]
    assert [e["computed"] for e in log] == [True, False, True, False]


def test_drift_section_is_checked(tmp_path: Path, kernel: Kernel) -> None:  # noqa: F811
    raw = online_config(tmp_path)
    raw["online"]["drift"] = {"ic_window": 1}
    with pytest.raises(ConfigError, match=r"online\.drift\.ic_window"):
        config_from_mapping(raw, kernel=kernel)
    raw["online"]["drift"] = {"psi_maxx": 1}
    with pytest.raises(ConfigError, match="did you mean 'psi_max'"):
        config_from_mapping(raw, kernel=kernel)


def test_retrain_on_the_schedule(tmp_path: Path, kernel: Kernel, rolled: tuple[Any, pd.Series]) -> None:  # noqa: F811
    config, _ = rolled
    provider = _provider(config, kernel)
    folder = OnlineFolder(tmp_path / "online")
    nothing = retrain(config, kernel, provider, folder)
    assert nothing.run_id is None and "no window due (window-003 is trained" in nothing.reason
    # the last window's checkpoint is gone (a new window the schedule has made due): it is trained, then not again
    (tmp_path / "ck" / "window-003.json").unlink()
    step = retrain(config, kernel, provider, folder)
    assert step.due == ("window-003",) and step.trained == ("window-003",) and step.run_id
    assert (tmp_path / "ck" / "window-003.json").is_file()
    assert retrain(config, kernel, provider, folder).run_id is None
    assert [e["computed"] for e in folder.read_log() if e["step"] == "retrain"] == [False, True, False]
    raw = online_config(tmp_path)
    del raw["rolling"]["checkpoint"]
    with pytest.raises(ConfigError, match=r"fixed rolling\.checkpoint"):
        retrain(config_from_mapping(raw, kernel=kernel), kernel, provider, folder)


def test_drift_flag_trains_an_early_window(tmp_path: Path, kernel: Kernel,  # noqa: F811
                                           rolled: tuple[Any, pd.Series]) -> None:  # noqa: F811
    from qonline.routine import predict

    raw = online_config(tmp_path)
    raw["online"]["drift"] = {"ic_window": 5, "psi_max": 0.0, "psi_window": 5, "bins": 5}  # any PSI flags
    config = config_from_mapping(raw, kernel=kernel)
    provider = _provider(config, kernel)
    folder = OnlineFolder(tmp_path / "online")
    flag = pd.Timestamp("2019-04-10")
    simulate(config, kernel, provider, folder, pd.Timestamp("2019-04-08"), flag)
    assert monitor(config, kernel, provider, folder, flag)[1]["retrain"]
    # the day's own report waits for the next day's routine
    assert retrain(config, kernel, provider, folder, date=flag).trained == ()
    step = retrain(config, kernel, provider, folder, date=pd.Timestamp("2019-04-11"))
    assert step.trained == ("drift-2019-04-10",) and step.run_id is None and "window-003 moved" in step.reason
    meta = json.loads((tmp_path / "online" / "models" / "drift-2019-04-10" / "window.json").read_text())
    calendar = provider.calendar()
    k = int(calendar.get_loc(flag))
    last_label = str(calendar[k - 2].date())  # gap 2: the last bar whose label is realised on the flag date
    assert meta["train"][1] <= last_label and meta["segments"]["valid"][1] == last_label
    again = retrain(config, kernel, provider, folder, date=pd.Timestamp("2019-04-11"))
    assert again.trained == () and "drift model drift-2019-04-10 is trained" in again.reason
    # dates after the flag are served by the drift model; the flag date itself keeps the scheduled window
    after, _ = predict(config, kernel, provider, folder, pd.Timestamp("2019-04-11"))
    assert after.model == "drift:2019-04-10" and after.computed
    on, _ = predict(config, kernel, provider, folder, flag)
    assert on.model == "rolling:window-003" and not on.computed
    body = status(folder, provider)
    assert body["drift_models"] == "drift-2019-04-10" and body["last_monitor"] == "2019-04-10"
    assert body["retrain_flagged"] is True and body["last_prediction"] == "2019-04-11"
