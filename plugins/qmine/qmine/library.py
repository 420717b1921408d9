"""The factor library: a JSON file of mined factors the user can commit, and the ``mined`` feature set built from it.

Each factor carries its expression, its size, the sign of its train IC, its statistics on every span (train, valid
and, reported only, test), its turnover, its correlation to the library's other factors and whether the
multiple-testing threshold flagged it as lucky. The file's ``provenance`` says which config, seed, data version
and how many candidates produced it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qcore.errors import DataError
from qcore.types import FeatureSet

FORMAT = "qmine-library/1"
#: Qlib's default label (the Alpha158 handlers'): the return from the next day's close to the one after.
DEFAULT_LABEL: Mapping[str, str] = {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}


def read_library(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The library at ``path``; a :class:`DataError` when it is missing or not a library."""
    p = Path(path).expanduser()
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("factor library not found", path=str(p)) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the factor library: {exc}", path=str(p)) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("factors"), list):
        raise DataError(f"not a factor library (expected format {FORMAT!r})", path=str(p))
    for item in doc["factors"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(
                item.get("expression"), str):
            raise DataError("a factor without name or expression", path=str(p))
    return doc


def write_library(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` atomically (a temporary file renamed over ``path``)."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".qmine-", suffix=".json", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"format": FORMAT, **doc}, handle, indent=1, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def mined(*, library: str, label: Any = DEFAULT_LABEL, include_lucky: bool = False) -> FeatureSet:
    """The factors of a library as a feature set (``features: {name: mined, kwargs: {library: PATH}}``).

    :param library: the library file written by ``qcore mine``.
    :param label: name → expression of the label (default Qlib's ``LABEL0``), or one expression.
    :param include_lucky: also take factors the multiple-testing threshold flagged as lucky.
    """
    doc = read_library(library)
    features = {f["name"]: f["expression"] for f in doc["factors"] if include_lucky or not f.get("lucky")}
    if not features:
        raise DataError("the factor library holds no usable factor", path=str(library))
    labels = {"LABEL0": label} if isinstance(label, str) else dict(label or {})
    return FeatureSet(features, labels)
