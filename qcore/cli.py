"""The ``qcore`` command line: a thin layer over :mod:`qcore.api` that turns errors into exit codes and formats output.

Argument checks live in :mod:`qcore.cli_args`; what a run prints comes from plugins (``qcore_run_summary``,
``qcore_run_hints``). Plugins add subcommands through the ``qcore_register_commands`` hook; they are looked up
lazily, when a command name is not one of the kernel's, so ``qcore --help`` and ``qcore plugins`` stay fast.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from qcore.errors import (
    ArgumentError,
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
    if isinstance(error, ArgumentError):
        return ExitCode.USAGE
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


def plugin_selection(ctx: click.Context, extra: Sequence[str] = ()) -> Any:
    """The plugins the command line asked for (``-p``, ``--no-autoload``), plus ``extra``, as a
    :class:`qcore.plugins.PluginSelection` (for plugin commands that start processes loading the same plugins)."""
    from qcore.plugins import PluginSelection

    params = _root_params(ctx)
    autoload = False if params.get("no_autoload") else None
    return PluginSelection.parse([*params.get("plugin_args", ()), *extra], autoload=autoload)


def get_kernel(ctx: click.Context, extra_selection: Any = None) -> Any:
    """The kernel for this invocation, loaded once per selection and kept on the context."""
    from qcore.kernel import Kernel

    root = ctx.find_root()
    cache = root.meta.setdefault("qcore.kernels", {})
    selection = plugin_selection(ctx)
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
        except ArgumentError as error:  # a usage error: click's form, "Invalid value for '--out': ..."
            if ctx.params.get("debug"):
                raise
            raise click.BadParameter(error.message, param_hint=f"'{error.option}'") from None
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


def _load(ctx: click.Context, config_path: str, overrides: Sequence[str], plugin_args: Sequence[str] = ()) -> Any:
    """The config and the one kernel it is validated and run with: the config's ``plugins:`` selection, then the
    command line's (``-p``)."""
    from qcore.config import read_workflow
    from qcore.plugins import PluginSelection

    workflow = read_workflow(config_path, overrides)
    kernel = get_kernel(ctx, extra_selection=workflow.plugins.then(PluginSelection.parse(plugin_args)))
    return workflow.validate(kernel), kernel


@cli.command("validate")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.pass_context
def validate_command(ctx: click.Context, config_path: str, overrides: tuple[str, ...]) -> None:
    """Check CONFIG: keys, types and every component name, without running anything."""
    from qcore.checks import check_components

    config, kernel = _load(ctx, config_path, overrides)
    check_components(config, kernel)
    click.echo(f"{config_path}: OK ({len(config.components())} components resolved)")


def _load_backend(ctx: click.Context, config_path: str, overrides: Sequence[str], plugin_args: Sequence[str],
                  backend: str | None) -> Any:  # fmt: skip
    """:func:`_load` with ``--backend NAME``: the workflow's ``backend`` (and its ``rolling.backend``, when it names
    one of its own) set to NAME, as ``--set`` would."""
    if backend is None:
        return _load(ctx, config_path, overrides, plugin_args)
    extra = (*overrides, f"backend={backend}")
    config, kernel = _load(ctx, config_path, extra, plugin_args)
    if config.rolling is not None and config.rolling.backend is not config.backend:
        config, kernel = _load(ctx, config_path, (*extra, f"rolling.backend={backend}"), plugin_args)
    return config, kernel


_BACKEND_HELP = "Execution backend for the run's independent tasks (serial, processes, ray...) [default: the config's]."


@cli.command("run")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("-p", "plugin_args", multiple=True, metavar="NAME", help="Load plugin NAME, or block it with no:NAME.")
@click.option("--name", "run_name", default=None, help="A name for the tracked run.")
@click.option("--backend", default=None, metavar="NAME", help=_BACKEND_HELP)
@click.pass_context
def run_command(
    ctx: click.Context, config_path: str, overrides: tuple[str, ...], plugin_args: tuple[str, ...],
    run_name: str | None, backend: str | None = None,
) -> None:
    """Run the workflow in CONFIG and print its metrics."""
    from qcore.runner import run_workflow

    config, kernel = _load_backend(ctx, config_path, overrides, plugin_args, backend)
    result = run_workflow(config, kernel, run_name=run_name)
    _print_run_summary(kernel, config, result)


@cli.command("sweep")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2",
              help="A swept key and its values (repeatable), or KEY=uniform(LOW,HIGH) / loguniform / randint with "
              "--random [default: the config's sweep: section].")
@click.option("--random", "random_points", type=click.IntRange(1, 10_000), default=None,
              help="Sample this many points instead of running the whole grid.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Seed of --random [default: 0].")
@click.option("--metric", default=None, help="The run metric that ranks points [default: signal.IC].")
@click.option("--mode", type=click.Choice(["max", "min"]), default=None, help="Best is the largest or smallest.")
@click.option("--scheduler", default=None, help="A sweep scheduler a plugin provides (qcore list sweep_scheduler).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (every point).")
@click.option("-p", "plugin_args", multiple=True, metavar="NAME", help="Load plugin NAME, or block it with no:NAME.")
@click.option("--name", "run_name", default="sweep", show_default=True, help="Runs are named NAME-000 key=value...")
@click.option("--backend", default=None, metavar="NAME", help="Execution backend the points run on [default: the "
              "config's backend:, else serial].")
@click.option("--retries", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Times a failed point runs again.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False), help="Write the table as CSV.")
@click.pass_context
def sweep_command(ctx: click.Context, config_path: str, grid: tuple[str, ...], random_points: int | None,
                  seed: int | None, metric: str | None, mode: str | None, scheduler: str | None,
                  overrides: tuple[str, ...], plugin_args: tuple[str, ...], run_name: str, backend: str | None,
                  retries: int, out_path: str | None) -> None:  # fmt: skip
    """Run the workflow in CONFIG once per parameter point (grid or random search) and rank the points."""
    from qcore import sweep as sweeps
    from qcore.atomic import write_text
    from qcore.progress import enabled

    config, kernel = _load(ctx, config_path, overrides, plugin_args)
    section = config.raw.get("sweep")
    base = sweeps.parse_section(section, config.error) if section is not None and not grid else None
    params = [sweeps.parse_grid_option(g) for g in grid] if grid else list(base.params if base else ())
    spec = sweeps.make_spec(params, random=random_points if random_points is not None else (base and base.random),
                            seed=seed if seed is not None else (base.seed if base else 0),
                            metric=metric or (base.metric if base else "signal.IC"),
                            mode=mode or (base.mode if base else "max"),
                            scheduler=scheduler or (base.scheduler if base else None))  # fmt: skip
    spec_backend = config.backend if backend is None else None
    built = kernel.create("execution_backend", backend or (spec_backend.name if spec_backend else "serial"),
                          **(dict(spec_backend.kwargs) if spec_backend else {}))  # fmt: skip

    def bar(done: int, total: int) -> None:
        click.echo(f"\rpoints {done}/{total}", nl=done == total, err=True)

    with built:
        result = sweeps.run_sweep(config_path, spec, overrides=overrides, plugins=plugin_args, backend=built,
                                  kernel=kernel, name=run_name, retries=retries,
                                  progress=bar if enabled() else None)  # fmt: skip
    table = result.table
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    if result.best is None:
        click.echo(f"no point has a value of {result.metric}")
    else:
        row = table.loc[result.best]
        click.echo(f"best ({result.mode} {result.metric}): point {result.best} "
                   f"({sweeps.describe(result.best_point or {})}) = {row[result.metric]:.6g}, run {row['run_id']}")
    if out_path:
        write_text(out_path, table.to_csv(index=False))
        click.echo(f"table: {out_path}")


@cli.command("rolling")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("-p", "plugin_args", multiple=True, metavar="NAME", help="Load plugin NAME, or block it with no:NAME.")
@click.option("--name", "run_name", default=None, help="A name for the tracked (parent) run.")
@click.option("--backend", default=None, metavar="NAME", help=_BACKEND_HELP)
@click.pass_context
def rolling_command(
    ctx: click.Context, config_path: str, overrides: tuple[str, ...], plugin_args: tuple[str, ...],
    run_name: str | None, backend: str | None = None,
) -> None:
    """Run the workflow in CONFIG retraining per window of its rolling: section (as qcore run does with one)."""
    from qcore.errors import ConfigError
    from qcore.runner import run_workflow

    config, kernel = _load_backend(ctx, config_path, overrides, plugin_args, backend)
    if config.rolling is None:
        raise ConfigError("qcore rolling needs a 'rolling:' section (step, window, gap...)", source=config.source)
    result = run_workflow(config, kernel, run_name=run_name)
    _print_run_summary(kernel, config, result)


def _print_run_summary(kernel: Any, config: Any, result: Any) -> None:
    """The run's rows from every plugin as one table (``qcore_run_summary``), then where to look
    (``qcore_run_hints``)."""
    click.echo(f"run {result.run_id} finished ({config.experiment})")
    rows = kernel.run_summary(config, result)
    if rows:
        width = max(len(label) for label, _ in rows)
        click.echo("")
        for label, value in rows:
            click.echo(f"  {label:<{width}}  {value:>10}")
        click.echo("")
    for line in kernel.run_hints(config, result):
        click.echo(line)


def _store_options(command: Any) -> Any:
    """Options shared by the commands that evaluate expressions over a store."""
    options = [
        click.option("--provider", "provider_name", default=None,
                     help="Data provider [default: the one a plugin marks as the default for a store location]."),
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
        click.option("--backend", default=None, metavar="NAME",
                     help="Evaluate in shards on this execution backend (serial, processes, ray...)."),
        click.option("--shards", type=click.IntRange(1, 100_000), default=None,
                     help="Number of shards [default with --backend: the backend's workers, else 2]."),
        click.option("--shard-by", type=click.Choice(["instruments", "expressions"]), default="instruments",
                     show_default=True, help="Cut the batch by instrument groups (a second stage for cross-sectional "
                     "operators) or by expression groups of the shared graph."),
        click.option("--retries", type=click.IntRange(0, 100), default=0, show_default=True,
                     help="Times a failed shard runs again."),
        click.option("--parts", is_flag=True, help="With instrument shards: --out is a new folder where each shard "
                     "writes its own rows (part-NNNNN.parquet; cross-sectional columns in cross_sectional.parquet), "
                     "so no process holds the whole output."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _evaluate_to_parquet(ctx: click.Context, expressions: Any, params: dict[str, Any]) -> None:
    """Check every argument (dates, output path, store, instruments) cheaply, then evaluate and write atomically."""
    from qcore import api, cli_args
    from qcore.tables import write_table

    start, end = cli_args.dates(params["start"], params["end"])
    out_path = params["out_path"]
    cli_args.check_output(out_path, params["provider_uri"])
    kernel = get_kernel(ctx)
    name = params["provider_name"] or cli_args.default_provider(kernel)
    cli_args.check_takes_uri(kernel, name)
    provider = api.open_provider(name, kernel=kernel, provider_uri=params["provider_uri"])
    provider.calendar(params["freq"])  # a folder that is no store fails here, naming what is missing
    universe = cli_args.instruments(provider, params["instruments"])
    missing = params.get("missing_fields") or "error"
    sharded = ""
    if params.get("parts") and (params.get("shard_by") != "instruments" or params.get("shards") is None):
        raise click.UsageError("--parts needs --shards N (by instruments)")
    if params.get("backend") is not None or params.get("shards") is not None:
        frame, sharded = _evaluate_in_shards(ctx, kernel, expressions, provider, universe, start, end, missing, params)
        if frame is None:
            click.echo(f"{out_path}/: {sharded.strip()[1:-1]}, written as parts")
            return
    else:
        frame = api.evaluate(expressions, provider, instruments=universe, start=start, end=end, freq=params["freq"],
                             kernel=kernel, missing_fields=missing, index="instrument")  # fmt: skip
    try:
        write_table(frame, out_path, params["out_format"])
    except OSError as exc:
        raise DataError(f"cannot write the output: {exc.strerror or exc}", path=out_path) from None
    click.echo(f"{out_path}: {len(frame)} rows x {frame.shape[1]} columns{sharded}")


def _evaluate_in_shards(ctx: click.Context, kernel: Any, expressions: Any, provider: Any, universe: Any, start: Any,
                        end: Any, missing: str, params: dict[str, Any]) -> tuple[Any, str]:  # fmt: skip
    """``--backend`` / ``--shards``: :func:`qcore.expr.sharding.evaluate_sharded`, with a bar per finished shard."""
    from qcore.expr.sharding import evaluate_sharded
    from qcore.progress import enabled

    name = params.get("backend") or "serial"
    backend = kernel.create("execution_backend", name)
    shards = params.get("shards") or getattr(backend, "max_workers", None) or 2
    root = _root_params(ctx)

    def bar(done: int, total: int) -> None:
        click.echo(f"\rshards {done}/{total}", nl=done == total, err=True)

    with backend:
        result = evaluate_sharded(expressions, provider, instruments=universe, start=start, end=end, backend=backend,
                                  shards=shards, by=params["shard_by"], freq=params["freq"], kernel=kernel,
                                  plugins=tuple(root.get("plugin_args", ())),
                                  autoload=False if root.get("no_autoload") else None, missing_fields=missing,
                                  index="instrument", retries=params["retries"],
                                  progress=bar if enabled() else None,
                                  out_dir=params["out_path"] if params.get("parts") else None)  # fmt: skip
    return result.frame, f" ({result.shards} shards by {result.by} on {name})"


@cli.command("expr")
@_store_options
@click.option("--field", "field_exprs", multiple=True, metavar="EXPR", help="An expression (repeatable).")
@click.option("--fields-file", type=click.Path(exists=True, dir_okay=False), help="A name,expression CSV.")
@click.pass_context
def expr_command(ctx: click.Context, field_exprs: tuple[str, ...], fields_file: str | None, **params: Any) -> None:
    """Evaluate expressions into a Parquet file (index instrument, datetime; a column per expression).

    Point-in-time fundamentals: $$eps_q, $$roe_a... are report-period fields (quarterly _q, annual _a), read on
    trading days through P(expr), the latest figure published by that day (P(Mean($$eps_q, 4)): the last four
    quarters), or PRef(expr, 201903), a given period's figure as known that day; amendments count from their date.
    """
    from qcore import cli_args

    if bool(field_exprs) == bool(fields_file):
        raise click.UsageError("give expressions with --field (repeatable) or --fields-file, not both")
    expressions: Any = cli_args.read_fields_file(fields_file) if fields_file else cli_args.unique_fields(field_exprs)
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
@click.option("--uri", default=None,
              help="Where the recorder keeps runs: its uri argument (a folder, a tracking URI...).")
@click.pass_context
def runs_group(ctx: click.Context, recorder_name: str, uri: str | None) -> None:
    """List, show and compare tracked runs."""
    from qcore import cli_args

    ctx.obj = cli_args.open_recorder(get_kernel(ctx), recorder_name, uri)


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
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML page: the tables and the runs' curves side by side.")
@click.pass_context
def runs_compare(ctx: click.Context, run_ids: tuple[str, ...], as_json: bool, html_out: str | None) -> None:
    """Metrics (and differing params) of several runs side by side."""
    from qcore import reporting

    if html_out is not None:
        reporting.check_page_path(html_out)
    recorder = ctx.obj
    runs = [recorder.get_run(r) for r in run_ids]
    metric_names = sorted({k for run in runs for k in run.get("metrics", {})})
    param_names = sorted({k for run in runs for k in run.get("params", {})})
    differing = [p for p in param_names if len({str(run.get("params", {}).get(p)) for run in runs}) > 1]
    table = {
        "runs": list(run_ids),
        "metrics": {m: [_metric_value(run.get("metrics", {}).get(m)) for run in runs] for m in metric_names},
        "params": {p: [run.get("params", {}).get(p) for run in runs] for p in differing},
    }
    if html_out is not None:
        compared = reporting.compared_runs(runs)
        page = reporting.comparison_page(compared, table, get_kernel(ctx).render_comparison(compared))
        reporting.write_page(html_out, page)
    if as_json:
        click.echo(_json(table))
        return
    width = max([len(n) for n in [*metric_names, *differing]] + [6])
    click.echo(f"{'':<{width}}  " + "  ".join(f"{r[:18]:>18}" for r in run_ids))
    for section in ("metrics", "params"):
        for name, values in table[section].items():
            cells = "  ".join(f"{_fmt(v):>18}" for v in values)
            click.echo(f"{name:<{width}}  {cells}")
    if html_out is not None:
        click.echo(f"comparison page: {html_out} (self-contained; open it in a browser)")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)[:18]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``qcore``, ``python -m qcore``): the process exits when it returns."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="qcore")
    finally:
        _before_shutdown()


def _before_shutdown() -> None:
    """Spare the interpreter's shutdown its garbage-collector passes over everything the command loaded.

    Python 3.11 runs full collections while it clears the modules at exit; after ``qcore run`` (pandas, SciPy,
    scikit-learn, LightGBM, MLflow and SQLAlchemy loaded) they scanned a few hundred thousand objects again and
    again: 1.2-1.5 s between the command's last line and the process's exit, measured on a 2-core machine.
    :func:`gc.freeze` moves every live object out of the collector's reach: objects are still freed by reference
    counting, exit handlers, thread joins and stream flushes run as before, and only reference cycles are left
    for the operating system to reclaim with the process.
    """
    import gc

    gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
