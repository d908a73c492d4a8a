"""ParameterTaskWrapper / PettingZooTaskWrapper / AECTaskWrapper, also through RLlib's wrappers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test
from pettingzoo.utils.conversions import parallel_to_aec
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv, PettingZooEnv

from rllib_marl_meta.envs.cooperative_navigation import CooperativeNavigation
from rllib_marl_meta.tasks import (
    AECTaskWrapper,
    ParameterTaskWrapper,
    PettingZooTaskWrapper,
    TaskSpace,
    find_task_env,
)
from rllib_marl_meta.tasks.wrappers import inner_options


def _cartpole_params(on_set=None) -> ParameterTaskWrapper:
    return ParameterTaskWrapper(
        gym.make("CartPole-v1"), {"length": (0.25, 1.0), "force_mag": (5.0, 15.0)}, on_set=on_set
    )


def _one_step(env: gym.Env, task: dict) -> np.ndarray:
    env.reset(seed=0, options={"task": task})
    obs, *_ = env.step(1)
    return obs


def test_parameter_wrapper_on_cartpole_changes_the_dynamics():
    env = _cartpole_params()
    low, high = env.sample_tasks(2, seed=1)
    assert low != high
    next_low, next_high = _one_step(env, low), _one_step(env, high)
    assert env.unwrapped.length == pytest.approx(high["length"])
    assert env.unwrapped.force_mag == pytest.approx(high["force_mag"])
    # Same seed, same start state, same action: the velocities after one step differ.
    assert not np.allclose(next_low, next_high)
    assert np.abs(next_low - next_high).max() > 1e-3
    # And the same task reproduces the same transition.
    np.testing.assert_array_equal(_one_step(env, low), next_low)


def test_parameter_wrapper_on_set_hook_updates_derived_attributes():
    def update(cartpole, task):
        cartpole.polemass_length = cartpole.masspole * cartpole.length

    env = _cartpole_params(on_set=update)
    env.set_task({"length": 0.8, "force_mag": 10.0})
    assert env.unwrapped.polemass_length == pytest.approx(env.unwrapped.masspole * 0.8)


def test_parameter_wrapper_round_trip_and_check_env():
    env = _cartpole_params()
    task = env.sample_tasks(1, seed=0)[0]
    env.set_task(task)
    env.set_task(env.get_task())
    assert env.get_task() == task
    # A spec-less CartPole: check_env would otherwise try to re-make the wrapper from its spec.
    check_env(ParameterTaskWrapper(CartPoleEnv(), {"length": (0.25, 1.0)}), skip_render_check=True)


def test_parameter_wrapper_sampling_is_reproducible_under_reset_seed():
    env = _cartpole_params()
    env.reset(seed=5)
    first = env.sample_tasks(3)
    env.reset(seed=5)
    assert env.sample_tasks(3) == first
    env.reset(seed=6)
    assert env.sample_tasks(3) != first


def test_parameter_wrapper_rejects_unknown_attributes_and_bad_tasks():
    with pytest.raises(AttributeError, match="'not_an_attr' does not exist"):
        ParameterTaskWrapper(gym.make("CartPole-v1"), {"not_an_attr": (0.0, 1.0)})
    env = _cartpole_params()
    with pytest.raises(ValueError, match=r"'length'.*allowed range \[0.25, 1.0\]"):
        env.set_task({"length": 3.0, "force_mag": 10.0})


def test_dotted_parameter_names_reach_nested_attributes():
    class Holder:
        def __init__(self) -> None:
            self.inner = CooperativeNavigation()

    holder = Holder()
    env = PettingZooTaskWrapper(
        CooperativeNavigation(), TaskSpace(**{"inner.dt": (0.05, 0.2)}), target=holder
    )
    env.set_task({"inner.dt": 0.15})
    assert holder.inner.dt == 0.15
    with pytest.raises(AttributeError, match="does not exist"):
        PettingZooTaskWrapper(CooperativeNavigation(), {"inner.nope": (0, 1)}, target=holder)


def test_pettingzoo_wrapper_passes_the_parallel_api_test_and_reaches_the_env():
    inner = CooperativeNavigation()
    env = PettingZooTaskWrapper(inner, {"damping": (0.1, 0.5), "accel": (2.0, 8.0)})
    parallel_api_test(env, num_cycles=60)
    env.reset(seed=0, options={"task": {"damping": 0.45, "accel": 3.0}})
    assert (inner.damping, inner.accel) == (0.45, 3.0)
    # The inner env has a task API of its own: the wrapper's task must not be passed on.
    assert inner.get_task()["max_speed"] == pytest.approx(1.25)


def test_pettingzoo_wrapper_through_rllib_parallel_pettingzoo_env():
    inner = CooperativeNavigation()
    env = ParallelPettingZooEnv(PettingZooTaskWrapper(inner, {"damping": (0.1, 0.5)}))
    wrapper = find_task_env(env)
    assert isinstance(wrapper, PettingZooTaskWrapper)
    obs, _ = env.reset(seed=1, options={"task": {"damping": 0.1}})
    assert inner.damping == 0.1 and set(obs) == {"agent_0", "agent_1"}
    actions = {a: np.full(2, 0.2, dtype=np.float32) for a in obs}
    env.step(actions)
    fast = env.step(actions)[0]["agent_0"][2:4]  # Own velocity after two steps.
    env.reset(seed=1, options={"task": {"damping": 0.5}})
    env.step(actions)
    slow = env.step(actions)[0]["agent_0"][2:4]
    assert np.all(np.abs(fast) > np.abs(slow))
    assert wrapper.get_task() == {"damping": 0.5}


def test_aec_wrapper_through_rllib_pettingzoo_env():
    inner = CooperativeNavigation()
    aec = AECTaskWrapper(parallel_to_aec(inner), {"damping": (0.1, 0.5), "accel": (2.0, 8.0)})
    env = PettingZooEnv(aec)
    assert find_task_env(env) is aec
    obs, _ = env.reset(seed=0, options={"task": {"damping": 0.2, "accel": 7.0}})
    assert (inner.damping, inner.accel) == (0.2, 7.0)
    assert list(obs) == ["agent_0"]
    # Step a whole cycle of the AEC env under the new task.
    obs, rewards, terminateds, truncateds, _ = env.step({"agent_0": np.zeros(2, np.float32)})
    assert "agent_1" in obs and not terminateds["__all__"]
    task = aec.sample_tasks(1, seed=0)[0]
    aec.set_task(task)
    assert aec.get_task() == task and inner.damping == task["damping"]


def test_aec_wrapper_sampling_reproducible_under_reset_seed():
    aec = AECTaskWrapper(parallel_to_aec(CooperativeNavigation()), {"damping": (0.1, 0.5)})
    aec.reset(seed=3)
    first = aec.sample_tasks(4)
    aec.reset(seed=3)
    assert aec.sample_tasks(4) == first


def test_inner_options_strips_the_task():
    assert inner_options(None) is None
    assert inner_options({"task": {"x": 1}}) is None
    assert inner_options({"task": {"x": 1}, "x_init": 0.5}) == {"x_init": 0.5}


def test_new_task_each_episode_draws_reproducible_fresh_tasks():
    from rllib_marl_meta.envs import make_env
    from rllib_marl_meta.tasks import NewTaskEachEpisode

    env = NewTaskEachEpisode(make_env("PointNavigation2D"))
    env.reset(seed=3)
    first = env.unwrapped.get_task()["goal"].copy()
    env.reset()
    second = env.unwrapped.get_task()["goal"].copy()
    assert not np.allclose(first, second)
    env.reset(seed=3)
    np.testing.assert_array_equal(env.unwrapped.get_task()["goal"], first)


def test_new_task_each_episode_parallel_draws_reproducible_fresh_tasks():
    from rllib_marl_meta.envs import make_env
    from rllib_marl_meta.tasks import NewTaskEachEpisodeParallel

    env = NewTaskEachEpisodeParallel(make_env("CooperativeNavigation"))
    env.reset(seed=3)
    first = env.unwrapped.get_task()["landmarks"].copy()
    env.reset()
    assert not np.allclose(env.unwrapped.get_task()["landmarks"], first)
    env.reset(seed=3)
    np.testing.assert_array_equal(env.unwrapped.get_task()["landmarks"], first)
