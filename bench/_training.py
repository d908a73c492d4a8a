"""Shared by the learning benchmarks: training to an env-step budget."""

from __future__ import annotations

from rllib_marl_meta.algorithms.rl2.callbacks import trial_episode_key


def train_until(algo, budget: int, on_result=None) -> int:
    """Calls ``algo.train()`` until ``budget`` env steps are sampled; the steps sampled.

    ``on_result(iteration, result)``, if given, sees each iteration's result (1-based).
    """
    steps, iteration = 0, 0
    while steps < budget:
        result, iteration = algo.train(), iteration + 1
        steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
        if on_result is not None:
            on_result(iteration, result)
    return steps


def trained_weights(config, budget: int) -> tuple[dict, int]:
    """Builds ``config``, trains it for ``budget`` env steps; its weights and the steps taken."""
    algo = config.build_algo()
    try:
        steps = train_until(algo, budget)
        return algo.learner_group.get_weights(), steps
    finally:
        algo.stop()


def rl2_curve(episodes_per_trial: int, every: int = 10):
    """An ``on_result`` for ``train_until`` that prints RL²'s mean return per inner episode
    (the team's, for multi-agent envs) every ``every`` iterations."""

    def on_result(iteration: int, result: dict) -> None:
        if iteration % every == 0:
            metrics = result["env_runners"]
            curve = " ".join(
                f"{metrics.get(trial_episode_key(i), float('nan')):.2f}"
                for i in range(1, episodes_per_trial + 1)
            )
            steps = int(metrics["num_env_steps_sampled_lifetime"])
            print(f"RL² {steps:,} steps: inner episodes {curve}", flush=True)

    return on_result
