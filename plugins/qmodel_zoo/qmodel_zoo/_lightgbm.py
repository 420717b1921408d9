"""The one place the zoo imports LightGBM from (so an import policy, if ever needed, lives in one module).

``import lightgbm`` also imports scikit-learn when it is installed (about 1.5 s of a workflow run). Hiding
scikit-learn from that import was tried and left out on purpose: the import hook it needs is process-wide, so it
would race with other threads importing scikit-learn (the MLflow recorder's background thread does) and would leave
LightGBM's scikit-learn wrappers broken for the rest of a notebook session.
"""

from __future__ import annotations

import lightgbm as lgb

__all__ = ["lgb"]
