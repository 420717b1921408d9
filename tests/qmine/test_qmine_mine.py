"""``qcore mine`` end to end on a synthetic market with a planted factor: the search recovers it within a stated
budget, the library records spans, turnover, correlation and provenance, it loads as the ``mined`` feature set, and
bad configs fail with the key and line before any data is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qcore.cli import cli
from qcore.errors import DataError
from qcore.kernel import Kernel

PLANTED = "Mean($volume,5)/Mean($volume,20)"

# The stated budget: 80 candidates x 14 generations (at most 1,120 evaluated), seed 1, on 80 stocks x 500 days.
CONFIG = """\
data:
  provider: {{name: qlib_bin, kwargs: {{provider_uri: {store}}}}}
  universe: all
  label: Ref($close, -1)/$close - 1
  spans: {{train: [2016-03-01, 2017-03-31], valid: [2017-04-01, 2017-09-30], test: [2017-10-01, 2017-12-31]}}
search:
  proposer: {proposer}
  seed: 1
  population: {population}
  generations: {generations}
  fields: [close, open, volume]
  operators: [Mean, Std, Ref, Div, Sub, Abs, CSRank]
  windows: [5, 10, 20]
  max_depth: 3
  max_size: 7
fitness: {fitness}
selection: {{keep: 5}}
library: lib.json
"""


def _mine(tmp_path: Path, store: Path, **kw: object) -> tuple[object, dict]:
    params = {"proposer": "genetic", "population": 80, "generations": 14,
              "fitness": "{metric: rank_ic, complexity_penalty: 0.0002, max_correlation: 0.7}", **kw}
    config = tmp_path / "mine.yaml"
    config.write_text(CONFIG.format(store=store, **params))
    result = CliRunner().invoke(cli, ["mine", str(config)])
    library = tmp_path / "lib.json"
    return result, (json.loads(library.read_text()) if library.exists() else {})


def _spearman(store: Path, a: str, b: str) -> float:
    from qcore import open_provider
    from qcore.expr.engine import ExpressionEngine

    kernel = Kernel.load(use_env=False)
    engine = ExpressionEngine(open_provider("qlib_bin", provider_uri=str(store), kernel=kernel),
                              kernel.registry("operator"))  # fmt: skip
    frame = engine.evaluate({"a": a, "b": b}, "all", "2017-10-01", "2017-12-31")
    return float(frame.groupby(level=0).apply(lambda g: g["a"].rank().corr(g["b"].rank())).mean())


def test_planting_refuses_fields_it_changes(tmp_path: Path) -> None:
    from qdata_cn.synth_planted import synthesize_planted

    with pytest.raises(DataError, match="only volume"):
        synthesize_planted(tmp_path / "s", "Mean($close, 5)", Kernel.load(use_env=False).registry("operator"))


def test_mine_recovers_the_planted_factor(tmp_path: Path, planted_store: Path) -> None:
    result, library = _mine(tmp_path, planted_store)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("generation 1/14: 80 evaluated (80 in all), best ")
    assert "median" in lines[0] and "Bonferroni t threshold" in result.output
    run = library["runs"][-1]
    assert run["seed"] == 1 and run["candidates_evaluated"] <= 80 * 14 and run["data"]["version"]
    assert run["bonferroni"]["t_threshold"] > 3.5
    factors = library["factors"]
    assert 1 <= len(factors) <= 5
    best = factors[0]
    assert abs(_spearman(planted_store, best["expression"], PLANTED)) > 0.9  # read on the unused test span
    assert best["valid"]["rank_ic"] > 0.2 and best["test"]["rank_ic"] > 0.2 and not best["lucky"]
    assert 0.0 < best["turnover"] < 1.0
    # honesty guards: decay over 20 horizons, the IC the threshold asked for, the deflated Sharpe of the best
    assert len(best["decay"]) == 20 and best["decay"][0] > 0.2 and abs(best["decay"][-1]) < best["decay"][0]
    assert 0.0 < best["ic_threshold"] < best["train"]["rank_ic"]
    assert best["train"]["n_eff"] <= best["train"]["days"]
    assert run["deflated_sharpe"]["trials"] == run["candidates_evaluated"] and not run["deflated_sharpe"]["flagged"]
    assert best["deflated_sharpe"] == run["deflated_sharpe"]["probability"] > 0.95
    assert "deflated Sharpe probability" in result.output
    for other in factors[1:]:
        assert abs(other["correlation"][best["name"]]) <= 1.0
    fs = Kernel.load(use_env=False).create("feature_set", "mined", library=str(tmp_path / "lib.json"))
    assert fs.features[best["name"]] == best["expression"] and "LABEL0" in fs.labels


def test_random_baseline_runs_and_library_grows(tmp_path: Path, planted_store: Path) -> None:
    first, lib1 = _mine(tmp_path, planted_store, proposer="random_search", population=30, generations=2)
    assert first.exit_code == 0, first.output
    second, lib2 = _mine(tmp_path, planted_store, proposer="random_search", population=30, generations=2)
    assert second.exit_code == 0, second.output
    assert len(lib2["runs"]) == 2 and lib2["factors"][: len(lib1["factors"])] == lib1["factors"]
    names = [f["name"] for f in lib2["factors"]]
    assert len(names) == len(set(names))
    # the second run rejects what correlates with the library it started from: nothing kept twice
    exprs = [f["expression"] for f in lib2["factors"]]
    assert len(exprs) == len(set(exprs))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("population: 80", "population: zero"), "mine.yaml:9: search.population: expected an integer"),
        (("max_size: 7", "max_size: 7\n  bogus: 1"), "mine.yaml:16: search.bogus: unknown key 'bogus'"),
        (("metric: rank_ic", "metric: sharpe"), "fitness.metric: metric must be one of"),
        (("metric: rank_ic", "metric: ls_return, quantile: 0.9"), "fitness.quantile"),
        (("valid: [2017-04-01", "valid: [2017-03-01"), "data.spans: spans must follow each other"),
        (("proposer: genetic", "proposer: {name: genetic, kwargs: {bogus: 1}}"),
         "mine.yaml:7: search.proposer.kwargs: invalid arguments for factor_proposer 'genetic'"),
        (("proposer: genetic", "proposer: {name: llm, kwargs: {url: 'http://127.0.0.1:9/v1', model: m, api_key: k}}"),
         "search.proposer.kwargs: invalid arguments for factor_proposer 'llm'"),
        (("proposer: genetic", "proposer: oracle"), "search.proposer: unknown factor_proposer 'oracle'"),
        (("library: lib.json", "library: lib.json\nif_exists: keep"), "if_exists: if_exists must be one of"),
    ],
)
def test_bad_config_names_key_and_line(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    config = tmp_path / "mine.yaml"
    text = CONFIG.format(store=tmp_path / "nowhere", proposer="genetic", population=80, generations=1,
                         fitness="{metric: rank_ic, complexity_penalty: 0.0002, max_correlation: 0.7}")
    config.write_text(text.replace(*edit))
    result = CliRunner().invoke(cli, ["mine", str(config)])
    assert result.exit_code not in (0, 70)
    assert message in result.output
    assert not (tmp_path / "lib.json").exists()
