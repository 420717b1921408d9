"""Fixtures of the model-zoo tests: planted-signal datasets and single-threaded torch (tiny nets run faster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qcore.dataset import PanelDataset
from tests.qmodel_zoo.planted import planted_dataset


@pytest.fixture(scope="session")
def planted() -> PanelDataset:
    """Fields A..D as columns (tabular models, time-series view)."""
    return planted_dataset(n_instruments=120, n_days=90, seed=0)


@pytest.fixture(scope="session")
def planted_lags() -> PanelDataset:
    """Alpha360-style columns: 4 fields × 4 lags (tabular sequence reshape with d_feat=4)."""
    return planted_dataset(n_instruments=120, n_days=90, seed=0, lags=4)


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """LightGBM's dataset cache writes under a temporary folder, never the developer's ``~/.cache``."""
    monkeypatch.setenv("QCORE_CACHE_DIR", str(tmp_path_factory.mktemp("qcore-cache")))
    monkeypatch.delenv("QCORE_LGB_DATASET_CACHE", raising=False)
    monkeypatch.delenv("QCORE_LGB_DATASET_CACHE_MAX_MB", raising=False)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Small networks are faster on one thread than fighting over two."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
