"""Point-in-time period data over the wire: the client provider implements ``PointInTimeProvider`` through the
``pit`` ticket, and ``P``/``PRef`` evaluated against a remote store (locally or on the server) equal the local ones
bit for bit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.flight as fl
import pytest
from qflight.client import FlightProvider, clean_message
from qflight.codec import pit_from_table, pit_table

import qcore
from qcore.errors import DataError, ExpressionError
from qcore.protocols import PIT_RECORD, PointInTimeProvider

from .conftest import Served, start_server, stop_server

PIT_STORE = Path(__file__).resolve().parents[1] / "data" / "pit" / "store"
EXPRESSIONS = {
    "eps": "P($$eps_q)",
    "eps_2019q1": "PRef($$eps_q, 201901)",
    "roe_change": "P($$roe_q - Ref($$roe_q, 1))",
    "roe_mean": "P(Mean($$roe_q, 4))",
    "bps_per_close": "P($$bps_a) / $close",
    "bps_2018": "PRef($$bps_a, 2018)",
    "bps_2019": "PRef($$bps_a, 2019)",
}


@pytest.fixture(scope="module")
def pit_uri() -> Iterator[str]:
    process, uri = start_server("--store", str(PIT_STORE), "--max-instruments", "50")
    try:
        yield uri
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def local() -> tuple[object, object]:
    kernel = qcore.load_kernel(strict=False)
    return kernel, qcore.open_provider("qlib_bin", provider_uri=str(PIT_STORE), kernel=kernel)


def bits(frame: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float32)).view(np.uint32)


def test_period_records_equal_local(pit_uri: str, local: tuple[object, object], cache_dir: Path) -> None:
    _, store = local
    remote = FlightProvider(pit_uri)
    assert isinstance(remote, PointInTimeProvider)
    assert remote.pit_fields() == store.pit_fields() == ["bps_a", "eps_q", "roe_q"]
    symbols = [*sorted(store.universe("all")), "NOSUCH"]
    for field in store.pit_fields():
        mine, theirs = remote.load_pit(field, symbols), store.load_pit(field, symbols)
        assert list(mine) == list(theirs) and theirs  # the same instruments, in the same order, some with records
        for symbol, records in theirs.items():
            assert mine[symbol].dtype == PIT_RECORD
            assert mine[symbol].tobytes() == records.tobytes(), (field, symbol)  # order, revisions, value bits
    assert remote.load_pit("$$EPS_Q", symbols[:1]).keys() == store.load_pit("eps_q", symbols[:1]).keys()
    assert remote.load_pit("eps_q", ["NOSUCH"]) == {}
    assert list(cache_dir.glob("flight/*/*/*.arrow"))  # kept in the read-through cache like every answer


@pytest.mark.parametrize("evaluate", ["local", "server"])
def test_remote_pit_expressions_equal_local(pit_uri: str, local: tuple[object, object], evaluate: str) -> None:
    kernel, store = local
    expected = qcore.evaluate(EXPRESSIONS, store, instruments="all", kernel=kernel)
    remote = FlightProvider(pit_uri, cache=False, evaluate=evaluate)
    frame = qcore.evaluate(EXPRESSIONS, remote, instruments="all", kernel=kernel)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert np.array_equal(bits(frame), bits(expected))
    assert all(expected[c].notna().sum() > 50 for c in EXPRESSIONS)  # the comparison is not over NaN alone


def test_the_pit_ticket_is_validated(pit_uri: str, served: Served) -> None:
    client = fl.connect(pit_uri)
    bad = [
        ({"kind": "pit", "field": "../eps_q", "instruments": ["SH600572"]}, "is not a period field name"),
        ({"kind": "pit", "field": "close", "instruments": ["SH600572"]}, "ending in _q or _a"),
        ({"kind": "pit", "field": "eps_x_q", "instruments": ["SH600572"]},
         "unknown period field 'eps_x_q' (this store has bps_a, eps_q, roe_q)"),
        ({"kind": "pit", "field": "eps_q", "instruments": ["../SH600572"]}, "without path separators"),
        ({"kind": "pit", "field": "eps_q", "instruments": [f"S{i}" for i in range(51)]}, "limit of 50"),
        ({"kind": "pit", "field": "eps_q", "instruments": ["SH600572"], "period": 1}, "unknown key(s)"),
    ]
    for request, message in bad:
        with pytest.raises(fl.FlightServerError) as caught:
            client.do_get(fl.Ticket(json.dumps(request).encode())).read_all()
        assert message in clean_message(caught.value), (request, clean_message(caught.value))
    assert client.do_get(fl.Ticket(b'{"kind":"calendar"}')).read_all().num_rows > 0  # still serving
    # a store without period data: no fields, and P(...) is refused before any work
    remote = FlightProvider(served.uri, token_file=served.alice, cache=False)
    assert remote.pit_fields() == []
    with pytest.raises(DataError, match="no point-in-time period data"):
        remote.load_pit("eps_q", ["SH600000"])
    with pytest.raises(ExpressionError, match="the store has no period field"):
        qcore.evaluate({"e": "P($$eps_q)"}, remote, instruments=["SH600000"], kernel=qcore.load_kernel(strict=False))


def test_pit_codec_round_trip_keeps_order_and_bits() -> None:
    a = np.array([(20190301, 201804, 1.0), (20190429, 201901, np.float64("nan")), (20190513, 201901, -0.0)],
                 dtype=PIT_RECORD)  # fmt: skip
    b = np.array([(20190102, 2018, 3.5)], dtype=PIT_RECORD)
    back = pit_from_table(pit_table({"SZ000002": a, "EMPTY": a[:0], "SH600000": b}))
    assert list(back) == ["SZ000002", "SH600000"]
    assert back["SZ000002"].tobytes() == a.tobytes() and back["SH600000"].tobytes() == b.tobytes()
    assert pit_from_table(pit_table({})) == {}
