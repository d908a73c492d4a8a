"""MAML's sampler against the raw env and against RLlib PPO's sampling, same run, same machine.

For each env it measures, in this order and in one process tree:

- raw: the plain env stepping pre-drawn random actions in this process (env steps/s), and that
  times the number of CPU cores the runners use: the hardware's limit for this env;
- MAML at a classic few-tasks setting (``--few``: tasks x episodes) and at a many-tasks
  setting (``--many``), K = 1, on ``--env-runners`` x ``--envs-per-runner`` sub-envs: env steps
  sampled per second of MAML's sampling calls, and env steps sampled vs used by the update;
- RLlib PPO sampling the same env on the same layout (``synchronous_parallel_sample``).

MAML's and PPO's iterations alternate after a warm-up, so they see the same machine load.
Ratios in the same run are the figures that matter on a shared machine.

    python bench/maml_sampling.py [--envs PendulumMass PointNavigation2D CooperativeNavigation]
        [--env-runners 2] [--envs-per-runner 10] [--iters 3] [--rllib-loop]
"""

from __future__ import annotations

import argparse
import time

import ray
import ray.rllib.algorithms.ppo.ppo as ppo_module
from _timing import timed_into
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED

import rllib_marl_meta.algorithms.maml.maml as maml_module
from rllib_marl_meta import MAMLConfig
from rllib_marl_meta.envs import MULTI_AGENT_ENVS, make_env

SECONDS: dict[str, float] = {"MAML": 0.0, "PPO": 0.0}
maml_module.sample_task_episodes = timed_into(SECONDS, "MAML", maml_module.sample_task_episodes)
ppo_module.synchronous_parallel_sample = timed_into(
    SECONDS, "PPO", ppo_module.synchronous_parallel_sample
)
# Env configs: the settings of the measurements (2 agents on CooperativeNavigation).
ENV_CONFIGS = {"CooperativeNavigation": {"num_agents": 2}}
# Suffix of a MAML setting whose runners sample through RLlib's loop instead of the direct one.
RLLIB_LOOP = ", RLlib loop"


def raw_steps_per_second(name: str, seconds: float = 3.0) -> tuple[float, int]:
    """The plain env stepping pre-drawn random actions, resetting at episode ends; and the
    length of its first episode (every built-in env has a fixed horizon)."""
    env = make_env(name, ENV_CONFIGS.get(name, {}))
    multi_agent = name in MULTI_AGENT_ENVS
    if multi_agent:
        env.reset(seed=0)
        agents = list(env.possible_agents)
        actions = [{a: env.action_space(a).sample() for a in agents} for _ in range(1000)]
    else:
        env.reset(seed=0)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(1000)]
    steps, first_episode, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i, action in enumerate(actions):
            if multi_agent:
                _, _, terminated, truncated, _ = env.step(action)
                done = all(terminated.values()) or all(truncated.values()) or not env.agents
            else:
                _, _, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
            if done:
                first_episode = first_episode or steps + i + 1
                env.reset()
        steps += len(actions)
    return steps / (time.perf_counter() - start), first_episode


def layout(config, args):
    return config.env_runners(
        num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner
    )


def maml_config(name: str, tasks: int, episodes: int, args) -> MAMLConfig:
    config = (
        MAMLConfig()
        .environment(name, env_config=ENV_CONFIGS.get(name, {}))
        .debugging(seed=0)
        .training(meta_batch_size=tasks, episodes_per_task=episodes, maml_optimizer_steps=1)
    )
    if name in MULTI_AGENT_ENVS:
        config = config.multi_agent(
            policies={"shared"}, policy_mapping_fn=lambda agent_id, *a, **k: "shared"
        )
    return layout(config, args)


def ppo_config(name: str, batch: int, args) -> PPOConfig:
    config = (
        PPOConfig()
        .environment(name, env_config=ENV_CONFIGS.get(name, {}))
        .debugging(seed=0)
        .training(train_batch_size_per_learner=batch, num_epochs=1, minibatch_size=batch)
    )
    if name in MULTI_AGENT_ENVS:
        config = config.multi_agent(
            policies={"shared"}, policy_mapping_fn=lambda agent_id, *a, **k: "shared"
        )
    return layout(config, args)


def interleaved(configs: dict, iters: int, horizon: int) -> dict[str, dict]:
    """Alternates the algorithms' iterations; returns steps/s and steps sampled vs used."""
    algos = {name: config.build_algo() for name, config in configs.items()}
    for name, algo in algos.items():
        if name.endswith(RLLIB_LOOP):  # MAML's runners sample through RLlib's own loop.
            algo.env_runner_group.foreach_env_runner(
                lambda runner: setattr(runner, "sample_directly", False)
            )
    out = {name: {"sampled": 0, "used": 0, "seconds": 0.0} for name in algos}
    try:
        for algo in algos.values():
            algo.train()  # Warm-up.
        for _ in range(iters):
            for name, algo in algos.items():
                key = "PPO" if name == "PPO" else "MAML"
                SECONDS[key] = 0.0
                result = algo.train()
                out[name]["seconds"] += SECONDS[key]
                out[name]["sampled"] += result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED]
                if name != "PPO":  # K + 1 = 2 sampling rounds of whole episodes.
                    cfg = algo.config
                    out[name]["used"] += cfg.meta_batch_size * cfg.episodes_per_task * 2 * horizon
        for stats in out.values():
            stats["steps_per_s"] = stats["sampled"] / stats["seconds"]
        return out
    finally:
        for algo in algos.values():
            algo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--envs", nargs="+", default=["PendulumMass", "PointNavigation2D", "CooperativeNavigation"]
    )
    parser.add_argument("--env-runners", type=int, default=2)
    parser.add_argument("--envs-per-runner", type=int, default=10)
    parser.add_argument("--few", type=int, nargs=2, default=[2, 10], metavar=("TASKS", "EPS"))
    parser.add_argument("--many", type=int, nargs=2, default=[40, 2], metavar=("TASKS", "EPS"))
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument(
        "--rllib-loop",
        action="store_true",
        help="also run MAML's settings with its runners sampling through RLlib's own loop",
    )
    args = parser.parse_args()
    # Three (five) algorithms live at once (their iterations alternate): give Ray enough CPUs
    # for all of their EnvRunners; only one algorithm samples at a time.
    algos = 5 if args.rllib_loop else 3
    ray.init(num_cpus=algos * (args.env_runners + 1), include_dashboard=False, log_to_driver=False)
    cores = max(1, args.env_runners)
    print(f"layout: {args.env_runners} EnvRunner(s) x {args.envs_per_runner} sub-envs, K = 1")
    print(
        "| env | raw steps/s (1 process) | setting | sampled / used steps | MAML steps/s | "
        "PPO steps/s | MAML / PPO | MAML / (raw x cores) | many / few |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.envs:
        raw, horizon = raw_steps_per_second(name)
        few, many = tuple(args.few), tuple(args.many)
        batch = few[0] * few[1] * 2 * 100  # PPO: a batch of the same order as MAML's rounds.
        configs = {
            "few": maml_config(name, *few, args),
            "many": maml_config(name, *many, args),
            "PPO": ppo_config(name, batch, args),
        }
        if args.rllib_loop:
            configs["few" + RLLIB_LOOP] = maml_config(name, *few, args)
            configs["many" + RLLIB_LOOP] = maml_config(name, *many, args)
        rates = interleaved(configs, args.iters, horizon)
        ppo = rates["PPO"]["steps_per_s"]
        useful = {
            setting: stats["steps_per_s"] * stats["used"] / stats["sampled"]
            for setting, stats in rates.items()
            if setting != "PPO"
        }
        settings = [("few", few), ("many", many)]
        if args.rllib_loop:
            settings += [("few" + RLLIB_LOOP, few), ("many" + RLLIB_LOOP, many)]
        for setting, (tasks, episodes) in settings:
            stats = rates[setting]
            loop = RLLIB_LOOP if setting.endswith(RLLIB_LOOP) else ""
            ratio = useful[setting] / useful["few" + loop]
            print(
                f"| {name} | {raw:,.0f} | {tasks} tasks x {episodes} episodes{loop} | "
                f"{stats['sampled']:,} / {stats['used']:,} | {stats['steps_per_s']:,.0f} | "
                f"{ppo:,.0f} | {stats['steps_per_s'] / ppo:.2f} | "
                f"{stats['steps_per_s'] / (raw * cores):.2f} | {ratio:.2f} |"
            )
    print(f"cores used by the runners: {cores}; raw x cores is the hardware's limit.")


if __name__ == "__main__":
    main()
