"""Reading pickled pandas frames without running the code a pickle may name.

A pickle is a program: each global it names is imported and may be called. Qlib ships data as pickled frames
(``StaticDataLoader``'s ``feature.pkl``, risk data), so qcore reads them, but only through :func:`read_frame`, whose
unpickler resolves a global only when its ``(module, name)`` is one of the data constructors a pandas or numpy
frame needs (:data:`ALLOWED`): array and dtype reconstruction, pandas' frames, series, indexes, blocks, extension
arrays and their dtypes, timestamps, time offsets and time zones. The name is checked before its module is imported,
so a pickle naming ``os.system``, ``subprocess.Popen``, ``builtins.eval`` or ``pandas.read_pickle`` (which would read
another pickle unrestricted) is refused with an error naming the file and the global, and nothing it names runs.

Qlib 0.9.7 reads these files with ``pd.read_pickle`` (no restriction); its later ``RestrictedUnpickler`` trusts every
name under ``pandas`` and ``numpy`` (``pandas.read_pickle`` and ``numpy.load`` included). This allow-list is by name.

Pickles written by older pandas versions name classes that have moved; pandas' own compatibility table maps them to
their current names first (when this pandas has one), and the mapped name is what is checked.
"""

from __future__ import annotations

import functools
import importlib
import io
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcore.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_PD = "pandas.core"
#: ``(module, name)`` of every global a pickled frame may name.
ALLOWED: frozenset[tuple[str, str]] = frozenset({
    ("builtins", "slice"), ("__builtin__", "slice"), ("builtins", "object"), ("__builtin__", "object"),
    ("builtins", "complex"), ("builtins", "frozenset"), ("builtins", "set"),
    ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"), ("_codecs", "encode"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"), ("datetime", "timedelta"),
    ("datetime", "timezone"), ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.ma.core", "_mareconstruct"),
    *((module, name) for module in _NUMPY_CORE for name in ("_reconstruct", "scalar")),
    *((module, "_frombuffer") for module in _NUMPY_NUMERIC),
    (f"{_PD}.frame", "DataFrame"), (f"{_PD}.series", "Series"),
    (f"{_PD}.indexes.base", "Index"), (f"{_PD}.indexes.base", "_new_Index"), (f"{_PD}.indexes.multi", "MultiIndex"),
    (f"{_PD}.indexes.datetimes", "DatetimeIndex"), (f"{_PD}.indexes.datetimes", "_new_DatetimeIndex"),
    (f"{_PD}.indexes.range", "RangeIndex"), (f"{_PD}.indexes.category", "CategoricalIndex"),
    (f"{_PD}.indexes.period", "PeriodIndex"), (f"{_PD}.indexes.period", "_new_PeriodIndex"),
    (f"{_PD}.indexes.timedeltas", "TimedeltaIndex"), (f"{_PD}.indexes.frozen", "FrozenList"),
    (f"{_PD}.internals.managers", "BlockManager"), (f"{_PD}.internals.managers", "SingleBlockManager"),
    ("pandas._libs.internals", "_unpickle_block"), ("pandas._libs.internals", "BlockPlacement"),
    (f"{_PD}.internals.blocks", "new_block"), (f"{_PD}.internals.blocks", "Block"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    (f"{_PD}.arrays.datetimes", "DatetimeArray"), (f"{_PD}.arrays.timedeltas", "TimedeltaArray"),
    (f"{_PD}.arrays.period", "PeriodArray"), (f"{_PD}.arrays.categorical", "Categorical"),
    (f"{_PD}.arrays.string_", "StringArray"), (f"{_PD}.arrays.boolean", "BooleanArray"),
    (f"{_PD}.arrays.boolean", "BooleanDtype"), (f"{_PD}.arrays.string_", "StringDtype"),
    *((f"{_PD}.arrays.integer", f"{kind}Int{bits}{suffix}") for kind in ("", "U") for bits in (8, 16, 32, 64)
      for suffix in ("Dtype",)),
    (f"{_PD}.arrays.integer", "IntegerArray"), (f"{_PD}.arrays.floating", "FloatingArray"),
    (f"{_PD}.arrays.floating", "Float32Dtype"), (f"{_PD}.arrays.floating", "Float64Dtype"),
    (f"{_PD}.dtypes.dtypes", "CategoricalDtype"), (f"{_PD}.dtypes.dtypes", "DatetimeTZDtype"),
    (f"{_PD}.dtypes.dtypes", "PeriodDtype"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"), ("pandas._libs.tslibs.timestamps", "Timestamp"),
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"), ("pandas._libs.tslibs.timedeltas", "Timedelta"),
    ("pandas._libs.tslibs.nattype", "__nat_unpickle"), ("pandas._libs.tslibs.period", "Period"),
    ("pandas._libs.missing", "NA"), ("pandas._libs.missing", "NAType"),
    ("pytz", "_p"), ("pytz", "_UTC"), ("zoneinfo", "ZoneInfo"),
})
def _numpy_2() -> bool:
    import numpy as np

    return hasattr(np, "_core")


_NUMPY_2 = _numpy_2()
#: Modules whose every name that is a time offset class (``Day``, ``BusinessDay``, ``MonthEnd``...) is allowed.
_OFFSETS = ("pandas._libs.tslibs.offsets", "pandas.tseries.offsets")


@functools.cache
def _pandas_renames() -> dict[tuple[str, str], tuple[str, str]]:
    """pandas' table of classes that moved since older versions pickled them (empty when this pandas has none)."""
    try:
        from pandas.compat import pickle_compat
    except ImportError:  # pragma: no cover - pandas always has it today
        return {}
    table = getattr(pickle_compat, "_class_locations_map", None)
    return dict(table) if isinstance(table, dict) else {}


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list (its ``module.name`` is the message)."""


class _FrameUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED` globals (and pandas' time offset classes)."""

    def __init__(self, file: Any, renames: dict[tuple[str, str], tuple[str, str]]) -> None:
        super().__init__(file)
        self._renames = renames

    def find_class(self, module: str, name: str) -> Any:
        module, name = self._renames.get((module, name), (module, name))
        if module.startswith("numpy.core.") and _NUMPY_2:  # numpy 1's path of what numpy 2 keeps in numpy._core
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module in _OFFSETS and name.isidentifier() and not name.startswith("_"):
            from pandas.tseries.offsets import BaseOffset

            found = super().find_class(module, name)  # the module is pandas' own, imported already
            if isinstance(found, type) and issubclass(found, BaseOffset):
                return found
        raise _Refused(f"{module}.{name}")


def loads_frame(data: bytes, source: str = "<bytes>") -> pd.DataFrame | pd.Series:
    """The frame or series pickled in ``data``; see the module docstring. ``source`` names it in errors."""
    return _load(io.BytesIO(data), source)


def read_frame(path: str | Path) -> pd.DataFrame | pd.Series:
    """The pandas frame or series pickled in the file ``path`` (plain, or compressed as pandas writes them:
    ``.gz``, ``.bz2``, ``.xz`` by suffix), read with the restricted unpickler of this module."""
    source = Path(path)
    opener = _OPENERS.get(source.suffix.lower())
    try:
        if opener is None:
            handle = source.open("rb")
        else:
            handle = importlib.import_module(opener).open(source, "rb")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=str(source)) from None
    with handle:
        return _load(handle, str(source))


#: Compressed pickles by suffix → the standard-library module that opens them.
_OPENERS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _load(handle: Any, source: str) -> pd.DataFrame | pd.Series:
    import pandas as pd

    try:
        obj = _FrameUnpickler(handle, _pandas_renames()).load()
    except _Refused as exc:
        raise DataError(f"refused to unpickle: it names {exc}, which is not one of the data classes a pickled "
                        "pandas frame needs (unpickling it could run code); convert the file to Parquet where it "
                        "was made", path=source) from None  # fmt: skip
    except Exception as exc:  # a truncated or damaged file fails inside the unpickler in many ways
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot unpickle: {type(exc).__name__}: {first}", path=source) from None
    if not isinstance(obj, pd.DataFrame | pd.Series):
        raise DataError(f"expected a pickled pandas DataFrame or Series, found a {type(obj).__name__}", path=source)
    return obj
