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


rl.add_command(eval_cmd, "test")  # FinRL's name for the phase: the trained agent on the unseen test span


@rl.command("trade")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--checkpoint", "ckpt", required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="write trades.csv, equity.csv and summary.json here")
@click.option("--cash", type=click.FloatRange(min=0, min_open=True), default=1_000_000.0, show_default=True,
              help="initial cash")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.pass_context
def trade_cmd(ctx: click.Context, config: str, ckpt: str, out: str | None, cash: float, as_json: bool) -> None:
    """Paper-trade a portfolio checkpoint over CONFIG's test split: stored bars replayed one at a time through the
    broker interface, orders filled at the next bar."""
    from qrl import config as cfgmod
    from qrl.trade.trader import trade

    kernel = _kernel(ctx)
    cfg = cfgmod.load(config, kernel)
    summary = trade(cfg, ckpt, kernel, initial_cash=cash, out_dir=out)["summary"]
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"traded {summary['bars']} bars {summary['test'][0]} .. {summary['test'][1]}: value "
               f"{summary['final_value']:,.2f} ({summary['cumulative_return']:+.2%}), {summary['fills']} fills, "
               f"{summary['rejections']} rejected orders" + (f"; written to {out}" if out else ""))


@rl.command("search")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--param", "params", multiple=True, required=True,
              help="key.path=v1,v2,... (repeatable): the values a trial may override the config's key with")
@click.option("--random", "random_n", type=click.IntRange(min=1), default=None,
              help="draw N distinct trials (seeded) instead of the whole grid")
@click.option("--seed", type=int, default=0, show_default=True, help="the seed of --random")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.pass_context
def search_cmd(ctx: click.Context, config: str, params: tuple[str, ...], random_n: int | None, seed: int,
               as_json: bool) -> None:
    """Grid or seeded random search over config overrides, ranked on the validation split (the best trial's test
    metrics are reported); writes search.json into the config's output folder."""
    from qcore.config import read_yaml
    from qrl.search import parse_space, search

    out = search(read_yaml(config), _kernel(ctx), parse_space(params), random=random_n, seed=seed)
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    for t in out["trials"]:
        click.echo(f"trial {t['trial']}: {out['metric']}={t['valid']:.4g}  " +
                   "  ".join(f"{k}={v}" for k, v in t["params"].items()))
    best = out["best"]
    click.echo(f"best: trial {best['trial']}; its test split: " + "  ".join(
        f"{k}={v:.4g}" for k, v in best["test"]["policy"].items()))


@rl.command("ensemble")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--agents", default="a2c,ppo,ddpg", show_default=True, help="comma-separated rl_algorithm names")
@click.option("--train-days", type=click.IntRange(min=3), required=True, help="rows of the first train window")
@click.option("--valid-days", type=click.IntRange(min=3), required=True, help="rows of each validation window")
@click.option("--trade-days", type=click.IntRange(min=3), required=True, help="rows of each trade window (the step)")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.pass_context
def ensemble_cmd(ctx: click.Context, config: str, agents: str, train_days: int, valid_days: int, trade_days: int,
                 as_json: bool) -> None:
    """FinRL's rolling ensemble: per window, train every agent, trade the next window with the best validation
    Sharpe; writes ensemble.json into the config's output folder."""
    from qrl import config as cfgmod
    from qrl.ensemble import ensemble, format_result

    kernel = _kernel(ctx)
    names = [a.strip() for a in agents.split(",") if a.strip()]
    res = ensemble(cfgmod.load(config, kernel), kernel, names, train_days=train_days, valid_days=valid_days,
                   trade_days=trade_days)
    if as_json:
        click.echo(json.dumps(res, indent=2, default=str))
        return
    for line in format_result(res):
        click.echo(line)


@rl.command("backtest")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--provider-uri", required=True, help="the store to backtest on (holding the trained instruments)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--start", default=None, help="first date (default: the checkpoint's test split)")
@click.option("--end", default=None, help="last date (default: the checkpoint's test split)")
@click.option("--account", type=click.FloatRange(min=0, min_open=True), default=1_000_000.0, show_default=True)
@click.option("--benchmark", default=None, help="benchmark instrument (default: none)")
@click.option("--html/--no-html", default=True, show_default=True, help="write report.html")
@click.pass_context
def backtest_cmd(ctx: click.Context, checkpoint: str, provider_uri: str, out: str, start: str | None,
                 end: str | None, account: float, benchmark: str | None, html: bool) -> None:
    """Backtest a portfolio CHECKPOINT as the rl_policy strategy with `qcore backtest` (reports, HTML page)."""
    from qrl.report import backtest_checkpoint

    click.echo(backtest_checkpoint(checkpoint, provider_uri, out, kernel=_kernel(ctx), start=start, end=end,
                                   account=account, benchmark=benchmark, html=html))


@rl.group("data")
def data_group() -> None:
    """Exported market data (Yahoo, Binance/ccxt, AkShare, Tushare, Baostock, Alpaca files) for RL: local files only."""


_FORMAT = click.option("--format", "fmt", required=True, help="the files' source format (yahoo, binance, ccxt, "
                                                              "akshare, tushare, baostock, alpaca)")
_TICKERS = click.option("--tickers", default=None, help="comma-separated tickers to keep (default: all)")


def _tickers(text: str | None) -> list[str] | None:
    return None if not text else [t.strip() for t in text.split(",") if t.strip()]


@data_group.command("show")
@click.argument("src", type=click.Path(exists=True))
@_FORMAT
@_TICKERS
@click.option("--start", default=None, help="first date kept")
@click.option("--end", default=None, help="last date kept")
@click.option("--indicators", is_flag=True, help="add FinRL's indicators, turbulence and the VIX-like series")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="write the processed long frame (Parquet, atomically)")
@click.option("--json", "as_json", is_flag=True, help="print the dataset manifest as JSON")
@click.pass_context
def data_show_cmd(ctx: click.Context, src: str, fmt: str, tickers: str | None, start: str | None, end: str | None,
                  indicators: bool, out: str | None, as_json: bool) -> None:
    """Read SRC in its source's format, clean and align it to one calendar; print what each ticker holds."""
    from qcore.atomic import atomic_path
    from qrl.meta.processor import DataProcessor

    proc = DataProcessor(fmt, start, end, path=src, kernel=_kernel(ctx) if indicators else None)
    proc.download_data(_tickers(tickers))
    frame = proc.clean_data()
    if indicators:
        proc.add_technical_indicator()
        proc.add_turbulence()
        frame = proc.add_vix()
    if out is not None:
        with atomic_path(out) as tmp:
            frame.to_parquet(tmp, index=False)
    manifest = proc.manifest()
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    panel = proc.aligned_panel()
    dates = manifest["dates"]
    click.echo(f"{len(panel.instruments)} ticker(s) on {dates['rows']} aligned dates {dates['first']} .. "
               f"{dates['last']} from {len(manifest['files'])} file(s)")
    for name, info in manifest["instruments"].items():
        click.echo(f"{name:>12}: {info['bars']} bars {info['first'][:10]} .. {info['last'][:10]}, "
                   f"{dates['rows'] - info['bars']} date(s) not tradable")


@data_group.command("import")
@click.argument("src", type=click.Path(exists=True))
@_FORMAT
@click.option("--to", "to", required=True, type=click.Path(file_okay=False), help="store directory")
@_TICKERS
@click.option("--start", default=None, help="first date kept")
@click.option("--end", default=None, help="last date kept")
@click.option("--mode", default="all", show_default=True, type=click.Choice(["all", "update"]),
              help="all: build a store; update: append new dates and instruments to one")
@click.option("--overwrite", is_flag=True, help="with --mode all: replace an existing store")
@click.option("--manifest", "manifest_out", type=click.Path(dir_okay=False), default=None,
              help="also write the dataset manifest (files, hashes, dates) as JSON")
def data_import_cmd(src: str, fmt: str, to: str, tickers: str | None, start: str | None, end: str | None, mode: str,
                    overwrite: bool, manifest_out: str | None) -> None:
    """Normalise, clean and align SRC, then import it atomically into the store TO with `qcore data import`."""
    from qcore.atomic import write_text
    from qrl.meta.store_import import import_files

    manifest = import_files(src, fmt, to, tickers=_tickers(tickers), start=start, end=end, mode=mode,
                            overwrite=overwrite)
    if manifest_out is not None:
        write_text(manifest_out, json.dumps(manifest, indent=2))
    click.echo(manifest["imported"])
