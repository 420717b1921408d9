"""Qlib's own benchmark configs (``examples/benchmarks/`` of microsoft/qlib, copied into
``tests/data/qlib_examples/`` with only the data path made ``${QCORE_QLIB_DATA:-~/.qlib/qlib_data/cn_data}``) go
through ``qcore validate``'s checks against a small synthetic store spanning their dates.

Configs qcore cannot take would be listed in :data:`KNOWN_FAILURES` with the reason, each a strict xfail of the
validation test (it starts failing the day it is fixed, so the list stays true); today every config validates. The
six TRA research configs read ``data/feature.pkl`` and ``data/label.pkl`` through a ``StaticDataLoader`` (files
Qlib's TRA example made from Alpha360); :func:`write_tra_data` writes such files from the store, and the configs are
validated from the folder that holds them, as Qlib's are run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qcore.checks import check_components
from qcore.config import read_workflow
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "qlib_examples"
CONFIGS = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.yaml"))
#: config → (text of the error it is refused with, why).
KNOWN_FAILURES: dict[str, tuple[str, str]] = {}
#: The configs that read TRA's data files (``data/feature.pkl``, ``data/label.pkl``) from the current folder.
TRA_CONFIGS = [name for name in CONFIGS if name.startswith("TRA/configs/")]
#: The plugins a Qlib benchmark config needs (market adapter, operators and feature sets, models, backtest; the
#: optional XGBoost/CatBoost models).
PLUGINS = ("qdata_cn", "qops", "qmodel_zoo", "qbacktest", "qmodel_xgb_cat")


def write_tra_data(store: Path, folder: Path, start: str | None = None, end: str | None = None) -> Path:
    """``folder/data/feature.pkl`` (16 price and volume features of every stock of ``store``) and
    ``folder/data/label.pkl`` (the 21-day return, TRA's ``horizon``), pickled by pandas as Qlib's TRA example
    ships them: rows ``(datetime, instrument)``, float32. Returns ``folder``."""
    import qcore

    provider = qcore.open_provider("qlib_bin", provider_uri=str(store))
    fields = ("$close", "$open", "$high", "$low", "$vwap", "$volume")
    pairs = [(field, lag) for lag in (0, 1, 5) for field in fields][:16]
    features = {f"F{i}": f"Ref({field}, {lag})/$close" if field != "$volume" else f"Ref($volume, {lag})/($volume+1e-12)"
                for i, (field, lag) in enumerate(pairs)}
    frame = qcore.evaluate(features, provider, start=start, end=end)
    label = qcore.evaluate({"LABEL0": "Ref($close, -21)/Ref($close, -1) - 1"}, provider, start=start, end=end)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    frame.to_pickle(folder / "data" / "feature.pkl")
    label.to_pickle(folder / "data" / "label.pkl")
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-stock synthetic market from 2007 to 2021 (Qlib's configs span 2008-2020), with ``csi500`` and its
    benchmark ``SH000905`` (copies of ``csi300`` and ``SH000300``: the checks need their names and dates)."""
    from qdata_cn.synth import synthesize

    root = tmp_path_factory.mktemp("qlib-examples") / "store"
    synthesize(root, instruments=24, days=3500, start="2007-01-04", seed=3)
    add_csi500(root)
    # the multi-frequency configs' 1min folder (QCORE_QLIB_DATA_1MIN): a few days of minute bars in their span
    synthesize(root.parent / "minute", instruments=4, days=3, start="2008-01-02", seed=3, freq="1min",
               fundamentals=False)
    return root


def add_csi500(root: Path) -> None:
    """Give a synthetic store Qlib's ``csi500`` universe and ``SH000905`` benchmark (copies of ``csi300`` and
    ``SH000300``), which the csi500 configs name."""
    instruments = root / "instruments"
    shutil.copy(instruments / "csi300.txt", instruments / "csi500.txt")
    shutil.copytree(root / "features" / "sh000300", root / "features" / "sh000905")
    index_line = next(line for line in (instruments / "all.txt").read_text().splitlines()
                      if line.upper().startswith("SH000300"))
    with (instruments / "all.txt").open("a") as out:
        out.write("SH000905" + index_line[len("SH000300"):] + "\n")


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(PluginSelection(enable=PLUGINS, autoload=False), use_env=False)


@pytest.fixture(scope="module")
def tra_folder(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tra_data(store, tmp_path_factory.mktemp("tra"), "2007-06-01", "2021-06-30")


def _validate(name: str, store: Path, kernel: Kernel) -> None:
    workflow = read_workflow(EXAMPLES / name, environ={"QCORE_QLIB_DATA": str(store),
                                                       "QCORE_QLIB_DATA_1MIN": str(store.parent / "minute")})
    config = workflow.validate(kernel)
    check_components(config, kernel)


def test_every_benchmark_config_is_here() -> None:
    assert len(CONFIGS) == 62
    assert set(KNOWN_FAILURES) <= set(CONFIGS)
    for name in CONFIGS:
        text = (EXAMPLES / name).read_text()
        assert "${QCORE_QLIB_DATA" in text and "provider_uri" in text, name


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, raises=ConfigError, reason=KNOWN_FAILURES[n][1]))
    if n in KNOWN_FAILURES else n for n in CONFIGS])
def test_validates(name: str, store: Path, kernel: Kernel, tra_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if name in TRA_CONFIGS:
        monkeypatch.chdir(tra_folder)  # Qlib's TRA configs name their data files relative to where they run
    _validate(name, store, kernel)


@pytest.mark.parametrize("name", TRA_CONFIGS)
def test_tra_configs_without_their_data_files_are_refused_at_the_loader(
        name: str, store: Path, kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        _validate(name, store, kernel)
    assert "data/feature.pkl: no such file" in str(info.value)
    assert str(tmp_path) in str(info.value)  # where relative paths were looked for
    assert info.value.source is not None and info.value.source.endswith(name) and info.value.line == 10
