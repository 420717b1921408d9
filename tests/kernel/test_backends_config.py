"""The workflow's ``backend:`` key: parsed with line numbers, used for a rolling run's windows, set by --backend."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from qcore.config import ComponentSpec, load_config
from qcore.errors import ConfigError
from qcore.kernel import Kernel

BASE = """
data: {provider: toy}
dataset:
  features: alpha158
  segments: {train: [2020-01-01, 2020-06-30], test: [2020-07-01, 2020-12-31]}
model: linear
"""


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def config(tmp_path: Path, text: str, kernel: Kernel, overrides: tuple[str, ...] = ()) -> object:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(BASE).lstrip() + textwrap.dedent(text).lstrip())
    return load_config(path, overrides, kernel=kernel)


def test_backend_key_is_the_rolling_default_and_rolling_backend_wins(tmp_path: Path, kernel: Kernel) -> None:
    cfg = config(tmp_path, "backend: {name: processes, kwargs: {max_workers: 2}}\nrolling: {step: 20}\n", kernel)
    assert cfg.backend == ComponentSpec("processes", {"max_workers": 2})
    assert cfg.rolling.backend is cfg.backend
    assert [p for p, k, _ in cfg.component_specs() if k == "execution_backend"] == ["backend"]
    own = config(tmp_path, "backend: processes\nrolling: {step: 20, backend: serial}\n", kernel)
    assert own.rolling.backend == ComponentSpec("serial") and own.backend == ComponentSpec("processes")
    assert [p for p, k, _ in own.component_specs() if k == "execution_backend"] == ["backend", "rolling.backend"]
    plain = config(tmp_path, "rolling: {step: 20}\n", kernel)
    assert plain.backend is None and plain.rolling.backend == ComponentSpec("serial")


def test_bad_backend_is_refused_with_its_line(tmp_path: Path, kernel: Kernel) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, "backend: [processes]\n", kernel)
    assert info.value.path == "backend" and info.value.line == 6
    from qcore.checks import check_names

    cfg = config(tmp_path, "backend: nope\n", kernel)
    with pytest.raises(ConfigError, match=r"wf.yaml:6: backend: unknown execution_backend 'nope'"):
        check_names(cfg, kernel)


def test_cli_backend_option_overrides_both_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qcore.cli as cli_module

    seen = []
    monkeypatch.setattr("qcore.runner.run_workflow", lambda config, kernel, run_name=None: seen.append(config) or 1 / 0)
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(BASE).lstrip() + "backend: serial\nrolling: {step: 20, backend: serial}\n")
    out = CliRunner().invoke(cli_module.cli, ["rolling", str(path), "--backend", "processes"])
    assert seen, out.output
    assert seen[0].backend.name == "processes" and seen[0].rolling.backend.name == "processes"
    seen.clear()
    path.write_text(textwrap.dedent(BASE).lstrip() + "rolling: {step: 20}\n")
    out = CliRunner().invoke(cli_module.cli, ["run", str(path), "--backend", "processes"])
    assert seen, out.output
    assert seen[0].backend.name == "processes" and seen[0].rolling.backend is seen[0].backend
