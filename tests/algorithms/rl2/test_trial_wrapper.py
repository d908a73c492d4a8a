"""RL² trial wrappers: task per trial, augmented observations, inner resets, trial end."""

from __future__ import annotations

import numpy as np
import pytest

from rllib_marl_meta.algorithms.rl2 import (
    MultiAgentRL2TrialWrapper,
    RL2TrialWrapper,
    augmented_observation_space,
    make_trial_env,
)
from rllib_marl_meta.tasks import TaskAPIError
from tests.algorithms.rl2.tiny_envs import NoTaskEnv, ScriptedEnv, TwoAgentEnv

INF = np.inf


def test_observation_space_is_declared_exactly():
    env = RL2TrialWrapper(ScriptedEnv(), episodes_per_trial=3)
    space = env.observation_space
    assert space.dtype == np.float32
    # [t, offset | one-hot(3) | prev reward | done]
    np.testing.assert_array_equal(space.low, np.array([0, 0, 0, 0, 0, -INF, 0], np.float32))
    np.testing.assert_array_equal(space.high, np.array([100, 1, 1, 1, 1, INF, 1], np.float32))

    box = RL2TrialWrapper(ScriptedEnv({"box_actions": True}), episodes_per_trial=2)
    np.testing.assert_array_equal(
        box.observation_space.low, np.array([0, 0, -1, -1, -INF, 0], np.float32)
    )
    np.testing.assert_array_equal(
        box.observation_space.high, np.array([100, 1, 1, 1, INF, 1], np.float32)
    )
    assert (
        augmented_observation_space(ScriptedEnv().observation_space, ScriptedEnv().action_space)
        == space
    )


def test_every_step_of_a_trial_discrete_actions():
    """lengths [2, 3, 1]: ep 1 terminates, ep 2 truncates, ep 3 terminates and ends the trial."""
    env = RL2TrialWrapper(ScriptedEnv({"lengths": [2, 3, 1]}), episodes_per_trial=3)
    obs, info = env.reset()
    off = info["task"]["offset"]
    assert env.env.offset == off
    np.testing.assert_allclose(obs, [0, off, 0, 0, 0, 0, 0], rtol=1e-6)
    assert info["inner_episode"] == 0

    one_hot = {0: [1, 0, 0], 1: [0, 1, 0], 2: [0, 0, 1]}
    # action, expected reward, expected obs t, expected done flag, inner index, trial done
    script = [
        (2, 30 + 1 + off, 1, 0, 0, False),
        (0, 10 + 2 + off, 0, 1, 1, False),  # ep 1 terminates -> internal reset
        (1, 20 + 1 + off, 1, 0, 1, False),
        (2, 30 + 2 + off, 2, 0, 1, False),
        (1, 20 + 3 + off, 0, 1, 2, False),  # ep 2 truncates -> internal reset, same task
        (0, 10 + 1 + off, 1, 1, 2, True),  # ep 3 terminates -> trial ends
    ]
    returns = [0.0, 0.0, 0.0]
    for action, reward, t, done_flag, index, trial_done in script:
        returns[env.inner_episode] += reward
        obs, r, terminated, truncated, info = env.step(action)
        assert r == pytest.approx(reward)
        expected = [t, off, *one_hot[action], reward, done_flag]
        np.testing.assert_allclose(obs, np.array(expected, np.float32), rtol=1e-6)
        assert obs in env.observation_space
        assert info["inner_episode"] == index
        assert terminated is trial_done
        assert truncated is False
        assert env.env.get_task() == {"offset": off}  # Never changes within the trial.
    assert info["inner_episode_returns"] == pytest.approx(returns)
    assert env.env.set_task_calls == 1
    assert env.env.resets == 2  # The two inner resets happened inside the trial.


def test_truncated_last_inner_episode_terminates_the_trial():
    env = RL2TrialWrapper(ScriptedEnv({"lengths": [1, 2]}), episodes_per_trial=2)
    env.reset()
    _, _, terminated, truncated, _ = env.step(0)  # ep 1 terminates
    assert not terminated and not truncated
    _, _, terminated, truncated, _ = env.step(0)
    assert not terminated and not truncated
    _, _, terminated, truncated, info = env.step(0)  # ep 2 truncates: the trial is over
    assert terminated is True and truncated is False
    assert len(info["inner_episode_returns"]) == 2


def test_box_actions_are_fed_back_raw_and_clipped():
    env = RL2TrialWrapper(ScriptedEnv({"box_actions": True, "lengths": [3]}), 1)
    obs, info = env.reset(seed=0)
    off = info["task"]["offset"]
    obs, reward, *_ = env.step(np.array([0.25, 7.0], np.float32))
    np.testing.assert_allclose(obs, [1, off, 0.25, 1.0, reward, 0], rtol=1e-6)
    assert reward == pytest.approx(10 * 1.25 + 1 + off)


def test_task_fixed_within_trial_changes_across_trials_and_is_seeded():
    env = RL2TrialWrapper(ScriptedEnv({"lengths": [1]}), episodes_per_trial=4)
    tasks = []
    for trial in range(4):
        _, info = env.reset(seed=123 if trial == 0 else None)
        tasks.append(info["task"]["offset"])
        calls = env.env.set_task_calls
        done = False
        while not done:
            assert env.env.get_task()["offset"] == tasks[-1]
            _, _, done, _, _ = env.step(1)
        assert env.env.set_task_calls == calls  # No task change inside a trial.
    assert len(set(tasks)) == 4  # A new task per trial.

    again = RL2TrialWrapper(ScriptedEnv({"lengths": [1]}), episodes_per_trial=4)
    replay = [again.reset(seed=123 if i == 0 else None)[1]["task"]["offset"] for i in range(4)]
    assert replay == tasks  # The env's seeded RNG draws the tasks.
    other = RL2TrialWrapper(ScriptedEnv({"lengths": [1]}), episodes_per_trial=4)
    assert other.reset(seed=7)[1]["task"]["offset"] != tasks[0]
    # RLlib re-passes config.seed on every sample() call in complete_episodes mode: a repeated
    # seed must not replay the same tasks every training iteration.
    assert again.reset(seed=123)[1]["task"]["offset"] not in tasks
    assert other.reset(seed=123)[1]["task"]["offset"] == tasks[0]  # A new seed applies.


def test_reset_options_task_is_used():
    env = RL2TrialWrapper(ScriptedEnv(), episodes_per_trial=2)
    _, info = env.reset(options={"task": {"offset": 0.25}})
    assert info["task"] == {"offset": 0.25} and env.env.offset == 0.25


def test_bad_arguments_and_envs_without_task_api():
    with pytest.raises(ValueError, match="episodes_per_trial"):
        RL2TrialWrapper(ScriptedEnv(), episodes_per_trial=0)
    with pytest.raises(TaskAPIError, match="sample_tasks"):
        RL2TrialWrapper(NoTaskEnv(), episodes_per_trial=2)


def test_multi_agent_waiting_agents_and_joint_inner_resets():
    env = make_trial_env(TwoAgentEnv(), episodes_per_trial=2)
    assert isinstance(env, MultiAgentRL2TrialWrapper)
    obs, infos = env.reset(seed=0)
    off = infos["fast"]["task"]["offset"]
    assert set(obs) == {"fast", "slow"}
    for agent in obs:
        np.testing.assert_allclose(obs[agent], [0, off, 0, 0, 0, 0], rtol=1e-6)
        assert obs[agent] in env.observation_spaces[agent]

    def check(step_out, expected_obs, expected_rewards, all_done):
        o, r, term, trunc, info = step_out
        assert set(o) == set(expected_obs)
        for agent, values in expected_obs.items():
            np.testing.assert_allclose(o[agent], np.array(values, np.float32), rtol=1e-6)
            assert o[agent] in env.observation_spaces[agent]
        assert r == pytest.approx(expected_rewards)
        assert term["__all__"] is all_done and trunc["__all__"] is False
        return info

    # Inner episode 1: fast terminates after one step and waits; its team reward is deferred.
    step = env.step({"fast": 1, "slow": 0})
    check(step, {"slow": [1, off, 1, 0, 1 + off, 0]}, {"slow": 1 + off}, False)
    check(env.step({"slow": 1}), {"slow": [2, off, 0, 1, 2 + off, 0]}, {"slow": 2 + off}, False)
    # slow truncates: all agents reset together, done flag 1, fast paid 2 + off + 0.5 + 0.5.
    info = check(
        env.step({"slow": 0}),
        {"fast": [0, off, 0, 1, 3 + off, 1], "slow": [0, off, 1, 0, 1 + off, 1]},
        {"fast": 3 + off, "slow": 1 + off},
        False,
    )
    assert info["fast"]["inner_episode"] == 1 and info["slow"]["inner_episode"] == 1
    # Inner episode 2, the last one.
    step = env.step({"fast": 0, "slow": 1})
    check(step, {"slow": [1, off, 0, 1, 2 + off, 0]}, {"slow": 2 + off}, False)
    check(env.step({"slow": 1}), {"slow": [2, off, 0, 1, 2 + off, 0]}, {"slow": 2 + off}, False)
    o, r, term, trunc, info = env.step({"slow": 1})
    assert term == {"__all__": True, "fast": True, "slow": True}
    np.testing.assert_allclose(o["fast"], [1, off, 1, 0, 2 + off, 1], rtol=1e-6)
    np.testing.assert_allclose(o["slow"], [3, off, 0, 1, 2 + off, 1], rtol=1e-6)
    assert r == pytest.approx({"fast": 2 + off, "slow": 2 + off})
    assert info["fast"]["inner_episode_returns"] == pytest.approx([3 + off, 2 + off])
    assert info["slow"]["inner_episode_returns"] == pytest.approx([4 + 3 * off, 6 + 3 * off])


def test_pettingzoo_parallel_env_is_wrapped_for_rllib():
    cn = pytest.importorskip("rllib_marl_meta.envs.cooperative_navigation")
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    env = make_trial_env(cn.CooperativeNavigation({"num_agents": 2, "horizon": 3}), 2)
    assert isinstance(env, MultiAgentRL2TrialWrapper)
    assert isinstance(env.env, ParallelPettingZooEnv)
    obs, infos = env.reset(seed=0)
    task = infos["agent_0"]["task"]
    steps, done = 0, False
    while not done:
        actions = {a: env.action_spaces[a].sample() for a in obs}
        obs, rewards, term, _, infos = env.step(actions)
        for agent, o in obs.items():
            assert o in env.observation_spaces[agent]
        steps += 1
        done = term["__all__"]
        task_now = env.env.par_env.get_task()
        np.testing.assert_array_equal(task_now["landmarks"], task["landmarks"])
    assert steps == 6
    assert len(infos["agent_0"]["inner_episode_returns"]) == 2


def test_turn_based_aec_env_keeps_a_trial_history_per_agent():
    """RLlib's turn-based PettingZooEnv: one agent acts per step, the others' histories wait."""
    from tests.conftest import aec_cooperative_navigation

    env = make_trial_env(aec_cooperative_navigation({"num_agents": 2, "horizon": 2}), 2)
    assert isinstance(env, MultiAgentRL2TrialWrapper)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"agent_0"}
    prev = {"agent_0": [0.5, -0.5], "agent_1": [-0.25, 0.75]}
    obs, *_ = env.step({"agent_0": np.array(prev["agent_0"], np.float32)})
    assert set(obs) == {"agent_1"}
    np.testing.assert_allclose(obs["agent_1"][6:8], [0.0, 0.0])  # agent_1 has not acted yet.
    obs, *_ = env.step({"agent_1": np.array(prev["agent_1"], np.float32)})
    assert set(obs) == {"agent_0"}
    np.testing.assert_allclose(obs["agent_0"][6:8], prev["agent_0"])  # Its own last action.
    obs, *_ = env.step({"agent_0": np.zeros(2, np.float32)})
    np.testing.assert_allclose(obs["agent_1"][6:8], prev["agent_1"])


@pytest.mark.parametrize("multi_agent", [False, True], ids=["single-agent", "multi-agent"])
def test_set_task_sets_the_next_trial_only(multi_agent):
    """The trial wrapper has the task API: `set_task` fixes the next trial's task (meta-test)
    and the trial replays from its seed; later trials draw their own tasks, as in training."""
    if multi_agent:
        env = MultiAgentRL2TrialWrapper(TwoAgentEnv(), episodes_per_trial=2)
    else:
        env = RL2TrialWrapper(ScriptedEnv({"lengths": [1]}), episodes_per_trial=2)
    tasks = env.sample_tasks(3, seed=4)
    assert [t["offset"] for t in tasks] == [t["offset"] for t in env.sample_tasks(3, seed=4)]
    env.set_task(tasks[1])
    assert env.get_task() != tasks[1]  # Takes effect at the next reset, not before.
    _, info = env.reset(seed=9)
    task_info = info if not multi_agent else next(iter(info.values()))
    assert task_info["task"] == tasks[1] == env.get_task()
    _, info = env.reset(seed=10)
    task_info = info if not multi_agent else next(iter(info.values()))
    assert task_info["task"]["offset"] != tasks[1]["offset"]
