"""MPESpread: the task survives mpe2's reset, and reaches speed and damping. Needs mpe2."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpe2")

from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv  # noqa: E402

from rllib_marl_meta.envs.mpe_spread import MPESpread  # noqa: E402
from rllib_marl_meta.tasks import find_task_env  # noqa: E402

LANDMARKS = np.array([[0.9, 0.9], [-0.9, 0.1], [0.2, -0.7]])


def _task(**overrides) -> dict:
    return {"landmarks": LANDMARKS, "max_speed": 1.0, "damping": 0.3, **overrides}


def _landmark_obs(obs: np.ndarray, n: int = 3) -> np.ndarray:
    # simple_spread observation: own vel (2), own pos (2), landmarks relative to the agent...
    return obs[4 : 4 + 2 * n].reshape(n, 2) + obs[2:4]


def test_landmarks_survive_the_inner_reset_and_are_observed():
    env = MPESpread()
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed, options={"task": _task()})
        positions = np.array([lm.state.p_pos for lm in env.world.landmarks])
        np.testing.assert_allclose(positions, LANDMARKS)
        for agent_obs in obs.values():
            np.testing.assert_allclose(_landmark_obs(agent_obs), LANDMARKS, atol=1e-6)
    obs, _ = env.reset(seed=2)  # A later reset without a task keeps the layout.
    np.testing.assert_allclose(_landmark_obs(obs["agent_0"]), LANDMARKS, atol=1e-6)
    for _ in range(3):
        obs, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
    np.testing.assert_allclose(_landmark_obs(obs["agent_1"]), LANDMARKS, atol=1e-5)


def test_speed_and_damping_reach_the_world():
    env = MPESpread()
    env.set_task(_task(max_speed=0.7, damping=0.45))
    assert env.world.damping == 0.45
    assert all(agent.max_speed == 0.7 for agent in env.world.agents)


def test_max_speed_limits_the_agents():
    env = MPESpread({"continuous_actions": True})
    env.reset(seed=0, options={"task": _task(max_speed=0.5, damping=0.1)})
    push = {a: np.array([0, 1, 0, 0, 0], dtype=np.float32) for a in env.agents}  # Full left.
    for _ in range(5):
        obs, *_ = env.step(push)
    assert np.linalg.norm(obs["agent_0"][:2]) == pytest.approx(0.5)


def test_set_task_mid_episode_moves_the_landmarks():
    env = MPESpread()
    env.reset(seed=0)
    env.set_task(_task())
    obs, *_ = env.step({a: 0 for a in env.agents})
    np.testing.assert_allclose(_landmark_obs(obs["agent_2"]), LANDMARKS, atol=1e-6)


def test_config_fixes_and_ranges():
    env = MPESpread({"N": 2, "damping": 0.25, "max_speed_range": (1.0, 3.0)})
    fields = env.task_space.fields
    assert fields["landmarks"].shape == (2, 2)
    assert (fields["damping"].low, fields["damping"].high) == (0.25, 0.25)
    assert fields["max_speed"].high == 3.0
    assert env.get_task()["damping"] == 0.25 and env.get_task()["max_speed"] == 2.0
    assert env.possible_agents == ["agent_0", "agent_1"]


def test_through_rllib_parallel_pettingzoo_env():
    inner = MPESpread({"max_cycles": 5})
    env = ParallelPettingZooEnv(inner)
    assert find_task_env(env) is inner
    obs, _ = env.reset(seed=0, options={"task": _task()})
    np.testing.assert_allclose(_landmark_obs(obs["agent_0"]), LANDMARKS, atol=1e-6)
    for _ in range(5):
        _, _, terminateds, truncateds, _ = env.step({a: 1 for a in env.par_env.agents})
    assert truncateds["__all__"] and not terminateds["__all__"]


def test_hidden_landmarks_leave_the_rest_of_the_observation():
    """`observe_landmarks=False` drops exactly the landmark part; the task still moves them."""
    shown, hidden = MPESpread(), MPESpread({"observe_landmarks": False})
    obs_shown, _ = shown.reset(seed=0, options={"task": _task()})
    obs_hidden, _ = hidden.reset(seed=0, options={"task": _task()})
    for agent in shown.agents:
        assert hidden.observation_space(agent).shape == (
            shown.observation_space(agent).shape[0] - 6,
        )
        expected = np.delete(obs_shown[agent], np.arange(4, 10))
        np.testing.assert_allclose(obs_hidden[agent], expected)
        assert obs_hidden[agent] in hidden.observation_space(agent)
    actions = {a: 1 for a in shown.agents}
    obs_shown, rewards_shown, *_ = shown.step(actions)
    obs_hidden, rewards_hidden, *_ = hidden.step(actions)
    assert rewards_hidden == rewards_shown  # Same world: the reward still pays for the layout.
    np.testing.assert_allclose(
        obs_hidden["agent_2"], np.delete(obs_shown["agent_2"], np.arange(4, 10))
    )
    other, _ = hidden.reset(seed=0, options={"task": _task(landmarks=-LANDMARKS)})
    np.testing.assert_allclose(
        other["agent_0"], hidden.reset(seed=0, options={"task": _task()})[0]["agent_0"]
    )


def test_hidden_landmarks_pass_the_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(MPESpread({"observe_landmarks": False}), num_cycles=50)


def test_spawn_range_starts_the_team_near_the_origin():
    """`spawn_range` moves where agents start (and what they observe), nothing else."""
    near = MPESpread({"spawn_range": 0.1, "observe_landmarks": False})
    default = MPESpread({"observe_landmarks": False})
    for seed in range(5):
        obs, _ = near.reset(seed=seed, options={"task": _task()})
        positions = np.array([agent.state.p_pos for agent in near.world.agents])
        assert np.abs(positions).max() <= 0.1
        for agent, position in zip(near.agents, positions):
            np.testing.assert_allclose(obs[agent][2:4], position)  # mpe2: own position
        np.testing.assert_allclose(
            [lm.state.p_pos for lm in near.world.landmarks], LANDMARKS, atol=1e-12
        )
    default.reset(seed=0, options={"task": _task()})
    assert np.abs([agent.state.p_pos for agent in default.world.agents]).max() > 0.1
    with pytest.raises(ValueError, match="spawn_range"):
        MPESpread({"spawn_range": -1.0})
