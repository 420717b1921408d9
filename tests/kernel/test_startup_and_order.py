"""Start-up stays light (no pandas, no plugin import for ``--version``), shutdown skips the collector's passes, and the
instrument-major reordering helper."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from qcore.tables import instrument_major


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_qcore_and_its_cli_loads_no_heavy_module() -> None:
    loaded = _modules_after("import qcore, qcore.cli, qcore.tables, qcore.progress, qcore.errors, qcore.types")
    heavy = {"pandas", "numpy", "pyarrow", "qcore.plugins", "qcore.kernel", "importlib.metadata", "difflib"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_the_expression_engine_imports_no_lock_library_until_it_caches() -> None:
    # filelock imports asyncio (30-50 ms): only writing an expression-cache entry needs it
    loaded = _modules_after("import qcore.expr.engine, qcore.expr.cache, qcore.api")
    assert not {"filelock", "asyncio"} & loaded, sorted({"filelock", "asyncio"} & loaded)


def test_the_console_entry_point_spares_the_shutdown_its_collections() -> None:
    """``qcore.cli.main`` (the console script) hands every live object to the collector's permanent generation as
    it returns, also when the command fails, so the interpreter's shutdown does not scan them again; the exit code
    and the output are the command's own."""
    probe = ("import atexit, gc, sys\n"
             "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 1000))\n"
             "from qcore.cli import main\n"
             "main(sys.argv[1:])\n")  # fmt: skip
    ok = subprocess.run([sys.executable, "-c", probe, "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("qcore") and ok.stdout.rstrip().endswith("frozen True")
    bad = subprocess.run([sys.executable, "-c", probe, "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "No such command" in bad.stderr and bad.stdout.strip() == "frozen True"


def test_lazy_names_resolve_to_the_defining_modules() -> None:
    import qcore
    import qcore.plugins

    assert qcore.hookimpl is qcore.plugins.hookimpl
    assert qcore.__version__ and "hookimpl" in dir(qcore)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        qcore.nope  # noqa: B018


def test_version_lists_installed_plugins_without_importing_them() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom qcore.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--version'])\nassert r.exit_code == 0, r.output\nprint(r.output)"
    )
    loaded = _modules_after(code)
    assert not {"qops", "qdata_cn", "qbacktest", "pandas", "qcore.kernel"} & loaded
    from qcore import __version__
    from qcore.cli import cli

    lines = CliRunner().invoke(cli, ["--version"]).output.splitlines()
    assert lines[0] == f"qcore {__version__}"
    assert "  qops 0.1.0 (qops)" in lines and "  qdata_cn 0.1.0 (qdata-cn)" in lines


def _datetime_major(dates: int = 7, symbols: tuple[str, ...] = ("SZ000002", "SH600000", "SZ000001")) -> pd.DataFrame:
    """A frame as the engine returns it: (datetime, instrument), levels in the given order, some cells absent."""
    rng = np.random.default_rng(1)
    days = pd.date_range("2021-01-04", periods=dates)
    present = rng.random((dates, len(symbols))) > 0.2
    ti, ii = np.nonzero(present)
    index = pd.MultiIndex(levels=[days, pd.Index(list(symbols), dtype=object)], codes=[ti, ii],
                          names=["datetime", "instrument"], verify_integrity=False)  # fmt: skip
    block = np.asfortranarray(rng.normal(size=(len(ti), 3)).astype(np.float32))
    block[2, 1] = np.nan
    return pd.DataFrame(block, index=index, columns=["KMID", "ROC5", "LABEL0"], copy=False)


def test_instrument_major_equals_swaplevel_sort_index() -> None:
    frame = _datetime_major()
    got = instrument_major(frame)
    pd.testing.assert_frame_equal(got, frame.swaplevel().sort_index())
    assert list(got.index.names) == ["instrument", "datetime"]
    assert list(got.index.get_level_values(0).unique()) == ["SH600000", "SZ000001", "SZ000002"]
    assert all(got[c].to_numpy().flags.c_contiguous for c in got.columns)  # Arrow converts these without copies
    assert frame.index.names == ["datetime", "instrument"]  # the input is left alone


def test_instrument_major_with_mixed_dtypes_unsorted_dates_and_missing_keys() -> None:
    frame = _datetime_major().iloc[::-1]
    frame = frame.assign(flag=np.arange(len(frame)) % 2 == 0, name="x")
    pd.testing.assert_frame_equal(instrument_major(frame), frame.swaplevel().sort_index())
    unsorted = pd.MultiIndex.from_arrays(
        [pd.to_datetime(["2021-01-05", "2021-01-04", "2021-01-05"]), ["B", "A", "A"]], names=["datetime", "instrument"]
    )
    small = pd.DataFrame({"v": [1.0, 2.0, 3.0]}, index=unsorted)
    pd.testing.assert_frame_equal(instrument_major(small), small.swaplevel().sort_index())
    with_nan = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.MultiIndex.from_arrays([[1, 2], ["a", None]]))
    pd.testing.assert_frame_equal(instrument_major(with_nan), with_nan.swaplevel().sort_index())
    with pytest.raises(ValueError, match="two levels"):
        instrument_major(pd.DataFrame({"v": [1.0]}))

