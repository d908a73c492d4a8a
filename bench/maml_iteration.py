"""Wall time of one MAML iteration at ProMP's default setting, and peak memory.

PointNavigation2D, 40 tasks x 20 episodes x 100 steps per adaptation step, K = 1, 5 outer
optimizer steps, second order, (64, 64) tanh network, on ``--env-runners`` remote EnvRunners x
``--envs-per-runner`` sub-envs and the local Learner. It prints the mean over ``--iters``
iterations (after one warm-up) of the iteration's wall time, its sampling time and its
learner time, and the peak resident memory of the driver (which holds the Learner) and of each
EnvRunner. It uses only the public API, so the same script measures an older checkout:

    python bench/maml_iteration.py [--env-runners 2] [--envs-per-runner 10] [--iters 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import ray

import rllib_marl_meta  # noqa: F401  (registers the envs)
from rllib_marl_meta.algorithms.maml import MAMLConfig


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-runners", type=int, default=2)
    parser.add_argument("--envs-per-runner", type=int, default=10)
    parser.add_argument("--iters", type=int, default=2)
    args = parser.parse_args()
    ray.init(num_cpus=args.env_runners + 1, include_dashboard=False, log_to_driver=False)
    config = (
        MAMLConfig()
        .environment("PointNavigation2D")
        .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner)
        .debugging(seed=0)
        .training(
            meta_batch_size=40,
            episodes_per_task=20,
            inner_adaptation_steps=1,
            maml_optimizer_steps=5,
            meta_gradient="second_order",
        )
    )
    algo = config.build_algo()
    try:
        algo.train()  # Warm-up.
        walls, sampling, learning, steps = [], [], [], []
        for _ in range(args.iters):
            start = time.perf_counter()
            result = algo.train()
            walls.append(time.perf_counter() - start)
            timers = result["timers"]
            sampling.append(timers["env_runner_sampling_timer"])
            learning.append(timers["learner_update_timer"] + timers["learner_adaptation_timer"])
            steps.append(result["env_runners"]["num_env_steps_sampled"])
        runner_rss = algo.env_runner_group.foreach_env_runner(
            lambda runner: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            local_env_runner=False,
        )
    finally:
        algo.stop()
    print(
        f"layout: {args.env_runners} EnvRunner(s) x {args.envs_per_runner} sub-envs; "
        f"{np.mean(steps):,.0f} env steps per iteration"
    )
    print(
        "| iteration wall time | sampling | meta-update + adaptation | driver + Learner peak RSS | "
        "EnvRunner peak RSS |"
    )
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| {np.mean(walls):.1f} s | {np.mean(sampling):.1f} s | {np.mean(learning):.1f} s | "
        f"{peak_rss_mib():,.0f} MiB | {', '.join(f'{r:,.0f}' for r in runner_rss)} MiB |"
    )


if __name__ == "__main__":
    main()
