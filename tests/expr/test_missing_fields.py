"""Fields a store lacks: feature sets read them as NaN with one warning naming the field and the columns; a user's
own expression stays an error naming the field unless the user opts in (``missing_fields="nan"``,
``--missing-fields nan``, ``data.missing_fields: nan``)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import qcore
from qcore.cli import cli
from qcore.config import load_config
from qcore.errors import ConfigError, ExpressionError, QcoreError
from qcore.expr.engine import ExpressionEngine


def build_store(root: Path, name: str, drop: tuple[str, ...]) -> Path:
    """A synthetic 20-instrument x 300-day store without the field files ``drop`` (for every instrument)."""
    out = root / name
    result = CliRunner().invoke(
        cli, ["data", "synth", "--out", str(out), "--instruments", "20", "--days", "300", "--seed", "0"]
    )
    assert result.exit_code == 0, result.output
    for field in drop:
        files = list(out.glob(f"features/*/{field}.day.bin"))
        assert files, f"the synthetic store has no {field} to drop"
        for path in files:
            path.unlink()
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {
        "full": build_store(root, "full", ()),
        "novwap": build_store(root, "novwap", ("vwap",)),
        "nochg": build_store(root, "nochg", ("change", "factor")),
    }


@pytest.fixture(scope="module")
def kernel() -> qcore.Kernel:
    return qcore.load_kernel()


def _engine(kernel: qcore.Kernel, store: Path, **kwargs: object) -> ExpressionEngine:
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    return ExpressionEngine(provider, kernel.registry("operator"), num_threads=1, **kwargs)  # type: ignore[arg-type]


def _vwap_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "$vwap" in r.getMessage()]


def test_feature_set_on_a_store_without_vwap_is_nan_in_vwap_columns_only(
    stores: dict[str, Path], kernel: qcore.Kernel, caplog: pytest.LogCaptureFixture
) -> None:
    features = dict(kernel.create("feature_set", "alpha158").features)
    full = _engine(kernel, stores["full"]).evaluate(features, "csi300")
    engine = _engine(kernel, stores["novwap"], missing_fields="nan")
    with caplog.at_level(logging.WARNING):
        lacking = engine.evaluate(features, "csi300")
        engine.evaluate(features, "csi300")  # the same engine warns once
    assert lacking["VWAP0"].isna().all() and full["VWAP0"].notna().any()
    others = [c for c in features if c != "VWAP0"]
    pd.testing.assert_frame_equal(lacking[others], full[others])
    (message,) = _vwap_warnings(caplog)
    assert message == ("the store has no field '$vwap': it is read as NaN, so 1 column(s) are NaN where they use "
                       "it: VWAP0")  # fmt: skip


def test_warning_lists_the_first_columns_and_counts_the_rest(
    stores: dict[str, Path], kernel: qcore.Kernel, caplog: pytest.LogCaptureFixture
) -> None:
    features = dict(kernel.create("feature_set", "alpha360").features)
    engine = _engine(kernel, stores["novwap"], missing_fields="nan")
    with caplog.at_level(logging.WARNING):
        plan = engine.plan(features)
    assert plan.missing == ("vwap",)
    (message,) = _vwap_warnings(caplog)
    assert "60 column(s)" in message and "VWAP59, VWAP58" in message and message.endswith("and 50 more")


def test_own_expression_with_a_missing_field_is_an_error_naming_it(stores: dict[str, Path],
                                                                   kernel: qcore.Kernel) -> None:
    engine = _engine(kernel, stores["novwap"])
    with pytest.raises(ExpressionError, match=r"unknown field '\$vwap'.*missing_fields='nan'"):
        engine.plan(["$vwap / $close"])
    with pytest.raises(ExpressionError, match=r"unknown field '\$volum'; did you mean '\$volume'"):
        engine.plan(["Mean($volum, 5)"])
    with pytest.raises(QcoreError, match="missing_fields must be one of error, nan"):
        _engine(kernel, stores["novwap"], missing_fields="zero")


def test_opted_in_missing_field_reads_as_nan_also_inside_change_instrument(
    stores: dict[str, Path], kernel: qcore.Kernel
) -> None:
    engine = _engine(kernel, stores["novwap"], missing_fields="nan")
    frame = engine.evaluate({"a": "$vwap / $close", "b": "ChangeInstrument('SH000300', $vwap)", "c": "$close"},
                            "csi300")  # fmt: skip
    assert frame["a"].isna().all() and frame["b"].isna().all()
    assert frame["c"].notna().mean() > 0.9
    # a typo is still caught by operators: only fields are admitted
    with pytest.raises(ExpressionError, match="unknown operator 'Maen'"):
        engine.plan(["Maen($vwap, 5)"])


def test_cli_expr_refuses_a_missing_field_unless_asked(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    base = ["expr", "--provider-uri", str(stores["novwap"]), "--field", "$vwap / $close", "--field", "$close",
            "--out", str(out)]  # fmt: skip
    refused = CliRunner().invoke(cli, base)
    assert refused.exit_code not in (0, 70)
    assert "unknown field '$vwap'" in refused.output and "--missing-fields nan" in refused.output
    assert not out.exists()
    accepted = CliRunner().invoke(cli, [*base, "--missing-fields", "nan"])
    assert accepted.exit_code == 0, accepted.output
    frame = pd.read_parquet(out)
    assert frame["$vwap / $close"].isna().all() and frame["$close"].notna().any()


@pytest.mark.parametrize("store", ["novwap", "nochg"])
def test_cli_features_alpha158_runs_on_stores_lacking_fields(stores: dict[str, Path], tmp_path: Path,
                                                              store: str) -> None:
    out = tmp_path / "a.parquet"
    result = CliRunner().invoke(cli, ["features", "alpha158", "--provider-uri", str(stores[store]),
                                      "--instruments", "csi300", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert frame.shape[1] == 159
    assert frame["VWAP0"].isna().all() == (store == "novwap")
    assert np.isfinite(frame["KMID"]).mean() > 0.9


def test_cli_features_with_missing_fields_error_fails(stores: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["features", "alpha158", "--provider-uri", str(stores["novwap"]),
                                      "--missing-fields", "error", "--out", str(tmp_path / "a.parquet")])  # fmt: skip
    assert result.exit_code not in (0, 70)
    assert "unknown field '$vwap'" in result.output


def test_command_line_prints_one_warning_line(stores: dict[str, Path], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qcore", "features", "alpha158", "--provider-uri", str(stores["novwap"]),
         "--out", str(tmp_path / "a.parquet")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert warnings == ["WARNING qcore.expr.engine: the store has no field '$vwap': it is read as NaN, so 1 column(s) "
                        "are NaN where they use it: VWAP0"]  # fmt: skip


def test_config_missing_fields_is_validated(tmp_path: Path, stores: dict[str, Path]) -> None:
    path = tmp_path / "wf.yaml"
    text = textwrap.dedent(f"""\
        data:
          provider: {{name: qlib_bin, kwargs: {{provider_uri: {stores["novwap"]}}}}}
          missing_fields: {{value}}
        """)
    path.write_text(text.replace("{value}", "error"))
    assert load_config(path).data.missing_fields == "error"
    path.write_text(text.replace("{value}", "zero"))
    with pytest.raises(ConfigError, match="expected one of nan, error") as info:
        load_config(path)
    assert info.value.path == "data.missing_fields" and info.value.line == 3

