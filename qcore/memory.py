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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``malloc_trim``, or None on a C library without it (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> bool:
    """Collect garbage, then hand the C heap's free pages back to the system; whether the C library could."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


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
