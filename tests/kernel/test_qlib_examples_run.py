"""Every Qlib benchmark config that validates also runs: ``qcore run`` on a tiny synthetic store, each model trained
for an epoch (or a few boosting rounds), through prediction, signal analysis and the backtest record.

Only the data path, the dates (the store's), the universe size (TopkDropout's ``topk``/``n_drop``), the training
length and a pre-trained ``model_path`` are changed; everything else is Qlib's file as shipped
(``tests/data/qlib_examples/``). The multi-frequency configs run in ``tests/kernel/test_qlib_multi_freq.py``. The
six TRA research configs run from a folder holding their ``data/feature.pkl`` and ``data/label.pkl`` (written from
the store), as Qlib's are run; a config that starts from another's weights (``model_init_state``) runs after the
``*_init`` config that writes them to its ``logdir``, in the same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.kernel.test_qlib_examples import CONFIGS, EXAMPLES, KNOWN_FAILURES, TRA_CONFIGS, add_csi500, write_tra_data

pytestmark = pytest.mark.slow

#: Keys of a model's kwargs that set how long it trains, and the short values used here.
SHORT = {"n_epochs": 1, "max_steps": 2, "num_boost_round": 5, "epochs": 2, "pretrain_n_epochs": 1, "n_estimators": 5,
         "num_epochs": 1}
#: Per model class: what else keeps it short or inside the test's folder (qcore-only keys are fine: qcore runs it).
EXTRA: dict[str, dict[str, Any]] = {
    "TCTS": {"max_retries": 0},
    "TRAModel": {"max_steps_per_epoch": 3},
    "TFTModel": {"num_epochs": 1},
    "CatBoostModel": {"num_boost_round": 5},
    # configs that leave the epochs to the model's default (Qlib's: 100 and more)
    "TransformerModel": {"n_epochs": 1},
    "LocalformerModel": {"n_epochs": 1},
    "TabnetModel": {"n_epochs": 1, "pretrain_n_epochs": 1},
}
RUNS = [name for name in CONFIGS if name not in KNOWN_FAILURES and "multi_freq" not in name]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 stocks over 220 days with an ``$industry`` field (HIST's concepts) and ``csi500``/``SH000905`` (copies of
    ``csi300``/``SH000300``)."""
    from qdata_cn.synth import synthesize

    root = tmp_path_factory.mktemp("qlib-runs") / "store"
    synthesize(root, instruments=16, days=220, start="2019-01-02", seed=5, fundamentals=False)
    for i, folder in enumerate(sorted((root / "features").iterdir())):  # Qlib bin: start index, then values
        close = np.fromfile(folder / "close.day.bin", dtype="<f4")
        np.hstack([close[:1], np.full(len(close) - 1, i % 3, "<f4")]).astype("<f4").tofile(folder / "industry.day.bin")
    add_csi500(root)
    return root


def _segments(store: Path) -> dict[str, list[str]]:
    days = [line.strip() for line in (store / "calendars" / "day.txt").read_text().splitlines() if line.strip()]
    usable = days[60:-2]  # after Alpha360's 60-day history, before the last label
    a, b = int(len(usable) * 0.6), int(len(usable) * 0.8)
    return {"train": [usable[0], usable[a - 1]], "valid": [usable[a], usable[b - 1]], "test": [usable[b], usable[-1]]}


def _short(name: str, store: Path, folder: Path) -> Path:
    """Qlib's config ``name`` on ``store``, trained briefly; written to ``folder``."""
    text = (EXAMPLES / name).read_text(encoding="utf-8").replace("${QCORE_QLIB_DATA:-~/.qlib/qlib_data/cn_data}",
                                                                 str(store))
    config = yaml.safe_load(text)
    seg = _segments(store)
    task = config["task"]
    kwargs = task["dataset"]["kwargs"]
    handler = kwargs["handler"].get("kwargs") if isinstance(kwargs.get("handler"), dict) else None
    if handler is not None:
        handler.update({"start_time": seg["train"][0], "end_time": seg["test"][1], "fit_start_time": seg["train"][0],
                        "fit_end_time": seg["train"][1]})
    kwargs["segments"] = {key: seg["valid"] if key.startswith("pretrain") and "valid" in key else
                          seg["train"] if key.startswith("pretrain") else seg.get(key, seg["test"])
                          for key in kwargs["segments"]}  # fmt: skip
    model = task["model"].setdefault("kwargs", {}) or {}
    task["model"]["kwargs"] = model
    model.pop("model_path", None)
    model.update({key: value for key, value in SHORT.items() if key in model})
    model.update(EXTRA.get(task["model"]["class"], {}))
    if "GPU" in model:
        model["GPU"] = -1
    for record in task.get("record") or []:
        if record.get("class") in ("PortAnaRecord", "MultiPassPortAnaRecord"):
            port = record["kwargs"]["config"]
            port["strategy"]["kwargs"].update({"topk": 4, "n_drop": 1})
            port["backtest"].update({"start_time": seg["test"][0], "end_time": seg["test"][1]})
            if record["class"] == "MultiPassPortAnaRecord":
                record["kwargs"]["pass_num"] = 2
    config["qlib_init"] = {"provider_uri": str(store), "region": "cn"}
    path = folder / "workflow.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tra_data(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TRA's ``data/`` folder made from the store."""
    return write_tra_data(store, tmp_path_factory.mktemp("tra-data")) / "data"


def _run(name: str, store: Path, folder: Path) -> Any:
    import qcore

    path = _short(name, store, folder)
    result = qcore.run(path, overrides=["recorder.name=local", f"recorder.kwargs.uri={folder / 'runs'}"])
    assert result.metrics["model.predictions"] > 0
    assert "signal.IC" in result.metrics  # (NaN allowed: a model trained for one epoch may score every stock alike)
    return result


@pytest.mark.parametrize("name", RUNS)
def test_runs(name: str, store: Path, tmp_path: Path, request: pytest.FixtureRequest,
              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a config's relative paths (TRA's data/, a logdir's output/) start here
    if name in TRA_CONFIGS:
        (tmp_path / "data").symlink_to(request.getfixturevalue("tra_data"), target_is_directory=True)
        init_state = (yaml.safe_load((EXAMPLES / name).read_text())["task"]["model"]["kwargs"]
                      .get("model_init_state"))  # fmt: skip
        if init_state:  # the weights another config writes: run it first, as Qlib's TRA example does
            source = name.replace(".yaml", "_init.yaml")
            (tmp_path / "init").mkdir()
            _run(source, store, tmp_path / "init")
            assert (tmp_path / init_state).is_file()
    _run(name, store, tmp_path)
