"""Small MAML configs for tests: short episodes, tiny networks, few tasks."""

from __future__ import annotations

import pytest

from rllib_marl_meta.algorithms.maml import MAMLConfig


def small_maml_config(**training) -> MAMLConfig:
    """PointNavigation2D with 10-step episodes and a (16,) network."""
    settings = dict(meta_batch_size=3, episodes_per_task=2, maml_optimizer_steps=2)
    settings.update(training)
    return (
        MAMLConfig()
        .environment("PointNavigation2D", env_config={"horizon": 10})
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=7)
        .training(**settings)
    )


def team_maml_config(env: str, env_config: dict, agents: list[str]) -> MAMLConfig:
    """The multi-agent learning tests' MAML: one (32, 32) module per agent, 8 sub-envs, seed 0,
    the team setting (`team_training()`) with 8 episodes per task instead of 10."""
    return (
        MAMLConfig()
        .environment(env, env_config=env_config)
        .env_runners(num_envs_per_env_runner=8)
        .rl_module(model_config={"fcnet_hiddens": [32, 32]})
        .multi_agent(
            policies=set(agents), policy_mapping_fn=lambda agent_id, episode, **kw: agent_id
        )
        .debugging(seed=0)
        .team_training()
        .training(episodes_per_task=8)
    )


@pytest.fixture
def maml_config(ray_session):
    return small_maml_config


def held_out_returns(algo, num_tasks: int) -> tuple[float, float]:
    """Mean return over ``num_tasks`` held-out tasks (meta_test seed 1): pre and after 1 step."""
    import numpy as np

    result = algo.meta_test(num_tasks=num_tasks, seed=1)
    pre, post = (float(np.mean(r)) for r in result.returns)
    return pre, post
