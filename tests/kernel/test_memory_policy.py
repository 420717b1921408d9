"""Loading a kernel stops numpy from asking for transparent huge pages (waiting on memory compaction at each first
write into a large array), unless the user set numpy's own switch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from qcore.kernel import Kernel
from qcore.memory import NUMPY_HUGEPAGE_SWITCH, avoid_hugepage_stalls

_core = getattr(np, "_core", None) or np.core
set_madvise = _core.multiarray._set_madvise_hugepage


@pytest.fixture
def numpy_default() -> Iterator[None]:
    previous = set_madvise(True)  # numpy's default on Linux
    yield
    set_madvise(previous)


def test_loading_a_kernel_turns_numpy_huge_page_requests_off(numpy_default: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NUMPY_HUGEPAGE_SWITCH, raising=False)
    Kernel.load(use_env=False)
    assert set_madvise(True) is False  # what loading left


def test_the_users_own_setting_stands(numpy_default: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NUMPY_HUGEPAGE_SWITCH, "1")
    assert avoid_hugepage_stalls() is False
    Kernel.load(use_env=False)
    assert set_madvise(True) is True
