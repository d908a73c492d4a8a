"""Small RL² configs for tests: tiny RNNs, local sampling, one torch thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rllib_marl_meta.algorithms.rl2 import RL2Config


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny nets on 2 shared CPUs: one torch thread is several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_rl2_config(
    env: object = "BernoulliBandit",
    env_config: dict | None = None,
    **training: object,
) -> RL2Config:
    """``env`` with 3-episode trials, an 8-unit GRU and 60-step batches, sampled locally."""
    settings = dict(
        episodes_per_trial=3,
        cell_size=8,
        max_seq_len=6,
        train_batch_size_per_learner=60,
        minibatch_size=30,
        num_epochs=1,
    )
    settings.update(training)
    default_env_config = {"num_arms": 3, "pulls_per_episode": 2}
    return (
        RL2Config()
        .environment(env, env_config=default_env_config if env_config is None else env_config)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
        .debugging(seed=0)
        .training(**settings)
    )


def train_then_meta_test(config: RL2Config, iterations: int, num_tasks: int):
    """Builds ``config``, trains ``iterations`` times, meta-tests on ``num_tasks`` tasks.

    Returns the last ``env_runners`` results, the team returns as a ``[task, inner episode]``
    array and the same per agent (``{agent: array}``, empty for single-agent envs).
    """
    algo = config.build_algo()
    try:
        for _ in range(iterations):
            runners = algo.train()["env_runners"]
        result = algo.meta_test(num_tasks=num_tasks, seed=0)
    finally:
        algo.stop()
    agents = {a: np.asarray(r).T for a, r in result.groups.get("agent", {}).items()}
    return runners, np.asarray(result.returns).T, agents
