"""Helpers shared by the qdata_cn tests."""

from __future__ import annotations

from pathlib import Path


def tree_bytes(root: Path, skip: tuple[str, ...] = (".qcore.lock",)) -> dict[str, bytes]:
    """Every file under ``root`` (relative path → bytes), ignoring the lock file."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def tree_dirs(root: Path) -> list[str]:
    """Every folder under ``root``."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())
