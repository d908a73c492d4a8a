"""RL²'s meta-test speed: env steps/s of ``RL2.meta_test`` against the raw env in the same run.

An untrained RL² (GRU 64) on 5-arm Bernoulli bandits, trials of 10 pulls, 500 held-out tasks;
the meta-test is timed for several numbers of trials side by side (``MAX_PARALLEL_TRIALS``), the
raw env with a fixed action sequence.

    python bench/rl2_meta_test_speed.py    # about 30 s
"""

from __future__ import annotations

import time

import ray
import torch

import rllib_marl_meta  # noqa: F401  (registers the envs and algorithms)
import rllib_marl_meta.algorithms.rl2.meta_test as rl2_meta_test
from rllib_marl_meta.algorithms.rl2 import RL2Config
from rllib_marl_meta.envs import make_env

NUM_TASKS, PULLS, ARMS = 500, 10, 5
PARALLEL = (32, 48, 64, 96, 128)


def raw_env_steps_per_second(steps: int = 20_000) -> float:
    env = make_env("BernoulliBandit", {"num_arms": ARMS})
    env.reset(seed=0)
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(i % ARMS)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    config = (
        RL2Config()
        .environment("BernoulliBandit", env_config={"num_arms": ARMS})
        .env_runners(num_env_runners=0)
        .training(episodes_per_trial=PULLS, max_seq_len=PULLS)
    )
    algo = config.build_algo()
    raw = raw_env_steps_per_second()
    print(f"raw env: {raw:,.0f} env steps/s")
    print("| trials side by side | meta-test time (s) | env steps/s | vs raw env |")
    print("| --- | --- | --- | --- |")
    try:
        for parallel in PARALLEL:
            rl2_meta_test.MAX_PARALLEL_TRIALS = parallel
            algo.meta_test(num_tasks=parallel, seed=0)  # Builds and warms this runner.
            start = time.perf_counter()
            algo.meta_test(num_tasks=NUM_TASKS, seed=1)
            seconds = time.perf_counter() - start
            rate = NUM_TASKS * PULLS / seconds
            print(f"| {parallel} | {seconds:.2f} | {rate:,.0f} | {rate / raw:.3f} |", flush=True)
    finally:
        algo.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
