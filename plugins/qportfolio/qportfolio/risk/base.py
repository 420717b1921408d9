"""What every covariance estimator shares: turning prices or returns into a clean matrix, and Qlib's ``predict``.

An estimator reads a ``(observations × variables)`` matrix — rows are dates, columns instruments — of prices
(``is_price=True``: simple returns are taken first, one row fewer) or returns, optionally in Qlib's percent units
(``scale_return=True`` multiplies returns by 100; Qlib's default, ours is off). Missing values:

- ``ignore``: the data must have none; a NaN is a :class:`~qcore.errors.DataError` (Qlib lets it propagate into
  a covariance of NaNs);
- ``mask``: every pair of instruments uses the dates on which both are present (Qlib's masked arrays);
- ``fill``: NaN returns count as 0 (Qlib's ``np.nan_to_num``, applied before centring).

Infinite returns (a price of 0) are always an error. Data are centred column by column unless
``assume_centered``; the sample covariance is ``X'X / N`` (biased, as in Qlib).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError

NAN_OPTIONS = ("ignore", "mask", "fill")


@attrs.frozen
class FactorRisk:
    """A covariance in factor form: ``Σ = F · factor_cov · F' + diag(specific_risk²)``.

    :ivar exposures: ``N × K`` factor exposures, indexed by instrument, one column per factor.
    :ivar factor_cov: ``K × K`` factor covariance, indexed and labelled by factor.
    :ivar specific_risk: ``N`` specific volatilities (σ, not variances: Qlib's file convention).
    """

    exposures: pd.DataFrame
    factor_cov: pd.DataFrame
    specific_risk: pd.Series

    def __attrs_post_init__(self) -> None:
        n, k = self.exposures.shape
        if self.factor_cov.shape != (k, k):
            raise DataError(f"factor_cov is {self.factor_cov.shape[0]}×{self.factor_cov.shape[1]} but factor_exp "
                            f"has {k} factors")  # fmt: skip
        if len(self.specific_risk) != n:
            raise DataError(f"specific_risk has {len(self.specific_risk)} values for {n} instruments")

    @property
    def instruments(self) -> list[str]:
        """The instruments, in the order of :attr:`exposures`."""
        return [str(i) for i in self.exposures.index]

    def covariance(self) -> pd.DataFrame:
        """The full ``N × N`` covariance."""
        f = self.exposures.to_numpy(np.float64)
        cov = f @ self.factor_cov.to_numpy(np.float64) @ f.T
        cov[np.diag_indices_from(cov)] += self.specific_risk.to_numpy(np.float64) ** 2
        return pd.DataFrame(cov, index=self.exposures.index, columns=self.exposures.index)


@runtime_checkable
class ReturnsRiskModel(Protocol):
    """A covariance estimator on a returns (or prices) matrix, with Qlib's ``predict`` signature."""

    def predict(self, X: Any, return_corr: bool = False, is_price: bool = True,
                return_decomposed_components: bool = False) -> Any:  # fmt: skip
        """The covariance (or correlation, or ``(F, cov_b, var_u)``) of ``X``'s columns."""
        ...


@runtime_checkable
class StoreRiskModel(Protocol):
    """A risk model computed from a store's fields (a fundamental factor model)."""

    def estimate(self, engine: Any, universe: str | Sequence[str], dates: Sequence[pd.Timestamp]) -> Any:
        """``{date: FactorRisk}`` for each of ``dates``, from data up to that date."""
        ...


def check_choice(value: Any, choices: Sequence[str], name: str) -> str:
    """``value`` if it is one of ``choices``, else a :class:`ConfigError` at ``name``."""
    if value not in choices:
        raise ConfigError(f"expected one of {', '.join(map(str, choices))}, got {value!r}", path=name)
    return str(value)


class CovarianceEstimator:
    """The sample covariance, and the base of every estimator on a returns matrix.

    :param nan_option: ``ignore``, ``mask`` or ``fill`` (see the module doc).
    :param assume_centered: skip centring the columns.
    :param scale_return: multiply returns by 100 (Qlib's percent units).
    """

    #: whether :meth:`_estimate` can take a masked array (others get NaN-free data only).
    supports_mask = True

    def __init__(self, nan_option: str = "ignore", assume_centered: bool = False, scale_return: bool = False) -> None:
        self.nan_option = check_choice(nan_option, NAN_OPTIONS, "nan_option")
        self.assume_centered = bool(assume_centered)
        self.scale_return = bool(scale_return)
        if self.nan_option == "mask" and not self.supports_mask:
            raise ConfigError(f"{type(self).__name__} does not support nan_option='mask' (use 'fill')",
                              path="nan_option")  # fmt: skip

    # -- Qlib's entry point ------------------------------------------------------------------------------------

    def predict(self, X: Any, return_corr: bool = False, is_price: bool = True,
                return_decomposed_components: bool = False) -> Any:  # fmt: skip
        """Qlib's ``RiskModel.predict``: the covariance of ``X``'s columns.

        :param X: a DataFrame (dates × instruments), a Series or one-column frame indexed ``(datetime,
            instrument)`` (unstacked), or an array.
        :param return_corr: return the correlation instead.
        :param is_price: ``X`` holds prices (returns are taken first) rather than returns.
        :param return_decomposed_components: return ``(F, cov_b, var_u)`` (factor models only).
        """
        if return_corr and return_decomposed_components:
            raise ConfigError("return either the correlation or the decomposed components, not both")
        values, columns = _as_matrix(X)
        data = self.prepare(values, is_price=is_price)
        if return_decomposed_components:
            decompose = getattr(self, "_decompose", None)
            if decompose is None:
                raise ConfigError(f"{type(self).__name__} has no factor decomposition "
                                  "(use structured or fundamental)")  # fmt: skip
            return decompose(data)
        cov = self._estimate(data)
        if return_corr:
            vol = np.sqrt(np.diag(cov))
            cov = cov / np.outer(vol, vol)
        if columns is None:
            return cov
        return pd.DataFrame(cov, index=columns, columns=columns)

    def covariance(self, returns: pd.DataFrame) -> pd.DataFrame:
        """The covariance of a returns frame (dates × instruments)."""
        return self.predict(returns, is_price=False)

    # -- the pieces --------------------------------------------------------------------------------------------

    def prepare(self, values: np.ndarray, *, is_price: bool) -> np.ndarray | np.ma.MaskedArray:
        """Returns from ``values``, in percent when asked, NaN handled and centred."""
        x = np.array(values, dtype=np.float64, copy=True)
        if x.ndim != 2:
            raise DataError(f"expected a 2-d matrix of observations × variables, got {x.ndim} dimension(s)")
        if is_price:
            if len(x) < 2:
                raise DataError("prices need at least 2 rows to give a return")
            with np.errstate(divide="ignore", invalid="ignore"):
                x = x[1:] / x[:-1] - 1.0
        if len(x) < 2:
            raise DataError(f"a covariance needs at least 2 observations, got {len(x)}")
        if np.isinf(x).any():
            row, col = np.argwhere(np.isinf(x))[0]
            raise DataError(f"infinite return at row {row}, column {col} (a price of 0?)")
        if self.scale_return:
            x *= 100.0
        nan = np.isnan(x)
        if nan.any():
            if self.nan_option == "ignore":
                raise DataError(f"{int(nan.sum())} returns are NaN; choose nan_option 'mask' (pairwise) or "
                                "'fill' (NaN as 0)")  # fmt: skip
            if self.nan_option == "fill":
                x[nan] = 0.0
        if self.nan_option == "mask" and nan.any():
            masked = np.ma.masked_invalid(x)
            if (masked.count(axis=0) < 2).any():
                bad = int(np.flatnonzero(masked.count(axis=0) < 2)[0])
                raise DataError(f"column {bad} has fewer than 2 observations")
            if not self.assume_centered:
                masked = masked - masked.mean(axis=0)
            return masked
        if not self.assume_centered:
            x -= x.mean(axis=0)
        return x

    def _estimate(self, x: np.ndarray | np.ma.MaskedArray) -> np.ndarray:
        return sample_covariance(x)


def sample_covariance(x: np.ndarray | np.ma.MaskedArray) -> np.ndarray:
    """``X'X / N``; for masked data each pair is divided by the number of dates both are present."""
    if isinstance(x, np.ma.MaskedArray):
        present = (~np.ma.getmaskarray(x)).astype(np.float64)
        filled = x.filled(0.0)
        counts = present.T @ present
        with np.errstate(divide="ignore", invalid="ignore"):
            return (filled.T @ filled) / counts
    return (x.T @ x) / len(x)


def filled(x: np.ndarray | np.ma.MaskedArray) -> np.ndarray:
    """Masked entries as 0 (what Qlib's masked products amount to); plain arrays unchanged."""
    return x.filled(0.0) if isinstance(x, np.ma.MaskedArray) else x


def _as_matrix(X: Any) -> tuple[np.ndarray, pd.Index | None]:
    if isinstance(X, pd.Series | pd.DataFrame):
        if isinstance(X.index, pd.MultiIndex):
            series = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else X
            level = "instrument" if "instrument" in (X.index.names or ()) else -1
            X = series.unstack(level=level)
        elif isinstance(X, pd.Series):
            raise DataError("a Series needs a (datetime, instrument) index; give a DataFrame of dates × instruments")
        return X.to_numpy(np.float64), X.columns
    return np.asarray(X, dtype=np.float64), None
