"""The workflow's ``backtest:`` section is the backtest plugin's: one schema, one set of defaults, errors at the key
and line of the file, and its strategy and executor checked like every other component."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from qbacktest.config import DEFAULT_ACCOUNT, BacktestSpec, load_backtest_config

from qcore.cli import ExitCode, cli
from qcore.config import ComponentSpec, load_config
from qcore.errors import ConfigError
from qcore.kernel import Kernel

STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"

WORKFLOW = textwrap.dedent("""
    data:
      provider: {name: qlib_bin, kwargs: {provider_uri: STORE}}
      market_rules: cn
      universe: csi_like
    dataset:
      features: alpha158
      segments: {train: [2018-01-02, 2018-09-28], test: [2019-01-02, 2019-04-23]}
    model: {name: linear}
    backtest:
      strategy: {name: TopkDropout, kwargs: {topk: 5, n_drop: 1}}
      benchmark: SH000300
      exchange: {deal_price: close, min_cost: 5}
    recorder: {name: local, kwargs: {uri: RUNS}}
""").lstrip()


@pytest.fixture(scope="module")
def all_plugins() -> Kernel:
    return Kernel.load(use_env=False)


def write(tmp_path: Path, old: str = "", new: str = "") -> Path:
    text = WORKFLOW
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "wf.yaml"
    path.write_text(text.replace("STORE", str(STORE)).replace("RUNS", str(tmp_path / "runs")))
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def test_the_section_parses_into_the_plugins_spec_with_qlibs_port_analysis_defaults(tmp_path: Path,
                                                                                    all_plugins: Kernel) -> None:
    spec = load_config(write(tmp_path), kernel=all_plugins).sections["backtest"]
    assert isinstance(spec, BacktestSpec)
    assert spec.strategy == ComponentSpec("TopkDropout", {"topk": 5, "n_drop": 1})
    assert spec.executor == ComponentSpec("simulator")
    assert spec.exchange_kwargs == {"deal_price": "close", "min_cost": 5}
    assert spec.account == DEFAULT_ACCOUNT == 1e8  # Qlib's PortAnaRecord default, in both config forms
    assert load_backtest_config({"strategy": "TopkDropout"}).account == DEFAULT_ACCOUNT


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "fragment"),
    [
        ("  benchmark: SH000300", "  account: 0", "backtest.account", "account:", "starting cash must be > 0, got 0"),
        ("  benchmark: SH000300", "  benchmark: 5", "backtest.benchmark", "benchmark:", "expected an instrument code"),
        ("  benchmark: SH000300", "  acount: 1", "backtest.acount", "acount:", "did you mean 'account'?"),
        ("  strategy: {name: TopkDropout, kwargs: {topk: 5, n_drop: 1}}", "  strategy: ~", "backtest.strategy",
         "strategy:", "missing required key 'strategy'"),
        ("deal_price: close,", "deal_price: close, dealprice: open,", "backtest.exchange.dealprice", "exchange:",
         "unknown exchange option 'dealprice'; did you mean 'deal_price'?"),
        ("  exchange: {deal_price: close, min_cost: 5}", "  exchange: [close]", "backtest.exchange", "exchange:",
         "expected a mapping of exchange options"),
        ("  benchmark: SH000300", "  pos_type: Infinite", "backtest.pos_type", "pos_type:",
         "only pos_type Position is supported"),
        ("  benchmark: SH000300", "  start: 2019-03-01\n  end: 2019-02-01", "backtest.end", "end: 2019",
         "the backtest ends (2019-02-01) before it starts (2019-03-01)"),
        ("  benchmark: SH000300", "  start: 2019-02-30", "backtest.start", "start:", "expected a date"),
    ],
)
def test_errors_name_the_key_and_line_before_anything_runs(tmp_path: Path, all_plugins: Kernel, old: str, new: str,
                                                           key: str, needle: str, fragment: str) -> None:
    path = write(tmp_path, old, new)
    with pytest.raises(ConfigError) as info:
        load_config(path, kernel=all_plugins)
    assert str(info.value).startswith(f"{path}:{line_of(path, needle)}: {key}: "), str(info.value)
    assert fragment in str(info.value)


def test_validate_names_an_unknown_strategy_or_executor_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: TopkDropout,", "name: TopkDrop,")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert result.output.startswith(f"Error: {path}:{line_of(path, 'strategy:')}: backtest.strategy: unknown "
                                    "strategy 'TopkDrop'; did you mean 'TopkDropout'?")  # fmt: skip
    path = write(tmp_path, "  benchmark: SH000300", "  executor: {name: simulatr}")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert f"{path}:{line_of(path, 'executor:')}: backtest.executor: unknown executor 'simulatr'" in result.output


def test_validate_checks_the_strategys_arguments_through_the_sections_components(tmp_path: Path) -> None:
    path = write(tmp_path, "n_drop: 1}", "n_drop: 9}")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert f"{path}:{line_of(path, 'strategy:')}: backtest.strategy.kwargs.n_drop: n_drop (9) cannot exceed topk" \
        in result.output
    ok = CliRunner().invoke(cli, ["validate", str(write(tmp_path))])
    assert ok.exit_code == 0 and "OK (11 components resolved)" in ok.output, ok.output  # 4 default records


def test_without_the_backtest_plugin_the_section_is_unknown(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-p", "no:qbacktest", "validate", str(write(tmp_path))])
    assert result.exit_code == ExitCode.CONFIG
    assert f"{line_of(write(tmp_path), 'backtest:')}: backtest: unknown key 'backtest'" in result.output
