"""Meta-World ML1 / ML10: the benchmark's train/test split, the success flag, truncation.
Needs the metaworld extra."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from rllib_marl_meta.envs.meta_world import MetaWorldML1, MetaWorldML10  # noqa: E402
from rllib_marl_meta.tasks import draw_tasks  # noqa: E402


def test_train_and_test_tasks_come_from_the_benchmarks_two_lists():
    env = MetaWorldML1({"env_name": "reach-v3", "horizon": 10})
    train = env.sample_tasks(50, seed=0)
    test = env.sample_tasks(50, seed=0, split="test")
    assert {t["index"] for t in train} == set(range(50))  # Every train goal, none repeated.
    assert {t["index"] for t in test} == set(range(50, 100))
    assert {env.split_of(t) for t in train} == {"train"} and {env.split_of(t) for t in test} == {
        "test"
    }
    # The two splits hold different goals: the start observations differ task by task.
    starts = {}
    for task in (train[0], test[0]):
        obs, _ = env.reset(seed=0, options={"task": task})
        starts[env.split_of(task)] = obs
        assert env.get_task() == task  # Round trip through set_task / get_task.
    assert not np.allclose(starts["train"], starts["test"])
    # draw_tasks passes the split on; the default is the train split.
    assert draw_tasks(env, 3, seed=1, split="test") == env.sample_tasks(3, seed=1, split="test")
    assert all(t["index"] < 50 for t in draw_tasks(env, 3, seed=1))
    with pytest.raises(ValueError, match="'train' or 'test'"):
        env.sample_tasks(2, split="validation")


def test_ml10_holds_out_whole_task_types():
    env = MetaWorldML10({"horizon": 5})
    names = {"train": set(), "test": set()}
    for split in names:
        for task in env.sample_tasks(40, seed=0, split=split):
            env.set_task(task)
            names[split].add(env.env_name)
    assert len(names["train"]) > 5 and len(names["test"]) > 2
    assert not names["train"] & names["test"]


def test_success_is_read_from_info_and_episodes_end_by_truncation():
    env = MetaWorldML1({"env_name": "reach-v3", "horizon": 150})
    obs, _ = env.reset(seed=0, options={"task": env.sample_tasks(1, seed=3, split="test")[0]})
    goal = env._env._target_pos.copy()  # Hidden from the observation (its last 3 are zeros).
    np.testing.assert_array_equal(obs[-3:], 0.0)
    successes, steps = [], 0
    while True:
        move = np.clip(10.0 * (goal - obs[:3]), -1.0, 1.0)  # A P-controller on the hand.
        obs, reward, terminated, truncated, info = env.step(np.append(move, 0.0))
        successes.append(info["success"])
        steps += 1
        assert not terminated  # Meta-World never terminates; its episodes are truncated.
        if truncated:
            break
    assert steps == 150
    assert max(successes) == 1.0 and successes[0] == 0.0  # The scripted reach succeeds.


def test_unknown_env_name_lists_the_names():
    with pytest.raises(ValueError, match="unknown env_name 'reach-v9'.*'?reach-v3"):
        MetaWorldML1({"env_name": "reach-v9"})
