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


def test_prefault_maps_a_fresh_block_and_leaves_it_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmap
    import resource
    import sys

    from qcore import memory

    size = 64 << 20  # eight prefault chunks
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    how = memory.prefault(buffer)
    assert how == ("madvise" if sys.platform.startswith("linux") else how)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    view = np.frombuffer(buffer, dtype=np.uint8)
    view[:: mmap.PAGESIZE] = 1  # every page written once: already mapped, so (next to) no fault is taken
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < size // mmap.PAGESIZE // 10
    view[:: mmap.PAGESIZE] = 0
    assert not view.any()

    # without madvise (an older kernel): one write per page, the contents still zero
    monkeypatch.setattr(memory, "_madvise", lambda: None)
    other = mmap.mmap(-1, 3 * mmap.PAGESIZE + 5, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    assert memory.prefault(other) == "touch"
    assert not np.frombuffer(other, dtype=np.uint8).any()
    assert memory.prefault(bytearray()) == "none"


def test_the_output_block_is_mapped_without_stopping_other_threads() -> None:
    """Mapping a large output block on a background thread leaves the GIL free: a Python loop on this thread keeps
    running meanwhile (mmap's own MAP_POPULATE held the GIL for the whole mapping: this thread's longest pause was
    80% of it, starting the thread included)."""
    import threading
    import time

    from qcore.expr.evaluation import output_block

    done = threading.Event()

    def map_block() -> None:
        output_block(4_000_000, 50)  # 800 MB
        done.set()

    thread = threading.Thread(target=map_block)
    began = last = time.perf_counter()
    thread.start()
    longest = 0.0
    while not done.is_set():
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        time.sleep(0)
    elapsed = time.perf_counter() - began
    thread.join()
    assert longest < 0.25 * elapsed, (longest, elapsed)
