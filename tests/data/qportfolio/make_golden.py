"""Make the golden files of the qportfolio parity tests with Qlib 0.9.7 (run in the Qlib baseline environment).

    .bench/qlib-baseline/bin/python tests/data/qportfolio/make_golden.py

Writes ``golden.npz`` beside this script: the deterministic inputs and what Qlib's ``RiskModel``,
``ShrinkCovEstimator``, ``POETCovEstimator``, ``StructuredCovEstimator``, ``PortfolioOptimizer`` and
``EnhancedIndexingOptimizer`` (with ECOS, which it hard-codes) give for them. Case names are the keys' prefixes;
``cases.json`` lists each case's arguments. Nothing here is random at run time: the inputs come from a seeded
generator and Qlib's estimators are deterministic (``random_state=0``).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def inputs() -> dict[str, np.ndarray]:
    """Prices of 20 instruments over 120 days (a few NaN in a copy), and an enhanced-indexing problem."""
    rng = np.random.default_rng(20240607)
    t, p = 120, 20
    market = rng.normal(0.0003, 0.01, size=t)
    beta = rng.uniform(0.5, 1.5, size=p)
    rets = market[:, None] * beta + rng.normal(0, 0.015, size=(t, p))
    prices = 10.0 * np.cumprod(1.0 + rets, axis=0)
    nan_prices = prices.copy()
    nan_prices[rng.integers(1, t, 25), rng.integers(0, p, 25)] = np.nan
    n, k = 60, 5
    exposures = rng.normal(size=(n, k))
    b = rng.normal(size=(200, k)) * np.array([1.2, 0.8, 0.5, 0.4, 0.3])
    factor_cov = np.cov(b.T)
    specific_var = rng.uniform(0.5, 3.0, size=n) ** 2
    wb = rng.uniform(0.2, 1.0, size=n) * (rng.uniform(size=n) < 0.8)
    wb /= wb.sum()
    w0 = np.clip(wb + rng.normal(0, 0.004, size=n), 0, None)
    w0 /= w0.sum()
    scores = rng.normal(size=n)
    expected = rng.normal(0.001, 0.01, size=p)
    w0_p = np.full(p, 1.0 / p)
    return {"prices": prices, "nan_prices": nan_prices, "F": exposures, "cov_b": factor_cov, "var_u": specific_var,
            "wb": wb, "w0": w0, "scores": scores, "expected": expected, "w0_p": w0_p}  # fmt: skip


def main() -> None:
    import pandas as pd
    from qlib.contrib.strategy.optimizer import EnhancedIndexingOptimizer, PortfolioOptimizer
    from qlib.model.riskmodel import POETCovEstimator, RiskModel, ShrinkCovEstimator, StructuredCovEstimator

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    data = inputs()
    out: dict[str, np.ndarray] = dict(data)
    cases: dict[str, dict] = {}

    def risk(name: str, model, kwargs: dict, x: np.ndarray, **predict) -> None:
        cases[name] = {"kind": "risk", "model": model.__name__, "kwargs": kwargs, "predict": predict,
                       "input": "nan_prices" if x is data["nan_prices"] else "prices"}  # fmt: skip
        result = model(**kwargs).predict(pd.DataFrame(x), **predict)
        if isinstance(result, tuple):
            for part, value in zip(("F", "cov_b", "var_u"), result, strict=True):
                out[f"{name}/{part}"] = np.asarray(value)
        else:
            out[f"{name}/cov"] = np.asarray(result)

    prices, nan_prices = data["prices"], data["nan_prices"]
    risk("sample", RiskModel, {}, prices)
    risk("sample_raw_units", RiskModel, {"scale_return": False}, prices)
    risk("sample_mask", RiskModel, {"nan_option": "mask"}, nan_prices)
    risk("sample_fill", RiskModel, {"nan_option": "fill"}, nan_prices)
    risk("sample_corr", RiskModel, {}, prices, return_corr=True)
    for target in ("const_var", "const_corr", "single_factor"):
        risk(f"shrink_lw_{target}", ShrinkCovEstimator, {"alpha": "lw", "target": target}, prices)
        risk(f"shrink_0.3_{target}", ShrinkCovEstimator, {"alpha": 0.3, "target": target}, prices)
    risk("shrink_lw_const_var_fill", ShrinkCovEstimator, {"alpha": "lw", "nan_option": "fill"}, nan_prices)
    risk("shrink_oas_qlib", ShrinkCovEstimator, {"alpha": "oas", "target": "const_var"}, prices)
    for k in (0, 3):
        for method in ("soft", "hard", "scad"):
            risk(f"poet_{k}_{method}", POETCovEstimator, {"num_factors": k, "thresh": 1.0, "thresh_method": method},
                 prices)  # fmt: skip
    risk("poet_3_soft_thresh0.5", POETCovEstimator, {"num_factors": 3, "thresh": 0.5}, prices)
    risk("structured_pca", StructuredCovEstimator, {"factor_model": "pca", "num_factors": 5}, prices)
    risk("structured_pca_parts", StructuredCovEstimator, {"factor_model": "pca", "num_factors": 5}, prices,
         return_decomposed_components=True)  # fmt: skip
    risk("structured_fa", StructuredCovEstimator, {"factor_model": "fa", "num_factors": 10}, prices)
    risk("structured_fa_fill", StructuredCovEstimator, {"factor_model": "fa", "num_factors": 10}, nan_prices)

    # -- PortfolioOptimizer on the sample covariance (percent units) --------------------------------------------
    cov = RiskModel().predict(pd.DataFrame(prices))
    out["opt_cov"] = cov.to_numpy()
    r = pd.Series(data["expected"], index=cov.index)
    w0 = pd.Series(data["w0_p"], index=cov.index)
    opt_cases = {
        "opt_inv": ({"method": "inv"}, False, False),
        "opt_gmv": ({"method": "gmv"}, False, False),
        "opt_gmv_alpha": ({"method": "gmv", "alpha": 0.5}, False, False),
        "opt_gmv_turnover": ({"method": "gmv", "delta": 0.3}, False, True),
        "opt_mvo": ({"method": "mvo", "lamb": 2.0}, True, False),
        "opt_mvo_lamb0.5": ({"method": "mvo", "lamb": 0.5}, True, False),
        "opt_mvo_turnover": ({"method": "mvo", "lamb": 2.0, "delta": 0.2}, True, True),
        "opt_rp": ({"method": "rp"}, False, False),
    }
    for name, (kwargs, with_r, with_w0) in opt_cases.items():
        cases[name] = {"kind": "optimizer", "kwargs": kwargs, "r": with_r, "w0": with_w0}
        w = PortfolioOptimizer(**kwargs)(cov, r if with_r else None, w0 if with_w0 else None)
        out[f"{name}/w"] = np.asarray(w)

    # -- EnhancedIndexingOptimizer (ECOS) -------------------------------------------------------------------------
    n = len(data["wb"])
    mfh = np.zeros(n, dtype=bool)
    mfh[[3, 17]] = True
    mfs = np.zeros(n, dtype=bool)
    mfs[[5, 17, 40]] = True
    ei_cases = {
        "ei_default": ({}, False, False),
        "ei_turnover": ({"delta": 0.2}, True, False),
        "ei_lamb5_bdev": ({"lamb": 5.0, "b_dev": 0.02}, True, False),
        "ei_fdev": ({"f_dev": [0.05, 0.05, 0.1, 0.1, 0.1], "b_dev": 0.03}, True, False),
        "ei_masks": ({"delta": 0.3}, True, True),
        "ei_no_bdev": ({"b_dev": None, "lamb": 2.0}, True, False),
        "ei_unscaled": ({"scale_return": False, "lamb": 0.1}, True, False),
    }
    for name, (kwargs, with_w0, masks) in ei_cases.items():
        cases[name] = {"kind": "enhanced", "kwargs": kwargs, "w0": with_w0, "masks": masks}
        w = EnhancedIndexingOptimizer(**kwargs)(
            r=data["scores"], F=data["F"], cov_b=data["cov_b"], var_u=data["var_u"],
            w0=data["w0"] if with_w0 else np.zeros(n), wb=data["wb"],
            mfh=mfh if masks else None, mfs=mfs if masks else None)  # fmt: skip
        out[f"{name}/w"] = np.asarray(w)
    out["mfh"], out["mfs"] = mfh, mfs
    np.savez_compressed(HERE / "golden.npz", **out)
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")
    size = (HERE / "golden.npz").stat().st_size
    print(f"wrote {len(out)} arrays ({size / 1024:.0f} KiB) and {len(cases)} cases")


if __name__ == "__main__":
    main()
