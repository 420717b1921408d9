"""Qlib's own benchmark configs (``examples/benchmarks/`` of microsoft/qlib, copied into
``tests/data/qlib_examples/`` with only the data path made ``${QCORE_QLIB_DATA:-~/.qlib/qlib_data/cn_data}``) go
through ``qcore validate``'s checks against a small synthetic store spanning their dates.

The configs qcore cannot take yet are listed in :data:`KNOWN_FAILURES` with the reason: each is a strict xfail of
the validation test (it starts failing the day it is fixed, so the list stays true), and a second test checks that
each is refused for exactly that reason, at the config's key.
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
_MODEL = "task.model: unknown model"
_MTS = "unsupported dataset class 'MTSDatasetH'"
#: config → (text of the error it is refused with, why).
KNOWN_FAILURES: dict[str, tuple[str, str]] = {
    **{f"TRA/configs/config_{v}.yaml": ("unsupported data_loader class 'StaticDataLoader'", "a StaticDataLoader "
       "reads pickled frames (refused: unpickling runs code); TRA and MTSDatasetH accept the rest of the config")
       for v in ("alstm", "alstm_tra", "alstm_tra_init", "transformer", "transformer_tra", "transformer_tra_init")},
}
#: The plugins a Qlib benchmark config needs (market adapter, operators and feature sets, models, backtest; the
#: optional XGBoost/CatBoost models).
PLUGINS = ("qdata_cn", "qops", "qmodel_zoo", "qbacktest", "qmodel_xgb_cat")


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
def test_validates(name: str, store: Path, kernel: Kernel) -> None:
    _validate(name, store, kernel)


@pytest.mark.parametrize("name", sorted(KNOWN_FAILURES))
def test_known_failures_fail_for_their_reason(name: str, store: Path, kernel: Kernel) -> None:
    with pytest.raises(ConfigError) as info:
        _validate(name, store, kernel)
    assert KNOWN_FAILURES[name][0] in str(info.value)
    assert info.value.source is not None and info.value.source.endswith(name) and info.value.line is not None
