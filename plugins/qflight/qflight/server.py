"""The Arrow Flight data server: one store, read-only, streamed as record batches.

Calls: ``do_get`` with a JSON ticket (:mod:`qflight.requests`), ``do_action("info")`` (what it serves and its data
version), ``do_action("stats")`` (per-client calls, bytes and seconds) and ``list_flights`` (the calendars and
markets as tickets). Server-side evaluation runs in a pool of worker processes (:mod:`qflight.workers`), each request
bounded in wall-clock time: past the limit its worker is killed and replaced. There is no ``do_put``/``do_exchange``:
nothing can write. Every call is logged with its client, bytes and time; a request the server refuses, or one that
fails, is a Flight error with a one-line message, and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.flight as fl

from qcore.errors import QcoreError
from qflight.codec import PIT_SCHEMA, fields_schema, frame_table, panel_batch, pit_table, table_batches
from qflight.requests import (
    CalendarRequest,
    EvaluateRequest,
    FieldsRequest,
    InstrumentsRequest,
    Limits,
    PitRequest,
    Request,
    RequestError,
    check_cells,
    parse_ticket,
    ticket,
)

logger = logging.getLogger("qflight.server")

#: The message a client reads when the server stops under it.
SHUTTING_DOWN = "the data server is shutting down (SIGTERM): the answer was cut short; retry against a running server"


@attrs.define
class ClientStats:
    """What one client (its token's user, or ``anonymous``) asked for so far."""

    calls: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0


def flight_error(exc: BaseException) -> fl.FlightError:
    """The Flight error a client gets for ``exc``: its message for a refused request or a data error, a generic one
    (the traceback goes to the server log only) for a bug."""
    if isinstance(exc, fl.FlightError):
        return exc
    if isinstance(exc, RequestError):
        return fl.FlightServerError(f"invalid request: {exc}")
    from qflight.workers import TimeLimitError

    if isinstance(exc, TimeLimitError):
        return fl.FlightTimedOutError(str(exc))
    if isinstance(exc, QcoreError):
        return fl.FlightServerError(str(exc))
    logger.error("internal error", exc_info=exc)
    return fl.FlightInternalError(f"internal server error ({type(exc).__name__}); see the server log")


class DataServer(fl.FlightServerBase):
    """Serves ``provider`` read-only at ``location`` (``grpc://127.0.0.1:0`` picks a free port: see :attr:`port`).

    :param provider: the store (a :class:`~qcore.protocols.DataProvider`).
    :param operators: operator name → operator, for server-side evaluation.
    :param feature_sets: a callable ``name -> FeatureSet`` (``kernel.create`` bound to ``feature_set``).
    :param middleware: Flight server middleware (``{"auth": BearerAuthFactory(...)}``), or None for no auth.
    :param tls: ``(certificate PEM, key PEM)`` to serve over TLS.
    :param limits: bounds on each request.
    :param batch_cells: about how many cells (rows × columns) one streamed batch holds.
    :param expr_cache: the engine's :class:`~qcore.expr.cache.ExpressionCache` for server-side evaluation.
    :param name: what ``info`` calls the store.
    :param pool: a :class:`~qflight.workers.EvaluationPool` that evaluates expressions in worker processes within
        its time limit (the server closes it when it stops); None evaluates in the server's own threads, unbounded
        in time.
    """

    def __init__(
        self,
        provider: Any,
        operators: Mapping[str, Any],
        feature_sets: Any,
        location: str,
        *,
        middleware: Mapping[str, fl.ServerMiddlewareFactory] | None = None,
        tls: tuple[bytes, bytes] | None = None,
        limits: Limits | None = None,
        batch_cells: int = 1 << 20,
        expr_cache: Any = None,
        name: str = "store",
        pool: Any = None,
    ) -> None:
        certificates = [fl.CertKeyPair(cert=tls[0], key=tls[1])] if tls else None
        super().__init__(location, tls_certificates=certificates, middleware=dict(middleware or {}))
        self.provider = provider
        self.operators = dict(operators)
        self.feature_sets = feature_sets
        self.limits = limits or Limits()
        self.batch_cells = max(1, int(batch_cells))
        self.expr_cache = expr_cache
        self.name = name
        self.pool = pool
        self.stopping = threading.Event()
        self.stats: dict[str, ClientStats] = {}
        self._lock = threading.Lock()
        self._version: tuple[float, str] | None = None
        self._pit_fields: tuple[str, list[str]] | None = None

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def data_version(self) -> str:
        """The store's version token, computed at most once a second (it scans the store's files)."""
        now = time.monotonic()
        with self._lock:
            if self._version is not None and now - self._version[0] < 1.0:
                return self._version[1]
        version = self.provider.version
        with self._lock:
            self._version = (now, version)
        return version

    @staticmethod
    def _who(context: fl.ServerCallContext) -> tuple[str, str]:
        middleware = context.get_middleware("auth")
        user = getattr(middleware, "user", None) or "anonymous"
        peer = context.peer()
        return user, peer.decode() if isinstance(peer, bytes) else str(peer)

    def _record(self, user: str, peer: str, what: str, sent: int, started: float, error: str | None) -> None:
        seconds = time.perf_counter() - started
        with self._lock:
            stats = self.stats.setdefault(user, ClientStats())
            stats.calls += 1
            stats.errors += error is not None
            stats.bytes += sent
            stats.seconds += seconds
        rate = f" {sent / seconds / 1e6:.1f} MB/s" if sent and seconds > 0 else ""
        outcome = "ok" if error is None else f"error: {error}"
        logger.info("%s %s %s: %d bytes in %.3f s%s, %s", user, peer, what, sent, seconds, rate, outcome)

    def stats_report(self) -> dict[str, dict[str, float]]:
        """Per-client totals: calls, errors, bytes, seconds."""
        with self._lock:
            return {user: attrs.asdict(stats) for user, stats in sorted(self.stats.items())}

    def pit_fields(self) -> list[str]:
        """The store's point-in-time period fields (none when its provider has no period data), listed once per
        data version."""
        from qcore.protocols import PointInTimeProvider

        if not isinstance(self.provider, PointInTimeProvider):
            return []
        version = self.data_version()
        with self._lock:
            if self._pit_fields is not None and self._pit_fields[0] == version:
                return list(self._pit_fields[1])
        names = sorted(str(f).lower() for f in self.provider.pit_fields())
        with self._lock:
            self._pit_fields = (version, names)
        return list(names)

    def _freqs(self) -> list[str]:
        freqs = getattr(self.provider, "freqs", None)
        return list(freqs()) if callable(freqs) else ["day"]

    def info(self) -> dict[str, Any]:
        """What the server serves: store name, data version, frequencies, fields, period fields, markets, limits
        (``max_seconds``: the wall-clock limit of one evaluation, None when unbounded)."""
        freqs = self._freqs()
        limits = {**attrs.asdict(self.limits), "max_seconds": self.pool.max_seconds if self.pool else None}
        return {
            "name": self.name, "version": self.data_version(), "read_only": True, "freqs": freqs,
            "fields": {freq: list(self.provider.fields(freq)) for freq in freqs}, "pit_fields": self.pit_fields(),
            "markets": list(self.provider.markets()), "limits": limits,
        }  # fmt: skip

    # -- Flight calls ------------------------------------------------------------------------------------------

    def list_flights(self, context: fl.ServerCallContext, criteria: bytes) -> Iterator[fl.FlightInfo]:
        """Each calendar and market, as a ticket a client can ``do_get``."""
        user, peer = self._who(context)
        started = time.perf_counter()
        try:
            listing = [(CalendarRequest(f), ticket(kind="calendar", freq=f)) for f in self._freqs()]
            listing += [(InstrumentsRequest(m), ticket(kind="instruments", market=m)) for m in self.provider.markets()]
        except Exception as exc:
            self._record(user, peer, "list", 0, started, str(exc))
            raise flight_error(exc) from None
        self._record(user, peer, "list", 0, started, None)
        for request, raw in listing:
            schema = _CALENDAR_SCHEMA if isinstance(request, CalendarRequest) else _INSTRUMENTS_SCHEMA
            descriptor = fl.FlightDescriptor.for_command(raw)
            yield fl.FlightInfo(schema, descriptor, [fl.FlightEndpoint(raw, [])], -1, -1)

    def list_actions(self, context: fl.ServerCallContext) -> list[tuple[str, str]]:
        """The read-only actions."""
        return [("info", "store name, data version, frequencies, fields, markets and request limits (JSON)"),
                ("stats", "per-client calls, errors, bytes and seconds since the server started (JSON)")]

    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> Iterator[bytes]:
        """``info`` or ``stats`` as one JSON result."""
        user, peer = self._who(context)
        started = time.perf_counter()
        kind = action.type
        try:
            if self.stopping.is_set():
                raise fl.FlightUnavailableError(SHUTTING_DOWN)
            if kind == "info":
                body = {**self.info(), "user": user}
            elif kind == "stats":
                body = self.stats_report()
            else:
                raise RequestError(f"unknown action {kind!r} (actions: info, stats)")
            payload = json.dumps(body).encode()
        except Exception as exc:
            self._record(user, peer, f"action {kind}", 0, started, str(exc))
            raise flight_error(exc) from None
        self._record(user, peer, f"action {kind}", len(payload), started, None)
        return iter([payload])

    def do_get(self, context: fl.ServerCallContext, flight_ticket: fl.Ticket) -> fl.FlightDataStream:
        """The answer to a JSON ticket, streamed."""
        user, peer = self._who(context)
        started = time.perf_counter()
        what = "get"
        try:
            if self.stopping.is_set():
                raise fl.FlightUnavailableError(SHUTTING_DOWN)
            request = parse_ticket(flight_ticket.ticket, self.limits)
            what = _describe(request)
            schema, batches = self._answer(request, context)
        except Exception as exc:
            self._record(user, peer, what, 0, started, str(exc))
            raise flight_error(exc) from None
        return fl.GeneratorStream(schema, self._metered(batches, user, peer, what, started))

    def _metered(self, batches: Iterator[pa.RecordBatch], user: str, peer: str, what: str,
                 started: float) -> Iterator[pa.RecordBatch]:  # fmt: skip
        """Stream ``batches``, counting bytes, and cut the stream when the server is stopping."""
        sent = 0
        error: str | None = "cancelled by the client"
        try:
            for batch in batches:
                if self.stopping.is_set():
                    raise fl.FlightUnavailableError(SHUTTING_DOWN)
                sent += batch.nbytes
                yield batch
            error = None
        except GeneratorExit:
            raise
        except Exception as exc:
            error = str(exc)
            raise flight_error(exc) from None
        finally:
            self._record(user, peer, what, sent, started, error)

    def do_put(self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor, reader: Any,
               writer: Any) -> None:  # fmt: skip
        """Refused: the server is read-only."""
        user, peer = self._who(context)
        self._record(user, peer, "put", 0, time.perf_counter(), "refused: read-only")
        raise fl.FlightServerError("the data server is read-only: nothing can be written (do_put)")

    def do_exchange(self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor, reader: Any,
                    writer: Any) -> None:  # fmt: skip
        """Refused: the server takes no uploads."""
        user, peer = self._who(context)
        self._record(user, peer, "exchange", 0, time.perf_counter(), "refused: read-only")
        raise fl.FlightServerError("the data server is read-only: it takes no uploads (do_exchange)")

    # -- answers -----------------------------------------------------------------------------------------------

    def _answer(self, request: Request, context: fl.ServerCallContext | None = None
                ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:  # fmt: skip
        if isinstance(request, CalendarRequest):
            dates = self.provider.calendar(request.freq)
            table = pa.table({"datetime": pa.array(dates.values.astype("datetime64[ns]"))})
            return table.schema, iter(table.to_batches())
        if isinstance(request, InstrumentsRequest):
            universe = self.provider.universe(request.market)
            rows = [(s, span.start, span.end) for s, spans in universe.items() for span in spans]
            table = pa.table({
                "instrument": pa.array([r[0] for r in rows], pa.string()),
                "start": pa.array([r[1].to_datetime64() for r in rows], pa.timestamp("ns")),
                "end": pa.array([r[2].to_datetime64() for r in rows], pa.timestamp("ns")),
            }, schema=_INSTRUMENTS_SCHEMA)  # fmt: skip
            return table.schema, iter(table.to_batches())
        if isinstance(request, FieldsRequest):
            return self._fields(request)
        if isinstance(request, PitRequest):
            return self._pit(request)
        return self._evaluate(request, context)

    def _fields(self, request: FieldsRequest) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        p = self.provider
        probe = p.load([], list(request.instruments), request.start, request.end, request.freq)  # dates, symbols
        dates, symbols = probe.dates, list(probe.instruments)
        check_cells(len(dates), len(symbols), len(request.fields), self.limits)
        schema = fields_schema(request.fields, dates, symbols)
        width = max(1, self.batch_cells // max(1, len(dates) * len(request.fields)))

        def batches() -> Iterator[pa.RecordBatch]:
            for lo in range(0, len(symbols), width):
                block = p.load(list(request.fields), symbols[lo : lo + width], request.start, request.end,
                               request.freq)  # fmt: skip
                if not block.dates.equals(dates):
                    raise QcoreErrorChanged()
                yield panel_batch(schema, block, request.fields)

        return schema, batches()

    def _pit(self, request: PitRequest) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        from qcore.protocols import PointInTimeProvider

        if not isinstance(self.provider, PointInTimeProvider) or request.field not in self.pit_fields():
            stored = self.pit_fields()
            raise RequestError(f"unknown period field {request.field!r} (this store has "
                               f"{', '.join(stored) if stored else 'no point-in-time period data'})")  # fmt: skip
        table = pit_table(self.provider.load_pit(request.field, list(request.instruments)))
        rows = max(1, self.batch_cells // len(PIT_SCHEMA))
        return table.schema, table_batches(table, rows)

    def _evaluate(self, request: EvaluateRequest, context: fl.ServerCallContext | None = None
                  ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:  # fmt: skip
        expressions = dict(request.expressions)
        if request.feature_set is not None:
            definition = self.feature_sets(request.feature_set)
            expressions = dict(definition.features)
            if request.label:
                expressions.update(definition.labels)
        if len(expressions) > self.limits.max_expressions:
            raise RequestError(f"{len(expressions)} expressions, more than the server's limit of "
                               f"{self.limits.max_expressions}")  # fmt: skip
        calendar = self.provider.calendar(request.freq)
        lo = 0 if request.start is None else int(np.searchsorted(calendar.values, request.start.to_datetime64()))
        hi = len(calendar) if request.end is None else int(
            np.searchsorted(calendar.values, request.end.to_datetime64(), side="right"))
        if isinstance(request.instruments, str):
            count = len(self.provider.universe(request.instruments))
        else:
            count = len(request.instruments)
        check_cells(max(0, hi - lo), count, len(expressions), self.limits)
        if self.pool is not None:
            table = self._evaluate_in_worker(request, expressions, context)
        else:
            table = self._evaluate_here(request, expressions)
        rows = max(1, self.batch_cells // max(1, table.num_columns))
        return table.schema, table_batches(table, rows)

    def _evaluate_in_worker(self, request: EvaluateRequest, expressions: dict[str, str],
                            context: fl.ServerCallContext | None) -> pa.Table:  # fmt: skip
        from qflight.workers import EvaluateTask, RequestCancelled

        task = EvaluateTask(expressions, request.instruments, request.start, request.end, request.freq,
                            request.missing_fields, request.index)  # fmt: skip

        def cancelled() -> bool:
            return self.stopping.is_set() or (context is not None and context.is_cancelled())

        try:
            return self.pool.evaluate(task, cancelled)
        except RequestCancelled:
            if self.stopping.is_set():
                raise fl.FlightUnavailableError(SHUTTING_DOWN) from None
            raise

    def _evaluate_here(self, request: EvaluateRequest, expressions: dict[str, str]) -> pa.Table:
        from qcore.expr.engine import ExpressionEngine

        engine = ExpressionEngine(self.provider, self.operators, freq=request.freq, cache=self.expr_cache,
                                  missing_fields=request.missing_fields)  # fmt: skip
        instruments = request.instruments if isinstance(request.instruments, str) else list(request.instruments)
        frame = engine.evaluate(expressions, instruments, request.start, request.end, index=request.index)
        return frame_table(frame)


class QcoreErrorChanged(QcoreError):
    """The store changed while an answer was streamed (its calendar moved)."""

    def __init__(self) -> None:
        super().__init__("the store changed while the answer was streamed; ask again")


_CALENDAR_SCHEMA = pa.schema([("datetime", pa.timestamp("ns"))])
_INSTRUMENTS_SCHEMA = pa.schema([("instrument", pa.string()), ("start", pa.timestamp("ns")),
                                 ("end", pa.timestamp("ns"))])  # fmt: skip


def _describe(request: Request) -> str:
    """A short log label of a request."""
    if isinstance(request, CalendarRequest):
        return f"calendar {request.freq}"
    if isinstance(request, InstrumentsRequest):
        return f"instruments {request.market}"
    if isinstance(request, FieldsRequest):
        return f"fields {len(request.fields)} x {len(request.instruments)} instruments ({request.freq})"
    if isinstance(request, PitRequest):
        return f"pit {request.field} of {len(request.instruments)} instruments"
    what = f"feature set {request.feature_set}" if request.feature_set else f"{len(request.expressions)} expressions"
    universe = request.instruments if isinstance(request.instruments, str) else f"{len(request.instruments)} symbols"
    return f"evaluate {what} on {universe} ({request.freq})"


def serve_until_signalled(server: DataServer, grace: float = 10.0) -> bool:
    """Serve until SIGTERM or SIGINT, then stop: new calls and open streams get :data:`SHUTTING_DOWN`, open calls
    have ``grace`` seconds to end. Returns whether every call ended in time. Call from the main thread."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    logger.info("signal received: stopping (open streams are cut, %.0f s for open calls)", grace)
    server.stopping.set()
    if server.pool is not None:
        server.pool.close()  # running evaluations end now (their calls get SHUTTING_DOWN), idle workers leave
    closer = threading.Thread(target=server.shutdown, name="qflight-shutdown", daemon=True)
    closer.start()
    closer.join(grace)
    for user, stats in server.stats_report().items():
        logger.info("client %s: %d calls, %d errors, %d bytes, %.3f s", user, int(stats["calls"]),
                    int(stats["errors"]), int(stats["bytes"]), stats["seconds"])  # fmt: skip
    return not closer.is_alive()

