"""Fixtures of the portfolio tests: a kernel, a small synthetic store, and an in-memory store with industries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qcore.kernel import Kernel
from qcore.types import Panel, Span


@pytest.fixture(scope="session")
def pkernel() -> Kernel:
    """One kernel with every installed plugin, shared by the portfolio tests (they do not change it)."""
    return Kernel.load(use_env=False)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic A-share store: 40 stocks (csi300-like members, an index SH000300, an st market) × 420 days."""
    from qdata_cn.synth import synthesize

    out = tmp_path_factory.mktemp("qportfolio") / "synth"
    synthesize(out, instruments=40, days=420, seed=3, start="2020-01-02")
    return out


class MemoryStore:
    """A :class:`~qcore.protocols.DataProvider` over in-memory frames (dates × instruments), for exact tests.

    :param fields: field name → frame (index dates, columns instruments).
    :param markets: market name → members (every member over the whole calendar); ``all`` is added.
    """

    def __init__(self, fields: Mapping[str, pd.DataFrame], markets: Mapping[str, Sequence[str]] | None = None) -> None:
        first = next(iter(fields.values()))
        self.dates = pd.DatetimeIndex(first.index)
        self.symbols = [str(c) for c in first.columns]
        self.data = {k.lower(): v.reindex(index=self.dates, columns=self.symbols) for k, v in fields.items()}
        self._markets = {"all": list(self.symbols), **{k: list(v) for k, v in (markets or {}).items()}}

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        return self.dates

    def markets(self) -> list[str]:
        return list(self._markets)

    def universe(self, market: str = "all") -> dict[str, tuple[Span, ...]]:
        return {s: (Span(self.dates[0], self.dates[-1]),) for s in self._markets[market]}

    def fields(self, freq: str = "day") -> list[str]:
        return list(self.data)

    def load(self, fields, instruments, start=None, end=None, freq="day") -> Panel:
        lo = 0 if start is None else int(self.dates.searchsorted(pd.Timestamp(start), "left"))
        hi = len(self.dates) if end is None else int(self.dates.searchsorted(pd.Timestamp(end), "right"))
        out = {f.lstrip("$").lower(): self.data[f.lstrip("$").lower()].reindex(columns=list(instruments))
               .iloc[lo:hi].to_numpy(np.float32) for f in fields}  # fmt: skip
        return Panel(self.dates[lo:hi], tuple(instruments), out)

    @property
    def version(self) -> str:
        return "memory"


def memory_market(n: int = 24, days: int = 320, seed: int = 0, industries: int | None = 3) -> MemoryStore:
    """Prices from a three-factor model (a market and two industries' shocks), volume and amount, and optionally
    an ``industry`` field (codes 1..industries)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=days)
    names = [f"SH60{i:04d}" for i in range(n)]
    codes = (np.arange(n) % industries) + 1 if industries else np.zeros(n)
    market = rng.normal(0.0003, 0.01, days)
    shocks = rng.normal(0, 0.008, (days, 4))
    beta = rng.uniform(0.6, 1.4, n)
    ret = market[:, None] * beta + shocks[:, codes.astype(int) % 4] + rng.normal(0, 0.012, (days, n))
    close = 10 * np.cumprod(1 + ret, axis=0)
    volume = rng.uniform(1e6, 5e6, (days, n))
    frames = {
        "close": pd.DataFrame(close, index=dates, columns=names),
        "volume": pd.DataFrame(volume, index=dates, columns=names),
        "amount": pd.DataFrame(volume * close, index=dates, columns=names),
    }
    if industries:
        frames["industry"] = pd.DataFrame(np.tile(codes, (days, 1)).astype(float), index=dates, columns=names)
    return MemoryStore(frames, {"csi300": names[: n * 3 // 4]})


@pytest.fixture
def memory_store() -> MemoryStore:
    """24 stocks × 320 days with three industries."""
    return memory_market()


@pytest.fixture(scope="session")
def store_setup(small_store: Path, pkernel: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Risk data (4-factor PCA, 60-day window) of the small store's csi300 for calendar days 300..360, and noisy
    next-day returns as scores."""
    from qportfolio.risk.build import RiskBuildSpec, build_risk_data

    from qcore.expr.engine import ExpressionEngine

    provider = pkernel.create("data_provider", "qlib_bin", provider_uri=str(small_store))
    calendar = provider.calendar()
    root = tmp_path_factory.mktemp("risk") / "structured"
    spec = RiskBuildSpec(root=str(root), universe="csi300", start=calendar[300], end=calendar[360], window=60,
                         model={"name": "structured", "kwargs": {"num_factors": 4}})  # fmt: skip
    build_risk_data(provider, pkernel.registry("operator"), spec)
    engine = ExpressionEngine(provider, pkernel.registry("operator"))
    label = engine.evaluate({"s": "Ref($close, -2) / Ref($close, -1) - 1"}, "csi300", calendar[300], calendar[360])
    noise = np.random.default_rng(0).normal(0, 0.02, len(label))
    return {"provider": provider, "root": str(root), "scores": label["s"].astype("float64") + noise,
            "calendar": calendar}  # fmt: skip
