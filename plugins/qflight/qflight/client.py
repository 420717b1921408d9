"""``qlib_flight``: a :class:`~qcore.protocols.DataProvider` reading a store that ``qcore serve`` serves.

Raw fields come over Arrow Flight and the expressions are computed here by the kernel's engine (``evaluate="local"``,
the default), or the expressions are sent to the server and only the evaluated frame comes back
(``evaluate="server"``: :meth:`FlightProvider.evaluate_expressions`, which the engine finds through the optional
:class:`~qcore.protocols.ExpressionEvaluator` protocol). Every answer is kept in a local read-through cache under
``$QCORE_CACHE_DIR/flight/`` keyed by the server's data version, so a repeated run downloads nothing; when the
server's store changes, its version changes and the old entries are dropped. Point-in-time period data (``$$eps_q``)
comes over the wire too (:class:`~qcore.protocols.PointInTimeProvider`), so ``P``/``PRef`` evaluate locally as on the
server's store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.flight as fl

from qcore.errors import DataError
from qcore.types import Panel, Span, Universe
from qflight.auth import read_client_token
from qflight.codec import frame_from_table, panel_from_batches, pit_from_table
from qflight.requests import ticket

logger = logging.getLogger(__name__)

#: How long a fetched data version is trusted before it is asked again (seconds).
VERSION_TTL = 1.0


def default_cache_dir() -> Path:
    """``$QCORE_CACHE_DIR/flight``, else ``$XDG_CACHE_HOME/qcore/flight``, else ``~/.cache/qcore/flight``."""
    base = os.environ.get("QCORE_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "flight"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "qcore" / "flight"


def _digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def clean_message(exc: BaseException) -> str:
    """A Flight error's own message, without gRPC's debug context."""
    text = str(exc)
    for marker in (". Detail:", ". gRPC client debug context:", "\n"):
        text = text.split(marker, 1)[0]
    return text.strip()


class FlightProvider:
    """A remote store served by ``qcore serve``.

    :param uri: ``grpc://host:port`` (``grpc+tls://`` for a server with a certificate).
    :param token_file: a file whose first line is this client's token (``user:token`` or ``token``); default
        ``$QCORE_FLIGHT_TOKEN_FILE``; none for a server without tokens.
    :param evaluate: ``"local"`` (fetch raw fields, evaluate here) or ``"server"`` (evaluate on the server).
    :param cache: keep answers in the local read-through cache.
    :param cache_dir: the cache's folder (default :func:`default_cache_dir`).
    :param tls_root_cert: a PEM file of the certificate (or CA) to trust for ``grpc+tls://``.
    :param timeout: seconds one call may take.
    """

    def __init__(
        self,
        uri: str,
        *,
        token_file: str | os.PathLike[str] | None = None,
        evaluate: str = "local",
        cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        tls_root_cert: str | os.PathLike[str] | None = None,
        timeout: float = 600.0,
    ) -> None:
        if evaluate not in ("local", "server"):
            raise DataError(f"evaluate must be 'local' or 'server', not {evaluate!r}")
        if not isinstance(uri, str) or not uri.startswith(("grpc://", "grpc+tcp://", "grpc+tls://")):
            raise DataError(f"the data server's uri is grpc://HOST:PORT or grpc+tls://HOST:PORT, not {uri!r}")
        self.uri = uri
        self.evaluate = evaluate
        self.timeout = float(timeout)
        token_file = token_file or os.environ.get("QCORE_FLIGHT_TOKEN_FILE") or None
        self._token = read_client_token(token_file) if token_file else None
        self._root_cert = None
        if tls_root_cert:
            try:
                self._root_cert = Path(tls_root_cert).expanduser().read_bytes()
            except OSError as exc:
                raise DataError(f"cannot read the certificate: {exc.strerror or exc}",
                                path=str(tls_root_cert)) from None
        self.cache_dir = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / _digest(uri)
        self.use_cache = bool(cache)
        self._client: fl.FlightClient | None = None
        self._lock = threading.Lock()
        self._info: dict[str, Any] = {}
        self._info_at = 0.0
        self._memo: dict[tuple[str, bytes], Any] = {}
        self.info()  # connectivity and token are checked now, not in the middle of a run

    def __repr__(self) -> str:
        return f"FlightProvider({self.uri!r}, evaluate={self.evaluate!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- transport ---------------------------------------------------------------------------------------------

    def _connection(self) -> fl.FlightClient:
        if self._client is None:
            kwargs: dict[str, Any] = {}
            if self._root_cert is not None:
                kwargs["tls_root_certs"] = self._root_cert
            self._client = fl.FlightClient(self.uri, **kwargs)
        return self._client

    def _options(self) -> fl.FlightCallOptions:
        headers = [(b"authorization", b"Bearer " + self._token.encode())] if self._token else []
        return fl.FlightCallOptions(headers=headers, timeout=self.timeout)

    def _error(self, exc: BaseException, what: str) -> DataError:
        message = clean_message(exc)
        if isinstance(exc, fl.FlightUnauthenticatedError):
            hint = "" if self._token else " (no token given: pass token_file or set QCORE_FLIGHT_TOKEN_FILE)"
            return DataError(f"the data server {self.uri} refused the call ({what}): {message}{hint}")
        if isinstance(exc, fl.FlightUnavailableError):
            return DataError(f"the data server {self.uri} is unavailable ({what}): {message}")
        if isinstance(exc, fl.FlightTimedOutError) and "--max-seconds" not in message:  # else the server's own limit
            return DataError(f"the data server {self.uri} did not answer within {self.timeout:g} s ({what})")
        return DataError(f"the data server {self.uri} answered {what} with an error: {message}")

    def _action(self, name: str) -> Any:
        try:
            results = list(self._connection().do_action(fl.Action(name, b""), self._options()))
        except (fl.FlightError, pa.ArrowException, OSError) as exc:
            raise self._error(exc, name) from None
        return json.loads(results[0].body.to_pybytes())

    def _get(self, raw: bytes, what: str) -> pa.Table:
        try:
            reader = self._connection().do_get(fl.Ticket(raw), self._options())
            return reader.read_all()
        except (fl.FlightError, pa.ArrowException, OSError) as exc:
            raise self._error(exc, what) from None

    def _fetch(self, raw: bytes, what: str) -> pa.Table:
        """The answer to ``raw``, from the read-through cache when this data version's answer is there."""
        if not self.use_cache:
            return self._get(raw, what)
        version = self.version
        folder = self.cache_dir / _digest(version)
        path = folder / f"{_digest(raw)}.arrow"
        try:
            with pa.memory_map(str(path)) as source:
                return pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowException):
            pass
        table = self._get(raw, what)
        self._store(folder, path, table)
        return table

    def _store(self, folder: Path, path: Path, table: pa.Table) -> None:
        from qcore.atomic import atomic_path

        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink:
                with pa.ipc.new_file(sink, table.schema) as writer:
                    writer.write_table(table)
            for other in self.cache_dir.iterdir():  # entries of older data versions are never read again
                if other != folder and other.is_dir() and not other.is_symlink() and len(other.name) == 32:
                    shutil.rmtree(other, ignore_errors=True)
        except (OSError, pa.ArrowException) as exc:
            logger.warning("flight cache %s not written: %s", self.cache_dir, exc)

    def _memoised(self, raw: bytes, what: str, build: Any) -> Any:
        key = (self.version, raw)
        if key not in self._memo:
            self._memo = {k: v for k, v in self._memo.items() if k[0] == key[0]}
            self._memo[key] = build(self._fetch(raw, what))
        return self._memo[key]

    # -- what the server says about itself ---------------------------------------------------------------------

    def info(self, refresh: bool = False) -> dict[str, Any]:
        """The server's ``info``: store name, data version, frequencies, fields, markets, limits, our user."""
        lock = self._lock
        with lock:
            if refresh or not self._info or time.monotonic() - self._info_at > VERSION_TTL:
                self._info = self._action("info")
                self._info_at = time.monotonic()
            return self._info

    def stats(self) -> dict[str, Any]:
        """The server's per-client totals (calls, errors, bytes, seconds)."""
        return self._action("stats")

    @property
    def version(self) -> str:
        """The server's data version (asked again after :data:`VERSION_TTL` seconds)."""
        return str(self.info()["version"])

    # -- DataProvider ------------------------------------------------------------------------------------------

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        """Every trading timestamp of ``freq``, ascending."""

        def build(table: pa.Table) -> pd.DatetimeIndex:
            return pd.DatetimeIndex(table.column("datetime").to_numpy())

        return self._memoised(ticket(kind="calendar", freq=freq), f"calendar {freq}", build)

    def markets(self) -> list[str]:
        """Names of the universes the server's store holds."""
        return list(self.info()["markets"])

    def universe(self, market: str = "all") -> Universe:
        """The instruments of ``market`` with their membership spans."""

        def build(table: pa.Table) -> dict[str, tuple[Span, ...]]:
            out: dict[str, list[Span]] = {}
            symbols = table.column("instrument").to_pylist()
            starts = pd.DatetimeIndex(table.column("start").to_numpy())
            ends = pd.DatetimeIndex(table.column("end").to_numpy())
            for symbol, lo, hi in zip(symbols, starts, ends, strict=True):
                out.setdefault(symbol, []).append(Span(lo, hi))
            return {s: tuple(spans) for s, spans in out.items()}

        return dict(self._memoised(ticket(kind="instruments", market=str(market).strip().lower()),
                                   f"instruments {market}", build))  # fmt: skip

    def fields(self, freq: str = "day") -> list[str]:
        """Names of the stored fields of ``freq``."""
        fields = self.info()["fields"]
        if freq not in fields:
            raise DataError(f"the data server {self.uri} has no {freq} bars (frequencies: "
                            f"{', '.join(fields) or 'none'})")  # fmt: skip
        return list(fields[freq])

    def load(
        self,
        fields: Sequence[str],
        instruments: Sequence[str],
        start: object = None,
        end: object = None,
        freq: str = "day",
    ) -> Panel:
        """Raw fields of ``instruments`` between ``start`` and ``end``, as the server's store reads them."""
        from qcore.dates import parse_optional_date

        raw = ticket(kind="fields", fields=list(fields), instruments=[str(s) for s in instruments],
                     start=parse_optional_date(start, "start"), end=parse_optional_date(end, "end"), freq=freq)
        table = self._fetch(raw, f"fields of {len(instruments)} instruments")
        try:
            return panel_from_batches(table.schema, table.to_batches())
        except ValueError as exc:
            raise DataError(f"the data server {self.uri} sent a malformed answer: {exc}") from None

    # -- point-in-time period data (qcore.protocols.PointInTimeProvider) -----------------------------------------

    def pit_fields(self) -> list[str]:
        """Names of the server's stored period fields (``eps_q``, ``roe_a``...), lower case; none when its store has
        no point-in-time data."""
        return list(self.info().get("pit_fields", ()))

    def load_pit(self, field: str, instruments: Sequence[str]) -> dict[str, np.ndarray]:
        """Every record of period field ``field`` for each of ``instruments`` that has any, in publication order,
        as the server's store reads them (a :data:`~qcore.protocols.PIT_RECORD` array per instrument)."""
        name = str(field).strip().lower().removeprefix("$$")
        raw = ticket(kind="pit", field=name, instruments=[str(s) for s in instruments])
        table = self._fetch(raw, f"period field {name} of {len(instruments)} instruments")
        try:
            return pit_from_table(table)
        except (ValueError, KeyError) as exc:
            raise DataError(f"the data server {self.uri} sent a malformed answer: {exc}") from None

    # -- server-side evaluation (qcore.protocols.ExpressionEvaluator) ------------------------------------------

    def evaluate_expressions(
        self,
        expressions: Mapping[str, str],
        instruments: str | Sequence[str],
        start: object,
        end: object,
        *,
        freq: str = "day",
        missing_fields: str = "error",
        index: str = "datetime",
    ) -> pd.DataFrame | None:
        """The engine's frame for ``expressions`` computed on the server, or None when this provider evaluates
        locally (``evaluate="local"``) or ``instruments`` is not a market name or a list of symbols."""
        if self.evaluate != "server":
            return None
        if not isinstance(instruments, str) and not all(isinstance(s, str) for s in instruments):
            return None
        return self._evaluate(dict(expressions), None, True, instruments, start, end, freq, missing_fields, index)

    def evaluate_feature_set(
        self,
        name: str,
        instruments: str | Sequence[str] = "all",
        start: object = None,
        end: object = None,
        *,
        label: bool = True,
        freq: str = "day",
        index: str = "datetime",
    ) -> pd.DataFrame:
        """A feature set registered on the server (``alpha158``...), computed there (missing fields read as NaN)."""
        return self._evaluate(None, name, label, instruments, start, end, freq, "nan", index)

    def _evaluate(self, expressions: dict[str, str] | None, feature_set: str | None, label: bool,
                  instruments: str | Sequence[str], start: object, end: object, freq: str, missing_fields: str,
                  index: str) -> pd.DataFrame:  # fmt: skip
        from qcore.dates import parse_optional_date

        pairs = None if expressions is None else [[name, text] for name, text in expressions.items()]  # in order
        raw = ticket(kind="evaluate", expressions=pairs, feature_set=feature_set, label=label,
                     instruments=instruments if isinstance(instruments, str) else [str(s) for s in instruments],
                     start=parse_optional_date(start, "start"), end=parse_optional_date(end, "end"), freq=freq,
                     missing_fields=missing_fields, index=index)  # fmt: skip
        what = f"feature set {feature_set}" if feature_set else f"{len(expressions or ())} expressions"
        table = self._fetch(raw, what)
        try:
            return frame_from_table(table)
        except (ValueError, KeyError) as exc:
            raise DataError(f"the data server {self.uri} sent a malformed answer: {exc}") from None
