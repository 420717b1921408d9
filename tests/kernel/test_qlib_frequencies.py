"""Qlib YAMLs and frequencies: ``provider_uri`` per frequency (Qlib's nested-execution form) is read as one store
with a folder per frequency; a handler with a minute group but no resampling step (Qlib's multi-frequency datasets,
tests/kernel/test_qlib_multi_freq.py) is refused at its key with the reason; MultiPassPortAnaRecord's config becomes
the backtest section."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qcore.config import read_workflow
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from tests.kernel.test_workflow import QLIB_YAML, STORE

MINUTE = Path(__file__).resolve().parents[1] / "data" / "minute" / "qlib_store"


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qlib.yaml"
    path.write_text(text)
    return path


def _base() -> str:
    return textwrap.dedent(QLIB_YAML).format(store=STORE)


def test_a_folder_per_frequency_is_one_store(tmp_path: Path, kernel: Kernel) -> None:
    text = _base().replace(f'    provider_uri: "{STORE}"', f"    provider_uri:\n        day: {STORE}\n"
                                                           f"        1min: {MINUTE}")
    config = read_workflow(_write(tmp_path, text)).validate(kernel)
    assert config.data.provider.kwargs["provider_uri"] == {"day": str(STORE), "1min": str(MINUTE)}
    store = kernel.create("data_provider", config.data.provider.name, **config.data.provider.kwargs)
    assert len(store.calendar("day")) > 0 and len(store.calendar("1min")) > len(store.calendar("day"))


@pytest.mark.parametrize(("uri", "message", "key"), [
    ("{1min: /x}", "needs a 'day' folder", "qlib_init.provider_uri"),
    ("{day: '', 1min: /x}", "expected the day store's folder", "qlib_init.provider_uri.day"),
])
def test_bad_folder_mappings_are_refused(tmp_path: Path, kernel: Kernel, uri: str, message: str, key: str) -> None:
    text = _base().replace(f'    provider_uri: "{STORE}"', f"    provider_uri: {uri}")
    with pytest.raises(ConfigError, match=message) as info:
        read_workflow(_write(tmp_path, text)).validate(kernel)
    assert info.value.line == 3 and f"{key}:" in str(info.value)  # the document starts with an empty line


def test_handler_freq_day_is_accepted_and_others_refused(tmp_path: Path, kernel: Kernel) -> None:
    day = _base().replace("    instruments: *market\n", "    instruments: *market\n    freq: day\n", 1)
    assert "freq: day" in day
    read_workflow(_write(tmp_path, day)).validate(kernel)
    multi = _base().replace("    instruments: *market\n", "    instruments: *market\n    freq:\n        label: day\n"
                                                           "        feature: 1min\n", 1)
    with pytest.raises(ConfigError, match="it needs exactly one resampling inst_processor") as info:
        read_workflow(_write(tmp_path, multi)).validate(kernel)  # a minute group without its resampling step
    assert "task.dataset.kwargs.handler.kwargs.freq.feature" in str(info.value) and info.value.line is not None


def test_two_backtest_records_must_share_their_config(tmp_path: Path, kernel: Kernel) -> None:
    both = _base() + textwrap.indent(textwrap.dedent("""\
        - class: MultiPassPortAnaRecord
          kwargs:
            pass_num: 2
            config: *port_analysis_config
        """), "        ")
    config = read_workflow(_write(tmp_path, both)).validate(kernel)
    assert [r.name for r in config.records][-2:] == ["PortAnaRecord", "MultiPassPortAnaRecord"]
    assert config.records[-1].kwargs == {"pass_num": 2}
    other = _base() + textwrap.indent(textwrap.dedent("""\
        - class: MultiPassPortAnaRecord
          kwargs:
            config: {strategy: {class: TopkDropoutStrategy, kwargs: {topk: 5, n_drop: 1}}}
        """), "        ")
    with pytest.raises(ConfigError, match="every backtest record of a workflow trades with the same config"):
        read_workflow(_write(tmp_path, other)).validate(kernel)


@pytest.mark.parametrize("empty", ["[]", "{}", "null"])
def test_empty_inst_processors_are_accepted(tmp_path: Path, kernel: Kernel, empty: str) -> None:
    """Qlib's default is no instance processor: an empty entry runs nothing (a non-empty one is refused)."""
    text = _base().replace("    instruments: *market\n", f"    instruments: *market\n    inst_processors: {empty}\n", 1)
    config = read_workflow(_write(tmp_path, text)).validate(kernel)
    assert config.dataset.features.name == "Alpha158"
    text = text.replace(f"inst_processors: {empty}", "inst_processors: [{class: ResampleNProcessor}]")
    with pytest.raises(ConfigError, match="inst_processors"):
        read_workflow(_write(tmp_path, text)).validate(kernel)
