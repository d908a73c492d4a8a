"""Built-in task distributions, registered with Ray Tune's env registry by name.

Each env takes one ``config`` dict (RLlib's ``env_config``). Optional dependencies (MuJoCo,
mpe2) are imported only when their env is created, so ``import rllib_marl_meta`` works without
them.

Two ways to create an env by name:

- :func:`make_env` returns the raw env (a gymnasium ``Env`` or a PettingZoo ``ParallelEnv``), the
  object that implements the task API;
- :func:`make_rllib_env` returns what RLlib's env creator returns: the same env for gymnasium
  envs, and the PettingZoo env wrapped in RLlib's ``ParallelPettingZooEnv`` (``PettingZooEnv``
  for AEC envs), which is an RLlib ``MultiAgentEnv``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# name -> (module, class, one-line task space description, extra that provides it or None)
BUILTIN_ENVS: dict[str, tuple[str, str, str, str | None]] = {
    "CartPoleMass": (
        "rllib_marl_meta.envs.cartpole_mass",
        "CartPoleMass",
        "masscart~U[0.5, 2.0], masspole~U[0.05, 0.2]",
        None,
    ),
    "PointNavigation2D": (
        "rllib_marl_meta.envs.point_navigation",
        "PointNavigation2D",
        "goal~U[-0.5, 0.5]^2",
        None,
    ),
    "BernoulliBandit": (
        "rllib_marl_meta.envs.bandit",
        "BernoulliBandit",
        "probs~U[0, 1]^num_arms",
        None,
    ),
    "PendulumMass": (
        "rllib_marl_meta.envs.pendulum_mass",
        "PendulumMass",
        "m~U[0.5, 2.0]",
        None,
    ),
    "HalfCheetahVelocity": (
        "rllib_marl_meta.envs.half_cheetah",
        "HalfCheetahVelocity",
        "target_velocity~U[0.0, 2.0]",
        "mujoco",
    ),
    "HalfCheetahDirection": (
        "rllib_marl_meta.envs.half_cheetah",
        "HalfCheetahDirection",
        "direction~U{-1, 1}",
        "mujoco",
    ),
    "CooperativeNavigation": (
        "rllib_marl_meta.envs.cooperative_navigation",
        "CooperativeNavigation",
        "landmarks~U[-1, 1]^(num_agents, 2), max_speed~U[0.5, 2.0]",
        None,
    ),
    "MPESpread": (
        "rllib_marl_meta.envs.mpe_spread",
        "MPESpread",
        "landmarks~U[-1, 1]^(N, 2), max_speed~U[0.5, 2.0], damping~U[0.1, 0.5]",
        "mpe",
    ),
}

# Built-in envs that are PettingZoo envs: RLlib sees them through ``ParallelPettingZooEnv``.
MULTI_AGENT_ENVS: frozenset[str] = frozenset({"CooperativeNavigation", "MPESpread"})


def env_class(name: str) -> type:
    """The class of a built-in env, importing its module on demand.

    Raises ``ImportError`` naming the extra to install when an optional dependency is missing.
    """
    if name not in BUILTIN_ENVS:
        raise ValueError(f"Unknown built-in env '{name}'. Known: {sorted(BUILTIN_ENVS)}.")
    module, cls, _, extra = BUILTIN_ENVS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        if extra is None:
            raise
        raise ImportError(
            f"Env '{name}' needs the optional '{extra}' dependencies: "
            f"pip install -c constraints.txt 'rllib-marl-meta[{extra}]' ({exc})."
        ) from exc


def make_env(name: str, config: dict | None = None) -> Any:
    """Creates a built-in env by name: the raw env that implements the task API."""
    return _creator(name)(config or {})


def make_rllib_env(name: str, config: dict | None = None) -> Any:
    """Creates a built-in env as RLlib's registered env creator does.

    Gymnasium envs come back as they are; PettingZoo envs come back wrapped in
    ``ParallelPettingZooEnv`` (``PettingZooEnv`` for AEC envs), an RLlib ``MultiAgentEnv``.
    The task API stays reachable through :func:`rllib_marl_meta.tasks.find_task_env`.
    """
    return rllib_creator(name)(config or {})


def to_rllib_env(env: Any) -> Any:
    """Wraps a PettingZoo env for RLlib; returns any other env unchanged."""
    from pettingzoo import AECEnv, ParallelEnv

    if isinstance(env, ParallelEnv):
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

        return ParallelPettingZooEnv(env)
    if isinstance(env, AECEnv):
        from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv

        return PettingZooEnv(env)
    return env


def _creator(name: str) -> Callable[[dict], Any]:
    def create(config: dict) -> Any:
        return env_class(name)(dict(config))

    return create


def rllib_creator(name: str) -> Callable[[dict], Any]:
    """The env creator registered with Tune for ``name`` (see :func:`make_rllib_env`)."""
    raw = _creator(name)

    def create(config: dict) -> Any:
        return to_rllib_env(raw(config))

    return create


def register_envs() -> None:
    """Registers every built-in env with Ray Tune, so ``config.environment("Name")`` works."""
    from ray.tune.registry import register_env

    for name in BUILTIN_ENVS:
        register_env(name, rllib_creator(name))
