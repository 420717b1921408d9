"""``qcore data synth --planted`` and the ``mine:`` workflow section: a planted store made from the command line, a
workflow that mines then trains on the mined library merged with Alpha158 in one run — and beats Alpha158 alone on
the test span's IC — plus the section's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import qcore
from qcore.cli import cli
from qcore.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mine_workflow.yaml"
PLANTED = "CSRank(Mean($volume,10))"


@pytest.fixture(scope="session")
def cs_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's store, written with ``qcore data synth --planted``."""
    out = tmp_path_factory.mktemp("cs_planted") / "store"
    result = CliRunner().invoke(cli, ["data", "synth", "--out", str(out), "--instruments", "80", "--days", "500",
                                      "--seed", "3", "--start", "2016-01-04", "--planted", PLANTED,
                                      "--planted-strength", "0.2", "--no-fundamentals"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote 81 instruments x 500 days (2016-01-04..")
    return out


def test_synth_planted_from_the_cli(cs_store: Path, tmp_path: Path) -> None:
    info = json.loads((cs_store / "synth_info.json").read_text())
    assert info["planted"] == {"expression": PLANTED, "strength": 0.2}
    runner = CliRunner()
    bad = runner.invoke(cli, ["data", "synth", "--out", str(tmp_path / "a"), "--planted", "Mean($close, 5)"])
    assert bad.exit_code == 5 and "may read only volume, not close" in bad.output
    bad = runner.invoke(cli, ["data", "synth", "--out", str(tmp_path / "b"), "--planted", "Mean($volume, 5)",
                              "--freq", "1min"])  # fmt: skip
    assert bad.exit_code == 2 and "--planted" in bad.output and "cannot be combined" in bad.output
    bad = runner.invoke(cli, ["data", "synth", "--out", str(tmp_path / "c"), "--planted", "Mean($volume, 5)",
                              "--planted-strength", "-1"])  # fmt: skip
    assert bad.exit_code == 5 and "strength must be a number in (0, 5]" in bad.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def _example(store: Path) -> dict[str, Any]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["data"]["provider"]["kwargs"]["provider_uri"] = str(store)
    return doc


def _recorded(root: Path, run_id: str) -> dict[str, float]:
    """The metrics the local recorder stored for ``run_id`` (last value of each)."""
    metrics = json.loads((root / "runs" / "mine_alpha158" / run_id / "metrics.json").read_text())
    return {k: v[-1][1] for k, v in metrics.items()}


@pytest.mark.slow
def test_mined_library_beats_alpha158_alone(cs_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example's library and runs are relative to the working directory
    mined = qcore.run(_example(cs_store))
    library = json.loads((tmp_path / "runs" / "mined_alpha158.json").read_text())
    recorded = _recorded(tmp_path, mined.run_id)
    assert recorded["mine.candidates_evaluated"] == library["runs"][-1]["candidates_evaluated"] > 100
    assert recorded["mine.factors_kept"] == len(library["factors"]) >= 1
    assert list(library["runs"][-1]["spans"]) == ["train", "valid"]  # the test segment is never mined on
    assert all(f["test"] is None for f in library["factors"])
    stored = tmp_path / "runs" / "mine_alpha158" / mined.run_id / "artifacts" / "mined_library.json"
    assert json.loads(stored.read_text()) == library
    base_doc = _example(cs_store)
    del base_doc["mine"]
    base_doc["dataset"]["features"] = "alpha158"
    base = qcore.run(base_doc)
    # the mined factor adds what Alpha158 (time-series features only) lacks: a clear margin on the test span
    assert mined.metrics["signal.IC"] > base.metrics["signal.IC"] + 0.01
    assert mined.metrics["signal.Rank_IC"] > base.metrics["signal.Rank_IC"] + 0.01
    # a second run with `reuse` mines nothing and trains on the same library
    again = _example(cs_store)
    again["mine"]["if_exists"] = "reuse"
    reused = qcore.run(again)
    assert _recorded(tmp_path, reused.run_id)["mine.candidates_evaluated"] == 0
    assert reused.metrics["signal.IC"] == pytest.approx(mined.metrics["signal.IC"], abs=1e-12)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["mine"]["search"].update(population="many"), "mine.search.population: expected an integer"),
        (lambda d: d["mine"].update(if_exists="keep"), "mine.if_exists: if_exists must be one of"),
        (lambda d: d["mine"].update(bogus=1), "mine.bogus: unknown key 'bogus'"),
        (lambda d: d["mine"]["search"].update(proposer="oracle"), "mine.search.proposer"),
        (lambda d: d["mine"].pop("library"), "missing required key 'library'"),
    ],
)
def test_section_errors_name_the_key(edit: Any, message: str, tmp_path: Path) -> None:
    doc = _example(tmp_path / "nowhere")
    edit(doc)
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        qcore.run(path)
    assert message in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_section_without_spans_or_segments_is_refused(cs_store: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    doc = _example(cs_store)
    doc["dataset"]["segments"] = {"train": ["2016-03-01", "2017-03-31"], "test": ["2017-10-01", "2017-12-29"]}
    with pytest.raises(ConfigError, match=r"mine\.data: give data\.spans"):
        qcore.run(doc)
    assert not (tmp_path / "runs" / "mined_alpha158.json").exists()


def test_example_mine_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from qmine.config import load_config

    example = EXAMPLE.with_name("mine.yaml")
    monkeypatch.setenv("QCORE_PLANTED", str(tmp_path / "planted"))
    config = load_config(example)
    assert config.provider_kwargs["provider_uri"] == str(tmp_path / "planted")
    assert config.library.resolve() == (EXAMPLE.parents[1] / "runs" / "mined.json").resolve()
    assert config.if_exists == "append" and config.spans["test"][0] > config.spans["valid"][1]
    monkeypatch.delenv("QCORE_PLANTED")
    assert load_config(example).provider_kwargs["provider_uri"] == "data/synth_planted"
