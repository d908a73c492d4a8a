"""Multi-agent MAML without per-task tuning: one setting across every built-in team task.

For each setting and each built-in multi-agent distribution (its own env defaults; MPESpread
with the landmarks hidden, else there is nothing to adapt to), MAML is meta-trained for
``--budget`` env steps with one module per agent, then meta-tested on 20 held-out tasks: team
return before and after one inner step, and the gain with its 95% CI, paired by task.

Settings (``--settings``, comma-separated):

- ``defaults``: ``MAMLConfig()``'s own (ProMP's: 40 tasks x 20 episodes, ``inner_lr`` 0.1,
  ``lr`` 1e-3, linear baseline);
- ``team``: ``MAMLConfig().team_training()`` (``TEAM_TRAINING``: 10 tasks x 10 episodes,
  ``inner_lr`` 0.3, ``lr`` 3e-3; the CooperativeNavigation benchmark's, found there and not
  re-tuned per task);
- ``team_central``: ``team`` with ``baseline="central_value"``.

    python bench/maml_team_defaults.py --settings defaults,team,team_central
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray
import torch
from _training import train_until
from marl_meta import MODEL, ci95, mean_sem, per_agent

import rllib_marl_meta  # noqa: F401  (registers the envs and algorithms)
from rllib_marl_meta.algorithms.maml import TEAM_TRAINING, MAMLConfig
from rllib_marl_meta.envs import make_env
from rllib_marl_meta.envs.partner_navigation import LEARNER, partner_team_setup

ENVS = {
    "CooperativeNavigation": {},
    "DistributedOptimization": {},
    "PartnerNavigation": {},
    "MPESpread": {"observe_landmarks": False},
}
SETTINGS = {
    "defaults": {},
    "team": TEAM_TRAINING,
    "team_central": TEAM_TRAINING | {"baseline": "central_value"},
}


def maml_algo(env: str, training: dict, seed: int):
    env_config = ENVS[env]
    config = (
        MAMLConfig()
        .environment(env, env_config=env_config)
        .env_runners(num_envs_per_env_runner=5)
        .rl_module(model_config=MODEL)
        .debugging(seed=seed)
        .training(**training)
    )
    if env == "PartnerNavigation":  # Only the learner trains; the partner is scripted.
        setup = partner_team_setup()
        config = config.rl_module(model_config=MODEL, **setup["rl_module"])
        config = config.multi_agent(**setup["multi_agent"]).training(modules_to_adapt=[LEARNER])
        return config.build_algo()
    agents = list(make_env(env, env_config).possible_agents)
    return per_agent(config, agents).build_algo()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=150_000, help="env steps per run")
    parser.add_argument("--settings", default="defaults,team,team_central")
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--test-tasks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    for env in args.envs.split(","):
        for setting in args.settings.split(","):
            algo = maml_algo(env, SETTINGS[setting], args.seed)
            try:
                start = time.perf_counter()
                steps = train_until(algo, args.budget)
                seconds = time.perf_counter() - start
                pre, post = algo.meta_test(num_tasks=args.test_tasks, seed=1, steps=1).returns
            finally:
                algo.stop()
            row = (
                f"| {env} | {setting} | {steps:,} | {mean_sem(pre)} | {mean_sem(post)} | "
                f"{ci95(np.subtract(post, pre))} | {seconds:.0f} s |"
            )
            rows.append(row)
            print(row, flush=True)
    print(f"\nOne module per agent, {args.test_tasks} held-out tasks, team return")
    print("| env | setting | env steps | pre | adapt_1 | gain, 95% CI | training |")
    print("|" + " --- |" * 7)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
