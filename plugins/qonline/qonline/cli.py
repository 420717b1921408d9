"""``qcore online``: ``predict`` one date, ``simulate`` a span of dates, ``status`` of the online folder.

Arguments are checked here before any data is read; errors are the kernel's types, printed as one line by ``qcore``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

_CONFIG = click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
_SET = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
_PLUGINS = click.option("-p", "plugin_args", multiple=True, metavar="NAME",
                        help="Load plugin NAME, or block it with no:NAME.")  # fmt: skip
_FOLDER = click.option("--folder", default=None, type=click.Path(file_okay=False),
                       help="The online folder [default: the config's online.folder].")  # fmt: skip
_FORCE = click.option("--force", is_flag=True, help="Predict again even when the stored prediction is up to date.")


def _date(value: str, option: str) -> Any:
    from qcore.dates import DateError, parse_date
    from qcore.errors import ArgumentError

    try:
        return parse_date(value, option)
    except DateError as exc:
        raise ArgumentError(exc.message, option=option) from None


def _open(ctx: click.Context, config_path: str, overrides: Sequence[str], plugin_args: Sequence[str],
          folder: str | None) -> tuple[Any, Any, Any, Any]:  # fmt: skip
    """The validated config, its kernel, its opened store and the online folder."""
    from qcore.assembly import build_component
    from qcore.cli import get_kernel
    from qcore.config import read_workflow
    from qcore.errors import ArgumentError
    from qcore.plugins import PluginSelection
    from qonline.store import OnlineFolder

    workflow = read_workflow(config_path, overrides)
    kernel = get_kernel(ctx, extra_selection=workflow.plugins.then(PluginSelection.parse(plugin_args)))
    config = workflow.validate(kernel)
    root = folder or getattr(config.sections.get("online"), "folder", None)
    if root is None:
        raise ArgumentError("give the online folder (--folder, or online.folder in the config)", option="--folder")
    provider = build_component(config, kernel, "data_provider", config.data.provider, "data.provider")
    return config, kernel, provider, OnlineFolder(root)


@click.group("online")
def online_group() -> None:
    """Online serving: the latest model of the online set predicts the next bar from data up to a date."""


@online_group.command("predict")
@_CONFIG
@click.option("--date", "date_text", required=True, help="The last bar of data (the prediction is for the next).")
@_FOLDER
@_FORCE
@_SET
@_PLUGINS
@click.pass_context
def predict_command(ctx: click.Context, config_path: str, date_text: str, folder: str | None, force: bool,
                    overrides: tuple[str, ...], plugin_args: tuple[str, ...]) -> None:  # fmt: skip
    """Write predictions/DATE.parquet: the serving model's scores from data up to DATE."""
    from qonline.routine import predict

    date = _date(date_text, "--date")
    config, kernel, provider, online = _open(ctx, config_path, overrides, plugin_args, folder)
    step, _ = predict(config, kernel, provider, online, date, force=force)
    state = "written" if step.computed else "up to date"
    click.echo(f"{step.path} ({step.rows} scores, model {step.model}): {state}")


@online_group.command("simulate")
@_CONFIG
@click.option("--start", "start_text", required=True, help="First date to replay.")
@click.option("--end", "end_text", required=True, help="Last date to replay.")
@_FOLDER
@_FORCE
@_SET
@_PLUGINS
@click.pass_context
def simulate_command(ctx: click.Context, config_path: str, start_text: str, end_text: str, folder: str | None,
                     force: bool, overrides: tuple[str, ...], plugin_args: tuple[str, ...]) -> None:  # fmt: skip
    """Replay predict on every trading day from START to END, as the online routine would have run."""
    from qcore.errors import ArgumentError
    from qonline.routine import simulate

    start, end = _date(start_text, "--start"), _date(end_text, "--end")
    if start > end:
        raise ArgumentError(f"--start {start.date()} is after --end {end.date()}", option="--start")
    config, kernel, provider, online = _open(ctx, config_path, overrides, plugin_args, folder)
    steps, signal = simulate(config, kernel, provider, online, start, end, force=force)
    computed = sum(step.computed for step in steps)
    models = sorted({step.model for step in steps})
    click.echo(f"{len(steps)} days ({computed} predicted, {len(steps) - computed} up to date), {len(signal)} scores, "
               f"models {', '.join(models) or '-'}: {online.root / 'predictions'}")  # fmt: skip


@online_group.command("orders")
@_CONFIG
@click.option("--date", "date_text", required=True, help="The last bar of data (the orders are for the next).")
@click.option("--positions", "positions_path", required=True, type=click.Path(dir_okay=False),
              help="Current positions: CSV or Parquet with instrument, amount (or shares)[, price, count_day, "
                   "bought]; a CASH row gives the cash.")  # fmt: skip
@click.option("--cash", type=float, default=None, help="The cash (instead of the positions file's CASH row).")
@_FOLDER
@_FORCE
@_SET
@_PLUGINS
@click.pass_context
def orders_command(ctx: click.Context, config_path: str, date_text: str, positions_path: str, cash: float | None,
                   folder: str | None, force: bool, overrides: tuple[str, ...],
                   plugin_args: tuple[str, ...]) -> None:  # fmt: skip
    """Write orders/DATE.{csv,parquet} (orders for the next bar) and orders/DATE.targets.{csv,parquet}."""
    from pathlib import Path

    from qcore.errors import ArgumentError
    from qonline.positions import read_positions
    from qonline.routine import orders

    date = _date(date_text, "--date")
    if cash is not None and not (cash >= 0 and cash != float("inf")):
        raise ArgumentError(f"--cash must be a finite number >= 0, got {cash}", option="--cash")
    if not Path(positions_path).is_file():
        raise ArgumentError(f"the positions file {positions_path} does not exist", option="--positions")
    if cash is None and read_positions(positions_path).cash is None:
        raise ArgumentError(f"{positions_path} has no CASH row: give the cash", option="--cash")
    config, kernel, provider, online = _open(ctx, config_path, overrides, plugin_args, folder)
    step = orders(config, kernel, provider, online, date, positions_path, cash=cash, force=force)
    state = "written" if step.computed else "up to date"
    click.echo(f"{step.path} ({step.orders} orders for {step.trade_date.date()}, {step.blocked} blocked): {state}")


@online_group.command("monitor")
@_CONFIG
@click.option("--date", "date_text", required=True, help="The last bar of data the drift is measured at.")
@_FOLDER
@_FORCE
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_SET
@_PLUGINS
@click.pass_context
def monitor_command(ctx: click.Context, config_path: str, date_text: str, folder: str | None, force: bool,
                    as_json: bool, overrides: tuple[str, ...], plugin_args: tuple[str, ...]) -> None:  # fmt: skip
    """Drift on DATE: rolling IC of the live signal, PSI of each feature; write monitor/DATE.json."""
    from qonline.routine import monitor

    date = _date(date_text, "--date")
    config, kernel, provider, online = _open(ctx, config_path, overrides, plugin_args, folder)
    path, body, computed = monitor(config, kernel, provider, online, date, force=force)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    ic = body["ic"]
    rolling = "n/a" if ic["rolling"] is None else f"{ic['rolling']:.4f}"
    click.echo(f"{path}: {'written' if computed else 'up to date'}")
    click.echo(f"{'rolling IC':<24} {rolling} over {ic['days']} of {ic['window']} days (min {ic['min']})")
    for name, value in sorted(body["psi"].items(), key=lambda item: -(item[1] or 0.0))[:5]:
        click.echo(f"{'PSI ' + name:<24} {'n/a' if value is None else f'{value:.4f}'}")
    from qonline.drift import summary

    click.echo(f"{'retrain':<24} {'yes: ' + summary(body) if body['retrain'] else 'no'}")


@online_group.command("update")
@_CONFIG
@click.option("--source", "source", required=True, type=click.Path(),
              help="New bars: a CSV/Parquet file or a folder of them (qcore data import's formats).")  # fmt: skip
@_FOLDER
@_SET
@_PLUGINS
@click.pass_context
def update_command(ctx: click.Context, config_path: str, source: str, folder: str | None,
                   overrides: tuple[str, ...], plugin_args: tuple[str, ...]) -> None:  # fmt: skip
    """Append SOURCE's bars to the workflow's store (qcore data import --mode update), once per source."""
    from pathlib import Path

    from qcore.errors import ArgumentError
    from qonline.routine import update

    if not Path(source).exists():
        raise ArgumentError(f"{source} does not exist", option="--source")
    config, kernel, _provider, online = _open(ctx, config_path, overrides, plugin_args, folder)
    root = ctx.find_root().command

    def run_import(argv: list[str]) -> None:
        root.main(args=argv, prog_name="qcore", standalone_mode=False)

    step = update(config, kernel, online, source, run_import)
    last = step.last_bar.date() if step.last_bar is not None else "-"
    state = f"imported (data version {step.before} -> {step.after})" if step.computed else "already imported"
    click.echo(f"{step.store}: last bar {last}, {state}")


@online_group.command("retrain")
@_CONFIG
@click.option("--date", "date_text", default=None,
              help="The routine's date: drift flagged by monitor reports before it may trigger a retrain.")
@_FOLDER
@_FORCE
@_SET
@_PLUGINS
@click.pass_context
def retrain_command(ctx: click.Context, config_path: str, date_text: str | None, folder: str | None, force: bool,
                    overrides: tuple[str, ...], plugin_args: tuple[str, ...]) -> None:  # fmt: skip
    """Train the rolling windows the schedule has made due, else a drift model when drift was flagged."""
    from qonline.routine import retrain

    date = _date(date_text, "--date") if date_text is not None else None
    config, kernel, provider, online = _open(ctx, config_path, overrides, plugin_args, folder)
    step = retrain(config, kernel, provider, online, date=date, force=force)
    if not step.trained and step.run_id is None:
        click.echo(f"nothing to train: {step.reason}")
    else:
        run = f" (run {step.run_id})" if step.run_id else ""
        click.echo(f"trained {', '.join(step.trained) or 'no new window'}{run}: {step.reason}")


@online_group.command("status")
@click.argument("config_path", metavar="CONFIG", required=False, type=click.Path(dir_okay=False))
@_FOLDER
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_SET
@_PLUGINS
@click.pass_context
def status_command(ctx: click.Context, config_path: str | None, folder: str | None, as_json: bool,
                   overrides: tuple[str, ...], plugin_args: tuple[str, ...]) -> None:  # fmt: skip
    """What the online folder holds (last prediction, its model and data version) and, with CONFIG, the store."""
    from qcore.errors import ArgumentError
    from qonline.routine import status
    from qonline.store import OnlineFolder

    if config_path is None:
        if folder is None:
            raise ArgumentError("give CONFIG or --folder", option="--folder")
        body = status(OnlineFolder(folder))
    else:
        config, _kernel, provider, online = _open(ctx, config_path, overrides, plugin_args, folder)
        body = status(online, provider, config.data.freq)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    for key, value in body.items():
        click.echo(f"{key:<24} {value}")
