"""Built-in task distributions, registered with Ray Tune's env registry by name.

Each env takes one ``config`` dict (RLlib's ``env_config``). Optional dependencies (MuJoCo,
mpe2) are imported only when their env is created.
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
}


def env_class(name: str) -> type:
    """The class of a built-in env, importing its module on demand."""
    if name not in BUILTIN_ENVS:
        raise ValueError(f"Unknown built-in env '{name}'. Known: {sorted(BUILTIN_ENVS)}.")
    module, cls, _, _ = BUILTIN_ENVS[name]
    return getattr(importlib.import_module(module), cls)


def make_env(name: str, config: dict | None = None) -> Any:
    """Creates a built-in env by name, as RLlib's env creator does."""
    return _creator(name)(config or {})


def _creator(name: str) -> Callable[[dict], Any]:
    def create(config: dict) -> Any:
        return env_class(name)(dict(config))

    return create


def register_envs() -> None:
    """Registers every built-in env with Ray Tune, so ``config.environment("Name")`` works."""
    from ray.tune.registry import register_env

    for name in BUILTIN_ENVS:
        register_env(name, _creator(name))
