"""HalfCheetahVelocity / HalfCheetahDirection: rewards, horizon, pickling. Needs MuJoCo."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("mujoco")

from rllib_marl_meta.envs.half_cheetah import HalfCheetahDirection, HalfCheetahVelocity  # noqa: E402


def _rollout(env, n: int = 5):
    env.reset(seed=0)
    env.action_space.seed(0)
    return [env.step(env.action_space.sample()) for _ in range(n)]


@pytest.mark.parametrize("target", [0.0, 1.3, 2.0])
def test_velocity_reward(target):
    env = HalfCheetahVelocity({"task": {"target_velocity": target}})
    for _, reward, terminated, _, info in _rollout(env):
        ctrl = -info["reward_ctrl"]
        assert ctrl >= 0.0
        assert reward == pytest.approx(-abs(info["x_velocity"] - target) - ctrl)
        assert info["reward_forward"] == pytest.approx(-abs(info["x_velocity"] - target))
        assert not terminated


@pytest.mark.parametrize("direction", [-1.0, 1.0])
def test_direction_reward(direction):
    env = HalfCheetahDirection({"task": {"direction": direction}})
    for _, reward, _, _, info in _rollout(env):
        assert reward == pytest.approx(direction * info["x_velocity"] + info["reward_ctrl"])


def test_direction_task_space_is_the_two_directions():
    env = HalfCheetahDirection()
    assert env.get_task() == {"direction": 1.0}
    assert {t["direction"] for t in env.sample_tasks(50, seed=0)} == {-1.0, 1.0}
    with pytest.raises(ValueError, match=r"'direction'.*allowed values \{-1, 1\}"):
        env.set_task({"direction": 0.0})


def test_opposite_directions_give_opposite_forward_rewards():
    forward, backward = HalfCheetahDirection(), HalfCheetahDirection()
    backward.set_task({"direction": -1.0})
    for a, b in zip(_rollout(forward), _rollout(backward)):
        np.testing.assert_array_equal(a[0], b[0])  # The dynamics do not depend on the task.
        assert a[4]["reward_forward"] == pytest.approx(-b[4]["reward_forward"])


def test_horizon_and_ctrl_cost_config():
    env = HalfCheetahVelocity({"horizon": 4, "ctrl_cost_weight": 0.0})
    steps = _rollout(env, 4)
    assert [s[3] for s in steps] == [False, False, False, True]
    assert all(s[4]["reward_ctrl"] == 0.0 for s in steps)
    assert HalfCheetahVelocity().horizon == 200
    with pytest.raises(ValueError, match="horizon"):
        HalfCheetahDirection({"horizon": 0})


def test_pickle_keeps_config_and_task():
    env = HalfCheetahVelocity({"horizon": 7})
    env.set_task({"target_velocity": 0.25})
    copy = pickle.loads(pickle.dumps(env))
    assert isinstance(copy, HalfCheetahVelocity)
    assert copy.horizon == 7 and copy.get_task() == {"target_velocity": 0.25}
