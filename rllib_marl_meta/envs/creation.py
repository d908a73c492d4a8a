"""One way to turn ``config.environment(env)`` into an env object, as RLlib's EnvRunners do.

MAML, RL² and the command line create envs on the driver (to read the task distribution, check
the spaces and probe the env) through :func:`env_creator`, which is RLlib's own resolution
(``Algorithm._get_env_id_and_creator``): a name registered with Tune, a ``"package.module.Class"``
path, a gymnasium id or an env class; a plain creator function is called with the env config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def env_creator(env: Any) -> Callable[[dict], Any]:
    """RLlib's creator for an env descriptor (see the module docstring).

    Raises ``ValueError`` naming the descriptor when RLlib cannot create it.
    """
    from ray.rllib.algorithms.algorithm import Algorithm

    if env is None:
        raise ValueError(
            "No env is set: call `config.environment(env)` with a registered env name (e.g. "
            "'PointNavigation2D'), a 'package.module.EnvClass' path, a gymnasium id or an env "
            "class."
        )
    if callable(env) and not isinstance(env, type):
        return env
    if not isinstance(env, (str, type)):
        raise ValueError(
            f"Cannot create an env from {env!r}: pass a registered env name, a "
            "'package.module.EnvClass' path, a gymnasium id, an env class or a creator function."
        )
    # Our algorithms wrap or probe the env object itself, never RLlib's remote-env actor.
    return Algorithm._get_env_id_and_creator(env, {"remote_worker_envs": False})[1]


def make_driver_env(config: Any, env: Any = None) -> Any:
    """Creates one instance of ``env`` (default ``config.env``) on the driver, worker index 0."""
    from ray.rllib.env.env_context import EnvContext

    creator = env_creator(config.env if env is None else env)
    return creator(EnvContext(dict(config.env_config or {}), worker_index=0, num_workers=0))


def close_env(env: Any) -> None:
    """Closes a probe env; never masks the error that is being reported."""
    try:
        env.close()
    except Exception:  # noqa: BLE001 - closing a probe env must never mask the real error.
        pass


def register_class_path_env(env: Any) -> None:
    """Registers a ``"package.module.EnvClass"`` env with Tune under that same name.

    RLlib's EnvRunners create an env from a string with Tune's registry or ``gym.make`` only,
    so a class path that the driver resolves would fail on them ("Environment ... doesn't
    exist"). Registering it makes every EnvRunner, local or remote, create it the same way.
    """
    import gymnasium as gym
    from ray.tune.registry import ENV_CREATOR, _global_registry, register_env

    if not isinstance(env, str) or "." not in env:
        return
    if _global_registry.contains(ENV_CREATOR, env) or env in gym.registry:
        return
    register_env(env, env_creator(env))
