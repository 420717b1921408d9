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


#: Library files a parsed ``mine:`` section of this process will write when its run starts (resolved paths).
_PENDING: set[Path] = set()


def expect_library(path: str | os.PathLike[str]) -> None:
    """Note that a ``mine:`` section will write ``path`` when its run starts: until then, :func:`mined` checks its
    arguments without the file (a workflow is checked before any of its steps runs)."""
    _PENDING.add(Path(path).expanduser().resolve())


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


def mined(*, library: str, label: Any = DEFAULT_LABEL, include_lucky: bool = False, merge: str | None = None,
          merge_kwargs: Mapping[str, Any] | None = None, kernel: Any = None) -> FeatureSet:
    """The factors of a library as a feature set (``features: {name: mined, kwargs: {library: PATH}}``).

    :param library: the library file written by ``qcore mine``.
    :param label: name → expression of the label (default Qlib's ``LABEL0``), or one expression.
    :param include_lucky: also take factors the multiple-testing threshold flagged as lucky.
    :param merge: another registered feature set (``alpha158``) whose features come first; its labels are used
        unless ``label`` is given.
    :param merge_kwargs: that feature set's keyword arguments.
    :param kernel: the building kernel (passed by the kernel), for ``merge``.

    A library that a ``mine:`` section of the same workflow is about to write (:func:`expect_library`) may be
    absent while the workflow's arguments are checked: the feature set is then built without the mined factors
    (only ever for that check; the dataset step builds it from the file the mining wrote).
    """
    labels = {"LABEL0": label} if isinstance(label, str) else dict(label or {})
    pending = not Path(library).expanduser().exists() and Path(library).expanduser().resolve() in _PENDING
    if pending and merge is None:  # checked while the workflow is validated; built for real after the mining
        return FeatureSet({}, labels)
    doc = {"factors": []} if pending else read_library(library)
    features = {f["name"]: f["expression"] for f in doc["factors"] if include_lucky or not f.get("lucky")}
    if not features and not pending:
        raise DataError("the factor library holds no usable factor", path=str(library))
    if merge is None:
        return FeatureSet(features, labels)
    if kernel is None:
        from qcore import load_kernel

        kernel = load_kernel()
    base = kernel.create("feature_set", merge, **dict(merge_kwargs or {}))
    clash = sorted(set(base.features) & set(features))
    if clash:
        raise DataError(f"mined factor names clash with {merge}'s features: {', '.join(clash[:5])}",
                        path=str(library))  # fmt: skip
    merged_labels = labels if label is not DEFAULT_LABEL else (dict(base.labels) or labels)
    return FeatureSet({**base.features, **features}, merged_labels)
