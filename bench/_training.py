"""Shared by the learning benchmarks: training to an env-step budget."""

from __future__ import annotations


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
