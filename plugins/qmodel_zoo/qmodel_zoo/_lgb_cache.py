"""An on-disk cache of constructed LightGBM datasets, so a re-run with new model parameters skips construction.

Building LightGBM's binned dataset (sampling each feature, finding bin boundaries, binning every value) is a large
share of training time, and it depends only on the data and on LightGBM's *dataset* parameters (``max_bin``,
``min_data_in_bin``, ``bin_construct_sample_cnt``, ``feature_pre_filter`` with ``min_data_in_leaf``, categorical
settings, seeds...), not on boosting parameters such as ``learning_rate`` or ``num_leaves``. An entry is keyed by

* the dataset's fingerprint (:attr:`qcore.dataset.PanelDataset.fingerprint`: the store's data version, the feature
  and label expressions, the universe, the segments, the fit window and the processors' settings),
* every LightGBM parameter except those known to affect boosting only (:data:`BOOSTING_ONLY`, aliases resolved):
  an unknown or new parameter therefore changes the key, it can never reuse a dataset built without it,
* LightGBM's version and the entry format.

Each entry is a folder holding LightGBM's binary dataset files (``train.bin``, ``valid.bin``), the feature names
and a digest of each file (``meta.json``). Entries are written into a temporary folder and renamed into place, so a
reader never sees half an entry; a file whose size or digest does not match, or that LightGBM cannot load, is
ignored with a warning and the entry rebuilt. The cache is bounded: after a write, the least recently used entries
are removed until the total is under the limit.

Where: ``$QCORE_CACHE_DIR/lgb_dataset``, else ``$XDG_CACHE_HOME/qcore/lgb_dataset``, else
``~/.cache/qcore/lgb_dataset`` (next to the expression cache's ``~/.cache/qcore/expr``). Switches:
``QCORE_LGB_DATASET_CACHE=0`` (or the model's ``dataset_cache=False``) turns it off,
``QCORE_LGB_DATASET_CACHE_MAX_MB`` sets the bound (default 4096).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Bumped when the layout of an entry changes (older entries are then never read).
FORMAT = 1
META = "meta.json"
DEFAULT_MAX_MB = 4096
#: a temporary folder this old is a crashed writer's (a live one writes an entry within seconds)
STALE_TMP_SECONDS = 6 * 3600
#: LightGBM parameters (canonical names) that change how trees are grown, never how the dataset is binned.
BOOSTING_ONLY = frozenset({
    "learning_rate", "num_leaves", "max_depth", "lambda_l1", "lambda_l2", "feature_fraction",
    "feature_fraction_bynode", "feature_fraction_seed", "bagging_fraction", "pos_bagging_fraction",
    "neg_bagging_fraction", "bagging_freq", "bagging_seed", "min_gain_to_split", "num_iterations",
    "early_stopping_round", "early_stopping_min_delta", "first_metric_only", "metric", "metric_freq",
    "num_threads", "verbosity", "extra_trees", "extra_seed", "path_smooth", "max_delta_step", "drop_rate",
    "max_drop", "skip_drop", "xgboost_dart_mode", "uniform_drop", "drop_seed", "top_rate", "other_rate",
    "is_provide_training_metric",
})  # fmt: skip


def _canonical_names() -> dict[str, str]:
    """Every LightGBM parameter alias → its canonical name (empty when this LightGBM cannot list them)."""
    from qmodel_zoo._lightgbm import lgb

    try:
        aliases = lgb.basic._ConfigAliases._get_all_param_aliases()
    except Exception:  # a LightGBM without the listing: every name stays as given (and so in the key)
        return {}
    return {alias: name for name, names in aliases.items() for alias in [name, *names]}


def dataset_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of ``params`` that may affect LightGBM's dataset (canonical names, sorted)."""
    canonical = _canonical_names()
    kept = {canonical.get(k, k): v for k, v in params.items()}
    return {k: kept[k] for k in sorted(kept) if k not in BOOSTING_ONLY}


def enabled(switch: bool = True) -> bool:
    """Whether the cache is on: ``switch`` (the model's argument) and not ``QCORE_LGB_DATASET_CACHE=0``."""
    env = os.environ.get("QCORE_LGB_DATASET_CACHE", "1").strip().lower()
    return bool(switch) and env not in ("0", "false", "no", "off")


def default_root() -> Path:
    """The cache folder (see the module docstring)."""
    base = os.environ.get("QCORE_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "lgb_dataset"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "qcore" / "lgb_dataset"


def _max_bytes() -> int:
    raw = os.environ.get("QCORE_LGB_DATASET_CACHE_MAX_MB", "")
    try:
        return int(float(raw) * 2**20) if raw.strip() else DEFAULT_MAX_MB * 2**20
    except ValueError:
        logger.warning("QCORE_LGB_DATASET_CACHE_MAX_MB=%r is not a number; using %d", raw, DEFAULT_MAX_MB)
        return DEFAULT_MAX_MB * 2**20


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _is_entry(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


class LgbDatasetCache:
    """Constructed LightGBM datasets under ``root``, at most ``max_bytes`` in all.

    :param root: the cache folder (default :func:`default_root`).
    :param max_bytes: size bound (default ``QCORE_LGB_DATASET_CACHE_MAX_MB``, else 4096 MiB).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.max_bytes = _max_bytes() if max_bytes is None else int(max_bytes)

    def key(self, fingerprint: str, params: Mapping[str, Any], segments: Sequence[str]) -> str:
        """The entry name for a dataset's ``fingerprint``, the model's LightGBM ``params`` and the ``segments``
        built (``train`` and, when early stopping, ``valid``)."""
        from qmodel_zoo._lightgbm import lgb

        digest = hashlib.blake2b(digest_size=16)
        for part in (FORMAT, lgb.__version__, fingerprint, sorted(dataset_params(params).items()), list(segments)):
            digest.update(repr(part).encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def load(self, key: str, params: Mapping[str, Any], segments: Sequence[str]) -> tuple[list[Any], list[str]] | None:
        """The constructed datasets of ``segments`` (the first one the reference of the others) and the feature
        names, or None when there is no usable entry (a damaged one is reported and removed)."""
        from qmodel_zoo._lightgbm import lgb

        folder = self.root / key
        meta_path = folder / META
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            files = meta["files"]
            if meta.get("format") != FORMAT or [f["segment"] for f in files] != list(segments):
                raise ValueError("it was written for other segments or by another version")
            for entry in files:
                path = folder / entry["name"]
                if path.stat().st_size != entry["size"] or _file_digest(path) != entry["digest"]:
                    raise ValueError(f"{entry['name']} does not match its recorded size and digest")
            built: list[Any] = []
            for entry in files:
                reference = built[0] if built else None
                data = lgb.Dataset(str(folder / entry["name"]), params=dict(params), reference=reference)
                built.append(data.construct())
            names = [str(n) for n in meta["features"]]
            if built[0].num_feature() != len(names):
                raise ValueError("its feature count does not match its feature names")
        except (OSError, ValueError, KeyError, TypeError, lgb.basic.LightGBMError) as exc:
            logger.warning("LightGBM dataset cache entry %s is unusable (%s); rebuilding it", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        os.utime(meta_path)  # most recently used
        return built, names

    def store(self, key: str, datasets: Sequence[Any], segments: Sequence[str], features: Sequence[str]) -> bool:
        """Write constructed ``datasets`` (one per segment) as entry ``key``; False when it was not written (too
        large for the bound, no space, no permission: a warning, the run goes on)."""
        folder = self.root / key
        if folder.exists():
            return True
        tmp: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
            files = []
            for segment, data in zip(segments, datasets, strict=True):
                path = tmp / f"{segment}.bin"
                data.save_binary(str(path))
                files.append({"segment": segment, "name": path.name, "size": path.stat().st_size,
                              "digest": _file_digest(path)})  # fmt: skip
            total = sum(f["size"] for f in files)
            if total > self.max_bytes:
                logger.info("LightGBM dataset (%d bytes) exceeds the cache bound (%d); not cached", total,
                            self.max_bytes)  # fmt: skip
                return False
            meta = {"format": FORMAT, "files": files, "features": [str(f) for f in features]}
            (tmp / META).write_text(json.dumps(meta), encoding="utf-8")
            try:
                os.rename(tmp, folder)
            except OSError:  # another run wrote the same entry meanwhile: keep theirs
                return folder.exists()
            tmp = None
            self._prune(keep=folder)
            return True
        except Exception as exc:
            logger.warning("LightGBM dataset cache %s not written: %s", self.root, exc)
            return False
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def entries(self) -> list[tuple[float, int, Path]]:
        """``(last use, bytes, folder)`` of every entry, least recently used first."""
        found = []
        if not self.root.is_dir():
            return found
        for folder in self.root.iterdir():
            if not (_is_entry(folder.name) and folder.is_dir() and not folder.is_symlink()):
                continue
            try:
                used = (folder / META).stat().st_mtime
                size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            except OSError:
                continue
            found.append((used, size, folder))
        return sorted(found)

    def _prune(self, keep: Path) -> None:
        """Remove the least recently used entries beyond the bound, and temporary folders of crashed writers."""
        import time

        for tmp in self.root.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if tmp.is_dir() and time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                    shutil.rmtree(tmp, ignore_errors=True)
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for _, size, folder in entries:
            if total <= self.max_bytes:
                break
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)
                total -= size

    def clear(self) -> None:
        """Remove every entry (folders this cache made; anything else under ``root`` is left alone)."""
        for _, _, folder in self.entries():
            shutil.rmtree(folder, ignore_errors=True)
