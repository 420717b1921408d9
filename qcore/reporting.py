"""What a plugin contributes to a run's HTML report: titled sections of self-contained HTML.

A record appends :class:`ReportSection` objects (or a :class:`SectionBuilder`, called once the run's trading result
exists) to ``context.state.report_sections``; the record that renders the run's page (a backtest's report) places
:func:`collect_sections` at the end of it, and :func:`render_page` renders sections alone into a standalone page when
no other page is made. Sections carry inline SVG/CSS only: the report stays offline (no script or style from a CDN).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import attrs

from qcore.errors import ArgumentError, RunError


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


@attrs.frozen
class ComparedRun:
    """One stored run handed to ``qcore_render_comparison`` (``qcore runs compare --html``).

    :ivar run_id: the recorder's id of the run.
    :ivar label: a short unique name for legends and table columns (``A 20240102T…``).
    :ivar info: what the recorder's ``get_run`` returned (params, metrics, tags, artifact names, path).
    :ivar artifacts: artifact name (``report_normal_1day.parquet``) → its file on this machine; empty when the
        recorder keeps the artifacts elsewhere (a remote store).
    """

    run_id: str
    label: str
    info: Mapping[str, Any] = attrs.field(factory=dict)
    artifacts: Mapping[str, Path] = attrs.field(factory=dict)


def artifact_folder(info: Mapping[str, Any]) -> Path | None:
    """The local folder of a run's artifacts from its ``get_run`` mapping: ``path``'s ``artifacts/`` (the local
    recorder's run folder), or ``path`` itself when it is a folder or a ``file:`` URI (an MLflow artifact root);
    None when the artifacts are not on this machine."""
    location = str(info.get("path") or "")
    if not location:
        return None
    parsed = urlparse(location)
    if parsed.scheme == "file":
        folder = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:  # s3://, http://...; one letter is a Windows drive
        return None
    else:
        folder = Path(location)
    if (folder / "artifacts").is_dir():
        folder = folder / "artifacts"
    return folder if folder.is_dir() else None


def compared_runs(infos: Sequence[Mapping[str, Any]]) -> list[ComparedRun]:
    """:class:`ComparedRun` values of ``get_run`` mappings, labelled ``A``, ``B``... with their short ids."""
    runs = []
    for i, info in enumerate(infos):
        run_id = str(info.get("run_id", i))
        short = run_id if len(run_id) <= 24 else run_id[:8]
        letter = chr(ord("A") + i) if i < 26 else f"R{i + 1}"
        folder = artifact_folder(info)
        files = {} if folder is None else {str(name): folder / str(name) for name in info.get("artifacts", ())
                                           if (folder / str(name)).is_file()}  # fmt: skip
        runs.append(ComparedRun(run_id, f"{letter} {short}", info, files))
    return runs


def table_html(table_id: str, columns: Sequence[str], rows: Mapping[str, Sequence[Any]]) -> str:
    """A plain table: one row per ``rows`` item (its label, then a cell per column; floats as ``%.6g``)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        return "-" if value is None else html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(name))}</th>"
                   f"{''.join(f'<td>{cell(v)}</td>' for v in values)}</tr>" for name, values in rows.items())
    return f"<table id='{html.escape(table_id, quote=True)}'><tr><th></th>{head}</tr>{body}</table>"


def comparison_page(runs: Sequence[ComparedRun], table: Mapping[str, Mapping[str, Sequence[Any]]],
                    sections: Iterable[ReportSection]) -> str:  # fmt: skip
    """The standalone page of ``qcore runs compare --html``: which run is which, the metric (and differing
    parameter) tables, then the plugins' sections (curves)."""
    labels = [run.label for run in runs]
    legend = {"run id": [run.run_id for run in runs],
              "experiment": [run.info.get("experiment") for run in runs],
              "status": [run.info.get("status") for run in runs]}  # fmt: skip
    parts = [ReportSection("Runs", table_html("cmp-runs", labels, legend), "runs")]
    if table.get("metrics"):
        parts.append(ReportSection("Metrics", table_html("cmp-metrics", labels, table["metrics"]), "metrics"))
    if table.get("params"):
        parts.append(ReportSection("Parameters that differ", table_html("cmp-params", labels, table["params"]),
                                   "differing-params"))  # fmt: skip
    parts.extend(sections)
    return render_page("qcore: " + " vs ".join(run.run_id for run in runs), parts,
                       meta=f"{len(runs)} runs compared")


def check_page_path(path: str | Path, option: str = "--html") -> None:
    """``path`` can take an HTML page: not a folder, no existing part of its folder a file. Checked before any
    work; missing folders are created by :func:`write_page`."""
    target = Path(path)
    if target.is_dir():
        raise ArgumentError(f"{path} is a folder; give a file name such as compare.html", option=option)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ArgumentError(f"{folder} is not a folder, so {path} cannot be created", option=option)


def write_page(path: str | Path, page: str) -> Path:
    """Write ``page`` (UTF-8) to ``path``, creating its folder."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
    return target
