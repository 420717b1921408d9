"""Malformed and oversized requests get clear errors and the server keeps serving; SIGTERM mid-stream leaves the
client with a clear error and the server exits cleanly."""

from __future__ import annotations

import json
import os
import signal

import pyarrow.flight as fl
import pytest
from qflight.client import FlightProvider, clean_message
from qflight.requests import Limits, RequestError, parse_ticket

from qcore.errors import DataError

from .conftest import STORE, Served, start_server, stop_server

FIELDS = ["open", "high", "low", "close", "volume", "factor", "vwap", "change", "amount"]


def _options(served: Served) -> fl.FlightCallOptions:
    token = served.alice.read_text().split(":", 1)[1].strip()
    return fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())], timeout=30)


BAD_TICKETS = [
    (b"\xff\xfe not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"kind": "delete"}', "kind: 'delete' is not one of"),
    (b'{"kind": "calendar", "freq": "../day"}', "freq: '../day' is not a name"),
    (b'{"kind": "calendar", "extra": 1}', "unknown key(s) for a calendar request: extra"),
    (b'{"kind": "fields", "fields": ["close"], "instruments": ["../../etc"]}', "without path separators"),
    (b'{"kind": "fields", "fields": ["../close"], "instruments": ["SH600000"]}', "is not a field name"),
    (b'{"kind": "fields", "fields": ["close"], "instruments": ["SH600000"], "start": "2019-13-01"}', "start"),
    (b'{"kind": "fields", "fields": ["close"], "instruments": ["SH600000"], "start": "2019-02-01", '
     b'"end": "2019-01-01"}', "is before start"),
    (json.dumps({"kind": "fields", "fields": ["close"], "instruments": [f"S{i}" for i in range(501)]}).encode(),
     "501 symbols, more than the server's limit of 500"),
    (json.dumps({"kind": "evaluate", "expressions": ["$close" + " + 1" * 2000]}).encode(),
     "longer than the server's limit of 4000 characters"),
    (json.dumps({"kind": "evaluate", "expressions": ["$close"], "feature_set": "alpha158"}).encode(),
     "expressions or a feature_set, not both"),
    (json.dumps({"kind": "evaluate", "feature_set": "alpha158", "instruments": "all"}).encode(),
     "more than the server's limit of 3000000"),
    (json.dumps({"kind": "evaluate", "expressions": ["Mean($close,"]}).encode(), "Mean"),
    (json.dumps({"kind": "evaluate", "expressions": ["$clsoe"]}).encode(), "clsoe"),
    (json.dumps({"kind": "evaluate", "feature_set": "alpha999"}).encode(), "alpha999"),
    (json.dumps({"kind": "instruments", "market": "nosuch"}).encode(), "unknown market 'nosuch'"),
    (b"x" * (2 << 20), "more than the server's limit of 1048576"),
]


def test_malformed_and_oversized_requests_get_errors_and_the_server_keeps_serving(served: Served) -> None:
    client = fl.connect(served.uri)
    options = _options(served)
    for raw, message in BAD_TICKETS:
        with pytest.raises(fl.FlightServerError) as caught:
            client.do_get(fl.Ticket(raw), options).read_all()
            pytest.fail(f"accepted {raw[:80]!r}")
        assert message in clean_message(caught.value), (raw[:80], clean_message(caught.value))
        assert "Traceback" not in str(caught.value)
    with pytest.raises(fl.FlightServerError, match="unknown action 'shutdown'"):
        list(client.do_action(fl.Action("shutdown", b""), options))
    assert served.process.poll() is None
    good = client.do_get(fl.Ticket(b'{"kind":"calendar","freq":"day"}'), options).read_all()
    assert good.num_rows == 320
    remote = FlightProvider(served.uri, token_file=served.alice, cache=False)
    with pytest.raises(DataError, match="answered fields of 501 instruments with an error: invalid request"):
        remote.load(["close"], [f"S{i}" for i in range(501)])
    stats = remote.stats()["alice"]
    assert stats["errors"] >= len(BAD_TICKETS) and stats["calls"] > stats["errors"]


def test_request_limits_are_configurable() -> None:
    limits = Limits(max_instruments=2, max_expressions=1, max_fields=1)
    with pytest.raises(RequestError, match="3 symbols"):
        parse_ticket(b'{"kind":"fields","fields":["close"],"instruments":["A","B","C"]}', limits)
    with pytest.raises(RequestError, match="fields: 2"):
        parse_ticket(b'{"kind":"fields","fields":["close","open"],"instruments":["A"]}', limits)
    with pytest.raises(RequestError, match="expressions: 2"):
        parse_ticket(b'{"kind":"evaluate","expressions":["$close","$open"]}', limits)
    request = parse_ticket(b'{"kind":"fields","fields":["$Close","close"],"instruments":["A","A"]}', Limits())
    assert request.fields == ("close",) and request.instruments == ("A",)


def test_sigterm_mid_stream_gives_the_client_a_clear_error() -> None:
    process, uri = start_server("--store", str(STORE), "--batch-cells", "2000")  # one instrument a batch: 61 batches
    try:
        client = fl.connect(uri)
        symbols = client.do_get(fl.Ticket(b'{"kind":"instruments","market":"all"}')).read_all()
        request = {"kind": "fields", "fields": FIELDS, "instruments": symbols.column("instrument").to_pylist()}
        reader = client.do_get(fl.Ticket(json.dumps(request).encode()))
        reader.read_chunk()
        os.kill(process.pid, signal.SIGTERM)
        received = 1
        with pytest.raises(fl.FlightUnavailableError) as caught:
            while True:
                reader.read_chunk()
                received += 1
        assert received < len(request["instruments"])
        assert clean_message(caught.value).startswith("the data server is shutting down (SIGTERM)")
        process.wait(30)
        assert process.returncode == 0
        log = process.stderr.read()
        assert "error: the data server is shutting down" in log and "client anonymous:" in log and "stopped" in log
        with pytest.raises(DataError, match="is unavailable"):
            FlightProvider(uri, cache=False, timeout=5)
    finally:
        stop_server(process)
