"""The env registry: Tune registration, RLlib creators, EnvRunners, missing extras."""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv, PettingZooEnv
from ray.tune.registry import ENV_CREATOR, _global_registry

import rllib_marl_meta
from rllib_marl_meta import envs
from rllib_marl_meta.envs import (
    BUILTIN_ENVS,
    env_class,
    make_env,
    make_rllib_env,
    to_rllib_env,
)
from rllib_marl_meta.envs.cooperative_navigation import CooperativeNavigation
from rllib_marl_meta.tasks import get_tasks, set_tasks_on_env_runner


def test_every_builtin_env_is_registered_with_tune():
    rllib_marl_meta.register()
    for name in BUILTIN_ENVS:
        assert _global_registry.contains(ENV_CREATOR, name)


def test_registered_creator_wraps_pettingzoo_envs_for_rllib():
    rllib_marl_meta.register()
    creator = _global_registry.get(ENV_CREATOR, "CooperativeNavigation")
    env = creator({"num_agents": 3})
    assert isinstance(env, ParallelPettingZooEnv)
    assert isinstance(env.par_env, CooperativeNavigation) and env.par_env.max_num_agents == 3
    single = _global_registry.get(ENV_CREATOR, "PointNavigation2D")({})
    assert type(single).__name__ == "PointNavigation2D"


def test_make_env_returns_the_raw_env_and_make_rllib_env_the_wrapped_one():
    assert isinstance(make_env("CooperativeNavigation"), CooperativeNavigation)
    assert isinstance(make_rllib_env("CooperativeNavigation"), ParallelPettingZooEnv)
    assert make_env("PendulumMass").max_episode_steps == 200


def test_to_rllib_env_wraps_aec_envs():
    from pettingzoo.utils.conversions import parallel_to_aec

    assert isinstance(to_rllib_env(parallel_to_aec(CooperativeNavigation())), PettingZooEnv)


def test_unknown_env_name():
    with pytest.raises(ValueError, match="Unknown built-in env 'Nope'"):
        make_env("Nope")


def test_missing_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(
        envs.BUILTIN_ENVS,
        "Fake",
        envs.BuiltinEnv("rllib_marl_meta.envs._no_such_module", "Fake", extra="mujoco"),
    )
    with pytest.raises(ImportError, match=r"rllib-marl-meta\[mujoco\]"):
        env_class("Fake")
    monkeypatch.setitem(
        envs.BUILTIN_ENVS, "Fake", envs.BuiltinEnv("rllib_marl_meta.envs._no_such_module", "Fake")
    )
    with pytest.raises(ModuleNotFoundError):
        env_class("Fake")


def test_tasks_on_a_multi_agent_env_runner():
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    rllib_marl_meta.register()
    config = (
        PPOConfig()
        .environment("CooperativeNavigation", env_config={"horizon": 10})
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *a, **k: "shared")
    )
    runner = MultiAgentEnvRunner(config=config)
    try:
        task = {"landmarks": np.array([[0.9, 0.9], [-0.9, -0.9]]), "max_speed": 0.6}
        set_tasks_on_env_runner(runner, [task])
        episodes = runner.sample(num_episodes=1, random_actions=True)
        assert len(episodes) == 1 and len(episodes[0]) == 10
        np.testing.assert_array_equal(get_tasks(runner.env)[0]["landmarks"], task["landmarks"])
    finally:
        runner.stop()
