"""One way to turn ``config.environment(env)`` into an env object, as RLlib's EnvRunners do.

MAML, RL² and the command line create envs on the driver (to read the task distribution or the
agent ids, check the spaces, probe the env) through :func:`env_creator`, which is RLlib's own
resolution (``Algorithm._get_env_id_and_creator``): a name registered with Tune, a
``"package.module.Class"`` path, a gymnasium id or an env class; a plain creator function is
called with the env config. The command line checks env names and configs here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def env_display_name(env: Any) -> str:
    """How reports name an env: a registered name or gym id as is, a class or function by name."""
    return env if isinstance(env, str) else getattr(env, "__name__", str(env))


def check_env_name(env: Any, where: str = "") -> None:
    """Raises ``ValueError`` unless :func:`env_creator` can resolve ``env`` to an env.

    Checked without creating the env (RLlib's creator only fails when called): a name registered
    with Tune (every built-in env), a gymnasium id or an importable ``package.module.Class``.
    ``where`` follows the env's name in the message (e.g. `` in experiment 'x'``).
    """
    import difflib
    import importlib

    import gymnasium as gym
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from rllib_marl_meta.envs import BUILTIN_ENVS

    if not isinstance(env, str):
        raise ValueError(f"`env`{where} must be a name, got {env!r}.")
    if _global_registry.contains(ENV_CREATOR, env):
        return
    try:
        gym.spec(env)
        return
    except Exception:  # noqa: BLE001 - gymnasium raises several error types for unknown ids.
        pass
    if "." in env:
        module, _, cls = env.rpartition(".")
        try:
            if isinstance(getattr(importlib.import_module(module), cls), type):
                return
        except Exception:  # noqa: BLE001 - not importable: reported as unknown below.
            pass
    by_lower = {name.lower(): name for name in [*BUILTIN_ENVS, *gym.registry]}
    close = difflib.get_close_matches(env.lower(), list(by_lower), n=1, cutoff=0.6)
    raise ValueError(
        f"Unknown env {env!r}{where}: not a registered env, gymnasium id or importable env class."
        f"{f' Did you mean {by_lower[close[0]]!r}?' if close else ''} "
        f"Built-in envs: {', '.join(BUILTIN_ENVS)}."
    )


def check_builtin_env_config(env: Any, env_config: Any) -> None:
    """Checks a built-in env's ``env_config`` against its ``CONFIG_KEYS``, creating no env.

    RLlib's own algorithms (PPO, ...) create no env on the driver, so a bad value would only fail
    a trial on a remote worker. Other envs are left to their constructors. Raises
    ``EnvConfigError`` (a ``ValueError``), or ``ImportError`` naming the extra to install.
    """
    from rllib_marl_meta.envs import BUILTIN_ENVS, env_class
    from rllib_marl_meta.envs._config import read_env_config

    if isinstance(env, str) and env in BUILTIN_ENVS:
        keys = getattr(env_class(env), "CONFIG_KEYS", None)
        if keys is not None:
            read_env_config(env, env_config, keys)


def env_agent_ids(env: Any, env_configs: Iterable[Mapping[str, Any]] = ({},)) -> list[str] | None:
    """The agent ids of a multi-agent env over several env configs (None: not multi-agent).

    One env per config is created with :func:`env_creator` and closed; the ids of all of them
    are returned, so a policy per agent covers every agent that any of the configs gives.
    Raises ``ValueError`` when an env cannot be created.
    """
    from ray.rllib.env.env_context import EnvContext

    creator = env_creator(env)
    found: set[str] = set()
    for config in env_configs:
        try:
            instance = creator(EnvContext(dict(config), worker_index=0, num_workers=0))
        except Exception as exc:  # noqa: BLE001 - e.g. a bad env_config, reported as such.
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise ValueError(
                f"Cannot create env {env_display_name(env)!r} to read its agent ids: {message}"
            ) from exc
        agents = getattr(instance, "possible_agents", None)
        close_env(instance)
        if agents is None:
            return None
        found |= {str(agent) for agent in agents}
    return sorted(found)
