"""PendulumMass: the mass reaches the physics, default task, time limit."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from rllib_marl_meta.envs.pendulum_mass import PendulumMass


def _step_from(env, state, torque: float) -> np.ndarray:
    env.reset(seed=0)
    env.state = np.array(state, dtype=np.float64)
    obs, *_ = env.step(np.array([torque], dtype=np.float32))
    return obs


def test_default_task_is_the_stock_pendulum():
    env = PendulumMass()
    assert env.get_task() == {"m": 1.0}
    stock = PendulumEnv()
    state = [0.3, -0.5]
    np.testing.assert_allclose(_step_from(env, state, 1.5), _step_from(stock, state, 1.5))


def test_mass_scales_the_torque_response():
    # Pendulum: thdot' = thdot + (3g/(2l) sin(th) + 3/(m l^2) u) dt, so from th = 0 the
    # change in angular velocity is inversely proportional to the mass.
    speeds = {}
    for mass in (0.5, 2.0):
        env = PendulumMass({"task": {"m": mass}})
        assert env.m == mass
        obs = _step_from(env, [0.0, 0.0], 2.0)
        speeds[mass] = obs[2]
    assert speeds[0.5] == pytest.approx(4.0 * speeds[2.0], rel=1e-5)


def test_time_limit_truncates():
    env = PendulumMass({"max_episode_steps": 3})
    env.reset(seed=0)
    flags = [env.step(np.zeros(1, np.float32))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    env.reset(seed=0)  # The step counter starts over.
    assert env.step(np.zeros(1, np.float32))[3] is False
    assert PendulumMass().max_episode_steps == 200


def test_reset_keeps_pendulum_options():
    env = PendulumMass()
    obs, _ = env.reset(seed=0, options={"task": {"m": 1.5}, "x_init": 0.1, "y_init": 0.1})
    assert env.m == 1.5
    assert abs(np.arctan2(obs[1], obs[0])) <= 0.1 + 1e-6
