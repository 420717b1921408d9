"""``OptimizedWeights``: any signal → a risk estimate → :class:`~qportfolio.optimizer.portfolio.PortfolioOptimizer`.

For the bar of trade date ``T`` (information date ``T−1``): the scored names of ``T−1`` (the ``topk`` best when
given; NaN scores are dropped) are the candidates; their covariance comes from

- ``riskmodel_root``: the factor risk data of ``T−1`` (candidates missing from it are dropped, with a warning), or
- ``risk_model`` (default: Ledoit–Wolf shrinkage, NaN pairwise) on the ``window`` daily returns of ``$close`` up to
  ``T−1``, read once for the whole run at reset;

then ``method`` (``inv``, ``gmv``, ``mvo``, ``rp``, ``max_sharpe``) gives the weights, with the scores as expected
returns (``mvo``, ``max_sharpe``) and, with ``delta``, the current weights as the turnover anchor. Weights below
``min_weight`` are dropped and the rest renormalised.

Long–short (``optimizer_kwargs.long_short: {gross, net, max_short}``, methods ``gmv`` and ``mvo``): the ``bottomk``
worst-scored names join the candidates, negative weights are kept for the names the backtest may lend on the bar
(``backtest.short.eligible``; the others are bounded below by 0), weights with ``|w| < min_weight`` are dropped
without renormalising (the budget ``Σw = net`` holds up to them); a backtest without ``short`` enabled is refused
at reset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qcore.trading import Step, TradingInfra
from qportfolio.optimizer.portfolio import PortfolioOptimizer
from qportfolio.risk.registry import make_risk_model
from qportfolio.risk.riskdata import RiskData
from qportfolio.strategies.base import WeightStrategyBase, check_names, drop_qlib_infra

logger = logging.getLogger("qportfolio.strategy")


class OptimizedWeights(WeightStrategyBase):
    """Target weights from a portfolio optimiser over the scored names (see the module doc).

    :param signal: the scores.
    :param method: optimiser method.
    :param topk: candidates per bar (None: every scored name).
    :param bottomk: the worst-scored names added to the candidates (for long–short; None: none).
    :param risk_model: risk model name or ``{name, kwargs}`` on returns (ignored with ``riskmodel_root``).
    :param riskmodel_root: factor risk data to use instead.
    :param window: days of returns for ``risk_model``.
    :param optimizer_kwargs: :class:`PortfolioOptimizer` arguments (``lamb``, ``delta``, ``alpha``, ``max_weight``,
        ``solver``, ``fallback``...); ``delta`` anchors the turnover to the current weights.
    :param min_weight: weights below it are dropped.
    :param risk_degree: share of the account value invested.
    :param order_generator: how the backtest turns weights into orders.
    """

    def __init__(
        self,
        *,
        signal: Any = None,
        method: str = "mvo",
        topk: int | None = None,
        bottomk: int | None = None,
        risk_model: Any = None,
        riskmodel_root: str | None = None,
        window: int = 120,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        min_weight: float = 1e-4,
        risk_degree: float = 0.95,
        order_generator: Any = "without_interact",
        **qlib_kwargs: Any,
    ) -> None:
        generator = qlib_kwargs.pop("order_generator_cls_or_obj", order_generator)
        drop_qlib_infra(qlib_kwargs, "OptimizedWeights")
        super().__init__(signal=signal, risk_degree=risk_degree, order_generator=generator)
        for key, value in (("topk", topk), ("bottomk", bottomk)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"expected a positive integer, got {value!r}", path=key)
        if not isinstance(window, int) or isinstance(window, bool) or window < 3:
            raise ConfigError(f"expected an integer >= 3, got {window!r}", path="window")
        if isinstance(min_weight, bool) or not isinstance(min_weight, int | float) or not 0 <= min_weight < 1:
            raise ConfigError(f"expected a number in [0, 1), got {min_weight!r}", path="min_weight")
        if optimizer_kwargs is not None and not isinstance(optimizer_kwargs, Mapping):
            raise ConfigError(f"expected a mapping, got {optimizer_kwargs!r}", path="optimizer_kwargs")
        check_names(optimizer_kwargs or {}, PortfolioOptimizer, "optimizer_kwargs")
        kwargs = dict(optimizer_kwargs or {})
        kwargs["method"] = method
        self.use_w0 = "delta" in kwargs
        kwargs.setdefault("lamb", 1.0)
        try:
            self.optimizer = PortfolioOptimizer(**kwargs)
        except ConfigError as exc:
            where = "method" if exc.path == "method" else f"optimizer_kwargs.{exc.path}".rstrip(".")
            raise ConfigError(exc.message, path=where) from None
        except TypeError as exc:
            raise ConfigError(str(exc), path="optimizer_kwargs") from None
        self.topk = topk
        self.bottomk = bottomk
        self.window = window
        self.min_weight = float(min_weight)
        self.riskdata = RiskData(riskmodel_root) if riskmodel_root else None
        spec = risk_model if risk_model is not None else {"name": "shrink",
                                                           "kwargs": {"alpha": "lw", "nan_option": "mask"}}  # fmt: skip
        self.risk_model = None if self.riskdata else make_risk_model(spec, key="risk_model")
        self._close: pd.DataFrame | None = None

    def reset(self, infra: TradingInfra) -> None:
        """Read the closes the covariance windows need (with a returns risk model)."""
        super().reset(infra)
        self.check_shorting(getattr(self.optimizer, "long_short", None))
        if self.riskdata is not None:
            if self.riskdata.days.empty:
                raise DataError("the risk-data folder holds no day", path=str(self.riskdata.root))
            return
        if infra.provider is None:
            raise ConfigError("OptimizedWeights with a risk_model needs the run's store (or give riskmodel_root)",
                              path="risk_model")  # fmt: skip
        calendar = infra.calendar.calendar
        lo = max(infra.calendar.offset - 1 - self.window, 0)
        hi = max(infra.calendar.offset + len(infra.bars) - 2, 0)
        known = infra.provider.universe("all")
        names = [n for n in self.scores.instruments if n in known]
        if not names:
            raise DataError("no scored instrument is in the store")
        panel = infra.provider.load(["close"], names, calendar[lo], calendar[hi])
        self._close = pd.DataFrame(np.asarray(panel["close"], dtype=np.float64), index=panel.dates,
                                   columns=list(panel.instruments))  # fmt: skip

    def _covariance(self, info: pd.Timestamp, names: list[str]) -> tuple[pd.DataFrame | None, list[str]]:
        if self.riskdata is not None:
            found = self.riskdata.get(info)
            if found is None:
                logger.warning("no risk data for %s: no decision", info.date())
                return None, []
            risk = found[0]
            keep = [n for n in names if n in set(risk.instruments)]
            if len(keep) < len(names):
                logger.warning("%s: %d candidate(s) have no risk data and are left out", info.date(),
                               len(names) - len(keep))  # fmt: skip
            if not keep:
                return None, []
            return risk.covariance().loc[keep, keep], keep
        assert self._close is not None
        keep = [n for n in names if n in self._close.columns]
        end = int(self._close.index.searchsorted(info, "right"))
        prices = self._close.iloc[max(end - self.window - 1, 0) : end][keep]
        if len(prices) < 3:
            return None, []
        returns = prices.pct_change(fill_method=None).iloc[1:]
        usable = returns.notna().sum() >= 2
        keep = [n for n in keep if usable[n]]
        if not keep:
            return None, []
        return self.risk_model.predict(returns[keep], is_price=False), keep

    def target_weights(self, step: Step) -> dict[str, float] | None:
        """The optimiser's weights for ``step`` (None: no decision)."""
        info, scores = self.scores_for(step)
        if info is None or scores is None:
            return None
        scores = scores.dropna()
        if scores.empty:
            return None
        ranked = scores.sort_values(ascending=False, kind="stable")
        if self.topk is not None:
            chosen = ranked.iloc[: self.topk]
            if self.bottomk is not None:
                chosen = pd.concat([chosen, ranked.iloc[self.topk :].iloc[-self.bottomk :]])
            scores = chosen
        cov, names = self._covariance(info, list(scores.index))
        if cov is None:
            return None
        r = scores.reindex(names)
        w0 = pd.Series(self.current_weights(names), index=names) if self.use_w0 else None
        long_short = getattr(self.optimizer, "long_short", None) is not None
        if w0 is not None and not long_short and w0.sum() <= 0:
            w0 = None
        if long_short:
            w = np.asarray(self.optimizer(cov, r, w0, shortable=self.shortable(step, names)), dtype=np.float64)
            w = np.where(np.abs(w) >= self.min_weight, w, 0.0)
            if not np.abs(w).sum() > 0:
                return None
        else:
            w = np.asarray(self.optimizer(cov, r, w0), dtype=np.float64)
            w = np.where(w >= self.min_weight, w, 0.0)
            if not w.sum() > 0:
                return None
            w = w / w.sum()
        info_solve = self.optimizer.last
        self._records.append({"datetime": step.start, "status": info_solve.status if info_solve else "",
                              "objective": info_solve.objective if info_solve else np.nan,
                              "fallback": info_solve.fallback if info_solve else None, "names": int((w != 0).sum()),
                              "shorts": int((w < 0).sum()), "gross": float(np.abs(w).sum()),
                              "net": float(w.sum())})  # fmt: skip
        return {n: float(x) for n, x in zip(names, w, strict=True) if x != 0}
