"""Find the task contract through wrappers, vector envs and EnvRunners.

RLlib and gymnasium stack several wrappers around a user's env (order enforcing, env checkers,
``ParallelPettingZooEnv``, vector envs, ``DictInfoToList``...). Wrappers do not forward unknown
methods, so these helpers walk the stack to the first layer that implements the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rllib_marl_meta.tasks.api import TASK_API_METHODS, Task, TaskAPIError, has_task_api

# Attributes under which wrappers keep the object they wrap: gymnasium wrappers and RLlib's
# ``PettingZooEnv`` use ``env``, ``ParallelPettingZooEnv`` uses ``par_env``, PettingZoo's
# ``aec_to_parallel`` uses ``aec_env``.
_INNER_ENV_ATTRS = ("env", "par_env", "aec_env", "_env")
_MAX_DEPTH = 32


def _layers(env: Any):
    """Yields ``env`` and each object it wraps, outermost first."""
    seen: set[int] = set()
    current = env
    for _ in range(_MAX_DEPTH):
        if current is None or id(current) in seen:
            return
        seen.add(id(current))
        yield current
        inner = None
        for attr in _INNER_ENV_ATTRS:
            # Look in the instance dict only: some wrappers define `env` as a property that
            # raises, and `getattr` on PettingZoo wrappers warns for unknown names.
            candidate = vars(current).get(attr) if hasattr(current, "__dict__") else None
            if candidate is not None and candidate is not current:
                inner = candidate
                break
        if inner is None:
            unwrapped = getattr(current, "unwrapped", None)
            inner = unwrapped if unwrapped is not current else None
        current = inner


def find_task_env(env: Any) -> Any | None:
    """Returns the outermost layer of ``env`` that implements the task contract, or None."""
    for layer in _layers(env):
        if has_task_api(layer):
            return layer
    return None


def require_task_env(env: Any) -> Any:
    """Like :func:`find_task_env`, but raises :class:`TaskAPIError` with a fix if absent."""
    found = find_task_env(env)
    if found is not None:
        return found
    innermost = list(_layers(env))[-1]
    missing = [m for m in TASK_API_METHODS if not callable(getattr(innermost, m, None))]
    raise TaskAPIError(
        f"Env {type(innermost).__name__} (wrapped as {type(env).__name__}) does not implement "
        f"the task API: missing {', '.join(f'`{m}`' for m in missing)}. Meta-RL needs "
        "`sample_tasks(n, seed=None)`, `set_task(task)` and `get_task()`. Either subclass "
        "`rllib_marl_meta.tasks.TaskSettableMixin` and declare a `task_space`, or wrap the env "
        "with `rllib_marl_meta.tasks.ParameterTaskWrapper(env, {'attr': (low, high)})` "
        "(`PettingZooTaskWrapper` for PettingZoo envs)."
    )


def sub_envs(vector_env: Any) -> list[Any]:
    """The sub-envs of a (possibly wrapped) gymnasium or RLlib vector env, or ``[env]``."""
    for layer in _layers(vector_env):
        envs = vars(layer).get("envs") if hasattr(layer, "__dict__") else None
        if isinstance(envs, (list, tuple)):
            return list(envs)
    return [vector_env]


def set_tasks(env: Any, tasks: list[Task] | Mapping) -> None:
    """Sets ``tasks[i]`` on sub-env ``i`` of ``env``; a dict task is set on every sub-env.

    ``env`` may be a single env or a (wrapped) synchronous vector env. ``tasks`` must be a
    ``list`` with one task per sub-env: a tuple or array is refused, because it may be one task
    of an old-contract env, which must never be unpacked over sub-envs. To set one task of any
    type on every sub-env, use :func:`set_task_on_all`.
    """
    envs = sub_envs(env)
    if isinstance(tasks, Mapping):
        tasks = [tasks] * len(envs)
    if not isinstance(tasks, list):
        raise TypeError(
            f"set_tasks takes a list with one task per sub-env (or one dict task), got "
            f"{type(tasks).__name__} {tasks!r}. To set one task of any type on every sub-env, "
            "use `set_task_on_all(env, task)`."
        )
    if len(tasks) != len(envs):
        raise ValueError(f"Got {len(tasks)} tasks for {len(envs)} sub-envs; pass one per sub-env.")
    _check_sync(env, envs)
    for sub_env, task in zip(envs, tasks):
        require_task_env(sub_env).set_task(task)


def set_task_on_all(env: Any, task: Task | Any) -> None:
    """Sets the one ``task`` (of any type, never unpacked) on every sub-env of ``env``."""
    envs = sub_envs(env)
    _check_sync(env, envs)
    for sub_env in envs:
        require_task_env(sub_env).set_task(task)


def _check_sync(env: Any, envs: list[Any]) -> None:
    if len(envs) == 1 and envs[0] is env and hasattr(env, "call") and find_task_env(env) is None:
        raise TaskAPIError(
            "Setting tasks on an asynchronous vector env is not supported: use "
            "`gym_env_vectorize_mode='SYNC'` (RLlib's default)."
        )


def get_tasks(env: Any) -> list[Task]:
    """The current task of each sub-env of ``env``."""
    return [require_task_env(e).get_task() for e in sub_envs(env)]


def set_tasks_on_env_runner(env_runner: Any, tasks: list[Task] | Mapping) -> None:
    """:func:`set_tasks` on an RLlib EnvRunner's envs; the next ``sample`` starts fresh episodes."""
    set_tasks(env_runner.env, tasks)
    # Episodes in flight were collected under the old task: make the runner reset them.
    env_runner._needs_initial_reset = True


def set_task_on_env_runner(env_runner: Any, task: Task | Any) -> None:
    """:func:`set_task_on_all` on an RLlib EnvRunner's envs (one opaque task everywhere)."""
    set_task_on_all(env_runner.env, task)
    env_runner._needs_initial_reset = True
