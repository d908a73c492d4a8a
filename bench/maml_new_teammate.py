"""Adapting to a new teammate: MAML's learner against held-out partners (PartnerNavigation).

The task is the partner: a scripted partner plays its convention (the landmark it heads for),
which the learner does not observe. Only the learner trains and adapts
(``policies_to_train`` and ``modules_to_adapt`` = ``["learner"]``). Methods, at the same
env-step budget, each adapted on every held-out partner with K = 1..``--max-steps`` inner steps
(vanilla PG, ``inner_lr``, ``episodes_per_task`` fresh episodes per step):

- ``MAML``: the learner meta-trained against partners drawn from the training distribution;
- ``pretrained PPO + K steps``: the learner trained by PPO with a random partner every episode,
  then fine-tuned with the same K steps;
- ``random init + K steps``: the untrained learner.

Prints the team return (both agents' shared reward, summed) before and after each step, mean
± s.e. over ``--test-tasks`` held-out partners, and the one-step gain with its 95% CI, paired
by partner.

    python bench/maml_new_teammate.py             # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray
import torch
from _training import train_until, trained_weights
from marl_meta import ci95, mean_sem
from ray.rllib.algorithms.ppo import PPOConfig
from ray.tune.registry import register_env

import rllib_marl_meta  # noqa: F401  (registers the envs and algorithms)
from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.envs import make_env, to_rllib_env
from rllib_marl_meta.envs.partner_navigation import LEARNER, partner_team_setup
from rllib_marl_meta.tasks import NewTaskEachEpisodeParallel

ENV = "PartnerNavigation"
MODEL = {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": False}


def with_team(config, env_config: dict, env: str = ENV):
    setup = partner_team_setup()
    return (
        config.environment(env, env_config=env_config)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=5)
        .rl_module(model_config=MODEL, **setup["rl_module"])
        .multi_agent(**setup["multi_agent"])
    )


def row(name: str, steps: int, returns: list[list[float]], seconds: float) -> str:
    cells = " | ".join(mean_sem(r) for r in returns)
    gain = ci95(np.subtract(returns[1], returns[0]))
    return f"| {name} | {steps:,} | {cells} | {gain} | {seconds:.0f} s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=150_000, help="env steps per method")
    parser.add_argument("--test-tasks", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--partner-delay", type=int, default=5)
    parser.add_argument("--no-observe-partner", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    env_config = {
        "partner_delay": args.partner_delay,
        "observe_partner": not args.no_observe_partner,
    }
    maml_config = with_team(MAMLConfig(), env_config).debugging(seed=args.seed)
    maml = maml_config.team_training().training(modules_to_adapt=[LEARNER]).build_algo()
    rows = []
    try:
        meta_test = lambda: maml.meta_test(args.test_tasks, seed=1, steps=args.max_steps)  # noqa: E731
        rows.append(row("random init + K steps", 0, meta_test().returns, 0.0))
        start = time.perf_counter()
        steps = train_until(maml, args.budget)
        rows.append(row("MAML", steps, meta_test().returns, time.perf_counter() - start))
        print(rows[-1], flush=True)

        register_env(
            f"{ENV}-new-partner-each-episode",
            lambda cfg: to_rllib_env(NewTaskEachEpisodeParallel(make_env(ENV, cfg))),
        )
        ppo_config = with_team(PPOConfig(), env_config, f"{ENV}-new-partner-each-episode")
        ppo_config = ppo_config.debugging(seed=args.seed).training(
            train_batch_size_per_learner=2000, minibatch_size=250, num_epochs=5, lr=3e-4
        )
        start = time.perf_counter()
        weights, ppo_steps = trained_weights(ppo_config, args.budget)
        seconds = time.perf_counter() - start
        maml.learner_group.set_weights(weights)  # Same network: fine-tune PPO's learner.
        rows.append(row("pretrained PPO + K steps", ppo_steps, meta_test().returns, seconds))
    finally:
        maml.stop()
    labels = ["pre"] + [f"adapt_{k}" for k in range(1, args.max_steps + 1)]
    print(f"\n{ENV} {env_config}: {args.test_tasks} held-out partners, team return")
    print(f"| method | env steps | {' | '.join(labels)} | adapt_1 − pre, 95% CI | training |")
    print("|" + " --- |" * (len(labels) + 4))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
