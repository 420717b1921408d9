"""Giving freed memory back to the operating system.

Large numpy arrays live in their own memory maps and go back to the system when freed, but the many small and
medium allocations of a C++ library (LightGBM's binned datasets, say) come from the C allocator's heap, which glibc
keeps for reuse: after a model has freed hundreds of MB the process's resident size does not move, and the next
step's peak stacks on top of it. :func:`return_freed_memory` asks glibc to release what is free (``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


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
