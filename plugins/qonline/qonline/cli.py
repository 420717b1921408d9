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
