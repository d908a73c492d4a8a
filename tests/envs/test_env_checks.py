"""The env checks of ``rllib_marl_meta.envs.creation`` that run before Ray starts (no Ray)."""

from __future__ import annotations

import pytest

import rllib_marl_meta  # noqa: F401  (registers the built-in envs with Tune)
from rllib_marl_meta.envs._config import EnvConfigError
from rllib_marl_meta.envs.creation import check_builtin_env_config, check_env_name, env_agent_ids


@pytest.mark.parametrize(
    "env", ["PointNavigation2D", "CartPole-v1", "rllib_marl_meta.envs.bandit.BernoulliBandit"]
)
def test_check_env_name_accepts_registered_names_gym_ids_and_class_paths(env):
    check_env_name(env)


@pytest.mark.parametrize(
    "env, message",
    [
        ("PointNav2D", r"^Unknown env 'PointNav2D' in exp: .* Did you mean 'PointNavigation2D'\?"),
        ("NoSuchEnv-v0", r"^Unknown env 'NoSuchEnv-v0' in exp: .*Built-in envs: CartPoleMass"),
        ("no_such.module.Env", r"^Unknown env 'no_such\.module\.Env' in exp: not a registered"),
        (3, r"^`env` in exp must be a name, got 3\.$"),
    ],
)
def test_check_env_name_rejects_what_rllib_cannot_create(env, message):
    with pytest.raises(ValueError, match=message) as info:
        check_env_name(env, " in exp")
    assert "\n" not in str(info.value)


def test_check_builtin_env_config_reads_the_declared_keys_without_creating_the_env():
    check_builtin_env_config("PointNavigation2D", {"horizon": 10})
    check_builtin_env_config("CartPole-v1", {"anything": 1})  # Not built in: not checked.
    with pytest.raises(EnvConfigError, match=r"^PointNavigation2D: env_config key 'horizon'"):
        check_builtin_env_config("PointNavigation2D", {"horizon": "ten"})
    with pytest.raises(EnvConfigError, match=r"Did you mean 'horizon'\?"):
        check_builtin_env_config("PointNavigation2D", {"horizn": 10})


def test_check_builtin_env_config_names_a_missing_extra(monkeypatch):
    import rllib_marl_meta.envs as envs

    def missing(name):
        raise ImportError(f"Env '{name}' needs the optional 'mujoco' dependencies.")

    monkeypatch.setattr(envs, "env_class", missing)
    with pytest.raises(ImportError, match="needs the optional 'mujoco' dependencies"):
        check_builtin_env_config("HalfCheetahVelocity", {})


def test_env_agent_ids_over_several_configs():
    configs = [{"num_agents": 2}, {"num_agents": 3}]
    assert env_agent_ids("CooperativeNavigation", configs) == ["agent_0", "agent_1", "agent_2"]
    assert env_agent_ids("CooperativeNavigation") == ["agent_0", "agent_1"]  # The default config.
    assert env_agent_ids("PointNavigation2D", [{"horizon": 5}]) is None  # Single-agent.
    assert env_agent_ids("CartPole-v1") is None


def test_env_agent_ids_reports_an_env_that_cannot_be_created():
    message = (
        r"^Cannot create env 'CooperativeNavigation' to read its agent ids: CooperativeNavigation: "
        r"env_config key 'num_agents' must be an integer >= 1, got 'x'\.$"
    )
    with pytest.raises(ValueError, match=message):
        env_agent_ids("CooperativeNavigation", [{"num_agents": "x"}])
