"""Registration: names and Qlib aliases, lazy imports, and a clear error when torch is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qcore.errors import OptionalDependencyError
from qcore.kernel import Kernel

ROOT = Path(__file__).resolve().parents[2]

NAMES = {
    "linear": ("LinearModel",),
    "lightgbm": ("LGBModel", "lgb"),
    "hf_lightgbm": ("HFLGBModel",),
    "double_ensemble": ("DEnsembleModel",),
    "mlp": ("DNNModelPytorch",),
    "lstm": ("LSTM",),
    "gru": ("GRU",),
    "alstm": ("ALSTM",),
    "transformer": ("TransformerModel",),
    "tcn": ("TCN",),
    "localformer": ("LocalformerModel",),
    "gats": ("GATs",),
    "krnn": ("KRNN",),
    "sfm": ("SFM",),
    "add_model": ("ADD",),
    "adarnn": ("ADARNN",),
    "tcts": ("TCTS",),
    "sandwich": ("Sandwich",),
    "igmtf": ("IGMTF",),
    "general_ptnn": ("GeneralPTNN",),
    "tabnet": ("TabnetModel",),
    "tra": ("TRAModel",),
    "hist": ("HIST",),
    "tft": ("TFTModel",),
}


def test_every_model_is_registered_with_its_qlib_alias(kernel: Kernel) -> None:
    registry = kernel.registry("model")
    entries = {entry.name: entry for entry in registry if entry.plugin == "qmodel_zoo"}
    assert set(entries) == set(NAMES)
    for name, aliases in NAMES.items():
        assert entries[name].aliases == aliases
        assert entries[name].description
        for alias in aliases:
            assert registry.get(alias) is registry.get(name)


def test_the_plugin_module_imports_neither_torch_nor_lightgbm() -> None:
    code = (
        "import sys\n"
        "import qmodel_zoo.plugin as p\n"
        "names = []\n"
        "p.qcore_register_models(lambda name, factory, **kw: names.append(name))\n"
        f"assert len(names) == {len(NAMES)}, names\n"
        "assert 'torch' not in sys.modules and 'lightgbm' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_torch_lightgbm_works_and_torch_models_say_what_to_install() -> None:
    code = (
        "import sys\n"
        "class NoTorch:  # an import hook that makes torch look uninstalled\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import numpy as np\n"
        "from qcore.kernel import Kernel\n"
        "from qcore.errors import OptionalDependencyError\n"
        "from tests.qmodel_zoo.planted import planted_dataset\n"
        "kernel = Kernel.load(use_env=False)\n"
        "data = planted_dataset(60, 40)\n"
        "pred = kernel.create('model', 'lightgbm', num_boost_round=5, num_threads=1).fit(data).predict(data)\n"
        "assert np.isfinite(pred).all()\n"
        "for name in ('mlp', 'lstm', 'gru', 'alstm', 'transformer'):\n"
        "    try:\n"
        "        kernel.create('model', name)\n"
        "    except OptionalDependencyError as exc:\n"
        "        assert str(exc) == (f\"the {name} model needs 'torch', which is not installed; \"\n"
        "                            \"install it with: pip install 'qmodel-zoo[torch]'\"), str(exc)\n"
        "    else:\n"
        "        raise AssertionError(name)\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_missing_torch_in_process(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(OptionalDependencyError, match=r"the lstm model needs 'torch'.*qmodel-zoo\[torch\]"):
        kernel.create("model", "LSTM")
