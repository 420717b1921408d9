"""Keep BLAS on one thread around many small matrix operations.

Risk models and optimisers work on matrices of a few hundred rows, thousands of times; a multi-threaded BLAS then
spends more time synchronising than computing (eight times slower on a busy two-core machine). ``threadpoolctl``
limits the BLAS pool for a block when it is installed; without it the block runs as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def single_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
