"""The RL table: per environment and agent, several seeds, test-split mean ± std against every baseline.

The market is the planted-edge synthetic one (3 assets drifting +0.4 %, 0 and −0.3 % a day, 1 % daily noise), split
into train / valid / test rows with the leak-free protocol (train-split scaler, checkpoint chosen on valid, reported
on test, decisions traded at the next close, A-share lots, T+1 and costs, turbulence over a trailing window with a
train-quantile threshold). Sizes are small so that the whole table runs on a laptop's CPU in minutes.

    .venv/bin/python benchmarks/bench_rl.py [--seeds 3] [--envs portfolio,stock_trading] [--agents a2c,ppo,sac,td3,ddpg]
        [--epochs 4] [--json out.json]
    .venv/bin/python benchmarks/bench_rl.py --envs execution --agents ppo,a2c,dqn   # PA (bps) vs TWAP and VWAP
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

CONFIG = """\
env: {env}
data:
  planted: {{days: {days}, seed: 0}}
  splits: {{train: {train}, valid: {valid}, test: {test}}}
  turbulence: {{window: 20, quantile: 0.99}}
env_kwargs: {env_kwargs}
algorithm: {{name: {agent}, hidden_sizes: [64, 64]{kwargs}}}
trainer: {{epochs: {epochs}, epoch_steps: 400, collect_steps: {collect}, n_envs: 4, valid_episodes: 1,
           warmup_steps: {warmup}, seed: 0}}
output: {{dir: {out}}}
"""
EXECUTION = """\
env: execution
data:
  planted: {{days: 16, instruments: 3, seed: 0, drift_bps: 60}}
  splits: {{train: 8, valid: 4, test: 4}}
env_kwargs: {{side: sell, amount: 100000, n_steps: 8, volume_cap: 0.1,
             action: {{name: categorical, kwargs: {{n: 5, max_multiple: 4.0}}}},
             reward: {{name: pa_penalty, kwargs: {{penalty: 10.0}}}}}}
algorithm: {{name: {agent}, hidden_sizes: [64, 64], kwargs: {{lr: 0.0003}}}}
trainer: {{epochs: {epochs}, epoch_steps: 400, collect_steps: 200, n_envs: 4, valid_episodes: 12,
           warmup_steps: {warmup}, seed: 0}}
output: {{dir: {out}}}
"""
ON_POLICY = ("a2c", "ppo")
ENV_KWARGS = {"portfolio": "{episode_days: 20}",
              "stock_trading": "{episode_days: 20, hmax: 5000, reward_scaling: 1.0e-3}"}


def run(env: str, agent: str, seeds: int, epochs: int, out: Path) -> dict:
    """Train ``agent`` on ``env`` with ``seeds`` seeds; the summary of :func:`qrl.workflow.train_seeds`."""
    from qrl.config import validate
    from qrl.workflow import train_seeds

    from qcore.config import parse_yaml
    from qcore.kernel import Kernel

    if env == "execution":  # discrete actions: a2c, ppo, dqn; PA against TWAP and VWAP in bps
        text = EXECUTION.format(agent=agent, epochs=epochs, warmup=0 if agent in ON_POLICY else 200,
                                out=out / f"{env}_{agent}")
        kernel = Kernel.load(use_env=True)
        return train_seeds(validate(parse_yaml(text, source="bench_rl"), kernel), kernel, seeds)["summary"]
    text = CONFIG.format(env=env, agent=agent, days=200, train=100, valid=40, test=60, epochs=epochs,
                         env_kwargs=ENV_KWARGS[env], collect=200 if agent in ON_POLICY else 100,
                         warmup=0 if agent in ON_POLICY else 200,
                         kwargs=", kwargs: {lr: 0.001}" if agent in ON_POLICY else "", out=out / f"{env}_{agent}")
    kernel = Kernel.load(use_env=True)
    return train_seeds(validate(parse_yaml(text, source="bench_rl"), kernel), kernel, seeds)["summary"]


def table(rows: list[tuple[str, str, dict, float]]) -> str:
    """A markdown table: cumulative test return mean ± std of the policy and each baseline, and the policy's wins."""
    out = []
    for group in ("daily", "execution"):
        chosen = [r for r in rows if (r[0] == "execution") == (group == "execution")]
        if not chosen:
            continue
        baselines = list(chosen[0][2]["beats"])
        head = "| env | agent | policy | " + " | ".join(baselines) + " | seconds |"
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        for env, agent, s, secs in chosen:
            m, sd, n, key = s["mean"], s["std"], s["seeds"], s["metric"]
            scale, unit = (1.0, " bps") if key == "pa_bps" else (100.0, " %")
            cells = [f"{scale * m[b][key]:+.2f}{unit} ({s['beats'][b]}/{n})" for b in baselines]
            lines.append(f"| {env} | {agent} | **{scale * m['policy'][key]:+.2f} ± {scale * sd['policy'][key]:.2f}"
                         f"{unit}** | " + " | ".join(cells) + f" | {secs:.0f} |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--envs", default="portfolio,stock_trading")
    parser.add_argument("--agents", default="a2c,ppo,sac,td3,ddpg")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for env in args.envs.split(","):
            for agent in args.agents.split(","):
                t0 = time.perf_counter()
                summary = run(env, agent, args.seeds, args.epochs, Path(tmp))
                rows.append((env, agent, summary, time.perf_counter() - t0))
                print(f"{env} {agent}: done in {rows[-1][3]:.0f} s", flush=True)
                if args.json is not None:  # after every row, so a long run's finished rows are kept
                    _write(args.json, rows)
    print("\ntest-split metric, mean over seeds (baseline cells: the policy's wins / seeds)\n")
    print(table(rows))
    if args.json is not None:
        _write(args.json, rows)


def _write(path: Path, rows: list[tuple[str, str, dict, float]]) -> None:
    path.write_text(json.dumps([{"env": e, "agent": a, "summary": s, "seconds": t} for e, a, s, t in rows],
                               indent=2))


if __name__ == "__main__":
    main()
