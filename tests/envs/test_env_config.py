"""The shared env-config reader: valid values keep working; bad ones name env, key and values.

Bad values of every built-in env are in ``tests/test_bad_input_cli.py``; here are the reader's
own rules and the valid forms that must stay accepted.
"""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.env.env_context import EnvContext

from rllib_marl_meta.envs import make_env
from rllib_marl_meta.envs._config import (
    EnvConfigError,
    flag,
    integer,
    interval,
    number,
    read_env_config,
)
from rllib_marl_meta.envs.cooperative_navigation import CooperativeNavigation
from rllib_marl_meta.envs.point_navigation import PointNavigation2D

KEYS = {
    "horizon": integer(100, minimum=1),
    "dt": number(0.1, minimum=0.0, exclusive_minimum=True),
    "speed_range": interval((0.5, 2.0), minimum=0.0),
    "fixed_speed": number(None, minimum=0.0, optional=True),
    "observe": flag(False),
}


def test_defaults_fill_the_keys_not_given():
    assert read_env_config("Env", {"horizon": 7}, KEYS) == {
        "horizon": 7,
        "dt": 0.1,
        "speed_range": (0.5, 2.0),
        "fixed_speed": None,
        "observe": False,
    }


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("horizon", 10.0, 10),  # Tune's quniform samples whole floats.
        ("horizon", np.int64(10), 10),
        ("dt", 1, 1.0),
        ("dt", np.float32(0.5), 0.5),
        ("speed_range", [1, 3], (1.0, 3.0)),
        ("speed_range", (1.0, 1.0), (1.0, 1.0)),
        ("fixed_speed", None, None),
        ("observe", np.bool_(True), True),
    ],
)
def test_valid_values_are_normalised(key, value, expected):
    result = read_env_config("Env", {key: value}, KEYS)[key]
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"horizon": True}, r"^Env: env_config key 'horizon' must be an integer >= 1, got True\.$"),
        ({"horizon": None}, r"'horizon' must be an integer >= 1, got None\."),
        ({"dt": float("inf")}, r"'dt' must be a finite number > 0, got inf\."),
        ({"dt": "0.1"}, r"'dt' must be a finite number > 0, got '0\.1'\."),
        ({"speed_range": [1]}, r"'speed_range' must be a pair \[low, high\] of numbers >= 0"),
        ({"speed_range": "ab"}, r"'speed_range' must be a pair"),
        ({"observe": "false"}, r"'observe' must be true or false, got 'false'\."),
        (
            {"horizn": 3},
            r"^Env: unknown env_config key 'horizn'\. Did you mean 'horizon'\? Known keys: dt, "
            r"fixed_speed, horizon, observe, speed_range\.$",
        ),
        ({"zzz": 3}, r"^Env: unknown env_config key 'zzz'\. Known keys: dt, "),
    ],
)
def test_bad_values_and_unknown_keys(config, message):
    with pytest.raises(EnvConfigError, match=message):
        read_env_config("Env", config, KEYS)


def test_envs_accept_rllib_env_context_and_keep_their_defaults():
    env = PointNavigation2D(EnvContext({"horizon": 10}, worker_index=1))
    assert (env.horizon, env.action_bound) == (10, 0.1)
    assert PointNavigation2D().horizon == 100
    coop = CooperativeNavigation({"seed": None, "max_speed": None, "observe_landmarks": True})
    assert (coop.horizon, coop.dt, coop.accel, coop.damping) == (50, 0.1, 5.0, 0.25)
    assert coop.observe_landmarks is True
    assert coop.task_space.fields["max_speed"].low == 0.5


def test_a_subclass_is_named_in_the_message():
    class MyNavigation(PointNavigation2D):
        pass

    with pytest.raises(ValueError, match=r"^MyNavigation: env_config key 'horizon'"):
        MyNavigation({"horizon": 0})


def test_the_initial_task_still_goes_through_the_task_space():
    env = make_env("PointNavigation2D", {"task": {"goal": [0.1, 0.2]}})
    np.testing.assert_allclose(env.get_task()["goal"], [0.1, 0.2])
    with pytest.raises(ValueError, match="goal"):
        make_env("PointNavigation2D", {"task": {"goal": [3.0, 0.0]}})
