"""Range checks for algorithm settings, applied where a value is set, and env probes.

RLlib accepts most settings without a range check, and it treats ``-1`` as its
``DEPRECATED_VALUE``: ``AlgorithmConfig.get_state()`` drops every attribute equal to ``-1``, so a
setting of ``-1`` silently becomes the default when ``build_algo()`` copies the config. A
config class that mixes in :class:`CheckedSettingsMixin` checks each setting named in its
``SETTINGS`` table whenever it is assigned (``training()``, ``env_runners()``,
``update_from_dict()`` and plain attribute assignment alike) and again in ``validate()``, and
raises a ``ValueError`` that names the setting, the allowed values and the method that sets it.

Tune search spaces (``tune.grid_search([...])``, ``tune.uniform(...)``) are accepted where a
value is set, because Tune resolves them per trial; ``validate()`` checks the resolved values.

The env probes (:func:`probe_env`) create one env on the driver and check what RLlib would only
discover deep inside an EnvRunner: observations of the wrong shape, a multi-agent env without a
multi-agent setup, and a policy mapping that names a module that does not exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Setting:
    """What values one setting allows, and which config method sets it."""

    allowed: str
    check: Callable[[Any], bool]
    method: str = "training"
    fix: str | None = None  # Replaces the default hint "Set it with `config.<method>(...)`".


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def integer(minimum: int, *, optional: bool = False, method: str = "training") -> Setting:
    """An integer >= ``minimum`` (``None`` too if ``optional``)."""

    def check(value: Any) -> bool:
        if value is None:
            return optional
        return (
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and (value >= minimum)
        )

    return Setting(f"an integer >= {minimum}" + (" or None" if optional else ""), check, method)


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    optional: bool = False,
    schedule: bool = False,
    method: str = "training",
) -> Setting:
    """A finite number in ``[low, high]`` (``(low, high]`` if ``low_open``).

    ``schedule=True`` also allows RLlib's piecewise schedules: a list of
    ``[timestep, value]`` pairs with timesteps >= 0 and values in the same range.
    """

    def in_range(value: Any) -> bool:
        if not _is_real(value) or not math.isfinite(float(value)):
            return False
        if low is not None and (value <= low if low_open else value < low):
            return False
        return high is None or value <= high

    def check(value: Any) -> bool:
        if value is None:
            return optional
        if schedule and isinstance(value, (list, tuple)):
            return bool(value) and all(
                isinstance(p, (list, tuple))
                and len(p) == 2
                and integer(0).check(p[0])
                and in_range(p[1])
                for p in value
            )
        return in_range(value)

    if low is not None and high is not None:
        text = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        text = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        text = "a finite number"
    if schedule:
        text += " (or a schedule [[timestep, value], ...])"
    return Setting(text + (" or None" if optional else ""), check, method)


def one_of(*values: Any, method: str = "training") -> Setting:
    """One of ``values``."""
    return Setting(
        "one of " + ", ".join(repr(v) for v in values),
        lambda value: isinstance(value, str | bool | int | float | None) and value in values,
        method,
    )


def torch_only(algo_name: str) -> Setting:
    """The ``framework_str`` setting of an algorithm implemented for torch only."""
    return Setting(
        f"'torch' ({algo_name} is implemented for torch only)",
        lambda value: value == "torch",
        "framework",
        fix="Use `config.framework('torch')`.",
    )


def boolean(method: str = "training") -> Setting:
    return Setting("True or False", lambda value: isinstance(value, (bool, np.bool_)), method)


def module_id_list(method: str = "training") -> Setting:
    """None, or a list (tuple, set) of module IDs; a plain string is rejected."""
    return Setting(
        "None or a list of module IDs (e.g. ['agent_0'], not 'agent_0')",
        lambda value: (
            value is None
            or (
                isinstance(value, (list, tuple, set, frozenset))
                and all(isinstance(v, str) for v in value)
            )
        ),
        method,
    )


# Settings every algorithm of this package shares (AlgorithmConfig's own).
COMMON_SETTINGS: dict[str, Setting] = {
    "gamma": number(0.0, 1.0),
    "lr": number(0.0, low_open=True, schedule=True),
    "grad_clip": number(0.0, low_open=True, optional=True),
    "train_batch_size_per_learner": integer(1, optional=True),
    "num_env_runners": integer(0, method="env_runners"),
    "num_envs_per_env_runner": integer(1, method="env_runners"),
    "num_cpus_per_env_runner": number(0.0, method="env_runners"),
    "num_gpus_per_env_runner": number(0.0, method="env_runners"),
    "num_learners": integer(0, method="learners"),
    "num_gpus_per_learner": number(0.0, method="learners"),
    "num_cpus_per_learner": Setting(
        "'auto' or a finite number >= 0",
        lambda v: v == "auto" or number(0.0).check(v),
        "learners",
    ),
    "max_num_env_runner_restarts": integer(0, method="fault_tolerance"),
    "delay_between_env_runner_restarts_s": number(0.0, method="fault_tolerance"),
    "env_runner_health_probe_timeout_s": number(0.0, low_open=True, method="fault_tolerance"),
    "seed": integer(0, optional=True, method="debugging"),
}


def _is_search_space(value: Any) -> bool:
    """A Tune search space, resolved per trial (checked by ``validate()`` then)."""
    if isinstance(value, Mapping) and set(value) == {"grid_search"}:
        return True
    from ray.tune.search.sample import Domain

    return isinstance(value, Domain)


def setting_error(config: Any, name: str, value: Any, setting: Setting) -> str:
    """The message for a bad ``value`` of setting ``name``."""
    fix = setting.fix or f"Set it with `config.{setting.method}({name}=...)`."
    text = f"{type(config).__name__}: `{name}` must be {setting.allowed}; got {value!r}. {fix}"
    if _is_real(value) and value == -1:
        text += (
            " (RLlib reads -1 as its DEPRECATED_VALUE and would silently replace it by the "
            "default.)"
        )
    return text


class CheckedSettingsMixin:
    """Checks each setting in ``SETTINGS`` when it is assigned and in :meth:`check_settings`.

    Mix in before the RLlib config class: ``class MAMLConfig(CheckedSettingsMixin,
    AlgorithmConfig)``.
    """

    SETTINGS: ClassVar[dict[str, Setting]] = COMMON_SETTINGS

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "policies" and isinstance(value, dict):
            # RLlib builds the modules in this dict's order, each drawing its initial weights
            # from the seeded torch RNG in turn. `multi_agent(policies={...})` makes the dict
            # from a set, whose order changes from process to process (string hashing), so the
            # same seed gave other weights in another run. Sorted ids give one order.
            value = dict(sorted(value.items(), key=lambda item: str(item[0])))
        setting = type(self).SETTINGS.get(key)
        if setting is not None and not _is_search_space(value) and not setting.check(value):
            raise ValueError(setting_error(self, key, value, setting))
        super().__setattr__(key, value)

    def check_settings(self) -> list[str]:
        """Messages for every setting whose current value is out of range."""
        return [
            setting_error(self, name, getattr(self, name), setting)
            for name, setting in type(self).SETTINGS.items()
            if hasattr(self, name) and not setting.check(getattr(self, name))
        ]


# --- Env probes ------------------------------------------------------------------------------


def _shape_problem(space: gym.Space, value: Any, where: str) -> str | None:
    """Where ``value`` does not fit the structure and shape of ``space``, or None."""
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(value, Mapping) or set(value) != set(space.spaces):
            return f"{where} should be a dict with keys {sorted(space.spaces)}, got {value!r}"
        for key, sub in space.spaces.items():
            problem = _shape_problem(sub, value[key], f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(space, gym.spaces.Tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(space.spaces):
            return f"{where} should be a tuple of {len(space.spaces)} parts, got {value!r}"
        for i, sub in enumerate(space.spaces):
            problem = _shape_problem(sub, value[i], f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        shape = np.shape(value)
        if shape != space.shape:
            return f"{where} has shape {shape}, but the observation space {space} has {space.shape}"
    return None


def agent_ids(env: Any) -> list[Any] | None:
    """The agent IDs of a multi-agent env (RLlib ``MultiAgentEnv``), or None."""
    from ray.rllib.env.multi_agent_env import MultiAgentEnv

    if not isinstance(env, MultiAgentEnv):
        return None
    ids = getattr(env, "possible_agents", None) or getattr(env, "agents", None) or []
    return list(ids)


def check_multi_agent_setup(config: Any, env: Any, algo_name: str) -> None:
    """Fails on a multi-agent env without ``multi_agent(...)``, or a mapping to no module."""
    agents = agent_ids(env)
    if agents is None:
        if config.is_multi_agent:
            raise ValueError(
                f"{algo_name}: the env is single-agent, but the config sets up several "
                "policies with `multi_agent(...)`. Remove the multi-agent setup."
            )
        return
    if not config.is_multi_agent:
        raise ValueError(
            f"{algo_name}: the env is multi-agent (agents {agents}), but the config has no "
            "multi-agent setup. Add one, e.g. `config.multi_agent(policies={'shared'}, "
            "policy_mapping_fn=lambda agent_id, episode, **kw: 'shared')`, or one policy per "
            "agent."
        )
    policies = set(config.policies)
    for agent in sorted(agents, key=str):  # A set's order varies with the hash seed.
        try:
            module_id = config.policy_mapping_fn(agent, None)
        except Exception:  # noqa: BLE001 - a mapping that needs the episode: checked later.
            continue
        if module_id not in policies:
            raise ValueError(
                f"{algo_name}: `policy_mapping_fn` maps agent {agent!r} to module "
                f"{module_id!r}, which is not one of the policies {sorted(policies)}. Add it "
                "to `config.multi_agent(policies=...)` or fix the mapping."
            )


def probe_env(env: Any, algo_name: str) -> None:
    """Resets ``env`` and steps it once; fails on observations of the wrong shape.

    An env that raises here gets an error naming the env call and the env's own message.
    """
    agents = agent_ids(env)
    obs = _call_env(algo_name, "reset()", env.reset)[0]
    _check_observations(env, obs, agents, algo_name, "reset()")
    if agents is None:
        action = env.action_space.sample()
    else:
        action = {a: env.get_action_space(a).sample() for a in obs}
    obs = _call_env(algo_name, "step() with a random action", lambda: env.step(action))[0]
    _check_observations(env, obs, agents, algo_name, "step()")


def _call_env(algo_name: str, call: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported with the env's own text.
        raise ValueError(
            f"{algo_name}: the env raised in {call} when probed on the driver: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _check_observations(
    env: Any, obs: Any, agents: Iterable[Any] | None, algo_name: str, call: str
) -> None:
    if agents is None:
        problems = [_shape_problem(env.observation_space, obs, "the observation")]
    else:
        problems = [
            _shape_problem(env.get_observation_space(a), o, f"agent {a!r}'s observation")
            for a, o in obs.items()
        ]
    problem = next((p for p in problems if p), None)
    if problem:
        raise ValueError(
            f"{algo_name}: the env's {call} returns observations that do not match its "
            f"observation space: {problem}. Make the env's observations match "
            "`observation_space` (or fix the space)."
        )
