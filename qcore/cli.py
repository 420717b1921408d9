"""The ``qcore`` command line: a thin layer over :mod:`qcore.api` that turns errors into exit codes.

Plugins add subcommands through the ``qcore_register_commands`` hook; they are looked up lazily, when a
command name is not one of the kernel's, so ``qcore --help`` and ``qcore plugins`` stay fast.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from qcore.errors import (
    ConfigError,
    DataError,
    ExpressionError,
    PluginLoadError,
    PluginSelectionError,
    QcoreError,
    UnknownComponentError,
)


class ExitCode(enum.IntEnum):
    """Process exit codes of ``qcore``."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CONFIG = 3
    PLUGIN = 4
    DATA = 5
    INTERNAL = 70


def _exit_code(error: BaseException) -> ExitCode:
    if isinstance(error, (PluginLoadError, PluginSelectionError)):
        return ExitCode.PLUGIN
    if isinstance(error, (ConfigError, UnknownComponentError, ExpressionError)):
        return ExitCode.CONFIG
    if isinstance(error, DataError):
        return ExitCode.DATA
    if isinstance(error, QcoreError):
        return ExitCode.FAILED
    return ExitCode.INTERNAL


class QcoreFailure(click.ClickException):
    """A qcore error shown as ``Error: <message>`` with the exit code for its class."""

    def __init__(self, error: BaseException) -> None:
        internal = not isinstance(error, QcoreError)
        text = str(error) or type(error).__name__
        if internal:
            text = f"internal error: {type(error).__name__}: {text} (run with --debug for the traceback)"
        super().__init__(text)
        self.exit_code = int(_exit_code(error))


def _root_params(ctx: click.Context) -> dict[str, Any]:
    root = ctx.find_root()
    return root.params if root.params else {}


def _selection(ctx: click.Context, extra: Sequence[str] = ()) -> Any:
    from qcore.plugins import PluginSelection

    params = _root_params(ctx)
    autoload = False if params.get("no_autoload") else None
    return PluginSelection.parse([*params.get("plugin_args", ()), *extra], autoload=autoload)


def get_kernel(ctx: click.Context, extra_selection: Any = None) -> Any:
    """The kernel for this invocation, loaded once per selection and kept on the context."""
    from qcore.kernel import Kernel

    root = ctx.find_root()
    cache = root.meta.setdefault("qcore.kernels", {})
    selection = _selection(ctx)
    if extra_selection is not None:
        selection = extra_selection.then(selection)
    if selection not in cache:
        strict = not _root_params(ctx).get("non_strict_plugins", False)
        kernel = Kernel.load(selection, strict=strict)
        for name, failure in kernel.failures.items():
            click.echo(f"Warning: plugin {name!r} skipped: {failure}", err=True)
        cache[selection] = kernel
    return cache[selection]


class QcoreGroup(click.Group):
    """The root group: resolves plugin commands lazily and converts errors to exit codes."""

    def _plugin_commands(self, ctx: click.Context) -> click.Group:
        root = ctx.find_root()
        group = root.meta.get("qcore.plugin_commands")
        if group is None:
            group = click.Group("plugins")
            get_kernel(ctx).register_commands(group)
            root.meta["qcore.plugin_commands"] = group
        return group

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or ctx.resilient_parsing:
            return command
        return self._plugin_commands(ctx).get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(super().list_commands(ctx))
        try:
            names += [n for n in self._plugin_commands(ctx).list_commands(ctx) if n not in names]
        except QcoreError:  # a broken plugin must not hide the built-in commands from --help
            pass
        return sorted(names)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # A process's arguments are C strings and cannot hold NUL; one given through the API (CliRunner, main(argv))
        # would reach os.stat() and friends as a ValueError, so it is refused here for every command at once.
        for number, arg in enumerate(args, start=1):
            if isinstance(arg, str) and "\x00" in arg:
                shown = arg if len(arg) <= 60 else f"{arg[:60]}..."
                raise click.UsageError(f"argument {number} ({shown!r}) contains a NUL character", ctx=ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            raise QcoreFailure(error) from None


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the kernel's version and each installed plugin's, read from package metadata.

    No plugin is imported (that is what made ``qcore --version`` slow): a plugin that is installed but broken is
    still listed with its version; ``qcore plugins`` shows what actually loads.
    """
    if not value or ctx.resilient_parsing:
        return
    from qcore import __version__
    from qcore.plugins import installed_entry_points

    click.echo(f"qcore {__version__}")
    for name, entry_point in installed_entry_points().items():
        dist = getattr(entry_point, "dist", None)
        origin = dist.metadata["Name"] if dist is not None else entry_point.value
        click.echo(f"  {name} {dist.version if dist is not None else '?'} ({origin})")
    ctx.exit()


@click.group(cls=QcoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show qcore's version and the installed plugins' versions.",
)
@click.option("-p", "plugin_args", multiple=True, metavar="NAME", help="Load plugin NAME, or block it with no:NAME.")
@click.option("--no-autoload", is_flag=True, help="Load only the plugins named with -p (and the built-ins).")
@click.option("--non-strict-plugins", is_flag=True, help="Skip plugins that fail to load, with a warning.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(plugin_args: tuple[str, ...], no_autoload: bool, non_strict_plugins: bool, debug: bool, verbose: int) -> None:
    """qcore: plugin-based quantitative investment research."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List loaded plugins with their hooks and components."""
    infos = get_kernel(ctx).plugins()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    for info in infos:
        origin = "builtin" if info.builtin else (info.distribution or info.module)
        click.echo(f"{info.name} {info.version or ''} ({origin})")
        click.echo(f"  hooks: {', '.join(info.hooks) or '-'}")
        if info.kinds:
            click.echo(f"  declares kinds: {', '.join(info.kinds)}")
        for kind, names in info.components.items():
            click.echo(f"  {kind}: {', '.join(names)}")


@cli.command("list")
@click.argument("kind", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_command(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """List the components of KIND (models, strategies, rl_algorithm, ...); without KIND, every kind with counts."""
    kernel = get_kernel(ctx)
    if kind is None:
        _list_kinds(kernel, as_json)
        return
    registry = kernel.registry(kind)
    rows = [
        {"name": e.name, "plugin": e.plugin, "aliases": list(e.aliases), "description": e.description} for e in registry
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no {registry.kind} components are registered")
    width = max((len(r["name"]) for r in rows), default=0)
    for row in rows:
        aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        click.echo(f"{row['name']:<{width}}  [{row['plugin']}]  {row['description']}{aliases}")


def _list_kinds(kernel: Any, as_json: bool) -> None:
    """Every component kind (the kernel's and those plugins declare) with its count, declaring plugin and hook."""
    rows = [
        {"kind": spec.name, "count": len(kernel.registry(spec.name)), "plugin": spec.plugin,
         "hook": spec.hook_name, "aliases": list(spec.aliases), "description": spec.description}
        for spec in kernel.kinds()
    ]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["kind"]) for r in rows)
    for row in rows:
        click.echo(f"{row['kind']:<{width}}  {row['count']:>4}  [{row['plugin']}]  {row['description']}")


def _load(ctx: click.Context, config_path: str, overrides: Sequence[str]) -> tuple[Any, Any]:
    from qcore.config import load_config

    config = load_config(config_path, overrides)
    kernel = get_kernel(ctx, extra_selection=config.plugins)
    return config, kernel


@cli.command("validate")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.pass_context
def validate_command(ctx: click.Context, config_path: str, overrides: tuple[str, ...]) -> None:
    """Check CONFIG: keys, types and every component name, without running anything."""
    from qcore.runner import check_components

    config, kernel = _load(ctx, config_path, overrides)
    check_components(config, kernel)
    click.echo(f"{config_path}: OK ({len(config.components())} components resolved)")


@cli.command("run")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("-p", "plugin_args", multiple=True, metavar="NAME", help="Load plugin NAME, or block it with no:NAME.")
@click.option("--name", "run_name", default=None, help="A name for the tracked run.")
@click.pass_context
def run_command(
    ctx: click.Context, config_path: str, overrides: tuple[str, ...], plugin_args: tuple[str, ...], run_name: str | None
) -> None:
    """Run the workflow in CONFIG and print its metrics."""
    from qcore.config import load_config
    from qcore.plugins import PluginSelection
    from qcore.runner import run_workflow

    config = load_config(config_path, overrides)
    kernel = get_kernel(ctx, extra_selection=config.plugins.then(PluginSelection.parse(plugin_args)))
    result = run_workflow(config, kernel, run_name=run_name)
    _print_run_summary(config, result)


#: The summary table of ``qcore run``: metric key → label, in print order.
SUMMARY_ROWS = (
    ("signal.IC", "IC"),
    ("signal.ICIR", "ICIR"),
    ("signal.Rank_IC", "Rank IC"),
    ("signal.Rank_ICIR", "Rank ICIR"),
    ("backtest.excess.annualized_return", "Annualised excess return (without cost)"),
    ("backtest.excess_cost.annualized_return", "Annualised excess return (with cost)"),
    ("backtest.excess.information_ratio", "Information ratio (without cost)"),
    ("backtest.excess_cost.information_ratio", "Information ratio (with cost)"),
    ("backtest.excess_cost.max_drawdown", "Max drawdown (with cost)"),
)


def _print_run_summary(config: Any, result: Any) -> None:
    """The run's headline numbers, then every metric, then where its artifacts are."""
    click.echo(f"run {result.run_id} finished ({config.experiment})")
    rows = [(label, result.metrics[key]) for key, label in SUMMARY_ROWS if key in result.metrics]
    if rows:
        width = max(len(label) for label, _ in rows)
        click.echo("")
        for label, value in rows:
            click.echo(f"  {label:<{width}}  {value:>10.4f}")
        click.echo("")
    shown = {key for key, _ in SUMMARY_ROWS}
    others = {k: v for k, v in result.metrics.items() if k not in shown}
    width = max((len(k) for k in others), default=0)
    for key, value in others.items():
        click.echo(f"  {key:<{width}}  {value:.6g}")
    folders = sorted({str(Path(p).parent) for p in result.artifacts.values()})
    for folder in folders:
        click.echo(f"artifacts: {folder}")
    report = next((p for name, p in result.artifacts.items() if name.endswith(".html")), None)
    if report:
        click.echo(f"report: {report} (open it in a browser; it works offline)")
    if config.recorder.name == "mlflow":
        uri = config.recorder.kwargs.get("tracking_uri") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
        click.echo(f"browse runs: mlflow ui --backend-store-uri {uri}")


#: Largest ``--fields-file`` read (a file of expressions is a few kilobytes; anything near this is a mistake).
MAX_FIELDS_FILE_BYTES = 16 * 1024 * 1024

#: Column names the output's index already uses.
INDEX_NAMES = ("instrument", "datetime")


def _fields_file_text(path: str) -> str:
    """The file's text, refusing unreadable, oversized and non-UTF-8 files with the line of the bad byte."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FIELDS_FILE_BYTES:
            raise ConfigError(f"file is {size} bytes; a fields file may have at most {MAX_FIELDS_FILE_BYTES}",
                              source=path)
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded (save the file as UTF-8)",
            source=path,
            line=line,
        ) from None


def _read_fields_file(path: str) -> dict[str, str]:
    """``name,expression`` rows (a header row ``name,expression`` is skipped; the expression may be unquoted).

    :raises ConfigError: naming the file and line of a malformed row, a duplicate or reserved name, an unreadable
        or non-UTF-8 file, or a field longer than the CSV reader's limit.
    """
    import csv
    import io

    out: dict[str, str] = {}
    reader = csv.reader(io.StringIO(_fields_file_text(path), newline=""))
    lineno = 0
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or row[0].startswith("#") or (not out and row[:2] == ["name", "expression"]):
                continue
            if len(row) > 2:  # an unquoted expression with commas: everything after the name is the expression
                row = [row[0], ",".join(row[1:])]
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise ConfigError("expected 'name,expression'", source=path, line=lineno)
            name = row[0].strip()
            if name in out:
                raise ConfigError(f"duplicate name {name!r}", source=path, line=lineno)
            if name in INDEX_NAMES:
                raise ConfigError(f"name {name!r} is taken by the output's index ({', '.join(INDEX_NAMES)})",
                                  source=path, line=lineno)
            out[name] = row[1].strip()
    except csv.Error as exc:  # a field over csv.field_size_limit(), an unterminated quote at the end...
        raise ConfigError(f"malformed CSV: {exc}", source=path, line=reader.line_num or lineno + 1) from None
    if not out:
        raise ConfigError("no expression in file", source=path)
    return out


def _unique_fields(field_exprs: Sequence[str]) -> list[str]:
    """The ``--field`` expressions; the same text twice would give two columns of one name, so it is refused."""
    seen: dict[str, int] = {}
    for number, text in enumerate(field_exprs, start=1):
        if text in seen:
            raise click.BadParameter(
                f"{text!r} is given twice (occurrences {seen[text]} and {number}); each --field is a column named "
                "by its text, so give it once (or use --fields-file to name columns)",
                param_hint="'--field'",
            )
        seen[text] = number
    return list(field_exprs)


def _check_output(out_path: str, store: str | None = None) -> None:
    """``--out`` can be written without losing anything: it is not inside the ``store`` being read, it replaces no
    file but a Parquet or Arrow file, no existing part of its folder is a file, and the nearest existing folder is
    writable. Checked before any evaluation; missing folders are created when the result is written."""
    import os

    from qcore.tables import is_table_file

    target = Path(out_path)
    if target.is_dir():
        raise click.BadParameter(f"{out_path} is a folder; give a file name such as out.parquet",
                                 param_hint="'--out'")
    if store and _inside(target, Path(store).expanduser()):
        raise click.BadParameter(f"{out_path} is inside the store being read ({store}); write the result elsewhere",
                                 param_hint="'--out'")
    if target.is_file() and not is_table_file(target):
        raise click.BadParameter(f"{out_path} exists and is not a Parquet or Arrow file; it is left alone (remove it, "
                                 "or choose another name)", param_hint="'--out'")
    folder = target.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise click.BadParameter(f"{folder} is not a folder, so {out_path} cannot be created", param_hint="'--out'")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"folder {folder} is not writable", param_hint="'--out'")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (once links are resolved) lies under the existing folder ``folder``."""
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop: not provably inside
        return False


def _dates(params: dict[str, Any]) -> tuple[Any, Any]:
    """``--start`` and ``--end`` as timestamps (None when omitted), refusing bad dates and an empty range."""
    from qcore.dates import parse_optional_date

    start = parse_optional_date(params["start"], "--start")
    end = parse_optional_date(params["end"], "--end")
    if start is not None and end is not None and end < start:
        raise ConfigError(f"--start {start.date()} is after --end {end.date()}")
    return start, end


def _instruments(provider: Any, text: str) -> str | list[str]:
    """``--instruments``: a market name, one symbol, or comma-separated symbols (checked by the engine)."""
    if "," in text:
        symbols = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
        if not symbols:
            raise click.BadParameter(f"{text!r} names no instrument", param_hint="'--instruments'")
        return symbols
    name = text.strip()
    if not name:
        raise click.BadParameter("give a market name or symbols", param_hint="'--instruments'")
    markets = provider.markets()
    if name in markets:
        return name
    symbols = provider.universe("all")
    if name in symbols:
        return [name]
    import difflib

    upper = {symbol.upper(): symbol for symbol in symbols}
    close = [upper[name.upper()]] if name.upper() in upper else difflib.get_close_matches(name, [*markets, *symbols])
    hint = f"; did you mean {' or '.join(repr(c) for c in close[:3])}?" if close else ""
    raise click.BadParameter(
        f"{name!r} is neither a market nor a symbol of the store{hint} (markets: {', '.join(markets)})",
        param_hint="'--instruments'",
    )


def _store_options(command: Any) -> Any:
    """Options shared by the commands that evaluate expressions over a store."""
    options = [
        click.option("--provider", "provider_name", default="qlib_bin", show_default=True, help="Data provider."),
        click.option("--provider-uri", required=True, help="The store's location (a Qlib data directory)."),
        click.option("--instruments", default="all", show_default=True,
                     help="A market name or comma-separated symbols."),
        click.option("--start", default=None, help="First date (YYYY-MM-DD)."),
        click.option("--end", default=None, help="Last date (YYYY-MM-DD)."),
        click.option("--freq", default="day", show_default=True),
        click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
                     help="Output file (.parquet, or .arrow for Arrow IPC)."),
        click.option("--format", "out_format", type=click.Choice(["parquet", "arrow"]), default=None,
                     help="Output format [default: from the --out suffix, else parquet]."),
        click.option("--missing-fields", type=click.Choice(["error", "nan"]), default=None,
                     help="A field the store lacks: an error, or read as NaN with a warning [default: error for "
                     "expr, nan for features]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _check_takes_uri(kernel: Any, name: str) -> None:
    """The data provider ``--provider`` names accepts a ``provider_uri`` (a toy in-memory market does not)."""
    import inspect

    factory = kernel.registry("data_provider").get(name)
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the provider itself judge
        return
    if any(p.kind is p.VAR_KEYWORD or p.name == "provider_uri" for p in parameters):
        return
    accepted = ", ".join(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    raise click.BadParameter(
        f"data provider {name!r} takes no provider_uri (it takes: {accepted or 'no arguments'}), so it cannot "
        "read --provider-uri",
        param_hint="'--provider'",
    )


def _evaluate_to_parquet(ctx: click.Context, expressions: Any, params: dict[str, Any]) -> None:
    """Check every argument (dates, output path, store, instruments) cheaply, then evaluate and write atomically."""
    from qcore import api
    from qcore.tables import write_table

    start, end = _dates(params)
    out_path = params["out_path"]
    _check_output(out_path, params["provider_uri"])
    kernel = get_kernel(ctx)
    _check_takes_uri(kernel, params["provider_name"])
    provider = api.open_provider(params["provider_name"], kernel=kernel, provider_uri=params["provider_uri"])
    provider.calendar(params["freq"])  # a folder that is no store fails here, naming what is missing
    universe = _instruments(provider, params["instruments"])
    frame = api.evaluate(expressions, provider, instruments=universe, start=start, end=end, freq=params["freq"],
                         kernel=kernel, missing_fields=params.get("missing_fields") or "error", index="instrument")
    try:
        write_table(frame, out_path, params["out_format"])
    except OSError as exc:
        raise DataError(f"cannot write the output: {exc.strerror or exc}", path=out_path) from None
    click.echo(f"{out_path}: {len(frame)} rows x {frame.shape[1]} columns")


@cli.command("expr")
@_store_options
@click.option("--field", "field_exprs", multiple=True, metavar="EXPR", help="An expression (repeatable).")
@click.option("--fields-file", type=click.Path(exists=True, dir_okay=False), help="A name,expression CSV.")
@click.pass_context
def expr_command(ctx: click.Context, field_exprs: tuple[str, ...], fields_file: str | None, **params: Any) -> None:
    """Evaluate expressions into a Parquet file (index instrument, datetime; a column per expression)."""
    if bool(field_exprs) == bool(fields_file):
        raise click.UsageError("give expressions with --field (repeatable) or --fields-file, not both")
    expressions: Any = _read_fields_file(fields_file) if fields_file else _unique_fields(field_exprs)
    _evaluate_to_parquet(ctx, expressions, params)


@cli.command("features")
@click.argument("feature_set")
@_store_options
@click.option("--label/--no-label", default=True, show_default=True, help="Include the feature set's labels.")
@click.pass_context
def features_command(ctx: click.Context, feature_set: str, label: bool, **params: Any) -> None:
    """Compute a registered feature set (alpha158, alpha360...) into a Parquet file."""
    definition = get_kernel(ctx).create("feature_set", feature_set)
    expressions = dict(definition.features)
    if label:
        expressions.update(definition.labels)
    params["missing_fields"] = params.get("missing_fields") or "nan"  # a feature set runs on a store lacking a field
    _evaluate_to_parquet(ctx, expressions, params)


@cli.group("runs")
@click.option("--recorder", "recorder_name", default="local", show_default=True, help="Recorder name.")
@click.option("--uri", default=None, help="Where the recorder keeps runs (local: a folder; mlflow: a tracking URI).")
@click.pass_context
def runs_group(ctx: click.Context, recorder_name: str, uri: str | None) -> None:
    """List, show and compare tracked runs."""
    kernel = get_kernel(ctx)
    kwargs: dict[str, Any] = {}
    if uri is not None:
        kwargs = {"tracking_uri": uri} if recorder_name == "mlflow" else {"uri": uri}
    ctx.obj = kernel.create("recorder", recorder_name, **kwargs)


def _json(value: Any) -> str:
    """Strict JSON for ``--json`` output: NaN and infinities become null, dates ISO strings."""
    from qcore.recorders.common import jsonable

    return json.dumps(jsonable(value), indent=2)


def _metric_value(value: Any) -> Any:
    """The last value of a metric, whether a recorder gives a value or a ``[[step, value], ...]`` history."""
    if isinstance(value, list) and value and isinstance(value[-1], list):
        return value[-1][1]
    return value


@runs_group.command("list")
@click.option("--experiment", default=None, help="Only runs of this experiment.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def runs_list(recorder: Any, experiment: str | None, as_json: bool) -> None:
    """Runs, newest first, with their status and headline metrics."""
    runs = recorder.list_runs(experiment)
    if as_json:
        click.echo(_json(runs))
        return
    if not runs:
        click.echo("no runs")
        return
    for run in runs:
        metrics = run.get("metrics", {})
        headline = ", ".join(f"{k}={_fmt(_metric_value(v))}" for k, v in sorted(metrics.items())[:4])
        click.echo(f"{run['run_id']}  {run.get('experiment', '')}  {run.get('status', '')}  {headline}")


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def runs_show(recorder: Any, run_id: str, as_json: bool) -> None:
    """Everything recorded about RUN_ID: params, metrics, tags, artifacts."""
    run = recorder.get_run(run_id)
    if as_json:
        click.echo(_json(run))
        return
    click.echo(f"run {run['run_id']} ({run.get('experiment', '')}, {run.get('status', '')})")
    for section in ("params", "metrics", "tags"):
        values = run.get(section) or {}
        if values:
            click.echo(f"{section}:")
            for key in sorted(values):
                click.echo(f"  {key} = {_metric_value(values[key])}")
    if run.get("artifacts"):
        click.echo(f"artifacts ({run.get('path', '')}):")
        for name in run["artifacts"]:
            click.echo(f"  {name}")


@runs_group.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def runs_compare(recorder: Any, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Metrics (and differing params) of several runs side by side."""
    runs = [recorder.get_run(r) for r in run_ids]
    metric_names = sorted({k for run in runs for k in run.get("metrics", {})})
    param_names = sorted({k for run in runs for k in run.get("params", {})})
    differing = [p for p in param_names if len({str(run.get("params", {}).get(p)) for run in runs}) > 1]
    table = {
        "runs": list(run_ids),
        "metrics": {m: [_metric_value(run.get("metrics", {}).get(m)) for run in runs] for m in metric_names},
        "params": {p: [run.get("params", {}).get(p) for run in runs] for p in differing},
    }
    if as_json:
        click.echo(_json(table))
        return
    width = max([len(n) for n in [*metric_names, *differing]] + [6])
    click.echo(f"{'':<{width}}  " + "  ".join(f"{r[:18]:>18}" for r in run_ids))
    for section in ("metrics", "params"):
        for name, values in table[section].items():
            cells = "  ".join(f"{_fmt(v):>18}" for v in values)
            click.echo(f"{name:<{width}}  {cells}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)[:18]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="qcore")


if __name__ == "__main__":  # pragma: no cover
    main()
