"""Wrappers that turn envs whose attributes hold task parameters into task distributions.

Declare the parameter ranges and the wrapper samples them, validates them and writes them onto
the wrapped env (``env.unwrapped`` by default), for example::

    env = ParameterTaskWrapper(
        gym.make("CartPole-v1"), {"length": (0.25, 1.0)}, on_set=lambda env, task: ...
    )

Dotted names (``"world.damping"``) reach nested attributes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils import BaseParallelWrapper, BaseWrapper

from rllib_marl_meta.tasks.api import Task, TaskField, TaskSettableMixin, TaskSpace, draw_tasks

OnTaskSet = Callable[[Any, Task], None]


def _as_task_space(params: TaskSpace | Mapping[str, TaskField | tuple[float, float]]) -> TaskSpace:
    return params if isinstance(params, TaskSpace) else TaskSpace(**dict(params))


def inner_options(options: Mapping | None) -> dict | None:
    """``options`` without the ``"task"`` entry, for the env under a task wrapper.

    The wrapper owns the task: passing it on would make an inner env that has a task API of its
    own (with a different task space) reject it. Returns None when nothing else is left.
    """
    if not options:
        return None
    rest = {k: v for k, v in options.items() if k != "task"}
    return rest or None


def _set_path(root: Any, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    target = functools.reduce(getattr, parents, root)
    if not hasattr(target, leaf):
        raise AttributeError(
            f"Cannot set task parameter '{dotted}': {type(target).__name__} has no attribute "
            f"'{leaf}'."
        )
    setattr(target, leaf, value)


class _ParameterTaskMixin(TaskSettableMixin):
    """Shared by all parameter wrappers: writes each task field onto an attribute path.

    Args:
        env: the env to wrap (the wrapper base class of the concrete wrapper receives it).
        params: the task space, or ``{attribute path: (low, high) or TaskField}``.
        on_set: called as ``on_set(target, task)`` after the fields are written, e.g. to
            recompute quantities derived from them.
        target: the object whose attributes are set (default: ``env.unwrapped``).
    """

    def __init__(
        self,
        env,
        params: TaskSpace | Mapping[str, TaskField | tuple[float, float]],
        on_set: OnTaskSet | None = None,
        target: Any | None = None,
    ) -> None:
        super().__init__(env)  # The wrapper base class (gymnasium or PettingZoo).
        target = env.unwrapped if target is None else target
        self.task_space = _as_task_space(params)
        self._on_set = on_set
        self._target = target
        for name in self.task_space.fields:  # Fail at construction, not at the first task.
            *parents, leaf = name.split(".")
            owner = functools.reduce(getattr, parents, target)
            if not hasattr(owner, leaf):
                raise AttributeError(
                    f"Task parameter '{name}' does not exist on {type(target).__name__}."
                )

    def _task_generator(self) -> np.random.Generator:
        # Prefer the wrapped env's seeded generator: PettingZoo wrappers do not always forward
        # `np_random`, so look at the target (the unwrapped env) too.
        for owner in (self, self._target):
            rng = getattr(owner, "np_random", None)
            if isinstance(rng, np.random.Generator):
                return rng
        return super()._task_generator()

    def _reset_with_task(self, seed: int | None, options: dict | None):
        """Sets ``options["task"]`` (or the default task), then resets the wrapped env."""
        self._seed_task_rng(seed)
        self._reset_task_from_options(options)
        return self.env.reset(seed=seed, options=inner_options(options))

    def _apply_task(self, task: Task) -> None:
        for name, value in task.items():
            _set_path(self._target, name, value)
        if self._on_set is not None:
            self._on_set(self._target, task)


class ParameterTaskWrapper(_ParameterTaskMixin, gym.Wrapper):
    """Task API for a gymnasium env (or an RLlib ``MultiAgentEnv``) via its attributes."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self._reset_with_task(seed, options)


class PettingZooTaskWrapper(_ParameterTaskMixin, BaseParallelWrapper):
    """Task API for a PettingZoo ``ParallelEnv`` via its attributes."""

    def reset(self, seed: int | None = None, options: dict | None = None):
        return self._reset_with_task(seed, options)


class AECTaskWrapper(_ParameterTaskMixin, BaseWrapper):
    """Task API for a PettingZoo ``AECEnv`` via its attributes."""

    def reset(self, seed: int | None = None, options: dict | None = None):
        return self._reset_with_task(seed, options)


class _NewTaskEachEpisodeMixin:
    """Draws a new task from the env's distribution at every reset.

    Turns a task distribution into one ordinary env, for non-meta baselines such as a PPO policy
    trained on the whole distribution (the MAML paper's "pretrained" baseline). Tasks come from
    ``sample_tasks(1)`` under the env's seeded RNG, so a seeded reset gives a reproducible task.
    """

    def __init__(self, env) -> None:
        from rllib_marl_meta.tasks.finders import require_task_env

        super().__init__(env)  # The wrapper base class (gymnasium or PettingZoo).
        self._task_env = require_task_env(env)

    def _reset_with_new_task(self, seed: int | None, options: dict | None):
        if seed is not None:  # Seed first, so the task drawn below follows the seed.
            self.env.reset(seed=seed)
        task = draw_tasks(self._task_env, 1)[0]
        return self.env.reset(options={**(options or {}), "task": task})


class NewTaskEachEpisode(_NewTaskEachEpisodeMixin, gym.Wrapper):
    __doc__ = _NewTaskEachEpisodeMixin.__doc__

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self._reset_with_new_task(seed, options)


class NewTaskEachEpisodeParallel(_NewTaskEachEpisodeMixin, BaseParallelWrapper):
    """``NewTaskEachEpisode`` for a PettingZoo ``ParallelEnv``."""

    def reset(self, seed: int | None = None, options: dict | None = None):
        return self._reset_with_new_task(seed, options)
