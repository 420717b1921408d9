"""``qcore rl train CONFIG`` and ``qcore rl eval CONFIG --checkpoint PATH``."""

from __future__ import annotations

import json
from typing import Any

import click


def _kernel(ctx: click.Context) -> Any:
    from qcore.cli import get_kernel

    return get_kernel(ctx)


def _print(results: dict[str, Any]) -> None:
    splits = results.get("splits", {})
    for key, split in (("valid", "valid"), ("metrics", "test")):
        if key not in results:
            continue
        span = splits.get(split)
        click.echo(f"{split} split" + (f" {span[0]} .. {span[1]}" if span else "") + ":")
        for who, m in results[key].items():
            click.echo(f"{who:>14}: " + "  ".join(f"{k}={v:.4g}" for k, v in m.items()))


@click.group("rl")
def rl() -> None:
    """Reinforcement learning: order execution and portfolio allocation (tianshou 2)."""


@rl.command("train")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--resume", type=click.Path(dir_okay=False), default=None, help="continue from a last.pt checkpoint")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="train with N consecutive seeds from trainer.seed and report mean ± std and wins over each baseline")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.pass_context
def train_cmd(ctx: click.Context, config: str, resume: str | None, seeds: int, as_json: bool) -> None:
    """Train the policy of CONFIG on its train split, keep the best checkpoint on its valid split and report it
    against the baselines on its test split."""
    from qcore.errors import ConfigError
    from qrl import config as cfgmod
    from qrl import workflow
    from qrl.seeds import format_summary

    kernel = _kernel(ctx)
    cfg = cfgmod.load(config, kernel)
    if seeds > 1:
        if resume is not None:
            raise ConfigError("--resume continues one run; it cannot be combined with --seeds")
        results = workflow.train_seeds(cfg, kernel, seeds)
        if as_json:
            click.echo(json.dumps(results, indent=2))
        else:
            for line in format_summary(results["summary"]):
                click.echo(line)
        return
    results = workflow.train(cfg, kernel, resume=resume)
    click.echo(json.dumps(results, indent=2)) if as_json else _print(results)


@rl.command("eval")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--checkpoint", "ckpt", required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.pass_context
def eval_cmd(ctx: click.Context, config: str, ckpt: str, as_json: bool) -> None:
    """Evaluate a checkpoint on CONFIG's test split against the baselines (with the checkpoint's feature scaler)."""
    from qrl import config as cfgmod
    from qrl import workflow

    kernel = _kernel(ctx)
    cfg = cfgmod.load(config, kernel)
    results = workflow.evaluate(cfg, ckpt, kernel)
    click.echo(json.dumps(results, indent=2)) if as_json else _print(results)
