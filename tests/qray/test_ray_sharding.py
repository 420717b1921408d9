"""Sharded expression evaluation and a rolling LightGBM on the session's real Ray cluster: bit for bit what one
process gives, with retries and failures named by shard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import qcore
from qcore.backends import TaskError
from qcore.expr.sharding import evaluate_sharded
from tests.kernel.test_rolling_run import kernel, rolling_config  # noqa: F401  (the fixture)
from tests.kernel.test_sharding import END, MIXED, START, STORE, FlakyStore, direct

pytestmark = pytest.mark.slow  # shares the session's Ray head (about 10 s to start)


@pytest.fixture(scope="module")
def ray_backend(ray_session: Any) -> Any:
    from qray.backend import RayBackend

    with RayBackend(address="auto") as backend:
        yield backend


@pytest.fixture(scope="module")
def shard_kernel() -> Any:
    return qcore.load_kernel()


@pytest.fixture(scope="module")
def store(shard_kernel: Any) -> Any:
    return qcore.open_provider("qlib_bin", provider_uri=str(STORE), kernel=shard_kernel)


@pytest.fixture(scope="module")
def alpha158(shard_kernel: Any) -> dict[str, str]:
    definition = shard_kernel.create("feature_set", "alpha158")
    return {**dict(definition.features), **dict(definition.labels)}


@pytest.fixture(scope="module")
def expected(shard_kernel: Any, store: Any, alpha158: dict[str, str]) -> dict[str, pd.DataFrame]:
    return {"mixed": direct(shard_kernel, store, MIXED),
            "alpha158": direct(shard_kernel, store, alpha158, missing="nan")}  # fmt: skip


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
@pytest.mark.parametrize("by", ["instruments", "expressions"])
def test_ray_shards_equal_one_process_bit_for_bit(ray_backend: Any, store: Any, alpha158: dict[str, str],
                                                  expected: dict[str, pd.DataFrame], by: str,
                                                  shards: int) -> None:  # fmt: skip
    mixed = evaluate_sharded(MIXED, store, instruments="csi_like", start=START, end=END, shards=shards, by=by,
                             backend=ray_backend)  # fmt: skip
    pd.testing.assert_frame_equal(mixed.frame, expected["mixed"], check_exact=True)
    alpha = evaluate_sharded(alpha158, store, instruments="csi_like", start=START, end=END, shards=shards, by=by,
                             backend=ray_backend, missing_fields="nan")  # fmt: skip
    pd.testing.assert_frame_equal(alpha.frame, expected["alpha158"], check_exact=True)


def test_a_crashing_shard_is_retried_on_ray(ray_backend: Any, store: Any, expected: dict[str, pd.DataFrame],
                                            tmp_path: Path) -> None:  # fmt: skip
    flaky = FlakyStore(store, str(tmp_path / "once"), "SH600010", crash=True)  # kills its Ray worker once
    result = evaluate_sharded(MIXED, flaky, instruments="csi_like", start=START, end=END, shards=3, retries=1,
                              backend=ray_backend)  # fmt: skip
    pd.testing.assert_frame_equal(result.frame, expected["mixed"], check_exact=True)
    assert (tmp_path / "once").exists()


def test_a_failing_shard_on_ray_is_named(ray_backend: Any, store: Any, tmp_path: Path) -> None:
    flaky = FlakyStore(store, str(tmp_path / "once"), "SH600010", crash=False)
    with pytest.raises(TaskError, match=r"\(shard 1/3 \(SH600000\.\.SH6\d+, \d+ instruments\)\) failed after 1 "
                                        r"attempt: OSError: disk hiccup"):  # fmt: skip
        evaluate_sharded(MIXED, flaky, instruments="csi_like", start=START, end=END, shards=3, backend=ray_backend)


def test_rolling_lightgbm_on_ray_equals_serial(ray_session: Any, tmp_path: Path, kernel: Any) -> None:  # noqa: F811
    config = rolling_config(tmp_path, step="1M")
    config["model"] = {"name": "lightgbm", "kwargs": {
        "num_boost_round": 20, "num_leaves": 8, "learning_rate": 0.1, "num_threads": 1, "seed": 7,
        "deterministic": True, "force_row_wise": True, "verbose": -1, "dataset_cache": False}}  # fmt: skip
    config["backend"] = {"name": "ray", "kwargs": {"address": "auto"}}
    serial = {**config, "backend": "serial", "rolling": {**config["rolling"], "checkpoint": str(tmp_path / "ck-s")}}
    on_ray = qcore.run(config, kernel=kernel)
    assert on_ray.metrics["rolling.windows_trained"] == 4.0
    expected = pd.read_parquet(qcore.run(serial, kernel=kernel).artifacts["pred"])
    got = pd.read_parquet(on_ray.artifacts["pred"])
    assert got.notna().all().all() and got.iloc[:, 0].std() > 0  # a real, varying signal
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
