"""The README's main job: meta-train MAML on PointNavigation2D, then meta-test on new tasks.

Meta-training runs ``--iterations`` MAML iterations (10 tasks x 5 episodes per iteration, one
inner step, 20-step episodes); meta-testing adapts the meta-parameters to ``--test-tasks`` tasks
never seen in training and prints the return before and after each inner step. The untrained
meta-parameters are meta-tested on the same tasks first, as the baseline.

    python -m rllib_marl_meta.quickstart [--iterations 30] [--test-tasks 20] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ray

import rllib_marl_meta  # noqa: F401  (registers the built-in envs)
from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.console import quiet_rllib_noise
from rllib_marl_meta.meta_learner import MetaTestResult


def quickstart_config(seed: int = 0) -> MAMLConfig:
    return (
        MAMLConfig()
        .environment("PointNavigation2D", env_config={"horizon": 20})
        .env_runners(num_envs_per_env_runner=5)
        .debugging(seed=seed)
        .training(meta_batch_size=10, episodes_per_task=5, maml_optimizer_steps=5, lr=3e-3)
    )


def format_curve(result: MetaTestResult, title: str) -> str:
    cells = [
        f"{label}: {m:7.2f} ± {se:4.2f}"
        for label, m, se in zip(result.labels, result.mean, result.stderr)
    ]
    return f"{title:28s} " + " | ".join(cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--test-tasks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2, help="inner steps at meta-test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, default=Path("results/quickstart"))
    args = parser.parse_args(argv)

    quiet_rllib_noise()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    algo = quickstart_config(args.seed).build_algo()
    try:
        before = algo.meta_test(args.test_tasks, seed=1, steps=args.steps)
        start = time.perf_counter()
        print("iter  env_steps  pre-adapt  post-adapt  adaptation_delta")
        for i in range(1, args.iterations + 1):
            r = algo.train()
            steps = int(r["env_runners"]["num_env_steps_sampled_lifetime"])
            print(
                f"{i:4d} {steps:10,d} {r['episode_return_mean']:10.2f} "
                f"{r['episode_return_mean_adapt_1']:11.2f} {r['adaptation_delta']:17.2f}",
                flush=True,
            )
        print(f"meta-training took {time.perf_counter() - start:.0f} s")
        after = algo.meta_test(args.test_tasks, seed=1, steps=args.steps)
        checkpoint = algo.save_to_path(args.checkpoint.resolve())
    finally:
        algo.stop()
        ray.shutdown()
    print(f"\nMeta-test on {args.test_tasks} new tasks (mean ± standard error of task returns):")
    print(format_curve(before, "untrained meta-parameters"))
    print(format_curve(after, "after meta-training"))
    print(f"\ncheckpoint: {checkpoint}")
    print(f"meta-test it again: rllib-marl-meta evaluate {checkpoint}")


if __name__ == "__main__":
    main()
