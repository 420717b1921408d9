"""``qcore data ...``: synth, import, import-pit, import-weights, export, check, info, recover and restamp commands
for bin stores.

Only click is imported here; each command imports what it needs when it runs. Errors are raised as
:class:`qcore.errors.DataError`, which the ``qcore`` command line prints as one line with exit code 5.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import click


def _split(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [v.strip() for v in str(value).split(",") if v.strip()]
    return out


@click.group("data")
def data_group() -> None:
    """Build, import, export and check Qlib-format data stores (China A-share adapter)."""


@data_group.command("synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Store directory to write.")
@click.option("--instruments", default=300, show_default=True, type=click.IntRange(1), help="Number of stocks.")
@click.option("--days", default=2500, show_default=True, type=click.IntRange(2), help="Number of trading days.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same bytes).")
@click.option("--freq", default="day", show_default=True, type=click.Choice(["day", "1min"]),
              help="1min also writes 240 one-minute bars per day, consistent with the daily bars.")  # fmt: skip
@click.option("--start", default="2015-01-05", show_default=True, help="First calendar date.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store.")
@click.option("--fundamentals/--no-fundamentals", default=True, show_default=True,
              help="Also write point-in-time quarterly and annual reports (financial/, read with $$field and P()).")
@click.option("--regime-shift", "regime_shift", default=None, metavar="DATE",
              help="The planted loadings change on DATE (qdata_cn.synth_regime).")
@click.option("--regime-after", "regime_after", default=None, metavar="R,M,V",
              help="Reversal, momentum and volume loadings from --regime-shift on [default: -0.04,0.03,-0.02].")
@click.option("--planted", default=None, metavar="EXPR",
              help="Plant EXPR (reading only $volume) in next-day returns (qdata_cn.synth_planted).")
@click.option("--planted-strength", "planted_strength", default=0.1, show_default=True, type=float,
              help="The planted effect in daily vols per cross-sectional z-score of --planted.")
def synth_command(out: str, instruments: int, days: int, seed: int, freq: str, start: str, overwrite: bool,
                  fundamentals: bool, regime_shift: str | None, regime_after: str | None, planted: str | None,
                  planted_strength: float) -> None:
    """Write a synthetic China A-share market (deterministic per seed) as a Qlib bin store."""
    from qdata_cn.synth import synthesize

    if planted is not None:
        from qcore.cli import get_kernel
        from qcore.errors import ArgumentError
        from qdata_cn.synth_planted import synthesize_planted

        if regime_shift is not None or regime_after is not None or freq != "day":
            raise ArgumentError("cannot be combined with --regime-shift or --freq 1min", option="--planted")
        summary = synthesize_planted(out, planted, get_kernel(click.get_current_context()).registry("operator"),
                                     strength=planted_strength, instruments=instruments, days=days, seed=seed,
                                     start=start, overwrite=overwrite, fundamentals=fundamentals)  # fmt: skip
    elif regime_shift is not None or regime_after is not None:
        from qdata_cn.synth_regime import RegimeShift, synthesize_regime

        if regime_shift is None:
            from qcore.errors import ArgumentError

            raise ArgumentError("needs --regime-shift DATE", option="--regime-after")
        summary = synthesize_regime(out, RegimeShift.parse(regime_shift, regime_after), instruments=instruments,
                                    days=days, seed=seed, start=start, freq=freq, overwrite=overwrite,
                                    fundamentals=fundamentals)  # fmt: skip
    else:
        summary = synthesize(out, instruments=instruments, days=days, seed=seed, start=start, freq=freq,
                             overwrite=overwrite, fundamentals=fundamentals)
    click.echo(
        f"wrote {summary['instruments']} instruments x {summary['days']} days ({summary['start']}..{summary['end']}, "
        f"{'+'.join(summary['freqs'])}) to {summary['path']} in {summary['seconds']:.2f}s"
    )


@data_group.command("import-pit")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.option("--to", "to", required=True, type=click.Path(file_okay=False), help="Store directory (must exist).")
@click.option("--lock-timeout", default=0.0, show_default=True, type=float,
              help="Seconds to wait for another writer to finish.")  # fmt: skip
def import_pit_command(src: str, to: str, lock_timeout: float) -> None:
    """Import point-in-time period data (fundamentals) from a long CSV or Parquet file SRC.

    Columns: instrument, date (publication day), period (201903 / 2019Q3, or 2019), field (eps_q, roe_a), value.
    A later row of the same period is an amendment. Written atomically into the store's financial/ folder (Qlib's
    PIT layout), merged with what it holds; read with P($$eps_q), PRef($$eps_q, 201903) in expressions.
    """
    from qdata_cn.pit_import import import_pit

    summary = import_pit(src, to, lock_timeout=lock_timeout)
    click.echo(
        f"imported {summary['records']} new record(s) of {len(summary['fields'])} field(s) for "
        f"{summary['instruments']} instrument(s) into {summary['path']} ({summary['files']} file pair(s) written) "
        f"in {summary['seconds']:.2f}s"
    )


@data_group.command("import-weights")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.option("--to", "to", required=True, type=click.Path(file_okay=False), help="Store directory (must exist).")
@click.option("--market", required=True, help="The index: the field written is $<market>_weight (Qlib's).")
@click.option("--fill/--no-fill", default=True, show_default=True,
              help="Hold a date's weights until the next date in the file (the last to the calendar's end).")
@click.option("--normalise", is_flag=True, help="Store each date's weights scaled to sum to 1.")
@click.option("--strict", is_flag=True, help="A date whose weights do not sum to 1 is an error, not a warning.")
@click.option("--tolerance", default=0.01, show_default=True, type=float,
              help="Relative distance of a date's sum from 1 that is accepted without a warning.")
@click.option("--lock-timeout", default=0.0, show_default=True, type=float,
              help="Seconds to wait for another writer to finish.")  # fmt: skip
def import_weights_command(src: str, to: str, market: str, fill: bool, normalise: bool, strict: bool,
                           tolerance: float, lock_timeout: float) -> None:  # fmt: skip
    """Import benchmark weights (CSV or Parquet: date, instrument, weight) as the store's $<market>_weight field.

    Every row is checked first (dates on the store's calendar, known instruments, non-negative weights); the field
    is then replaced atomically. Daily sums off 1 are a warning (--strict: an error); percent files are recognised.
    """
    import logging

    from qdata_cn.weights_import import import_weights

    class _Echo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(f"Warning: {record.getMessage()}", err=True)

    log = logging.getLogger("qdata_cn.weights")
    handler = _Echo(logging.WARNING)
    log.addHandler(handler)
    try:
        summary = import_weights(src, to, market, fill=fill, normalise=normalise, strict=strict, tolerance=tolerance,
                                 lock_timeout=lock_timeout)  # fmt: skip
    finally:
        log.removeHandler(handler)
    click.echo(
        f"wrote {summary['field']} for {summary['instruments']} instrument(s), {summary['dates']} published date(s) "
        f"over {summary['days']} day(s) ({summary['first']}..{summary['last']}, {summary['units']}) to "
        f"{summary['path']} in {summary['seconds']:.2f}s"
        + (f"; removed it from {summary['removed']} instrument(s) not in the file" if summary["removed"] else "")
    )


@data_group.command("import")
@click.argument("src", type=click.Path(exists=True))
@click.option("--to", "to", required=True, type=click.Path(file_okay=False), help="Store directory.")
@click.option("--freq", default="day", show_default=True, help="Frequency of the bars (day, 1min, ...).")
@click.option("--symbol-col", default="symbol", show_default=True,
              help="Column with the symbol; without it the file name (stem) is the symbol.")  # fmt: skip
@click.option("--date-col", default="date", show_default=True, help="Column with the date or timestamp.")
@click.option("--date-format", default=None,
              help="strftime format of the dates (e.g. %d/%m/%Y); default: inferred once per file, ambiguity is an "
                   "error.")  # fmt: skip
@click.option("--include-fields", multiple=True, help="Only these fields (comma-separated or repeated).")
@click.option("--exclude-fields", multiple=True, help="Leave out these fields (comma-separated or repeated).")
@click.option("--mode", default="all", show_default=True, type=click.Choice(["all", "update"]),
              help="all: build a store; update: append new dates and instruments to one.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="With --mode all: replace an existing store.")
@click.option("--overwrite-overlap", is_flag=True,
              help="With --mode update: replace stored values on dates the store already holds.")  # fmt: skip
@click.option("--skip-bad-rows", is_flag=True, help="Skip bad rows and list them in a report instead of failing.")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Where --skip-bad-rows writes its report  [default: ./qcore-import-report.csv]")  # fmt: skip
@click.option("--sort", "sort_rows", is_flag=True, help="Sort rows by date instead of rejecting unsorted input.")
@click.option("--lock-timeout", default=0.0, show_default=True, type=float,
              help="Seconds to wait for another writer to finish.")  # fmt: skip
@click.option("--region", default="cn", show_default=True, type=click.Choice(["cn", "us", "tw"]),
              help="Market whose sessions minute stamps must fall in (cn: 09:30-11:29, 13:00-14:59).")  # fmt: skip
@click.option("--bar-stamps", default="start", show_default=True, type=click.Choice(["start", "end"]),
              help="Whether the source stamps minute bars by their start (as Qlib) or end (09:31 ... 15:00: moved "
                   "one bar earlier).")  # fmt: skip
def import_command(
    src: str,
    to: str,
    freq: str,
    symbol_col: str,
    date_col: str,
    date_format: str | None,
    include_fields: tuple[str, ...],
    exclude_fields: tuple[str, ...],
    mode: str,
    overwrite: bool,
    overwrite_overlap: bool,
    skip_bad_rows: bool,
    report: str | None,
    sort_rows: bool,
    lock_timeout: float,
    region: str,
    bar_stamps: str,
) -> None:
    """Import CSV or Parquet bars from SRC (a file or a folder) into a Qlib bin store.

    Minute bars (--freq 1min, Qlib's collector format: symbol, date with a time, fields) are stamped by their
    start; every stamp must be a bar start of the region's sessions, and the calendar holds every bar of each day.
    """
    from qdata_cn.importer import import_data

    summary = import_data(
        src,
        to,
        freq=freq,
        symbol_col=symbol_col,
        date_col=date_col,
        date_format=date_format,
        include_fields=_split(include_fields) or None,
        exclude_fields=_split(exclude_fields),
        mode=mode,
        overwrite=overwrite,
        overwrite_overlap=overwrite_overlap,
        skip_bad_rows=skip_bad_rows,
        sort=sort_rows,
        report=report,
        lock_timeout=lock_timeout,
        region=region,
        bar_stamps=bar_stamps,
    )
    first, last, n = summary["calendar"]
    click.echo(
        f"{summary['mode']}: {summary['added']} instruments added, {summary['updated']} updated, "
        f"{summary['unchanged']} unchanged; {summary['files']} files written; calendar {first}..{last} ({n} rows, "
        f"{summary['new_dates']} new); fields: {', '.join(summary['fields'])}"
    )
    if summary["skipped_columns"]:
        click.echo(f"non-numeric columns left out: {', '.join(summary['skipped_columns'])}")
    if summary["skipped_rows"]:
        click.echo(f"skipped {summary['skipped_rows']} bad rows; report: {summary['report']}", err=True)


@data_group.command("export")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "to", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--format", "fmt", default="csv", show_default=True, type=click.Choice(["csv", "parquet"]))
@click.option("--layout", default="per-symbol", show_default=True, type=click.Choice(["per-symbol", "long"]),
              help="A file per symbol, or one long table with a symbol column.")  # fmt: skip
@click.option("--freq", default="day", show_default=True)
@click.option("--fields", multiple=True, help="Only these fields (comma-separated or repeated).")
@click.option("--instruments", multiple=True, help="Only these symbols (comma-separated or repeated).")
def export_command(
    store: str, to: str, fmt: str, layout: str, freq: str, fields: tuple[str, ...], instruments: tuple[str, ...]
) -> None:
    """Export a store's bars to CSV or Parquet files that re-import to identical bins."""
    from qdata_cn.exporter import export_store

    summary = export_store(
        store, to, fmt=fmt, layout=layout, freq=freq, fields=_split(fields) or None,
        instruments=_split(instruments) or None,
    )  # fmt: skip
    click.echo(f"exported {summary['rows']} rows to {summary['files']} {fmt} files in {summary['out']}")


@data_group.command("check")
@click.argument("store", type=click.Path(file_okay=False))
@click.option("--freq", default="day", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--max-jump", default=0.5, show_default=True, type=float, help="Close moves beyond this are reported.")
@click.option("--max-nan-run", default=None, type=int, help="Report all-NaN runs longer than this many rows.")
@click.option("--region", default="cn", show_default=True, type=click.Choice(["cn", "us", "tw"]),
              help="Market whose sessions a minute calendar is checked against.")  # fmt: skip
@click.pass_context
def check_command(
    ctx: click.Context, store: str, freq: str, as_json: bool, max_jump: float, max_nan_run: int | None, region: str
) -> None:
    """Check a store: headers, lengths, calendar alignment, NaN runs, jumps, $factor, orphans, minute stamps.
    Exit 1 on errors."""
    from qdata_cn.check import check_store, format_table

    findings = check_store(store, freq, max_jump=max_jump, max_nan_run=max_nan_run, region=region)
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in findings], indent=1))
    else:
        click.echo(format_table(findings))
    if any(f.severity == "error" for f in findings):
        ctx.exit(1)


@data_group.command("info")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_command(store: str, as_json: bool) -> None:
    """Summarise a store: frequencies, calendar ranges, markets, fields and instrument counts."""
    from qdata_cn.binstore import QlibBinProvider
    from qdata_cn.naming import date_format

    provider = QlibBinProvider(store)
    info: dict[str, object] = {"store": str(provider.root), "version": provider.version, "freqs": {}, "markets": {}}
    for freq in provider.freqs():
        cal = provider.calendar(freq)
        fmt = date_format(freq)
        info["freqs"][freq] = {  # type: ignore[index]
            "rows": len(cal),
            "start": cal[0].strftime(fmt) if len(cal) else None,
            "end": cal[-1].strftime(fmt) if len(cal) else None,
            "fields": provider.fields(freq),
        }
    for market in provider.markets():
        info["markets"][market] = len(provider.universe(market))  # type: ignore[index]
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    click.echo(f"store   {info['store']}  (version {info['version']})")
    for freq, item in info["freqs"].items():  # type: ignore[union-attr]
        fields = ", ".join(item["fields"])
        click.echo(f"{freq:<7} {item['rows']} rows {item['start']} .. {item['end']}; fields {fields}")
    click.echo("markets " + ", ".join(f"{m} ({n})" for m, n in info["markets"].items()))  # type: ignore[union-attr]


@data_group.command("recover")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--lock-timeout", default=0.0, show_default=True, type=float,
              help="Seconds to wait for a running writer to finish.")  # fmt: skip
def recover_command(store: str, lock_timeout: float) -> None:
    """Finish a write that was interrupted while publishing, and remove stale temporary files and folders.

    The journal is checked first: one that names anything but the store's own files is refused and nothing changes.
    """
    from qdata_cn.writer import StoreTransaction

    txn = StoreTransaction(store, lock_timeout=lock_timeout)
    txn.open()  # opening recovers; nothing is staged
    txn.rollback()
    done = txn.recovered
    if done["renamed"] or done["deleted"] or done["swept"]:
        click.echo(f"completed an interrupted write ({done['renamed']} files renamed, {done['deleted']} removed) "
                   f"and removed {done['swept']} temporary files and folders" if done["renamed"] or done["deleted"]
                   else f"removed {done['swept']} temporary files and folders")  # fmt: skip
    click.echo(f"store {store} is consistent")


@data_group.command("restamp")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--freq", default="1min", show_default=True, help="The minute calendar to restamp.")
@click.option("--region", default="cn", show_default=True, type=click.Choice(["cn", "us", "tw"]))
@click.option("--lock-timeout", default=0.0, show_default=True, type=float,
              help="Seconds to wait for a running writer to finish.")  # fmt: skip
def restamp_command(store: str, freq: str, region: str, lock_timeout: float) -> None:
    """Move a minute store written by an older qcore to Qlib's stamps, atomically.

    A calendar stamped by bar ends (09:31 ... 15:00) becomes bar starts (09:30 ... 14:59; the bins stay), and
    instrument spans run from midnight of their first day to the last bar of their last day. Running it again
    changes nothing.
    """
    from qdata_cn.restamp import restamp_store

    done = restamp_store(store, freq, region, lock_timeout=lock_timeout)
    files = ", ".join(done["instrument_files"]) or "none"
    what = f"{done['calendar']} {freq} stamps moved to bar starts" if done["calendar"] else \
        f"the {freq} calendar already stamps bar starts"  # fmt: skip
    click.echo(f"{what}; instrument spans rewritten: {files}")
