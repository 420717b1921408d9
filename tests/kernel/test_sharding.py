"""Sharded expression evaluation (qcore.expr.sharding): by instruments (exact warm-up, a second stage for
cross-sectional operators) and by expression groups, on serial and processes, bit for bit equal to one engine."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import qcore
from qcore.backends import ProcessesBackend, SerialBackend, TaskError
from qcore.errors import ConfigError, QcoreError
from qcore.expr.engine import ExpressionEngine
from qcore.expr.sharding import (
    evaluate_sharded,
    expression_groups,
    instrument_groups,
    split_cross_sectional,
)

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "tests" / "data" / "golden_market"
START, END = "2018-06-01", "2019-03-01"

#: 30 expressions mixing time-series and cross-sectional operators, both ways round, with look-ahead, infinite
#: windows, another instrument's series and constants.
MIXED = {
    "close": "$close",
    "ret1": "$close / Ref($close, 1) - 1",
    "ma5": "Mean($close, 5)",
    "std10": "Std($volume, 10)",
    "ema": "EMA($close, 8)",
    "corr": "Corr($close, Log($volume + 1), 10)",
    "rank_ts": "Rank($close, 7)",
    "label": "Ref($close, -2) / Ref($close, -1) - 1",
    "bench": "ChangeInstrument('SH000300', $close) / $close",
    "cs_rank": "CSRank($close)",
    "cs_z": "CSZScore($volume)",
    "cs_demean": "CSDemean($close / $open)",
    "cs_mean": "CSMean(Mean($close, 5))",
    "cs_q": "CSQuantile($close, 0.3)",
    "cs_of_ts": "CSRank(Mean($close, 5) - Ref($close, 3))",
    "ts_of_cs": "Mean(CSRank($close), 5)",
    "future_of_cs": "Ref(CSZScore($volume), -1)",
    "ema_of_cs": "EMA(CSDemean($close / $open), 5)",
    "corr_of_cs": "Corr(CSRank($close), CSRank($volume), 10)",
    "cs_of_cs": "CSRank(CSZScore($close) + Std($volume, 10))",
    "count_of_cs": "Sum(If(CSRank($close) > 0.5, 1, 0), 20)",
    "cs_label": "CSRank(Ref($close, -2) / Ref($close, -1) - 1)",
    "cs_mixed": "CSZScore($close) * Mean($volume, 3) + CSRank($open)",
    "cs_bench": "CSRank(ChangeInstrument('SH000300', $close) / $close)",
    "max_cs": "Max(CSRank($high - $low), 4)",
    "slope": "Slope($close, 6)",
    "const": "3",
    "resi": "Resi($close, 5) / $close",
    "cs_rank_ema": "CSRank(EMA($close, 12))",
    "delta_cs": "Delta(CSZScore($close), 2)",
}


@pytest.fixture(scope="module")
def kernel() -> Any:
    return qcore.load_kernel()


@pytest.fixture(scope="module")
def store(kernel: Any) -> Any:
    return qcore.open_provider("qlib_bin", provider_uri=str(STORE), kernel=kernel)


@pytest.fixture(scope="module")
def alpha158(kernel: Any) -> dict[str, str]:
    definition = kernel.create("feature_set", "alpha158")
    return {**dict(definition.features), **dict(definition.labels)}


def direct(kernel: Any, store: Any, expressions: Any, instruments: Any = "csi_like", index: str = "datetime",
           missing: str = "error") -> pd.DataFrame:  # fmt: skip
    engine = ExpressionEngine(store, kernel.registry("operator"), missing_fields=missing)
    return engine.evaluate(expressions, instruments, START, END, index=index)


@pytest.fixture(scope="module")
def mixed_direct(kernel: Any, store: Any) -> pd.DataFrame:
    return direct(kernel, store, MIXED)


@pytest.fixture(scope="module")
def alpha_direct(kernel: Any, store: Any, alpha158: dict[str, str]) -> pd.DataFrame:
    return direct(kernel, store, alpha158, missing="nan")


@pytest.fixture(scope="module")
def processes() -> Any:
    with ProcessesBackend(max_workers=2) as backend:
        yield backend


def test_mixed_batch_really_mixes() -> None:
    assert len(MIXED) == 30


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
@pytest.mark.parametrize("by", ["instruments", "expressions"])
def test_serial_shards_equal_one_engine_bit_for_bit(kernel: Any, store: Any, mixed_direct: pd.DataFrame,
                                                    by: str, shards: int) -> None:  # fmt: skip
    result = evaluate_sharded(MIXED, store, instruments="csi_like", start=START, end=END, shards=shards, by=by)
    assert result.shards == shards
    pd.testing.assert_frame_equal(result.frame, mixed_direct, check_exact=True)


@pytest.mark.slow
@pytest.mark.parametrize("shards", [2, 3, 7])
@pytest.mark.parametrize("by", ["instruments", "expressions"])
def test_processes_shards_equal_one_engine_bit_for_bit(store: Any, processes: Any, mixed_direct: pd.DataFrame,
                                                       alpha158: dict[str, str], alpha_direct: pd.DataFrame,
                                                       by: str, shards: int) -> None:  # fmt: skip
    result = evaluate_sharded(MIXED, store, instruments="csi_like", start=START, end=END, shards=shards, by=by,
                              backend=processes)  # fmt: skip
    pd.testing.assert_frame_equal(result.frame, mixed_direct, check_exact=True)
    alpha = evaluate_sharded(alpha158, store, instruments="csi_like", start=START, end=END, shards=shards, by=by,
                             backend=processes, missing_fields="nan")  # fmt: skip
    pd.testing.assert_frame_equal(alpha.frame, alpha_direct, check_exact=True)


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_alpha158_by_instruments_serial(store: Any, alpha158: dict[str, str], alpha_direct: pd.DataFrame,
                                        shards: int) -> None:  # fmt: skip
    result = evaluate_sharded(alpha158, store, instruments="csi_like", start=START, end=END, shards=shards,
                              missing_fields="nan")  # fmt: skip
    pd.testing.assert_frame_equal(result.frame, alpha_direct, check_exact=True)
    assert result.second_stage == ()  # Alpha158 has no cross-sectional operator: one stage


def test_explicit_symbols_and_instrument_index(kernel: Any, store: Any) -> None:
    symbols = sorted(store.universe("csi_like"))[3:20]
    expected = direct(kernel, store, MIXED, instruments=symbols, index="instrument")
    result = evaluate_sharded(MIXED, store, instruments=symbols, start=START, end=END, shards=3,
                              index="instrument")  # fmt: skip
    pd.testing.assert_frame_equal(result.frame, expected, check_exact=True)


def test_uneven_groups_and_labels(store: Any) -> None:
    groups = instrument_groups([f"S{i:02d}" for i in range(46)], 7)
    assert [len(g) for g in groups] == [7, 6, 7, 6, 7, 6, 7]
    assert [s for g in groups for s in g] == [f"S{i:02d}" for i in range(46)]
    assert instrument_groups(["B", "A"], 7) == [("A",), ("B",)]
    result = evaluate_sharded({"x": "CSRank($close)"}, store, instruments="csi_like", start=START, end=END,
                              shards=7)  # fmt: skip
    assert result.labels[0].startswith("shard 1/7 (") and result.labels[0].endswith("instruments)")


def test_the_second_stage_reads_only_what_shards_computed(kernel: Any, store: Any) -> None:
    engine = ExpressionEngine(store, kernel.registry("operator"))
    plan = engine.plan({"a": "Mean(CSRank(Mean($close, 5)), 3)", "b": "Std($close, 4)", "c": "CSRank($close) + 1"})
    ops = {n: kernel.registry("operator").get(n) for n in kernel.registry("operator").names(include_aliases=True)}
    split = split_cross_sectional(plan.names, plan.roots, ops)
    assert split.pure == {"b": "Std($close,4)"}
    assert split.inputs == {"qshardin0": "Mean($close,5)", "qshardin1": "$close"}
    assert split.rest == {"a": "Mean(CSRank($qshardin0),3)", "c": "Add(CSRank($qshardin1),1)"}


def test_expression_groups_keep_shared_subexpressions_together(kernel: Any, store: Any) -> None:
    engine = ExpressionEngine(store, kernel.registry("operator"))
    plan = engine.plan(["Mean($close, 5)", "Mean($close, 5) / $open", "Std($volume, 3)", "Max($high, 2)"])
    groups = expression_groups(plan.roots, 3)
    assert sorted(map(sorted, groups)) == [[0, 1], [2], [3]]
    assert sorted(i for g in expression_groups(plan.roots, 10) for i in g) == [0, 1, 2, 3]  # split to fill shards


def test_bad_settings_are_refused_before_any_task(store: Any) -> None:
    with pytest.raises(ConfigError, match="instruments, expressions"):
        evaluate_sharded(["$close"], store, by="dates")
    with pytest.raises(ConfigError, match="number of shards"):
        evaluate_sharded(["$close"], store, shards=0)
    with pytest.raises(QcoreError, match="Mean"):
        evaluate_sharded(["Mean($close)"], store, shards=2)
    with pytest.raises(QcoreError, match="shard by expressions"):
        evaluate_sharded(["ChangeInstrument('SH000300', CSRank($close))"], store, shards=2)


class FlakyStore:
    """A store whose first load in a shard containing ``symbol`` fails (``crash``: kills its worker) once."""

    def __init__(self, store: Any, marker: str, symbol: str, crash: bool) -> None:
        self.store, self.marker, self.symbol, self.crash = store, marker, symbol, crash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["store"], name)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def load(self, fields: Any, instruments: Any, *args: Any, **kwargs: Any) -> Any:
        if self.symbol in instruments and len(instruments) < 40 and not os.path.exists(self.marker):
            Path(self.marker).write_text("failed once")
            if self.crash:
                os._exit(3)
            raise OSError("disk hiccup")
        return self.store.load(fields, instruments, *args, **kwargs)


def test_a_failing_shard_is_retried_and_the_result_unchanged(store: Any, mixed_direct: pd.DataFrame,
                                                             tmp_path: Path) -> None:  # fmt: skip
    flaky = FlakyStore(store, str(tmp_path / "once"), "SH600010", crash=False)
    pickle.dumps(flaky)
    result = evaluate_sharded(MIXED, flaky, instruments="csi_like", start=START, end=END, shards=3, retries=1)
    pd.testing.assert_frame_equal(result.frame, mixed_direct, check_exact=True)


def test_a_failure_names_its_shard(store: Any, tmp_path: Path) -> None:
    flaky = FlakyStore(store, str(tmp_path / "once"), "SH600010", crash=False)
    with pytest.raises(TaskError, match=r"task 0 \(shard 1/3 \(SH600000\.\.SH6\d+, \d+ instruments\)\) failed "
                                        r"after 1 attempt: OSError: disk hiccup"):  # fmt: skip
        evaluate_sharded(MIXED, flaky, instruments="csi_like", start=START, end=END, shards=3,
                         backend=SerialBackend())  # fmt: skip


@pytest.mark.slow
def test_a_crashed_worker_is_retried_on_processes(store: Any, processes: Any, mixed_direct: pd.DataFrame,
                                                  tmp_path: Path) -> None:  # fmt: skip
    flaky = FlakyStore(store, str(tmp_path / "once"), "SH600010", crash=True)
    result = evaluate_sharded(MIXED, flaky, instruments="csi_like", start=START, end=END, shards=3, retries=1,
                              backend=processes)  # fmt: skip
    pd.testing.assert_frame_equal(result.frame, mixed_direct, check_exact=True)
    assert np.isfinite(result.frame["cs_rank"].to_numpy()).any()


def test_the_cli_evaluates_in_shards(kernel: Any, store: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qcore.cli import cli

    out = tmp_path / "x.parquet"
    args = ["expr", "--provider-uri", str(STORE), "--instruments", "csi_like", "--start", START, "--end", END,
            "--field", "CSRank(Mean($close, 5))", "--field", "Std($volume, 10)", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--backend", "serial", "--shards", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "(3 shards by instruments on serial)" in result.output
    expected = direct(kernel, store, ["CSRank(Mean($close, 5))", "Std($volume, 10)"], index="instrument")
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=True)
    bad = CliRunner().invoke(cli, [*args, "--backend", "nope"])
    assert bad.exit_code not in (0, 70) and "unknown execution_backend 'nope'" in bad.output
    zero = CliRunner().invoke(cli, [*args, "--shards", "0"])
    assert zero.exit_code == 2 and "--shards" in zero.output


def test_shards_write_their_own_rows_to_a_folder(store: Any, mixed_direct: pd.DataFrame, tmp_path: Path) -> None:
    result = evaluate_sharded(MIXED, store, instruments="csi_like", start=START, end=END, shards=3,
                              out_dir=str(tmp_path / "parts"))  # fmt: skip
    assert result.frame is None
    names = sorted(Path(f).name for f in result.files)
    assert names == ["cross_sectional.parquet", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    parts = [pd.read_parquet(f) for f in result.files if "part-" in f]
    owned = [set(p.index.get_level_values("instrument")) for p in parts]
    assert all(owned) and sum(map(len, owned)) == len(set().union(*owned))  # each instrument in one part
    assert set().union(*owned) == set(mixed_direct.index.get_level_values("instrument"))
    pure = pd.concat(parts).sort_index()
    joined = pure.join(pd.read_parquet(tmp_path / "parts" / "cross_sectional.parquet"))[list(MIXED)]
    pd.testing.assert_frame_equal(joined, mixed_direct, check_exact=True, check_names=False)
    with pytest.raises(ConfigError, match="new or empty folder"):
        evaluate_sharded(MIXED, store, shards=2, out_dir=str(tmp_path / "parts"))
    last = sorted(store.universe("csi_like"))[-1]
    flaky = FlakyStore(store, str(tmp_path / "once"), last, crash=False)
    with pytest.raises(TaskError, match=r"shard 3/3 .*disk hiccup"):  # after shards 1 and 2 wrote their parts
        evaluate_sharded(MIXED, flaky, instruments="csi_like", start=START, end=END, shards=3,
                         out_dir=str(tmp_path / "failed"))  # fmt: skip
    assert list((tmp_path / "failed").iterdir()) == []  # nothing half-written is left


def test_the_cli_writes_parts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qcore.cli import cli

    out = tmp_path / "parts"
    args = ["features", "alpha158", "--provider-uri", str(STORE), "--instruments", "csi_like", "--start", START,
            "--end", END, "--out", str(out), "--shards", "3", "--parts"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 shards by instruments on serial, written as parts" in result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]  # no cross-sectional column
    assert sum(len(pd.read_parquet(out / f, columns=["KMID"])) for f in files) > 1000
    lone = CliRunner().invoke(cli, [*args[:-5], "--out", str(tmp_path / "other"), "--parts"])
    assert lone.exit_code == 2 and "--parts needs --shards N" in lone.output
