"""CooperativeNavigation: observations, dynamics, reward, horizon, config and speed."""

from __future__ import annotations

import numpy as np
import pytest

from rllib_marl_meta.envs.cooperative_navigation import CooperativeNavigation

LANDMARKS = np.array([[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])


def _env(**config) -> CooperativeNavigation:
    env = CooperativeNavigation({"num_agents": 3, **config})
    top_speed = env.task_space.fields["max_speed"].high
    env.reset(seed=0, options={"task": {"landmarks": LANDMARKS, "max_speed": top_speed}})
    return env


def _zeros(env) -> dict:
    return {a: np.zeros(2, dtype=np.float32) for a in env.agents}


def test_spaces_and_agent_ids():
    env = CooperativeNavigation({"num_agents": 3})
    assert env.possible_agents == ["agent_0", "agent_1", "agent_2"]
    assert env.observation_space("agent_1").shape == (2 * 3 + 2,)  # Landmarks hidden.
    seeing = CooperativeNavigation({"num_agents": 3, "observe_landmarks": True})
    assert seeing.observation_space("agent_1").shape == (4 * 3 + 2,)
    assert env.action_space("agent_1").shape == (2,)
    assert env.state_space.shape == (18,)
    assert env.agents == []  # Agents appear at reset.


@pytest.mark.parametrize("observe_landmarks", [False, True])
def test_observation_layout(observe_landmarks):
    env = _env(observe_landmarks=observe_landmarks)
    obs, _ = env.reset(seed=1)
    pos = np.stack([obs[a][:2] for a in env.agents])
    for i, agent in enumerate(env.agents):
        o = obs[agent]
        assert o.shape == ((4 if observe_landmarks else 2) * 3 + 2,)
        assert o in env.observation_space(agent)
        np.testing.assert_array_equal(o[2:4], [0.0, 0.0])  # Agents start at rest.
        others = np.delete(pos, i, axis=0) - pos[i]
        np.testing.assert_allclose(o[4:8].reshape(2, 2), others, atol=1e-6)
        if observe_landmarks:
            np.testing.assert_allclose(o[8:].reshape(3, 2), LANDMARKS - pos[i], atol=1e-6)
    np.testing.assert_allclose(env.state()[:6], pos.ravel(), atol=1e-6)
    np.testing.assert_allclose(env.state()[12:], LANDMARKS.ravel(), atol=1e-6)


def test_reward_is_minus_the_distance_from_each_landmark_to_its_nearest_agent():
    env = _env()
    _, rewards, *_ = env.step(_zeros(env))
    pos = env._pos
    expected = -sum(min(np.linalg.norm(p - lm) for p in pos) for lm in LANDMARKS)
    assert set(rewards) == set(env.possible_agents)
    for reward in rewards.values():
        assert reward == pytest.approx(expected)


def test_agents_on_the_landmarks_get_zero_reward():
    env = _env()
    env._pos = LANDMARKS[::-1].copy()  # Any assignment of agents to landmarks covers them.
    _, rewards, *_ = env.step(_zeros(env))
    assert rewards["agent_0"] == pytest.approx(0.0)


def test_dynamics_follow_acceleration_damping_and_speed_limit():
    env = _env(max_speed=0.5)
    start = env._pos.copy()
    push = {a: np.array([1.0, 0.0], dtype=np.float32) for a in env.agents}
    env.step(push)
    np.testing.assert_allclose(env._vel[:, 0], 0.5)  # accel * dt = 0.5, at the limit
    np.testing.assert_allclose(env._pos, start + [0.05, 0.0])
    for _ in range(5):
        env.step(push)
        np.testing.assert_allclose(np.linalg.norm(env._vel, axis=1), 0.5)  # Clipped.
    # Out-of-range actions are clipped to [-1, 1]; missing agents act with zero.
    fast = _env()
    fast.step({"agent_0": np.array([10.0, 0.0]), "agent_1": np.array([1.0, 0.0])})
    np.testing.assert_allclose(fast._vel[0], fast._vel[1])
    np.testing.assert_allclose(fast._vel[2], [0.0, 0.0])


def test_max_speed_task_changes_the_motion():
    slow, fast = _env(), _env()
    slow.set_task({"landmarks": LANDMARKS, "max_speed": 0.5})
    push = {a: np.array([1.0, 1.0], dtype=np.float32) for a in slow.agents}
    for _ in range(5):
        obs_slow, *_ = slow.step(push)
        obs_fast, *_ = fast.step(push)
    assert np.linalg.norm(obs_slow["agent_0"][2:4]) == pytest.approx(0.5, rel=1e-5)
    assert np.linalg.norm(obs_fast["agent_0"][2:4]) > 1.0


def test_horizon_truncates_all_agents():
    env = _env(horizon=3)
    for t in range(3):
        _, _, terminations, truncations, infos = env.step(_zeros(env))
        assert not any(terminations.values())
        assert all(truncations.values()) == (t == 2)
        assert set(infos) == set(env.possible_agents)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step({})


def test_collision_penalty():
    env = _env(collision_penalty=1.0, agent_radius=0.1)
    env._pos = np.array([[0.0, 0.0], [0.05, 0.0], [0.9, 0.9]])
    _, with_penalty, *_ = env.step(_zeros(env))
    free = _env()
    free._pos = np.array([[0.0, 0.0], [0.05, 0.0], [0.9, 0.9]])
    _, without, *_ = free.step(_zeros(free))
    assert with_penalty["agent_0"] == pytest.approx(without["agent_0"] - 1.0)


def test_fixed_max_speed_config_pins_the_task_field():
    env = CooperativeNavigation({"max_speed": 1.0})
    assert env.get_task()["max_speed"] == 1.0
    assert all(t["max_speed"] == 1.0 for t in env.sample_tasks(5, seed=0))
    with pytest.raises(ValueError, match=r"'max_speed'.*\[1.0, 1.0\]"):
        env.set_task({"landmarks": np.zeros((2, 2)), "max_speed": 1.5})
    ranged = CooperativeNavigation({"max_speed_range": (1.0, 3.0)})
    assert ranged.task_space.fields["max_speed"].high == 3.0


def test_default_task_spreads_the_landmarks():
    task = CooperativeNavigation({"num_agents": 4}).get_task()
    assert task["landmarks"].shape == (4, 2)
    np.testing.assert_allclose(np.linalg.norm(task["landmarks"], axis=1), 0.5)
    assert task["max_speed"] == pytest.approx(1.25)


def test_spawn_range_bounds_the_start_positions():
    for spawn_range in (0.1, 1.0):
        env = CooperativeNavigation({"num_agents": 3, "spawn_range": spawn_range})
        starts = np.concatenate([env.reset(seed=s)[0]["agent_0"][:2] for s in range(200)])
        assert np.abs(starts).max() <= spawn_range + 1e-6
        assert np.abs(starts).max() > 0.9 * spawn_range


@pytest.mark.parametrize("config", [{"num_agents": 0}, {"horizon": 0}, {"spawn_range": -1}])
def test_invalid_config(config):
    with pytest.raises(ValueError):
        CooperativeNavigation(config)


def test_single_agent_version_works():
    env = CooperativeNavigation({"num_agents": 1})
    obs, _ = env.reset(seed=0)
    assert obs["agent_0"].shape == (4,)
    env.step({"agent_0": np.zeros(2)})


def test_runs_thousands_of_steps_per_second(parallel_steps_per_second):
    env = CooperativeNavigation({"num_agents": 3})
    env.reset(seed=0)
    actions = {a: np.full(2, 0.3, dtype=np.float32) for a in env.possible_agents}
    # Measured ~40,000 steps/s on one core; 1,000 leaves room for a loaded CI machine.
    assert parallel_steps_per_second(env, actions) > 1000
