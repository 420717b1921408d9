"""A remote store equals the local one bit for bit: ``qcore features``, a workflow, raw loads, server-side
evaluation, 8 concurrent clients; repeated reads come from the local cache."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qflight.client import FlightProvider

import qcore
from qcore.cli import cli
from qcore.recorders.local import LocalRecorder

from .conftest import STORE, Served

FIELDS = ["open", "high", "low", "close", "volume", "factor", "vwap", "change", "amount"]


def bits(frame: pd.DataFrame) -> np.ndarray:
    """The float32 bit patterns of a frame's values (NaN payloads included)."""
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float32)).view(np.uint32)


def test_remote_features_file_equals_local(served: Served, cache_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("QCORE_FLIGHT_TOKEN_FILE", str(served.alice))
    runner = CliRunner()
    common = ["features", "alpha158", "--instruments", "csi_like", "--start", "2018-06-01"]
    local = runner.invoke(cli, [*common, "--provider-uri", str(STORE), "--out", str(tmp_path / "local.parquet")])
    remote = runner.invoke(cli, [*common, "--provider", "qlib_flight", "--provider-uri", served.uri,
                                 "--out", str(tmp_path / "remote.parquet")])  # fmt: skip
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    assert (tmp_path / "remote.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    assert "159 columns" in remote.output


def test_raw_loads_and_metadata_equal_local(served: Served, cache_dir: Path) -> None:
    local = qcore.open_provider("qlib_bin", provider_uri=str(STORE))
    remote = FlightProvider(served.uri, token_file=served.bob)
    assert remote.calendar("day").equals(local.calendar("day"))
    assert remote.markets() == local.markets()
    assert remote.fields("day") == local.fields("day")
    assert remote.universe("csi_like") == local.universe("csi_like")
    assert remote.version == local.version
    symbols = [*sorted(local.universe("all"))[:7], "sh600003", "NOSUCH"]  # lower case, and one without data
    a = local.load(FIELDS, symbols, "2018-03-01", "2018-12-31")
    b = remote.load(FIELDS, symbols, "2018-03-01", "2018-12-31")
    assert b.dates.equals(a.dates) and b.instruments == a.instruments
    for name in FIELDS:
        assert np.array_equal(b[name].view(np.uint32), a[name].view(np.uint32)), name
    assert np.isnan(b["close"][:, -1]).all()


def _workflow(tmp_path: Path, provider: dict[str, Any]) -> dict[str, Any]:
    return {
        "experiment": "remote",
        "data": {"provider": provider, "universe": "csi_like"},
        "dataset": {
            "features": "alpha158",
            "segments": {"train": ["2018-01-02", "2018-09-28"], "valid": ["2018-10-08", "2018-12-28"],
                         "test": ["2019-01-02", "2019-04-23"]},
            "infer_processors": [{"name": "ZScoreNorm", "kwargs": {"fields_group": "feature"}},
                                 {"name": "Fillna", "kwargs": {"fields_group": "feature"}}],
            "learn_processors": ["DropnaLabel"],
        },
        "model": {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 1.0}},
        "records": ["signal", "sig_analysis"],
        "recorder": {"name": "local", "kwargs": {"uri": str(tmp_path / "runs")}},
    }  # fmt: skip


def _prediction(tmp_path: Path, result: Any) -> pd.DataFrame:
    stored = LocalRecorder(tmp_path / "runs").get_run(result.run_id)
    return pd.read_parquet(Path(stored["path"]) / "artifacts" / "pred.parquet")


@pytest.mark.parametrize("evaluate", ["local", "server"])
def test_remote_workflow_equals_local(served: Served, cache_dir: Path, tmp_path: Path, evaluate: str) -> None:
    local = qcore.run(_workflow(tmp_path, {"name": "qlib_bin", "kwargs": {"provider_uri": str(STORE)}}))
    kwargs = {"uri": served.uri, "token_file": str(served.alice), "evaluate": evaluate}
    remote = qcore.run(_workflow(tmp_path, {"name": "qlib_flight", "kwargs": kwargs}))
    a, b = _prediction(tmp_path, local), _prediction(tmp_path, remote)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert np.array_equal(bits(a), bits(b))
    assert remote.metrics == pytest.approx(local.metrics, abs=0, rel=0, nan_ok=True)


def test_server_side_feature_set_equals_local(served: Served, cache_dir: Path) -> None:
    kernel = qcore.load_kernel()
    definition = kernel.create("feature_set", "alpha158")
    expressions = {**definition.features, **definition.labels}
    local = qcore.evaluate(expressions, qcore.open_provider("qlib_bin", provider_uri=str(STORE), kernel=kernel),
                           instruments="csi_like", start="2018-05-01", kernel=kernel, missing_fields="nan")
    remote = FlightProvider(served.uri, token_file=served.alice, evaluate="server")
    named = remote.evaluate_feature_set("alpha158", "csi_like", "2018-05-01")
    pd.testing.assert_frame_equal(named, local, check_exact=True)
    assert np.array_equal(bits(named), bits(local))
    by_index = remote.evaluate_feature_set("alpha158", "csi_like", "2018-05-01", index="instrument", label=False)
    assert list(by_index.index.names) == ["instrument", "datetime"] and by_index.shape[1] == 158


def test_repeated_reads_come_from_the_cache(served: Served, cache_dir: Path) -> None:
    symbols = sorted(qcore.open_provider("qlib_bin", provider_uri=str(STORE)).universe("all"))
    first = FlightProvider(served.uri, token_file=served.bob)
    panel = first.load(FIELDS, symbols)
    assert list(cache_dir.glob("flight/*/*/*.arrow"))
    before = first.stats()["bob"]["bytes"]
    second = FlightProvider(served.uri, token_file=served.bob)  # a new session: same cache, same data version
    again = second.load(FIELDS, symbols)
    after = second.stats()["bob"]["bytes"]
    assert after - before < 20_000 < panel["close"].nbytes * len(FIELDS)  # only the small info/stats answers
    for name in FIELDS:
        assert np.array_equal(again[name].view(np.uint32), panel[name].view(np.uint32))
    uncached = FlightProvider(served.uri, token_file=served.bob, cache=False)
    uncached.load(FIELDS, symbols)
    assert uncached.stats()["bob"]["bytes"] - after >= panel["close"].nbytes * len(FIELDS)


def test_eight_concurrent_clients(served: Served, tmp_path: Path) -> None:
    local = qcore.open_provider("qlib_bin", provider_uri=str(STORE))
    symbols = sorted(local.universe("all"))
    kernel = qcore.load_kernel()
    expected_frame = qcore.evaluate(["Mean($close, 5)/$close", "Rank($volume, 10)"], local, instruments="csi_like",
                                    kernel=kernel)  # fmt: skip

    def client(i: int) -> bool:
        remote = FlightProvider(served.uri, token_file=served.alice if i % 2 else served.bob, cache=False,
                                evaluate="server")  # fmt: skip
        chosen = symbols[i::3]
        a, b = local.load(FIELDS, chosen), remote.load(FIELDS, chosen)
        same = all(np.array_equal(a[f].view(np.uint32), b[f].view(np.uint32)) for f in FIELDS)
        frame = qcore.evaluate(["Mean($close, 5)/$close", "Rank($volume, 10)"], remote, instruments="csi_like",
                               kernel=kernel)  # fmt: skip
        return same and np.array_equal(bits(frame), bits(expected_frame)) and frame.index.equals(expected_frame.index)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(client, range(8)))
