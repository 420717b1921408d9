"""The RL table: per daily environment and agent, several seeds, test-split mean ± std against every baseline.

The market is the planted-edge synthetic one (3 assets drifting +0.4 %, 0 and −0.3 % a day, 1 % daily noise), split
into train / valid / test rows with the leak-free protocol (train-split scaler, checkpoint chosen on valid, reported
on test, decisions traded at the next close, A-share lots, T+1 and costs, turbulence over a trailing window with a
train-quantile threshold). Sizes are small so that the whole table runs on a laptop's CPU in minutes.

    .venv/bin/python benchmarks/bench_rl.py [--seeds 3] [--envs portfolio,stock_trading] [--agents a2c,ppo,sac,td3,ddpg]
        [--epochs 4] [--json out.json]
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
ON_POLICY = ("a2c", "ppo")
ENV_KWARGS = {"portfolio": "{episode_days: 20}",
              "stock_trading": "{episode_days: 20, hmax: 5000, reward_scaling: 1.0e-3}"}


def run(env: str, agent: str, seeds: int, epochs: int, out: Path) -> dict:
    """Train ``agent`` on ``env`` with ``seeds`` seeds; the summary of :func:`qrl.workflow.train_seeds`."""
    from qrl.config import validate
    from qrl.workflow import train_seeds

    from qcore.config import parse_yaml
    from qcore.kernel import Kernel

    text = CONFIG.format(env=env, agent=agent, days=200, train=100, valid=40, test=60, epochs=epochs,
                         env_kwargs=ENV_KWARGS[env], collect=200 if agent in ON_POLICY else 100,
                         warmup=0 if agent in ON_POLICY else 200,
                         kwargs=", kwargs: {lr: 0.001}" if agent in ON_POLICY else "", out=out / f"{env}_{agent}")
    kernel = Kernel.load(use_env=True)
    return train_seeds(validate(parse_yaml(text, source="bench_rl"), kernel), kernel, seeds)["summary"]


def table(rows: list[tuple[str, str, dict, float]]) -> str:
    """A markdown table: cumulative test return mean ± std of the policy and each baseline, and the policy's wins."""
    baselines = list(rows[0][2]["beats"])
    head = "| env | agent | policy | " + " | ".join(baselines) + " | seconds |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for env, agent, s, secs in rows:
        m, sd, n, key = s["mean"], s["std"], s["seeds"], s["metric"]
        cells = [f"{100 * m[b][key]:+.2f} % ({s['beats'][b]}/{n})" for b in baselines]
        lines.append(f"| {env} | {agent} | **{100 * m['policy'][key]:+.2f} ± {100 * sd['policy'][key]:.2f} %** | "
                     + " | ".join(cells) + f" | {secs:.0f} |")
    return "\n".join(lines)


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
    print("\ntest-split cumulative return, mean over seeds (baseline cells: the policy's wins / seeds)\n")
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([{"env": e, "agent": a, "summary": s, "seconds": t} for e, a, s, t in rows],
                                        indent=2))


if __name__ == "__main__":
    main()
