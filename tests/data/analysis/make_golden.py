"""Make the golden files of the qanalysis parity tests with Qlib 0.9.7 (run in the Qlib baseline environment).

    .bench/qlib-baseline/bin/python tests/data/analysis/make_golden.py

Inputs: the public golden store (``tests/data/golden_market``) and the golden backtest's score
(``/work/shared/golden/backtest/score.parquet``, copied here as ``score.parquet``). Writes ``golden.parquet`` files:

- ``label.parquet``: ``Ref($close, -2) / Ref($close, -1) - 1`` (LABEL0) on the score's rows (Qlib's ``D.features``);
- ``ic.parquet``: ``calc_ic(score, LABEL0)`` (IC, RankIC by date);
- ``long_short.parquet``: ``calc_long_short_return`` with dropna False and True;
- ``autocorr.parquet``: ``pred_autocorr`` for lags 1, 2, 5;
- ``group_return.parquet``, ``monthly_ic.parquet``, ``mp_ic.parquet``, ``mp_autocorr.parquet``, ``turnover.parquet``:
  the frames ``model_performance_graph`` (N=5, lag=1, and reverse for the group returns) hands its graph classes,
  captured by replacing those classes (plotly is not installed in the baseline; nothing is drawn; its monthly-IC
  month list asks pandas for the removed "1M" frequency, read here as "1ME");
- ``ic_decay.parquet``: mean IC and Rank IC of ``calc_ic`` against ``Ref($close, -(h+1)) / Ref($close, -1) - 1``
  for the label horizons h = 1…20.
"""

from __future__ import annotations

import logging
import shutil
import sys
import types
import warnings
from pathlib import Path
from typing import ClassVar

import pandas as pd

HERE = Path(__file__).resolve().parent
STORE = HERE.parent / "golden_market"
SCORE = Path("/work/shared/golden/backtest/score.parquet")
HORIZONS = range(1, 21)


def _stub_plotting() -> None:
    """Empty modules for plotly and statsmodels so Qlib's report module imports; its graph classes are replaced."""
    for name in ("plotly", "plotly.offline", "plotly.graph_objs", "plotly.subplots", "plotly.figure_factory",
                 "statsmodels", "statsmodels.api"):
        sys.modules[name] = _Stub(name)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])


class _Stub(types.ModuleType):
    """A module whose every attribute is ``object`` (enough for annotations and base classes at import)."""

    def __getattr__(self, name: str) -> type:
        return object


class _Capture:
    """Stands for a Qlib graph class: keeps the frame it was given under the current name."""

    frames: ClassVar[dict[str, pd.DataFrame]] = {}
    name = ""

    def __init__(self, df=None, layout=None, **kwargs) -> None:
        title = (layout or {}).get("title") or type(self).name
        _Capture.frames[title] = df
        self.figure = title


class _PandasMonthEnd(types.ModuleType):
    """pandas for Qlib's ``_pred_ic``, whose ``date_range(freq="1M")`` this pandas refuses: "1M" read as "1ME"."""

    def __init__(self) -> None:
        super().__init__("pandas")

    def __getattr__(self, name: str):
        return getattr(pd, name)

    @staticmethod
    def date_range(*args, freq=None, **kwargs):
        return pd.date_range(*args, freq="1ME" if freq == "1M" else freq, **kwargs)


def main() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    _stub_plotting()
    import qlib
    from qlib.contrib.eva.alpha import calc_ic, calc_long_short_return, pred_autocorr
    from qlib.data import D

    qlib.init(provider_uri=str(STORE), region="cn", kernels=1, expression_cache=None, dataset_cache=None)
    import qlib.contrib.report.analysis_model.analysis_model_performance as amp

    for name in ("ScatterGraph", "BarGraph", "HeatmapGraph", "SubplotsGraph"):
        setattr(amp, name, type(name, (_Capture,), {"name": name}))
    amp._plot_qq = lambda data=None, dist=None: None
    amp.pd = _PandasMonthEnd()

    shutil.copyfile(SCORE, HERE / "score.parquet")
    score = pd.read_parquet(HERE / "score.parquet")["score"]
    dates = score.index.get_level_values("datetime")
    fields = {f"h{h}": f"Ref($close, -{h + 1}) / Ref($close, -1) - 1" for h in HORIZONS}
    raw = D.features(D.instruments("csi_like"), list(fields.values()), dates.min(), dates.max())
    raw.columns = list(fields)
    labels = raw.swaplevel().sort_index().reindex(score.index)
    label = labels["h1"].rename("label")
    label.to_frame().to_parquet(HERE / "label.parquet")

    ic, ric = calc_ic(score, label)
    pd.DataFrame({"IC": ic, "RankIC": ric}).to_parquet(HERE / "ic.parquet")
    frames = {}
    for dropna in (False, True):
        ls, avg = calc_long_short_return(score, label, dropna=dropna)
        frames[f"long_short_{dropna}"], frames[f"long_avg_{dropna}"] = ls, avg
    pd.DataFrame(frames).to_parquet(HERE / "long_short.parquet")
    pd.DataFrame({f"lag{lag}": pred_autocorr(score, lag=lag) for lag in (1, 2, 5)}).to_parquet(
        HERE / "autocorr.parquet")
    decay = {}
    for h in HORIZONS:
        ic_h, ric_h = calc_ic(score, labels[f"h{h}"])
        decay[h] = {"IC": ic_h.mean(), "RankIC": ric_h.mean()}
    pd.DataFrame(decay).T.rename_axis("horizon").to_parquet(HERE / "ic_decay.parquet")

    pred_label = pd.DataFrame({"score": score, "label": label})
    for reverse in (False, True):
        _Capture.frames = {}
        amp._group_return(pred_label.copy(), reverse=reverse, N=5)
        cum = _Capture.frames["Cumulative Return"]
        cum.index.name = "datetime"
        cum.to_parquet(HERE / f"group_return{'_reverse' if reverse else ''}.parquet")
    _Capture.frames = {}
    amp._pred_ic(pred_label.copy())
    _Capture.frames["Information Coefficient (IC)"].to_parquet(HERE / "mp_ic.parquet")
    monthly = _Capture.frames["Monthly IC"]
    monthly.columns = [str(c) for c in monthly.columns]
    monthly.to_parquet(HERE / "monthly_ic.parquet")
    _Capture.frames = {}
    amp._pred_autocorr(pred_label.copy(), lag=1)
    _Capture.frames["Auto Correlation"].to_parquet(HERE / "mp_autocorr.parquet")
    _Capture.frames = {}
    amp._pred_turnover(pred_label.copy(), N=5, lag=1)
    _Capture.frames["Top-Bottom Turnover"].to_parquet(HERE / "turnover.parquet")


if __name__ == "__main__":
    main()
