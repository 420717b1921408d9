"""``grouped_average_rank`` equals pandas' ``groupby(...).rank(method="average")`` bit for bit: ties, NaN, constant
and all-NaN columns, one-row groups, rows grouped together or scattered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qanalysis.signal import grouped_average_rank


@pytest.mark.parametrize("seed", range(40))
def test_equals_pandas_grouped_average_rank(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 2000)), int(rng.integers(1, 4))
    groups = max(1, n // int(rng.integers(1, 60)))
    codes = np.sort(rng.integers(0, groups, n)) if seed % 2 else rng.integers(0, groups, n)
    values = rng.integers(0, 4, (n, k)).astype(float) if seed % 3 == 0 else rng.normal(size=(n, k))
    values[rng.random((n, k)) < 0.25] = np.nan
    if seed % 5 == 0:
        values[:, 0] = 2.5
    if seed % 7 == 0:
        values[:, -1] = np.nan
    expected = pd.DataFrame(values).groupby(codes).rank(method="average").to_numpy(float)
    got = grouped_average_rank(values, codes)
    np.testing.assert_array_equal(got, expected)  # NaN in the same places, every rank the same float
    np.testing.assert_array_equal(grouped_average_rank(values[:, 0], codes), expected[:, 0])


def test_empty_input() -> None:
    assert grouped_average_rank(np.empty((0, 2)), np.empty(0, dtype=int)).shape == (0, 2)
