"""How the process uses memory: giving freed memory back, and not waiting on huge pages.

Large numpy arrays live in their own memory maps and go back to the system when freed, but the many small and
medium allocations of a C++ library (LightGBM's binned datasets, say) come from the C allocator's heap, which glibc
keeps for reuse: after a model has freed hundreds of MB the process's resident size does not move, and the next
step's peak stacks on top of it. :func:`return_freed_memory` asks glibc to release what is free (``malloc_trim``).

numpy asks the kernel for transparent huge pages on every array of 4 MiB or more (``madvise(MADV_HUGEPAGE)``); where
free huge pages are short (a machine that has run a while), each first write into such an array waits for the
kernel to compact memory. :func:`avoid_hugepage_stalls` turns that request off for the process
(:meth:`qcore.kernel.Kernel.load` calls it). Measured on a 2-core machine: the main job's ``DropnaLabel`` 0.68 →
0.12 s, the train matrix's column view 0.41 → 0.06 s, the whole ``qcore run`` 13.8/11.9 → 11.6/11.1 s, Alpha158
0.73–0.75 → 0.67–0.68 s (best of 8).

:func:`prefault` maps every page of a fresh writable buffer, 8 MiB per system call
(``madvise(MADV_POPULATE_WRITE)``) made without the GIL, so a background thread can prepare a large output while
Python code runs.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import mmap
import os
from typing import Any


def _c_function(name: str, restype: Any, argtypes: list[Any]) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """A function of the C library the process runs on, looked up among the process's own symbols (no library
    search), or None where there is no such function (musl and macOS lack ``malloc_trim``; Windows has no
    process-wide symbol table). ctypes releases the GIL around each call."""
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = restype
    function.argtypes = argtypes
    return function


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``malloc_trim``, or None on a C library without it."""
    return _c_function("malloc_trim", ctypes.c_int, [ctypes.c_size_t])


def return_freed_memory() -> bool:
    """Collect the young garbage, then hand the C heap's free pages back to the system; whether the C library could.

    Only the collector's two young generations are searched (cycles made since objects last survived a full
    pass): after training inside ``qcore run`` a full pass walked ~390,000 tracked objects for 0.21 s and freed
    nothing the process's resident size showed, while ``malloc_trim`` handed back 500 MB.
    """
    gc.collect(1)
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


#: Linux's ``madvise`` advice that faults in a range's pages for writing (5.14 and later).
MADV_POPULATE_WRITE = 23


@functools.cache
def _madvise() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """The C library's ``madvise``, or None without one."""
    return _c_function("madvise", ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])


#: Pages a :func:`prefault` call maps at a time (8 MiB): the kernel holds the process's memory-map lock for each
#: call, and a thread that maps memory meanwhile (a new thread's stack, a large allocation) waits for it.
PREFAULT_CHUNK = 8 << 20


def prefault(buffer: Any) -> str:
    """Fault in every page of a fresh, writable, page-aligned buffer (an anonymous :class:`mmap.mmap`) without
    holding the GIL, so the first writes into it take no page faults; returns how: ``"madvise"``, ``"touch"``
    (one write per page by numpy, which releases the GIL for the loop) or ``"none"`` (an empty buffer).

    Python 3.11's ``mmap.mmap(..., MAP_POPULATE)`` populates while holding the GIL and the process's memory-map
    lock: a 400 MB block mapped on a background thread stopped every other Python thread for 0.12-0.15 s. Here
    the pages are mapped 8 MiB per call (``madvise(MADV_POPULATE_WRITE)`` through ctypes, which releases the
    GIL), so other threads wait at most one chunk. The contents never change (fresh anonymous pages read as 0).
    """
    import numpy as np

    view = np.frombuffer(buffer, dtype=np.uint8)
    if view.size == 0:
        return "none"
    madvise = _madvise()
    start = view.ctypes.data
    if madvise is not None and madvise(start, min(view.size, PREFAULT_CHUNK), MADV_POPULATE_WRITE) == 0:
        for offset in range(PREFAULT_CHUNK, view.size, PREFAULT_CHUNK):
            madvise(start + offset, min(view.size - offset, PREFAULT_CHUNK), MADV_POPULATE_WRITE)
        return "madvise"
    # an older kernel, or not Linux: one write per page, of the zero each page already holds
    view[:: mmap.PAGESIZE] = 0
    return "touch"


#: numpy's own switch for its huge-page requests: when the user set it, their choice stands.
NUMPY_HUGEPAGE_SWITCH = "NUMPY_MADVISE_HUGEPAGE"


def avoid_hugepage_stalls() -> bool:
    """Stop numpy asking for transparent huge pages (see the module docstring), unless the user set
    ``NUMPY_MADVISE_HUGEPAGE`` themselves; whether numpy's setting was changed. Only speed is affected, never a
    value."""
    if NUMPY_HUGEPAGE_SWITCH in os.environ:
        return False
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:  # a numpy without the switch
        return False
    setter(False)
    return True
