"""Sampling throughput of MAML against RLlib's PPO on the same env and EnvRunners, same run.

Both algorithms sample PointNavigation2D (100-step episodes) on the same EnvRunner layout; the
throughput is env steps sampled per wall-clock second spent in each algorithm's sampling call
(MAML's ``sample_task_episodes``, PPO's ``synchronous_parallel_sample``), timed here rather than
read from RLlib's EMA-smoothed timers. The first iteration is a warm-up; the two algorithms'
iterations alternate, so both see the same machine load.

    python bench/maml_throughput.py [--env-runners 1] [--envs-per-runner 4] [--iters 4]
"""

from __future__ import annotations

import argparse

import ray
import ray.rllib.algorithms.ppo.ppo as ppo_module
from _timing import timed_into
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED

import rllib_marl_meta  # noqa: F401
import rllib_marl_meta.algorithms.maml.maml as maml_module
from rllib_marl_meta.algorithms.maml import MAMLConfig

SAMPLING_SECONDS = {"MAML": 0.0, "PPO": 0.0}


maml_module.sample_task_episodes = timed_into(
    SAMPLING_SECONDS, "MAML", maml_module.sample_task_episodes
)
ppo_module.synchronous_parallel_sample = timed_into(
    SAMPLING_SECONDS, "PPO", ppo_module.synchronous_parallel_sample
)


def interleaved_steps_per_second(configs: dict, iters: int) -> dict[str, float]:
    """Builds all algorithms, then alternates their iterations so they see the same load."""
    algos = {name: config.build_algo() for name, config in configs.items()}
    steps = dict.fromkeys(algos, 0)
    try:
        for algo in algos.values():
            algo.train()  # warm-up
        SAMPLING_SECONDS.update(dict.fromkeys(SAMPLING_SECONDS, 0.0))
        for _ in range(iters):
            for name, algo in algos.items():
                steps[name] += algo.train()[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED]
        return {name: steps[name] / SAMPLING_SECONDS[name] for name in algos}
    finally:
        for algo in algos.values():
            algo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-runners", type=int, default=1)
    parser.add_argument("--envs-per-runner", type=int, default=4)
    parser.add_argument("--iters", type=int, default=4)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    def common(config):
        return (
            config.environment("PointNavigation2D")
            .env_runners(
                num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner
            )
            .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh"})
            .debugging(seed=0)
        )

    # 8 tasks x 4 episodes x 2 rounds x 100 steps = 6400 steps per MAML iteration; PPO samples
    # the same number of steps per iteration.
    maml = common(MAMLConfig()).training(
        meta_batch_size=8, episodes_per_task=4, maml_optimizer_steps=1
    )
    ppo = common(PPOConfig()).training(
        train_batch_size_per_learner=6400, num_epochs=1, minibatch_size=6400
    )
    rates = interleaved_steps_per_second({"MAML": maml, "PPO": ppo}, args.iters)
    maml_sps, ppo_sps = rates["MAML"], rates["PPO"]
    print(f"layout: {args.env_runners} EnvRunner(s) x {args.envs_per_runner} sub-envs")
    print("| algorithm | env steps/s (sampling) |")
    print("| --- | --- |")
    print(f"| PPO | {ppo_sps:,.0f} |")
    print(f"| MAML | {maml_sps:,.0f} |")
    print(f"MAML / PPO sampling throughput ratio: {maml_sps / ppo_sps:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
