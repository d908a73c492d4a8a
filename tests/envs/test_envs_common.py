"""The task contract and the env API checks, for every built-in env.

Envs that need an optional extra (``mujoco``, ``mpe``) are skipped when it is not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from rllib_marl_meta.envs import (
    BUILTIN_ENVS,
    EXTRA_MODULES,
    MULTI_AGENT_ENVS,
    make_env,
    make_rllib_env,
)
from rllib_marl_meta.tasks import find_task_env

ALL_ENVS = sorted(BUILTIN_ENVS)
SINGLE_AGENT_ENVS = [n for n in ALL_ENVS if n not in MULTI_AGENT_ENVS]
# Meta-World's tasks place the object as well as the goal: they change the start state.
TASKS_SET_THE_START = {"MetaWorldML1", "MetaWorldML10"}
# Small configs keep the MuJoCo and MPE episodes short.
_CONFIGS = {"HalfCheetahVelocity": {"horizon": 20}, "HalfCheetahDirection": {"horizon": 20}}


def _make(name: str, **config):
    extra = BUILTIN_ENVS[name].extra
    if extra is not None:
        pytest.importorskip(EXTRA_MODULES[extra])
    return make_env(name, {**_CONFIGS.get(name, {}), **config})


def _corner_task(env, high: bool) -> dict:
    """Every field at the top (or bottom) of its range: two tasks as different as can be."""
    task = {}
    for name, field in env.task_space.fields.items():
        if field.choices is not None:
            value = field.choices[-1 if high else 0]
        else:
            value = field.high if high else field.low
        task[name] = np.full(field.shape, value) if field.shape else value
    return task


def _assert_tasks_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def _tasks_equal(a: list[dict], b: list[dict]) -> bool:
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_every_builtin_env_is_listed_with_its_task_space():
    for name, env in BUILTIN_ENVS.items():
        assert env.module.startswith("rllib_marl_meta.envs.") and env.extra in (
            None,
            *EXTRA_MODULES,
        )
        if env.installed:  # The description is the env's own TaskSpace's.
            assert env.describe() == make_env(name).task_space.describe()
    assert env.describe() != BUILTIN_ENVS["PointNavigation2D"].describe()
    assert BUILTIN_ENVS["BernoulliBandit"].describe({"num_arms": 3}).endswith("^(3,)")
    assert MULTI_AGENT_ENVS == {n for n, e in BUILTIN_ENVS.items() if e.multi_agent}


@pytest.mark.parametrize("name", SINGLE_AGENT_ENVS)
def test_single_agent_env_passes_gymnasium_check_env(name):
    env = _make(name)
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", sorted(MULTI_AGENT_ENVS))
def test_multi_agent_env_passes_parallel_api_test(name):
    env = _make(name)
    assert isinstance(env, ParallelEnv)
    parallel_api_test(env, num_cycles=200)


@pytest.mark.parametrize("name", ALL_ENVS)
def test_set_task_get_task_round_trips(name):
    env = _make(name)
    env.reset(seed=0)
    for task in [*env.sample_tasks(3, seed=0), _corner_task(env, False), _corner_task(env, True)]:
        env.set_task(task)
        got = env.get_task()
        _assert_tasks_equal(got, env.task_space.validate(task))
        env.set_task(got)
        _assert_tasks_equal(env.get_task(), got)


@pytest.mark.parametrize("name", ALL_ENVS)
def test_reset_options_task_sets_the_task(name):
    env = _make(name)
    task = env.sample_tasks(1, seed=3)[0]
    env.reset(seed=0, options={"task": task})
    _assert_tasks_equal(env.get_task(), env.task_space.validate(task))
    env.reset(seed=1)  # Without a task in the options the task stays.
    _assert_tasks_equal(env.get_task(), env.task_space.validate(task))


@pytest.mark.parametrize("name", ALL_ENVS)
def test_task_given_in_the_config_is_applied(name):
    probe = _make(name)
    task = probe.sample_tasks(1, seed=11)[0]
    env = _make(name, task=task)
    _assert_tasks_equal(env.get_task(), probe.task_space.validate(task))


@pytest.mark.parametrize("name", ALL_ENVS)
def test_sample_tasks_reproducible_under_seed_and_seeded_reset(name):
    env, other = _make(name), _make(name)
    assert _tasks_equal(env.sample_tasks(20, seed=5), other.sample_tasks(20, seed=5))
    assert not _tasks_equal(env.sample_tasks(20, seed=5), env.sample_tasks(20, seed=6))
    env.reset(seed=7)
    first = env.sample_tasks(20)
    env.reset(seed=7)
    assert _tasks_equal(env.sample_tasks(20), first)
    other.reset(seed=7)
    assert _tasks_equal(other.sample_tasks(20), first)
    env.reset(seed=8)
    assert not _tasks_equal(env.sample_tasks(20), first)
    for task in first:  # Sampled tasks are valid tasks.
        env.task_space.validate(task)


@pytest.mark.parametrize("name", SINGLE_AGENT_ENVS)
def test_different_tasks_change_single_agent_transitions(name):
    env_a, env_b = _make(name), _make(name)
    obs_a, _ = env_a.reset(seed=0, options={"task": _corner_task(env_a, False)})
    obs_b, _ = env_b.reset(seed=0, options={"task": _corner_task(env_b, True)})
    if name in TASKS_SET_THE_START:
        assert not np.array_equal(obs_a, obs_b)
    else:
        np.testing.assert_array_equal(obs_a, obs_b)  # Same start state...
    env_a.action_space.seed(0)
    actions = [env_a.action_space.sample() for _ in range(5)]
    gap = 0.0
    for action in actions:  # ...same actions...
        next_a, reward_a, *_ = env_a.step(action)
        next_b, reward_b, *_ = env_b.step(action)
        gap = max(gap, abs(reward_a - reward_b), float(np.max(np.abs(next_a - next_b))))
    assert gap > 1e-3  # ...different transitions or rewards.


@pytest.mark.parametrize("name", sorted(MULTI_AGENT_ENVS))
def test_different_tasks_change_multi_agent_rewards(name):
    env_a, env_b = _make(name), _make(name)
    obs_a, _ = env_a.reset(seed=0, options={"task": _corner_task(env_a, False)})
    obs_b, _ = env_b.reset(seed=0, options={"task": _corner_task(env_b, True)})
    for agent in env_a.agents:  # Same agent positions and velocities (first four entries).
        np.testing.assert_array_equal(obs_a[agent][:4], obs_b[agent][:4])
    gap = 0.0
    for step in range(5):
        actions = {}
        for i, agent in enumerate(env_a.agents):
            space = env_a.action_space(agent)
            space.seed(100 * step + i)
            actions[agent] = space.sample()
        _, rewards_a, *_ = env_a.step(actions)
        _, rewards_b, *_ = env_b.step(actions)
        gap = max(gap, *(abs(rewards_a[a] - rewards_b[a]) for a in rewards_a))
    assert gap > 1e-3


def _bad_tasks(env):
    """(description, task, fragments the error must contain) for the env's first field."""
    name, field = next(iter(env.task_space.fields.items()))
    good = env.get_task()
    allowed = field.allowed()
    too_big = np.full(field.shape, field.high + 1.0) if field.shape else field.high + 1.0
    wrong_shape = np.zeros((*field.shape, 2)) + field.low
    unknown = {**good, "no_such_field": 1.0}
    missing = {k: v for k, v in good.items() if k != name}
    return [
        ("out of range", {**good, name: too_big}, [f"'{name}'", allowed]),
        ("wrong shape", {**good, name: wrong_shape}, [f"'{name}'", allowed, "shape"]),
        ("wrong type", {**good, name: "heavy"}, [f"'{name}'", allowed, "numeric"]),
        ("unknown field", unknown, ["no_such_field", env.task_space.describe()]),
        ("missing field", missing, [f"'{name}'", allowed]),
        ("not a dict", [1.0], ["dict", env.task_space.describe()]),
    ]


@pytest.mark.parametrize("name", ALL_ENVS)
def test_bad_tasks_raise_value_errors_naming_field_and_range(name):
    env = _make(name)
    before = env.get_task()
    for description, task, fragments in _bad_tasks(env):
        with pytest.raises(ValueError) as info:
            env.set_task(task)
        for fragment in fragments:
            assert fragment in str(info.value), (description, str(info.value))
        with pytest.raises(ValueError):
            env.reset(options={"task": task})
    _assert_tasks_equal(env.get_task(), before)


@pytest.mark.parametrize("name", ALL_ENVS)
def test_rllib_creator_output(name):
    _make(name)  # Skips when the extra is missing.
    env = make_rllib_env(name, _CONFIGS.get(name, {}))
    raw = find_task_env(env)
    assert raw is not None
    if name in MULTI_AGENT_ENVS:
        assert isinstance(env, MultiAgentEnv)
        task = raw.sample_tasks(1, seed=0)[0]
        obs, _ = env.reset(seed=0, options={"task": task})
        assert set(obs) == set(env.possible_agents)
        _assert_tasks_equal(raw.get_task(), raw.task_space.validate(task))
        actions = {a: env.action_space[a].sample() for a in obs}
        _, rewards, terminateds, truncateds, _ = env.step(actions)
        assert set(rewards) == set(obs) and "__all__" in terminateds and "__all__" in truncateds
    else:
        assert env is raw


def test_package_works_without_the_extras():
    """With MuJoCo and mpe2 unimportable, the package imports and names the extra to install."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["mujoco"] = None  # Makes `import mujoco` raise ImportError.
        sys.modules["mpe2"] = None
        import rllib_marl_meta
        from rllib_marl_meta.envs import make_env
        make_env("CooperativeNavigation").reset(seed=0)
        for name, extra in [("HalfCheetahVelocity", "mujoco"), ("MPESpread", "mpe")]:
            try:
                make_env(name)
            except ImportError as exc:
                assert f"rllib-marl-meta[{extra}]" in str(exc), str(exc)
            else:
                raise AssertionError(name + " was created without its extra")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr


# Built-in envs with ``step_many`` (see `plan_sampling.many_env_stepper`): their horizon key.
STEP_MANY_HORIZONS = {"PointNavigation2D": "horizon", "PendulumMass": "max_episode_steps"}


def test_the_envs_with_step_many_are_the_listed_ones():
    with_step_many = {n for n in SINGLE_AGENT_ENVS if hasattr(_make(n).unwrapped, "step_many")}
    assert with_step_many == set(STEP_MANY_HORIZONS)


@pytest.mark.parametrize("name", sorted(STEP_MANY_HORIZONS))
def test_step_many_equals_stepping_each_env_in_turn(name):
    """An env's ``step_many`` (the direct sampling loop's) gives what stepping each instance
    does: the same observations, rewards, ends and infos, the same states afterwards; here
    three envs with their own tasks, seeds and horizons, over episode ends."""
    apart, together = [], []
    for copies in (apart, together):
        for i, horizon in enumerate((3, 5, 4)):
            env = _make(name, **{STEP_MANY_HORIZONS[name]: horizon}).unwrapped
            env.set_task(env.sample_tasks(3, seed=1)[i])
            env.reset(seed=i)
            copies.append(env)
    action_space = apart[0].action_space
    action_space.seed(0)
    for _ in range(12):
        actions = np.stack([action_space.sample() * 1.5 for _ in apart])  # Some out of bounds.
        expected = [env.step(a) for env, a in zip(apart, actions)]
        observations, rewards, terminated, truncated, infos = type(together[0]).step_many(
            together, actions
        )
        np.testing.assert_array_equal(observations, np.stack([e[0] for e in expected]))
        np.testing.assert_array_equal(rewards, [e[1] for e in expected])
        np.testing.assert_array_equal(terminated, [e[2] for e in expected])
        np.testing.assert_array_equal(truncated, [e[3] for e in expected])
        assert (infos or [{}] * 3) == [e[4] for e in expected]
        for i, (env, result) in enumerate(zip(apart, expected)):
            if result[2] or result[3]:
                env.reset(seed=10 + i)
                together[i].reset(seed=10 + i)
