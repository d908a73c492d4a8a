"""When does multi-agent RL² start to adapt? Held-out adaptation along training.

RL² with one module (one GRU) for the 4 agents of DistributedOptimization, with the setting that
adapts at 300k env steps in ``bench/marl_meta.py`` (20-step episodes, 2-episode trials, 4,000-step
batches, 1,000-step minibatches, the value clamp lifted), meta-tested on ``--test-tasks``
held-out tasks every ``--every`` iterations: the mean return of each inner episode and
episode 2 − episode 1 (mean ± s.e. over tasks, paired by task).

    python bench/rl2_team_adaptation_curve.py [--iterations 24] [--every 8] [--test-tasks 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray

from rllib_marl_meta.algorithms.rl2 import RL2Config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=24, help="of 4,000 env steps each")
    parser.add_argument("--every", type=int, default=8, help="meta-test every this many")
    parser.add_argument("--test-tasks", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    config = (
        RL2Config()
        .environment("DistributedOptimization", env_config={"horizon": 20})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=8)
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *a, **k: "shared")
        .debugging(seed=args.seed)
        .training(
            episodes_per_trial=2,
            train_batch_size_per_learner=4000,
            minibatch_size=1000,
            num_epochs=5,
            lr=1e-3,
            vf_clip_param=100000,
        )
    )
    algo = config.build_algo()
    start = time.perf_counter()
    print("| env steps | episode 1 | episode 2 | episode 2 − episode 1 | wall time |")
    print("| --- | --- | --- | --- | --- |")
    try:
        for iteration in range(1, args.iterations + 1):
            result = algo.train()
            if iteration % args.every:
                continue
            returns = np.asarray(algo.meta_test(num_tasks=args.test_tasks, seed=1).returns)
            gain = returns[1] - returns[0]
            steps = int(result["num_env_steps_sampled_lifetime"])
            print(
                f"| {steps:,} | {returns[0].mean():.2f} | {returns[1].mean():.2f} | "
                f"{gain.mean():+.2f} ± {gain.std(ddof=1) / np.sqrt(len(gain)):.2f} | "
                f"{time.perf_counter() - start:.0f} s |",
                flush=True,
            )
    finally:
        algo.stop()


if __name__ == "__main__":
    main()
