"""Where an RL² iteration's time goes: sampling vs the recurrent PPO update, per setting.

PointNavigation2D with 20-step episodes (the continuous-control task RL² adapts on), 4,000-step
batches, one local EnvRunner with 8 sub-envs, 1 torch thread. Each setting changes what the
issue asks about (epochs, minibatch size, the BPTT chunk ``max_seq_len``, episodes per trial)
and is measured in the same run: after ``--warmup`` iterations, ``--iters`` iterations of every
setting alternate, so all see the same machine load. Printed per setting: median seconds per
``train()``, its sampling and learner parts (wall clock around RLlib's
``synchronous_parallel_sample`` and ``LearnerGroup.update``), and the env steps per second of
the whole iteration.

    python bench/rl2_iteration.py [--iters 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import statistics

import ray
import torch
from _timing import alternate_iterations

import rllib_marl_meta  # noqa: F401  (registers PointNavigation2D and RL2)
from rllib_marl_meta.algorithms.rl2 import RL2Config

HORIZON = 20

# name -> (episodes_per_trial, num_epochs, minibatch_size, max_seq_len)
SETTINGS = {
    "RL2Config defaults (3 eps/trial, 10 epochs, minibatch 128, seq 50)": (3, 10, 128, 50),
    "minibatch 1000, 10 epochs, seq 60": (3, 10, 1000, 60),
    "minibatch 1000, 5 epochs, seq 60": (3, 5, 1000, 60),
    "2 eps/trial, minibatch 1000, 5 epochs, seq 40": (2, 5, 1000, 40),
    "2 eps/trial, minibatch 1000, 5 epochs, seq 20": (2, 5, 1000, 20),
    "2 eps/trial, minibatch 500, 5 epochs, seq 40": (2, 5, 500, 40),
}


def build(episodes_per_trial: int, num_epochs: int, minibatch_size: int, max_seq_len: int):
    config = (
        RL2Config()
        .environment("PointNavigation2D", env_config={"horizon": HORIZON})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=8)
        .debugging(seed=0)
        .training(
            episodes_per_trial=episodes_per_trial,
            num_epochs=num_epochs,
            minibatch_size=minibatch_size,
            max_seq_len=max_seq_len,
            train_batch_size_per_learner=4000,
        )
    )
    return config.build_algo()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=3, help="measured iterations per setting")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    algos = {name: build(*setting) for name, setting in SETTINGS.items()}
    times = alternate_iterations(algos, args.iters, args.warmup)
    for algo in algos.values():
        algo.stop()
    ray.shutdown()

    print(
        f"\nPointNavigation2D, {HORIZON}-step episodes, batch 4000, {args.iters} alternating "
        "iterations per setting (medians)"
    )
    print("| setting | train() s | sampling s | learner s | learner share | env steps/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, t in times.items():
        total, sample, learn = (statistics.median(t[k]) for k in ("total", "sample", "learn"))
        steps = statistics.median(t["steps"])
        print(
            f"| {name} | {total:.2f} | {sample:.2f} | {learn:.2f} | {learn / total:.0%} | "
            f"{steps / total:,.0f} |"
        )


if __name__ == "__main__":
    main()
