"""The rule every parity test with Qlib's golden values uses, and reading the golden frames."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


def read_golden(name: str, levels: tuple[str, str]) -> pd.DataFrame:
    """Golden frame ``name`` with its index levels named ``levels``, nanosecond dates, sorted."""
    frame = pd.read_parquet(GOLDEN / name)
    frame.index = frame.index.set_names(list(levels))
    frame.index = frame.index.set_levels(frame.index.levels[levels.index("datetime")].astype("datetime64[ns]"),
                                         level="datetime")  # fmt: skip
    return frame.sort_index()


def compare(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """``(NaN/inf position mismatches, finite cells, share of finite cells that agree)`` of ours ``a`` against
    Qlib's ``b``: a finite cell agrees when ``|a - b| <= 1e-4 |b| + 1e-6``; infinities must match in sign."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mismatches = int((~np.isfinite(a) != ~np.isfinite(b)).sum())
    both_inf = np.isinf(a) & np.isinf(b)
    mismatches += int((both_inf & (np.sign(a) != np.sign(b))).sum())
    finite = np.isfinite(a) & np.isfinite(b)
    n = int(finite.sum())
    if n == 0:
        return mismatches, 0, 1.0
    close = np.abs(a[finite] - b[finite]) <= 1e-4 * np.abs(b[finite]) + 1e-6
    return mismatches, n, float(close.mean())


def load_script(path: str | os.PathLike[str], name: str) -> types.ModuleType:
    """Import the generator script at ``path`` (a ``make_golden.py`` next to its golden files) as module ``name``.

    Each golden folder has a script of the same file name, so they are imported under distinct names instead of
    through ``sys.path`` (where the first one imported would shadow the others).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
