"""MAMLConfig.validate(): bad settings fail early with a message that names the problem."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rllib_marl_meta  # noqa: F401  (registers the built-in envs)
from rllib_marl_meta.algorithms.maml import TEAM_TRAINING, MAMLConfig
from rllib_marl_meta.algorithms.maml.torch.maml_torch_learner import inner_loss


def base_config() -> MAMLConfig:
    return MAMLConfig().environment("PointNavigation2D")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"inner_adaptation_steps": 0}, "inner_adaptation_steps"),
        ({"meta_batch_size": 0}, "meta_batch_size"),
        ({"maml_optimizer_steps": 0}, "maml_optimizer_steps"),
        ({"meta_gradient": "third_order"}, "meta_gradient"),
        ({"inner_loss": "reinforce2"}, "inner_loss"),
        ({"baseline": "mean"}, "baseline"),
        ({"inner_lr": -0.1}, "inner_lr"),
        ({"episodes_per_task": None}, "exactly one of `episodes_per_task`"),
        ({"env_steps_per_task": 100}, "exactly one of `episodes_per_task`"),
    ],
)
def test_validate_rejects_bad_training_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        base_config().training(**settings).validate()


def test_validate_rejects_truncated_episodes():
    config = base_config().env_runners(batch_mode="truncate_episodes")
    with pytest.raises(ValueError, match="batch_mode.*complete_episodes"):
        config.validate()


def test_validate_rejects_env_without_task_api():
    config = MAMLConfig().environment("CartPole-v1")
    with pytest.raises(ValueError, match=r"task API.*`sample_tasks`.*ParameterTaskWrapper"):
        config.validate()


def test_validate_accepts_task_env_defaults_and_reports_them():
    config = base_config()
    config.validate()
    assert (config.inner_adaptation_steps, config.inner_lr, config.meta_batch_size) == (1, 0.1, 40)
    assert (config.maml_optimizer_steps, config.clip_param, config.kl_target) == (5, 0.3, 0.01)
    assert config.model_config["fcnet_hiddens"] == [64, 64]


def test_validate_accepts_gym_env_wrapped_with_task_api():
    from rllib_marl_meta.tasks import ParameterTaskWrapper

    def make(ctx):
        return ParameterTaskWrapper(gym.make("CartPole-v1"), {"masspole": (0.05, 0.5)})

    MAMLConfig().environment(make).validate()


def test_unknown_inner_loss_estimator_raises():
    with pytest.raises(ValueError, match="estimator"):
        inner_loss(None, {}, {}, estimator="nope")


def test_team_training_applies_the_team_setting_and_later_settings_win():
    defaults = MAMLConfig()
    config = base_config().team_training()
    for name, value in TEAM_TRAINING.items():
        assert getattr(config, name) == value != getattr(defaults, name), name
    config.training(inner_lr=0.05).validate()
    assert config.inner_lr == 0.05
    assert config.meta_batch_size == TEAM_TRAINING["meta_batch_size"]
