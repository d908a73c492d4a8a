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


@pytest.fixture
def maml_config(ray_session):
    return small_maml_config
