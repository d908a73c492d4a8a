"""Finding the task API through wrappers, vector envs and RLlib EnvRunners."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.utils import BaseParallelWrapper
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

from rllib_marl_meta.envs.cooperative_navigation import CooperativeNavigation
from rllib_marl_meta.envs.point_navigation import PointNavigation2D
from rllib_marl_meta.tasks import (
    TaskAPIError,
    find_task_env,
    get_tasks,
    require_task_env,
    set_tasks,
    set_tasks_on_env_runner,
    sub_envs,
)


class _PlainParallelWrapper(BaseParallelWrapper):
    """A PettingZoo wrapper that knows nothing about tasks."""


def test_finds_the_contract_through_two_gymnasium_wrappers():
    inner = PointNavigation2D()
    env = gym.wrappers.ClipAction(gym.wrappers.TimeLimit(inner, max_episode_steps=10))
    assert not hasattr(env, "set_task")
    assert find_task_env(env) is inner
    set_tasks(env, {"goal": [0.3, -0.2]})
    np.testing.assert_array_equal(inner.get_task()["goal"], [0.3, -0.2])
    env.reset(options={"task": {"goal": [0.1, 0.1]}})  # reset options reach the inner env.
    np.testing.assert_array_equal(get_tasks(env)[0]["goal"], [0.1, 0.1])


def test_finds_the_contract_through_rllib_over_a_pettingzoo_wrapper():
    inner = CooperativeNavigation()
    env = ParallelPettingZooEnv(_PlainParallelWrapper(inner))
    found = find_task_env(env)
    assert found is not None
    task = inner.sample_tasks(1, seed=0)[0]
    found.set_task(task)
    np.testing.assert_array_equal(inner.get_task()["landmarks"], task["landmarks"])
    other = inner.sample_tasks(1, seed=1)[0]
    env.reset(options={"task": other})
    np.testing.assert_array_equal(inner.get_task()["landmarks"], other["landmarks"])


def test_set_tasks_gives_each_sync_vector_sub_env_its_own_task():
    vec = gym.vector.SyncVectorEnv([lambda: gym.wrappers.TimeLimit(PointNavigation2D(), 5)] * 3)
    tasks = [{"goal": [0.1 * i, -0.1 * i]} for i in range(3)]
    set_tasks(vec, tasks)
    for sub_env, task in zip(vec.envs, tasks):
        np.testing.assert_allclose(sub_env.unwrapped.get_task()["goal"], task["goal"])
    np.testing.assert_allclose([t["goal"] for t in get_tasks(vec)], [t["goal"] for t in tasks])
    # The tasks really drive the sub-envs: same action, different rewards.
    vec.reset(seed=0)
    _, rewards, *_ = vec.step(np.zeros((3, 2), dtype=np.float32))
    assert len(set(np.round(rewards, 6))) == 3
    with pytest.raises(ValueError, match="one per sub-env"):
        set_tasks(vec, tasks[:2])


def test_set_tasks_accepts_a_single_task_for_all_sub_envs():
    vec = gym.vector.SyncVectorEnv([PointNavigation2D] * 2)
    set_tasks(vec, {"goal": [0.2, 0.2]})
    assert all(np.allclose(t["goal"], [0.2, 0.2]) for t in get_tasks(vec))


def test_set_tasks_on_a_single_agent_env_runner():
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    import rllib_marl_meta  # noqa: F401  (registers the built-in envs with Tune)

    config = PPOConfig().environment("PointNavigation2D").env_runners(num_envs_per_env_runner=2)
    runner = SingleAgentEnvRunner(config=config)
    try:
        assert len(sub_envs(runner.env)) == 2
        tasks = [{"goal": [0.4, 0.4]}, {"goal": [-0.4, -0.4]}]
        runner.sample(num_timesteps=4, random_actions=True)
        set_tasks_on_env_runner(runner, tasks)
        assert runner._needs_initial_reset
        for got, want in zip(get_tasks(runner.env), tasks):
            np.testing.assert_allclose(got["goal"], want["goal"])
        episodes = runner.sample(num_timesteps=8, random_actions=True)
        assert sum(len(e) for e in episodes) >= 8
        # The tasks survive the runner's reset.
        for got, want in zip(get_tasks(runner.env), tasks):
            np.testing.assert_allclose(got["goal"], want["goal"])
    finally:
        runner.stop()


def test_missing_api_error_names_the_method_and_the_fix():
    env = gym.wrappers.TimeLimit(gym.make("CartPole-v1"), 10)
    assert find_task_env(env) is None
    with pytest.raises(TaskAPIError) as info:
        require_task_env(env)
    message = str(info.value)
    assert "CartPoleEnv" in message
    for method in ("`sample_tasks`", "`set_task`", "`get_task`"):
        assert method in message
    assert "ParameterTaskWrapper" in message and "TaskSettableMixin" in message
    with pytest.raises(TaskAPIError):
        set_tasks(env, {"masscart": 1.0})


def test_error_lists_only_the_missing_methods():
    class Half(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (1,))
        action_space = gym.spaces.Discrete(2)

        def set_task(self, task): ...

        def get_task(self):
            return {}

    with pytest.raises(TaskAPIError) as info:
        require_task_env(gym.wrappers.TimeLimit(Half(), 5))
    message = str(info.value)
    assert "missing `sample_tasks`." in message and "missing `set_task`" not in message


def test_sub_envs_of_a_single_env_is_the_env():
    env = PointNavigation2D()
    assert sub_envs(env) == [env]
