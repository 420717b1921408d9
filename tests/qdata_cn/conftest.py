"""Fixtures of the qdata_cn tests: the golden Qlib store and small synthetic stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden_market"


@pytest.fixture(scope="session")
def golden() -> Path:
    """The golden store written by Qlib (read-only: copy it before changing anything)."""
    assert (GOLDEN / "calendars" / "day.txt").exists(), f"golden store missing at {GOLDEN}"
    return GOLDEN


@pytest.fixture
def golden_copy(tmp_path: Path, golden: Path) -> Path:
    """A private, writable copy of the golden store."""
    dst = tmp_path / "golden"
    shutil.copytree(golden, dst)
    return dst


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 stocks x 420 days from 2019-06-03: spans the STAR opening and the ChiNext reform (do not modify)."""
    from qdata_cn.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "small"
    synthesize(out, instruments=60, days=420, seed=11, start="2019-06-03")
    return out


@pytest.fixture(scope="session")
def synth_market():
    """The in-memory market behind a 200 x 900 store (seed 5), for statistical properties."""
    from qdata_cn.synth import SynthParams, generate

    return generate(SynthParams(instruments=200, days=900, seed=5, start="2016-01-04"))
