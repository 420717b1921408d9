"""Bad score files: each is a DataError naming the file and the row or column (or, for some NaN scores, a warning
with counts), before the backtest runs; ``qcore backtest`` exits with the data error code and writes nothing."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qbacktest.signal import Signal, as_score_series, read_scores
from qdata_cn.synth import synthesize

from qcore.cli import cli
from qcore.errors import DataError

BT = "strategy:\n  class: TopkDropout\n  kwargs: {topk: 5, n_drop: 1}\nbacktest:\n  account: 1000000\n" \
     "  market_rules: cn\n"  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("score_store") / "store"
    synthesize(path, instruments=20, days=300, seed=0)
    return path


@pytest.fixture(scope="module")
def good(store: Path) -> pd.DataFrame:
    """Scores of every stock on 60 trading days inside the store's calendar."""
    calendar = pd.DatetimeIndex(pd.read_csv(store / "calendars" / "day.txt", header=None)[0])
    names = [line.split("\t")[0] for line in (store / "instruments" / "all.txt").read_text().splitlines()]
    names = [n for n in names if n != "SH000300"]
    index = pd.MultiIndex.from_product([calendar[200:260], names], names=["datetime", "instrument"])
    return pd.DataFrame({"score": np.random.default_rng(0).normal(size=len(index))}, index=index)


def as_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.reset_index().to_csv(path, index=False)


def with_column(frame: pd.DataFrame, values: object) -> pd.DataFrame:
    out = frame.copy()
    out["score"] = values
    return out


def text_scores(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reset_index()
    out["score"] = out["score"].map(repr)  # numbers as text are read as numbers; the two below are not
    out.loc[5, "score"] = "abc"
    out.loc[9, "score"] = "1,5"
    return out


def tz_aware(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.index = out.index.set_levels(out.index.levels[0].tz_localize("Asia/Shanghai"), level=0)
    return out


def dates_as(frame: pd.DataFrame, fmt: str) -> pd.DataFrame:
    out = frame.reset_index()
    out["datetime"] = out["datetime"].dt.strftime(fmt)
    return out


def lower_case(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.index = out.index.set_levels([s.lower() for s in out.index.levels[1]], level=1)
    return out


# name, how to write it from the good frame, what the error says after "<file>[:line]: "
BAD_FILES: list[tuple[str, Callable[[pd.DataFrame, Path], None], str]] = [
    ("text.csv", lambda g, p: text_scores(g).to_csv(p, index=False), r":7: column 'score': 'abc' is not a number \(2"),
    ("text.parquet", lambda g, p: text_scores(g).to_parquet(p),
     r": column 'score': 'abc' is not a number \(2 such row\(s\), first at row \(2015-10-27, SH60"),
    ("bool.parquet", lambda g, p: with_column(g, True).to_parquet(p), r": column 'score': scores are booleans"),
    ("inf.parquet", lambda g, p: with_column(g, np.where(np.arange(len(g)) == 4, np.inf, 1.0)).to_parquet(p),
     r": column 'score': 1 infinite score\(s\), first at row \(2015-10-27, "),
    ("inf.csv", lambda g, p: as_csv(with_column(g, np.where(np.arange(len(g)) == 4, -np.inf, 1.0)), p),
     r":6: column 'score': 1 infinite"),
    ("allnan.parquet", lambda g, p: with_column(g, np.nan).to_parquet(p), r": no score is a number: all 1200 "),
    ("allnan.csv", lambda g, p: as_csv(with_column(g, np.nan), p), r": no score is a number: all 1200 "),
    ("empty.parquet", lambda g, p: g.iloc[:0].to_parquet(p), r": no score rows"),
    ("header.csv", lambda g, p: p.write_text("datetime,instrument,score\n"), r": no score rows"),
    ("zero.csv", lambda g, p: p.write_text(""), r": score file is empty"),
    ("tz.parquet", lambda g, p: tz_aware(g).to_parquet(p), r": score dates carry the time zone Asia/Shanghai"),
    ("tz.csv", lambda g, p: as_csv(tz_aware(g), p), r": score dates carry the time zone UTC\+08:00"),
    ("dayfirst.csv", lambda g, p: dates_as(g, "%d/%m/%Y").to_csv(p, index=False),
     r":2: column datetime: '27/10/2015' is not an ISO date"),
    ("baddate.csv", lambda g, p: dates_as(g, "%Y-%m-%d").replace({"2015-10-28": "2015-13-45"}).to_csv(p, index=False),
     r":22: column datetime: '2015-13-45' is not an ISO date .*\(20 such"),
    ("dup.parquet", lambda g, p: pd.concat([g, g.iloc[3:5]]).to_parquet(p),
     r": duplicated score row \(2015-10-27, \w+\) \(2 duplicate"),
    ("dup.csv", lambda g, p: as_csv(pd.concat([g, g.iloc[7:8]]), p), r": duplicated score row \(2015-10-27, \w+\)"),
    ("twocols.parquet", lambda g, p: g.assign(other=1.0).rename(columns={"score": "a", "other": "b"}).to_parquet(p),
     r": 2 candidate score columns \('a', 'b'\) and none is named 'score'"),
    ("noscore.csv", lambda g, p: g.reset_index()[["datetime", "instrument"]].to_csv(p, index=False),
     r": no score column"),
    ("noinst.csv", lambda g, p: g.reset_index().drop(columns="instrument").to_csv(p, index=False),
     r": CSV score file needs the columns datetime and instrument .* missing instrument; found: datetime, score"),
    ("blankinst.csv", lambda g, p: g.reset_index().assign(instrument=lambda f: f["instrument"].where(
        f.index != 3, "")).to_csv(p, index=False), r":5: column instrument: 1 row\(s\) without an instrument"),
    ("3levels.parquet", lambda g, p: g.set_index(pd.Index(np.zeros(len(g)), name="x"), append=True).to_parquet(p),
     r": scores must be indexed by \(datetime, instrument\); got an index of 3 level\(s\) \(datetime, instrument, x\)"),
    ("flat.parquet", lambda g, p: g.reset_index(drop=True).to_parquet(p), r": .*index of 1 level"),
    ("intdates.parquet", lambda g, p: g.set_axis(pd.MultiIndex.from_arrays([np.arange(len(g)),
     g.index.get_level_values(1)], names=["datetime", "instrument"])).to_parquet(p), r": score dates are int64"),
    ("score.pkl", lambda g, p: g.to_pickle(p), r": unsupported score file type \(\.pkl\)"),
    ("score.json", lambda g, p: p.write_text("{}"), r": unsupported score file type \(\.json\)"),
    ("score", lambda g, p: g.to_parquet(p), r": unsupported score file type \(no extension\)"),
    ("corrupt.parquet", lambda g, p: p.write_bytes(b"PAR1" + b"\x00garbage" * 20),
     r": cannot read score file as Parquet: Arrow"),
    ("cut.parquet", lambda g, p: (g.to_parquet(p), p.write_bytes(p.read_bytes()[:300])),
     r": cannot read score file as Parquet"),
    ("binary.csv", lambda g, p: p.write_bytes(b"\xff\xfe\x00garb,\n\x00\x00"),
     r": cannot read score file as CSV: UnicodeDecodeError"),
    ("folder.parquet", lambda g, p: p.mkdir(), r": is a folder, not a score file"),
]  # fmt: skip


@pytest.mark.parametrize("name, write, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_score_files_name_the_file_and_the_culprit(good: pd.DataFrame, tmp_path: Path, name: str,
                                                       write: Callable, message: str) -> None:  # fmt: skip
    path = tmp_path / name
    write(good, path)
    with pytest.raises(DataError) as caught:
        read_scores(path)
    text = str(caught.value)
    assert text.startswith(str(path)), text
    assert pd.Series([text[len(str(path)):]]).str.match(message).all(), text


def test_frames_in_memory_are_checked_the_same_way(good: pd.DataFrame) -> None:
    doubled = pd.concat([good["score"], good["score"]], axis=1)
    with pytest.raises(DataError, match=r"p\.parquet: column 'score' appears 2 times"):
        as_score_series(doubled, source="p.parquet")
    with pytest.raises(DataError, match="no score column"):
        as_score_series(good.iloc[:, :0].assign(), source="x")
    with pytest.raises(DataError, match="time zone UTC"):
        Signal(good["score"].set_axis(good.index.set_levels(good.index.levels[0].tz_localize("UTC"), level=0)))
    flat = good.reset_index()  # datetime and instrument as columns are accepted
    assert as_score_series(flat).equals(as_score_series(good))
    as_text = good.copy()
    as_text["score"] = as_text["score"].map(repr)  # numbers written as text are numbers
    assert np.allclose(as_score_series(as_text).to_numpy(), good["score"].to_numpy())


def test_some_nan_scores_warn_with_counts(good: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    scores = good["score"].copy()
    scores.iloc[:25] = np.nan
    with caplog.at_level(logging.WARNING, logger="qbacktest.signal"):
        Signal(scores, source="s.parquet")
    assert "s.parquet: 25 of 1200 scores are NaN, on 2 of 60 dates" in caplog.text


def test_scores_naming_no_known_instrument_are_an_error(good: pd.DataFrame) -> None:
    signal = Signal(lower_case(good), source="s.parquet")
    with pytest.raises(DataError, match=r"s.parquet: none of the 20 instrument\(s\) in the scores is in the store: "
                                        r"sh\d+.* \(codes are case-sensitive: the store has SH"):  # fmt: skip
        signal.check_instruments({n.upper() for n in signal.instruments})


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p): None if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


def backtest(store: Path, tmp_path: Path, score: Path, config: str = BT) -> object:
    (tmp_path / "bt.yaml").write_text(config)
    args = ["backtest", "--provider-uri", str(store), "--score", str(score), "--config", str(tmp_path / "bt.yaml"),
            "--out", str(tmp_path / "out"), "--no-html"]  # fmt: skip
    return CliRunner().invoke(cli, args)


CLI_CASES = ["text.csv", "allnan.parquet", "empty.parquet", "tz.parquet", "dup.parquet", "twocols.parquet",
             "score.pkl", "corrupt.parquet", "dayfirst.csv"]  # fmt: skip


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_refuses_bad_score_files_before_running(store: Path, good: pd.DataFrame, tmp_path: Path,
                                                    name: str) -> None:  # fmt: skip
    write, message = next((w, m) for n, w, m in BAD_FILES if n == name)
    score = tmp_path / name
    write(good, score)
    before = snapshot(tmp_path)
    store_before = snapshot(store)
    result = backtest(store, tmp_path, score)
    assert result.exit_code == 5, result.output
    assert re.search(re.escape(f"Error: {score}") + message, result.output), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert snapshot(tmp_path) == {**before, str(tmp_path / "bt.yaml"): (tmp_path / "bt.yaml").read_bytes()}
    assert snapshot(store) == store_before


def test_cli_refuses_scores_outside_the_store_or_the_backtest(store: Path, good: pd.DataFrame,
                                                              tmp_path: Path) -> None:  # fmt: skip
    late = good.copy()
    late.index = late.index.set_levels(late.index.levels[0] + pd.Timedelta(days=800), level=0)
    late.to_parquet(tmp_path / "late.parquet")
    result = backtest(store, tmp_path, tmp_path / "late.parquet")
    assert result.exit_code == 5 and "late.parquet: 1200 score row(s) dated outside the store's calendar" in \
        result.output  # fmt: skip
    good.to_parquet(tmp_path / "good.parquet")
    result = backtest(store, tmp_path, tmp_path / "good.parquet",
                      BT + "  start_time: 2015-02-02\n  end_time: 2015-03-02\n")  # fmt: skip
    assert result.exit_code == 5 and "good.parquet: no score falls in the backtest's range 2015-01-30..2015-03-02" \
        in result.output, result.output  # fmt: skip
    lower_case(good).to_parquet(tmp_path / "lower.parquet")
    result = backtest(store, tmp_path, tmp_path / "lower.parquet")
    assert result.exit_code == 5 and "lower.parquet: none of the 20 instrument(s)" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_accepts_good_csv_parquet_and_flat_files_alike(store: Path, good: pd.DataFrame, tmp_path: Path) -> None:
    good.to_parquet(tmp_path / "s.parquet")
    as_csv(good, tmp_path / "s.csv")
    good.reset_index().to_parquet(tmp_path / "flat.parquet")
    reports = []
    for name in ("s.parquet", "s.csv", "flat.parquet"):
        result = backtest(store, tmp_path, tmp_path / name)
        assert result.exit_code == 0, result.output
        reports.append(pd.read_parquet(tmp_path / "out" / "report.parquet"))
    assert len(reports[0]) == 61 and reports[0]["total_turnover"].iloc[-1] > 0
    pd.testing.assert_frame_equal(reports[0], reports[1])
    pd.testing.assert_frame_equal(reports[0], reports[2])
