"""What a plugin contributes to a run's HTML report: titled sections of self-contained HTML.

A record appends :class:`ReportSection` objects (or a :class:`SectionBuilder`, called once the run's trading result
exists) to ``context.state.report_sections``; the record that renders the run's page (a backtest's report) places
:func:`collect_sections` at the end of it, and :func:`render_page` renders sections alone into a standalone page when
no other page is made. Sections carry inline SVG/CSS only: the report stays offline (no script or style from a CDN).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs


@attrs.frozen
class ReportSection:
    """One titled part of a run's HTML report.

    :ivar title: the section's heading (plain text; escaped when rendered).
    :ivar html: the section's body: self-contained HTML (inline SVG and markup, no external resource).
    :ivar anchor: an id for the section's heading (links and tests find it by this id).
    """

    title: str
    html: str
    anchor: str = ""


#: Called with the run's state once the run has traded (``state.trading`` set, when a backtest ran): the sections
#: that need the trading result, such as position analysis.
SectionBuilder = Callable[[Any], Sequence[ReportSection]]


def collect_sections(state: Any) -> list[ReportSection]:
    """The sections in ``state.report_sections``, builders called with ``state`` and expanded in place."""
    sections: list[ReportSection] = []
    for item in getattr(state, "report_sections", ()):
        if isinstance(item, ReportSection):
            sections.append(item)
        elif callable(item):
            sections.extend(item(state))
        else:
            raise TypeError(f"report_sections holds {type(item).__name__}: a ReportSection or a builder expected")
    return sections


def sections_html(sections: Iterable[ReportSection]) -> str:
    """The sections as HTML: an ``<h2>`` heading each, then its body."""
    parts = []
    for section in sections:
        anchor = f" id='{html.escape(section.anchor, quote=True)}'" if section.anchor else ""
        parts.append(f"<h2{anchor}>{html.escape(section.title)}</h2>{section.html}")
    return "".join(parts)


_STYLE = ("body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}"
          "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;"
          "text-align:right}.note{color:#666;font-size:13px}svg{display:block;margin:8px 0}")  # fmt: skip


def render_page(title: str, sections: Iterable[ReportSection], *, meta: str = "") -> str:
    """A standalone, self-contained HTML page of ``sections`` (inline CSS only)."""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>{html.escape(meta)}</p>{sections_html(sections)}</body></html>")  # fmt: skip
