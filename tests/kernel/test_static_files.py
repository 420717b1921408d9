"""A dataset read from files (feature set ``static_files``, Qlib's ``StaticDataLoader``): the files of every
supported format read to the same frame, a workflow over them trains to the predictions of the same columns
evaluated from expressions, and every malformed file or config is an error naming the file or key."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import qcore
from qcore.cli import cli
from qcore.errors import ConfigError, DataError
from qcore.kernel import Kernel
from qcore.recorders.local import LocalRecorder
from qcore.static_frames import read_static
from qcore.types import FeatureSet, StaticFiles
from tests.kernel.test_workflow import STORE, TinyFeatures, workflow

FEATURES = {"RET5": "$close/Ref($close, 5) - 1", "VOL": "Log($volume + 1)", "MA": "Mean($close, 10)/$close"}
LABEL = {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}


@pytest.fixture(scope="module")
def columns() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tiny feature set's features and label over the workflow's span, evaluated from the store."""
    kernel = Kernel.load(use_env=False)
    provider = qcore.open_provider("qlib_bin", provider_uri=str(STORE), kernel=kernel)
    span = {"instruments": "csi_like", "start": "2018-01-02", "end": "2019-04-23", "kernel": kernel}
    return qcore.evaluate(FEATURES, provider, **span), qcore.evaluate(LABEL, provider, **span)


def _files(folder: Path, columns: tuple[pd.DataFrame, pd.DataFrame], suffix: str = ".parquet") -> dict[str, str]:
    features, label = columns
    out = {}
    for group, frame in (("feature", features), ("label", label)):
        path = folder / f"{group}{suffix}"
        _write(frame, path)
        out[group] = str(path)
    return out


def _write(frame: pd.DataFrame, path: Path) -> None:
    name = path.name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    elif name.endswith(".feather"):
        frame.reset_index().to_feather(path)
    elif name.endswith(".csv"):
        frame.to_csv(path)
    else:
        frame.to_pickle(path)


def test_a_workflow_on_static_files_predicts_as_on_the_same_expressions(
        tmp_path: Path, columns: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    kernel = Kernel.load(extra={"tiny": TinyFeatures()}, use_env=False)
    evaluated = qcore.run(workflow(tmp_path), kernel=kernel)
    config = workflow(tmp_path)
    config["dataset"]["features"] = {"name": "static_files", "kwargs": {"config": _files(tmp_path, columns)}}
    static = qcore.run(config, kernel=kernel)
    assert static.metrics["dataset.features"] == 3.0
    assert static.metrics["dataset.rows.test"] == evaluated.metrics["dataset.rows.test"] > 0
    runs = LocalRecorder(tmp_path / "runs")
    preds = [pd.read_parquet(Path(runs.get_run(r.run_id)["path"]) / "artifacts" / "pred.parquet")
             for r in (evaluated, static)]
    pd.testing.assert_frame_equal(preds[0], preds[1])


@pytest.mark.parametrize("suffix", [".parquet", ".feather", ".csv", ".pkl", ".pkl.gz"])
def test_every_format_reads_to_the_same_frame(tmp_path: Path, columns: tuple[pd.DataFrame, pd.DataFrame],
                                              suffix: str) -> None:
    frame = read_static(StaticFiles(_files(tmp_path, columns, suffix)))
    features, label = columns
    assert list(frame.columns) == [("feature", n) for n in FEATURES] + [("label", "LABEL0")]
    assert frame.index.names == ["datetime", "instrument"] and frame.index.is_monotonic_increasing
    assert (frame.dtypes == np.float32).all()
    expected = pd.concat({"feature": features, "label": label}, axis=1).sort_index()
    pd.testing.assert_frame_equal(frame, expected, check_exact=suffix != ".csv", rtol=1e-6)


def test_one_file_with_both_groups_a_series_and_rows_indexed_instrument_first(
        tmp_path: Path, columns: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    features, label = columns
    both = pd.concat({"feature": features, "label": label}, axis=1)
    both.swaplevel().sort_index().to_pickle(tmp_path / "both.pkl")
    one = read_static(StaticFiles(frame=str(tmp_path / "both.pkl")))
    pd.testing.assert_frame_equal(one, both.sort_index())
    label["LABEL0"].to_pickle(tmp_path / "label.pkl")  # a Series named by its column
    features.astype(np.float64).to_parquet(tmp_path / "feature.parquet")
    split = read_static(StaticFiles({"feature": str(tmp_path / "feature.parquet"),
                                     "label": str(tmp_path / "label.pkl")}))
    pd.testing.assert_frame_equal(split, both.sort_index())


def test_outer_and_inner_joins(tmp_path: Path, columns: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    features, label = columns
    features.to_parquet(tmp_path / "feature.parquet")
    label.iloc[: len(label) // 2].to_parquet(tmp_path / "label.parquet")
    files = {"feature": str(tmp_path / "feature.parquet"), "label": str(tmp_path / "label.parquet")}
    outer, inner = read_static(StaticFiles(files)), read_static(StaticFiles(files, join="inner"))
    assert len(outer) == len(features) and outer[("label", "LABEL0")].iloc[len(label) // 2:].isna().all()
    assert len(inner) == len(label) // 2


def _bad_frames() -> list[Any]:
    index = pd.MultiIndex.from_product([pd.date_range("2018-01-02", periods=3), ["SH600000", "SZ000002"]],
                                       names=["datetime", "instrument"])
    good = pd.DataFrame({"A": np.arange(6.0)}, index=index)
    return [
        (good.assign(B=list("abcdef")), "column 'B' holds object values, not numbers"),
        (pd.concat([good, good.iloc[:1]]), "row (2018-01-02, SH600000) appears more than once"),
        (good.reset_index(drop=True), "rows must be indexed by (datetime, instrument): found 1 index level(s)"),
        (good.set_axis(good.index.set_levels(good.index.levels[0].tz_localize("UTC"), level=0)),
         "index dates carry a time zone"),
        (good.set_axis(good.index.set_levels(["2018-01-02", "x", "y"], level=0)),
         "index level 'datetime' must hold dates"),
        (good.iloc[:, :0], "the file has no data columns"),
    ]


@pytest.mark.parametrize(("frame", "message"), _bad_frames())
def test_malformed_files_are_named(tmp_path: Path, frame: pd.DataFrame, message: str) -> None:
    path = tmp_path / "feature.pkl"
    frame.to_pickle(path)
    with pytest.raises(DataError) as info:
        read_static(StaticFiles({"feature": str(path)}))
    assert str(info.value).startswith(f"{path}: {message}")


def test_file_level_errors(tmp_path: Path, columns: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    features = columns[0]
    features.to_parquet(tmp_path / "feature.parquet")
    features[["VOL"]].rename(columns={"VOL": "RET5"}).to_parquet(tmp_path / "label.parquet")
    with pytest.raises(DataError, match="column 'RET5' appears twice in the files"):
        read_static(StaticFiles({"feature": str(tmp_path / "feature.parquet"),
                                 "label": str(tmp_path / "label.parquet")}))
    with pytest.raises(DataError, match="a single data file needs two-level columns"):
        read_static(StaticFiles(frame=str(tmp_path / "feature.parquet")))
    (tmp_path / "damaged.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"damaged\.parquet: cannot read: "):
        read_static(StaticFiles({"feature": str(tmp_path / "damaged.parquet")}))
    (tmp_path / "data.h5").write_bytes(b"")
    with pytest.raises(DataError, match=r"unsupported file type '\.h5'.*HDF5 is not read: convert it"):
        read_static(StaticFiles({"feature": str(tmp_path / "data.h5")}))


def test_the_value_types_refuse_mixed_or_empty_sources() -> None:
    with pytest.raises(ValueError, match="from files or evaluates expressions, not both"):
        FeatureSet({"A": "$close"}, static=StaticFiles({"feature": "f.parquet"}))
    with pytest.raises(ValueError, match="either files per column group or one frame file"):
        StaticFiles({"feature": "f.parquet"}, frame="both.parquet")
    with pytest.raises(ValueError, match="need a feature group"):
        StaticFiles({"label": "l.parquet"})
    with pytest.raises(ValueError, match="unknown column group 'extra'"):
        StaticFiles({"feature": "f.parquet", "extra": "x.parquet"})
    with pytest.raises(ValueError, match="'join' must be in"):
        StaticFiles({"feature": "f.parquet"}, join="left")


@pytest.mark.parametrize(("kwargs", "message", "path"), [
    ({"config": {"feature": "nothere.parquet"}}, "nothere.parquet: no such file (looked for ", "config.feature"),
    ({"config": {"feature": "x.h5"}}, "unsupported file type '.h5'", "config.feature"),
    ({"config": {"label": "label.parquet"}}, "expected a file for the feature group", "config"),
    ({"config": {"feature": "feature.parquet", "extra": "x"}}, "unsupported column group 'extra'", "config.extra"),
    ({"config": ["feature.parquet"]}, "expected config: {feature: FILE, label: FILE} or one FILE", "config"),
    ({"config": {"feature": "feature.parquet"}, "join": "left"}, "unsupported join 'left'", "join"),
    ({"config": {"feature": "feature.parquet"}, "swap_level": True}, "option 'swap_level' is not supported",
     "swap_level"),
])
def test_bad_loader_configs_are_refused_at_their_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     columns: tuple[pd.DataFrame, pd.DataFrame], kwargs: Any,
                                                     message: str, path: str) -> None:
    monkeypatch.chdir(tmp_path)
    columns[0].to_parquet(tmp_path / "feature.parquet")
    kernel = Kernel.load(use_env=False)
    with pytest.raises(ConfigError) as info:
        kernel.create("feature_set", "StaticDataLoader", **kwargs)
    assert message in info.value.message and info.value.path == path


def test_rows_of_non_members_are_left_out_with_a_warning_and_an_empty_segment_is_named(
        tmp_path: Path, columns: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    features, label = columns
    stranger = features.xs(features.index[0][1], level="instrument", drop_level=False).rename(
        index={features.index[0][1]: "ZZ000001"}, level="instrument")
    pd.concat([features, stranger]).sort_index().to_parquet(tmp_path / "feature.parquet")
    label.to_parquet(tmp_path / "label.parquet")
    kernel = Kernel.load(extra={"tiny": TinyFeatures()}, use_env=False)
    config = workflow(tmp_path)
    files = {"feature": str(tmp_path / "feature.parquet"), "label": str(tmp_path / "label.parquet")}
    config["dataset"]["features"] = {"name": "static_files", "kwargs": {"config": files}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = qcore.run(config, kernel=kernel)
    note = [str(w.message) for w in caught if "not members of csi_like" in str(w.message)]
    assert len(note) == 1 and f"{len(stranger)} row(s)" in note[0]
    assert result.metrics["dataset.rows.test"] > 0
    for frame, name in ((features, "feature"), (label, "label")):  # files that end before the test segment
        frame.loc[:"2018-12-31"].to_parquet(tmp_path / f"{name}.parquet")
    with pytest.raises(ConfigError) as info:
        qcore.run(config, kernel=kernel)
    assert info.value.path == "dataset.segments.test" and "has no row in the data files" in info.value.message
    assert "which run from 2018-01-02 to 2018-12-31" in info.value.message


def test_validate_names_a_missing_file_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(f"""
        experiment: static
        data:
          provider: {{name: qlib_bin, kwargs: {{provider_uri: {STORE}}}}}
          universe: csi_like
        dataset:
          features:
            name: static_files
            kwargs:
              config:
                feature: {tmp_path / "features.parquet"}
          segments: {{train: [2018-01-02, 2018-09-28], test: [2019-01-02, 2019-04-23]}}
        model: {{name: linear}}
        recorder: {{name: local, kwargs: {{uri: {tmp_path / "runs"}}}}}
    """).lstrip())
    result = CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code != 0
    assert f"{path}:10: dataset.features.kwargs.config.feature: " in result.output
    assert "features.parquet: no such file" in result.output
    assert not (tmp_path / "runs").exists()


def test_the_online_routine_refuses_a_dataset_read_from_files(
        tmp_path: Path, columns: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from qonline.serving import online_feature_set

    from qcore.config import config_from_mapping

    kernel = Kernel.load(use_env=False)
    config = workflow(tmp_path)
    config["dataset"]["features"] = {"name": "static_files", "kwargs": {"config": _files(tmp_path, columns)}}
    with pytest.raises(ConfigError, match="reads them from files"):
        online_feature_set(config_from_mapping(config, kernel=kernel), kernel)
