"""The vectorised position status and the batched IC against plain per-date references on a random book."""

from __future__ import annotations

import numpy as np
import pandas as pd
from qanalysis.portfolio import position_status
from qanalysis.signal import calc_ic, calc_ic_columns, ic_decay

DATE, INSTRUMENT = "datetime", "instrument"


def status_by_date(positions: pd.DataFrame) -> pd.DataFrame:
    """Qlib's parse_position, date by date: bought (1), held (0), sold the next date with the old weight (-1)."""
    weights = positions["weight"].astype(float)
    rows, previous = [], None
    for date in weights.index.get_level_values(DATE).unique().sort_values():
        today = weights.xs(date, level=DATE)
        for name, weight in today.items():
            rows.append((date, name, weight, 0 if previous is not None and name in previous.index else 1))
        if previous is not None:
            rows += [(date, name, weight, -1) for name, weight in previous.items() if name not in today.index]
        previous = today
    return pd.DataFrame(rows, columns=[DATE, INSTRUMENT, "weight", "status"]).set_index([DATE, INSTRUMENT]).sort_index()


def random_book(days: int = 60, names: int = 40, held: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=days)
    book = set(rng.choice(names, held, replace=False).tolist())
    rows = []
    for i, date in enumerate(dates):
        if i % 7 == 3:
            book = set()  # an empty day: everything sold, then bought again
        else:
            out = set(rng.choice(sorted(book), min(2, len(book)), replace=False).tolist()) if book else set()
            book = (book - out) | set(rng.choice(sorted(set(range(names)) - book), 2, replace=False).tolist())
        rows += [(date, f"S{n:02d}", float(rng.random())) for n in sorted(book)]
    return pd.DataFrame(rows, columns=[DATE, INSTRUMENT, "weight"]).set_index([DATE, INSTRUMENT])


def test_position_status_equals_the_date_by_date_reading() -> None:
    for seed in range(3):
        book = random_book(seed=seed)
        pd.testing.assert_frame_equal(position_status(book), status_by_date(book), check_index_type=False)
    assert position_status(random_book().iloc[:0]).empty


def test_ic_of_many_labels_equals_one_label_at_a_time() -> None:
    rng = np.random.default_rng(1)
    index = pd.MultiIndex.from_product([pd.bdate_range("2021-01-04", periods=30), [f"S{i}" for i in range(25)]],
                                       names=[DATE, INSTRUMENT])
    pred = pd.Series(rng.standard_normal(len(index)), index=index).iloc[7:]
    pred.iloc[::11] = np.nan
    pred.iloc[:25] = 0.25  # a constant day, then ties
    labels = pd.DataFrame({str(h): rng.standard_normal(len(index)) for h in (1, 2, 3)}, index=index)
    labels.iloc[-50:, 2] = np.nan
    labels.iloc[::5, 1] = np.nan
    labels.iloc[30:40, 0] = 1.0
    batched = calc_ic_columns(pred, labels)
    for column in labels:
        pd.testing.assert_frame_equal(batched[column], calc_ic(pred, labels[column]), check_exact=True)
    assert list(ic_decay(pred, labels).index) == [1, 2, 3]
