"""``qcore ddgda CONFIG``: plain rolling and DDG-DA on the same rolling workflow, with both signals' IC."""

from __future__ import annotations

import json
import math

import click


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


@click.command("ddgda")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--since", "since_text", default=None, metavar="DATE",
              help="Also measure the IC from DATE on (a regime shift's first day).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("-p", "plugin_args", multiple=True, metavar="NAME", help="Load plugin NAME, or block it with no:NAME.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ddgda_command(ctx: click.Context, config_path: str, since_text: str | None, overrides: tuple[str, ...],
                  plugin_args: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Run CONFIG's rolling workflow with equal sample weights and with DDG-DA's, and print both ICs."""
    from qcore.cli import get_kernel
    from qcore.config import read_workflow
    from qcore.dates import DateError, parse_date
    from qcore.errors import ArgumentError
    from qcore.plugins import PluginSelection
    from qmeta.compare import compare

    since = None
    if since_text is not None:
        try:
            since = parse_date(since_text, "--since")
        except DateError as exc:
            raise ArgumentError(exc.message, option="--since") from None
    workflow = read_workflow(config_path, overrides)
    kernel = get_kernel(ctx, extra_selection=workflow.plugins.then(PluginSelection.parse(plugin_args)))
    config = workflow.validate(kernel)
    results = compare(config.params(), kernel, since=since)
    if as_json:
        click.echo(json.dumps({r.name: {"run_id": r.run_id, **r.figures} for r in results}, indent=1,
                              default=lambda v: None))  # fmt: skip
        return
    names = list(results[0].figures)
    click.echo(f"{'':10}" + "".join(f"{name:>16}" for name in names))
    for r in results:
        click.echo(f"{r.name:10}" + "".join(f"{_number(r.figures[name]):>16}" for name in names))
    for r in results:
        click.echo(f"{r.name} run: {r.run_id}")
