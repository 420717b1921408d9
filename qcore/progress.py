"""Progress bars for long steps (training epochs, backtest days) that stay quiet off a terminal.

``progress(iterable, label)`` draws a bar on stderr only when stderr is a terminal and ``QCORE_PROGRESS`` is not
``0``; otherwise it returns the iterable untouched, so logs and CI output carry no bar characters.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    """Whether bars are drawn: stderr is a terminal and ``QCORE_PROGRESS`` does not turn them off."""
    setting = os.environ.get("QCORE_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "off", "no"):
        return False
    if setting in ("1", "true", "on", "yes"):
        return True
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``iterable``, showing a bar labelled ``label`` when :func:`enabled`."""
    if not enabled():
        yield from iterable
        return
    import click

    length = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    with click.progressbar(iterable, length=length, label=label, file=sys.stderr) as bar:
        yield from bar
