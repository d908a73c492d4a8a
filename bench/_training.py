"""Shared by the learning benchmarks: training to an env-step budget."""

from __future__ import annotations


def train_until(algo, budget: int) -> int:
    """Calls ``algo.train()`` until ``budget`` env steps are sampled; the steps sampled."""
    steps = 0
    while steps < budget:
        steps = int(algo.train()["env_runners"]["num_env_steps_sampled_lifetime"])
    return steps


def trained_weights(config, budget: int) -> tuple[dict, int]:
    """Builds ``config``, trains it for ``budget`` env steps; its weights and the steps taken."""
    algo = config.build_algo()
    try:
        steps = train_until(algo, budget)
        return algo.learner_group.get_weights(), steps
    finally:
        algo.stop()
