"""Shared fixtures of the qmine tests: one synthetic market with a planted factor per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcore.kernel import Kernel

#: The planted factor: it reads only ``$volume``, which planting leaves unchanged.
PLANTED = "Mean($volume,5)/Mean($volume,20)"


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 stocks x 500 days whose next-day returns carry 0.4 daily vols per z-score of :data:`PLANTED`."""
    from qdata_cn.synth_planted import synthesize_planted

    out = tmp_path_factory.mktemp("planted") / "store"
    kernel = Kernel.load(use_env=False)
    synthesize_planted(out, PLANTED, kernel.registry("operator"), strength=0.4, instruments=80, days=500, seed=3)
    return out
