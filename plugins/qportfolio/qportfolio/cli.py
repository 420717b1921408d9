"""``qcore risk build`` (daily risk data from a store) and ``qcore risk show`` (what a risk-data folder holds)."""

from __future__ import annotations

import json
from typing import Any

import click


@click.group("risk")
def risk_command() -> None:
    """Risk data in Qlib's riskdata_root layout: build it from a store, inspect it."""


@risk_command.command("build")
@click.option("--provider", "provider_name", default="qlib_bin", show_default=True, help="Data provider.")
@click.option("--provider-uri", required=True, help="The store's location (a Qlib data directory).")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="The risk-data folder to write.")
@click.option("--universe", default="csi300", show_default=True, help="The market each day covers.")
@click.option("--start", default=None, help="First day (ISO date; default: as early as the window allows).")
@click.option("--end", default=None, help="Last day (ISO date; default: the store's last day).")
@click.option("--model", "model_name", default="structured", show_default=True,
              help="Risk model: structured (PCA/FA on returns) or fundamental (factors from expressions).")
@click.option("--model-kwargs", default=None, help='The model\'s arguments as JSON, e.g. \'{"num_factors": 10}\'.')
@click.option("--window", default=240, show_default=True, type=int, help="Days of returns a returns model sees.")
@click.option("--clip", default=0.025, show_default=True, type=float, help="Per-instrument quantile clipping.")
@click.option("--units", type=click.Choice(["percent", "decimal"]), default="percent", show_default=True,
              help="Return units of the data (Qlib's files are in percent).")
@click.option("--blacklist-market", default=None, help="A market whose members are each day's blacklist (e.g. st).")
@click.option("--force", is_flag=True, help="Rebuild days already in the folder.")
@click.pass_context
def build_command(ctx: click.Context, provider_name: str, provider_uri: str, root: str, universe: str,
                  start: str | None, end: str | None, model_name: str, model_kwargs: str | None, window: int,
                  clip: float, units: str, blacklist_market: str | None, force: bool) -> None:  # fmt: skip
    """Write one folder of risk data per trading day into ROOT (atomically, day by day)."""
    from qcore.cli import get_kernel
    from qcore.errors import ConfigError
    from qportfolio.risk.build import build_risk_data, spec_from_mapping

    kwargs: Any = {}
    if model_kwargs:
        try:
            kwargs = json.loads(model_kwargs)
        except ValueError as exc:
            raise ConfigError(f"--model-kwargs is not JSON: {exc}") from None
        if not isinstance(kwargs, dict):
            raise ConfigError("--model-kwargs must be a JSON object")
    spec = spec_from_mapping({"root": root, "universe": universe, "start": start, "end": end,
                              "model": {"name": model_name, "kwargs": kwargs}, "window": window, "clip": clip,
                              "units": units, "blacklist_market": blacklist_market, "force": force})  # fmt: skip
    kernel = get_kernel(ctx)
    provider = kernel.create("data_provider", provider_name, provider_uri=provider_uri)
    result = build_risk_data(provider, kernel.registry("operator"), spec)
    span = f"{result.first.date()}..{result.last.date()}" if result.first is not None else "no day"
    click.echo(f"risk data {span}: {result.written} day(s) written, {result.skipped} kept"
               + (f", {result.factors} factors" if result.written else "") + f" in {result.root}")


@risk_command.command("show")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--date", "date", default=None, help="Show this day's factors and universe (ISO date).")
def show_command(root: str, date: str | None) -> None:
    """Summarise the risk data in ROOT (ours or Qlib's)."""
    from qcore.dates import parse_date
    from qcore.errors import DataError
    from qportfolio.risk.riskdata import RiskData, read_meta

    data = RiskData(root)
    days = data.days
    if days.empty:
        raise DataError("no YYYYMMDD day folder", path=root)
    meta = read_meta(root)
    click.echo(f"{len(days)} day(s) {days[0].date()}..{days[-1].date()}"
               + (f"; model {meta.get('model')}, universe {meta.get('universe')}, units {meta.get('units')}"
                  if meta else "; no riskdata.json (Qlib's files?)"))  # fmt: skip
    day = parse_date(date, "--date") if date else days[-1]
    found = data.get(day)
    if found is None:
        raise DataError(f"no risk data for {day.date()}", path=root)
    risk, blacklist = found
    sigma = risk.specific_risk
    click.echo(f"{day.date()}: {len(risk.instruments)} instruments, {risk.exposures.shape[1]} factors "
               f"({', '.join(map(str, risk.exposures.columns[:12]))}{'...' if risk.exposures.shape[1] > 12 else ''}); "
               f"specific risk median {sigma.median():.4g}, max {sigma.max():.4g}; {len(blacklist)} blacklisted")
