"""Shared fixtures: fresh kernels and a clean plugin environment for every test."""

from __future__ import annotations

import pytest

from qcore.kernel import Kernel


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their plugins explicitly; a developer's QCORE_* variables must not leak in."""
    monkeypatch.delenv("QCORE_PLUGINS", raising=False)
    monkeypatch.delenv("QCORE_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture(autouse=True)
def _no_home_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches (LightGBM's constructed datasets) go to the session's temporary folder, not the developer's ~/.cache."""
    monkeypatch.setenv("QCORE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "qcore-cache"))


@pytest.fixture
def kernel() -> Kernel:
    """A kernel with every installed plugin."""
    return Kernel.load(use_env=False)
