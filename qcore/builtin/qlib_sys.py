"""Qlib's ``sys`` section: extra import paths for the duration of a run.

A Qlib workflow may start with ``sys: {path: [...], rel_path: [...]}``: ``path`` entries are appended to
``sys.path`` as given, ``rel_path`` entries relative to the config file's folder (Qlib's ``qrun`` does the same
before it builds anything). qcore finds components by registry name, never by ``module_path``, so these paths serve
the code a run imports while it runs: a plugin's lazily imported module (``lazy("mymodule:MyModel")``) kept beside
the config, a processor's helper. They are appended when the run starts (``qcore_before_run``, after the plugins
are loaded: a plugin module itself is named with ``-p path/to/module.py``) and removed again when it ends, failed or
not, so nothing leaks into the next run of the same process. Processes a run starts (a ``processes`` or ``ray``
backend's workers) do not inherit them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from qcore.config import Reader

#: the section's key (Qlib's), and the key under which a run remembers the paths it appended.
SECTION = "sys"
_APPENDED = "qlib_workflow.sys_paths"


@attrs.frozen
class SysPaths:
    """The absolute folders a run appends to ``sys.path``, in order."""

    paths: tuple[str, ...] = ()


def _entries(reader: Reader, value: Any, path: str) -> list[str]:
    """Qlib's path list: one string or a list of strings."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise reader.fail("expected a folder or a list of folders", path)
    return [reader.string(item, f"{path}.{i}") for i, item in enumerate(items)]


class SysSection:
    """The ``sys`` section: ``path`` (folders as given) and ``rel_path`` (relative to the config file's folder)."""

    def parse(self, value: Any, reader: Reader, path: str) -> SysPaths:
        """The folders, made absolute; a folder that does not exist is an error naming the entry."""
        body = reader.mapping(value, path, ("path", "rel_path"))
        source = reader.doc.source
        base = Path(source).resolve().parent if source else Path.cwd()
        folders: list[str] = []
        for key, root in (("path", None), ("rel_path", base)):
            for i, entry in enumerate(_entries(reader, body.get(key), f"{path}.{key}")):
                where = f"{path}.{key}" if isinstance(body.get(key), str) else f"{path}.{key}.{i}"
                folder = Path(entry).expanduser()
                folder = (root / folder if root is not None else folder).resolve()
                if not folder.is_dir():
                    raise reader.fail(f"no such folder: {folder}", where)
                if str(folder) not in folders:
                    folders.append(str(folder))
        return SysPaths(tuple(folders))

    def components(self, parsed: SysPaths, path: str) -> Sequence[tuple[str, str, Any]]:
        """The section names no component."""
        return ()


def append_paths(config: Any, extra: dict[str, Any]) -> None:
    """Append the run's ``sys`` folders that ``sys.path`` lacks; remember them in ``extra`` for :func:`restore`."""
    parsed = config.sections.get(SECTION)
    if not isinstance(parsed, SysPaths):
        return
    added = [folder for folder in parsed.paths if folder not in sys.path]
    sys.path.extend(added)
    extra[_APPENDED] = added


def restore(extra: dict[str, Any]) -> None:
    """Remove the folders :func:`append_paths` appended (each once, from the end)."""
    for folder in reversed(extra.pop(_APPENDED, [])):
        for i in range(len(sys.path) - 1, -1, -1):
            if sys.path[i] == folder:
                del sys.path[i]
                break
