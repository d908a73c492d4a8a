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
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The Python module that each optional extra installs (``pip install ".[extra]"``).
EXTRA_MODULES: dict[str, str] = {"mujoco": "mujoco", "mpe": "mpe2", "metaworld": "metaworld"}


@dataclass(frozen=True)
class BuiltinEnv:
    """One built-in task distribution: where its class lives and what it needs."""

    module: str
    cls: str
    extra: str | None = None  # The optional extra that provides its dependencies.
    multi_agent: bool = False  # A PettingZoo env, seen by RLlib as a ``MultiAgentEnv``.

    @property
    def installed(self) -> bool:
        """Whether the env's optional dependencies are importable."""
        return self.extra is None or importlib.util.find_spec(EXTRA_MODULES[self.extra]) is not None

    def describe(self, config: dict | None = None) -> str:
        """The task space (``TaskSpace.describe()``) of an instance with ``config``."""
        env = self.load()(dict(config or {}))
        try:
            return env.task_space.describe()
        finally:
            env.close()

    def load(self) -> type:
        return getattr(importlib.import_module(self.module), self.cls)


BUILTIN_ENVS: dict[str, BuiltinEnv] = {
    "CartPoleMass": BuiltinEnv("rllib_marl_meta.envs.cartpole_mass", "CartPoleMass"),
    "PointNavigation2D": BuiltinEnv("rllib_marl_meta.envs.point_navigation", "PointNavigation2D"),
    "BernoulliBandit": BuiltinEnv("rllib_marl_meta.envs.bandit", "BernoulliBandit"),
    "PendulumMass": BuiltinEnv("rllib_marl_meta.envs.pendulum_mass", "PendulumMass"),
    "HalfCheetahVelocity": BuiltinEnv(
        "rllib_marl_meta.envs.half_cheetah", "HalfCheetahVelocity", extra="mujoco"
    ),
    "HalfCheetahDirection": BuiltinEnv(
        "rllib_marl_meta.envs.half_cheetah", "HalfCheetahDirection", extra="mujoco"
    ),
    "MetaWorldML1": BuiltinEnv(
        "rllib_marl_meta.envs.meta_world", "MetaWorldML1", extra="metaworld"
    ),
    "MetaWorldML10": BuiltinEnv(
        "rllib_marl_meta.envs.meta_world", "MetaWorldML10", extra="metaworld"
    ),
    "CooperativeNavigation": BuiltinEnv(
        "rllib_marl_meta.envs.cooperative_navigation", "CooperativeNavigation", multi_agent=True
    ),
    "DistributedOptimization": BuiltinEnv(
        "rllib_marl_meta.envs.distributed_optimization", "DistributedOptimization", multi_agent=True
    ),
    "MPESpread": BuiltinEnv(
        "rllib_marl_meta.envs.mpe_spread", "MPESpread", extra="mpe", multi_agent=True
    ),
    "PartnerNavigation": BuiltinEnv(
        "rllib_marl_meta.envs.partner_navigation", "PartnerNavigation", multi_agent=True
    ),
}

# Built-in envs that are PettingZoo envs: RLlib sees them through ``ParallelPettingZooEnv``.
MULTI_AGENT_ENVS: frozenset[str] = frozenset(n for n, e in BUILTIN_ENVS.items() if e.multi_agent)


def env_class(name: str) -> type:
    """The class of a built-in env, importing its module on demand.

    Raises ``ImportError`` naming the extra to install when an optional dependency is missing.
    """
    if name not in BUILTIN_ENVS:
        raise ValueError(f"Unknown built-in env '{name}'. Known: {sorted(BUILTIN_ENVS)}.")
    extra = BUILTIN_ENVS[name].extra
    try:
        return BUILTIN_ENVS[name].load()
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
