"""Multi-agent MAML's baselines: linear, per-agent value head, central critic, same budget.

For each ``baseline`` MAML is meta-trained on CooperativeNavigation (3 agents, hidden landmarks,
one module per agent) for ``--budget`` env steps with the same seed and settings, then:

- team gain: the held-out tasks' team return before and after one inner step (``meta_test``
  seed 1, 20 tasks), with the 95% CI of the gain, paired by task;
- inner-gradient noise: on ``--variance-tasks`` held-out tasks, the inner policy gradient at the
  trained meta-parameters from ``--variance-seeds`` independent batches ``D_0`` (each
  ``episodes_per_task`` episodes) of the same task. Reported per task and then averaged: the
  total variance (trace of the covariance over seeds) and the same divided by the squared norm
  of the mean gradient (the inverse signal-to-noise ratio; comparable across baselines, whose
  trained parameters differ).

    python bench/maml_team_baselines.py                  # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray
import torch
from _training import train_until
from marl_meta import MODEL, SETTINGS, agent_ids, ci95, mean_sem, per_agent

import rllib_marl_meta  # noqa: F401  (registers the envs and algorithms)
from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.meta_learner import held_out_seed

BASELINES = ("linear", "value", "central_value")
ENV = "CooperativeNavigation"


def maml_algo(baseline: str, env_config: dict, agents: list[str], seed: int):
    config = (
        MAMLConfig()
        .environment(ENV, env_config=env_config)
        .env_runners(num_envs_per_env_runner=5)
        .rl_module(model_config=MODEL)
        .debugging(seed=seed)
        .training(baseline=baseline, **SETTINGS[ENV].maml)
    )
    return per_agent(config, agents).build_algo()


def inner_gradient(algo, task, seed: int) -> np.ndarray:
    """The inner policy gradient of all adapted modules at theta, from one fresh ``D_0``."""
    learner = algo.learner_group._learner  # Local Learner (num_learners = 0).
    algo._sample_and_adapt([task], num_steps=0, seed=seed, log_metrics=False)
    theta = learner._meta_parameters()
    (adapted,) = learner._adapt_tasks([None], [learner._task_batches[0][0]])
    learner.clear_tasks()
    parts = [
        ((theta[mid][name] - adapted[mid][name]) / algo.config.inner_lr).detach().flatten()
        for mid in learner._adapt_module_ids()
        for name in sorted(theta[mid])
    ]
    return torch.cat(parts).numpy().astype(np.float64)


def gradient_noise(algo, tasks, seeds: int) -> tuple[float, float]:
    """Mean over tasks of (total variance, total variance / |mean gradient|²) over seeds."""
    totals, relatives = [], []
    for t, task in enumerate(tasks):
        grads = np.stack([inner_gradient(algo, task, 1000 * t + s) for s in range(seeds)])
        mean = grads.mean(axis=0)
        total = float(((grads - mean) ** 2).sum(axis=1).mean())
        totals.append(total)
        relatives.append(total / float(mean @ mean))
    return float(np.mean(totals)), float(np.mean(relatives))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=150_000, help="env steps per baseline")
    parser.add_argument("--num-agents", type=int, default=3)
    parser.add_argument("--test-tasks", type=int, default=20)
    parser.add_argument("--variance-tasks", type=int, default=5)
    parser.add_argument("--variance-seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", default=",".join(BASELINES))
    args = parser.parse_args()

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    env_config = {**SETTINGS[ENV].env_config, "num_agents": args.num_agents}
    SETTINGS[ENV].env_config = env_config
    agents = agent_ids(ENV, SETTINGS[ENV])
    rows = []
    for baseline in args.baselines.split(","):
        algo = maml_algo(baseline, env_config, agents, args.seed)
        try:
            start = time.perf_counter()
            steps = train_until(algo, args.budget)
            seconds = time.perf_counter() - start
            result = algo.meta_test(num_tasks=args.test_tasks, seed=1, steps=1)
            variance_tasks = algo._task_env.sample_tasks(args.variance_tasks, seed=held_out_seed(2))
            total, relative = gradient_noise(algo, variance_tasks, args.variance_seeds)
        finally:
            algo.stop()
        pre, post = result.returns
        row = (
            f"| {baseline} | {steps:,} | {mean_sem(pre)} | {mean_sem(post)} | "
            f"{ci95(np.subtract(post, pre))} | {total:.3g} | {relative:.3g} | {seconds:.0f} s |"
        )
        rows.append(row)
        print(row, flush=True)
    print(
        f"\n{ENV}, {args.num_agents} agents, one module per agent, {args.test_tasks} held-out "
        f"tasks; gradient noise over {args.variance_seeds} batches on {args.variance_tasks} tasks"
    )
    print(
        "| baseline | env steps | team pre | team adapt_1 | gain, 95% CI | inner-gradient "
        "variance | variance / mean² | training time |"
    )
    print("|" + " --- |" * 8)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
