"""``qcore mine CONFIG``: run a factor search and write its library (formatting and exit codes only)."""

from __future__ import annotations

import click


@click.command("mine")
@click.argument("config", type=click.Path(dir_okay=False))
@click.pass_context
def mine_command(ctx: click.Context, config: str) -> None:
    """Search factor expressions as CONFIG says; write the mined factors to its library file."""
    from qcore.cli import get_kernel
    from qmine.config import load_config
    from qmine.search import mine

    cfg = load_config(config)  # checked whole before any data is read
    mine(cfg, get_kernel(ctx), echo=click.echo)
