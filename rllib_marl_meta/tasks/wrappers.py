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
from pettingzoo.utils import BaseParallelWrapper, BaseWrapper

from rllib_marl_meta.tasks.api import Task, TaskField, TaskSettableMixin, TaskSpace

OnTaskSet = Callable[[Any, Task], None]


def _as_task_space(params: TaskSpace | Mapping[str, TaskField | tuple[float, float]]) -> TaskSpace:
    return params if isinstance(params, TaskSpace) else TaskSpace(**dict(params))


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
    """Shared by all parameter wrappers: writes each task field onto an attribute path."""

    def _init_parameters(self, params, on_set: OnTaskSet | None, target: Any) -> None:
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

    def _apply_task(self, task: Task) -> None:
        for name, value in task.items():
            _set_path(self._target, name, value)
        if self._on_set is not None:
            self._on_set(self._target, task)


class ParameterTaskWrapper(_ParameterTaskMixin, gym.Wrapper):
    """Task API for a gymnasium env (or an RLlib ``MultiAgentEnv``) via its attributes."""

    def __init__(
        self,
        env: gym.Env,
        params: TaskSpace | Mapping[str, TaskField | tuple[float, float]],
        on_set: OnTaskSet | None = None,
        target: Any | None = None,
    ) -> None:
        gym.Wrapper.__init__(self, env)
        self._init_parameters(params, on_set, env.unwrapped if target is None else target)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._reset_task_from_options(options)
        return self.env.reset(seed=seed, options=options)


class PettingZooTaskWrapper(_ParameterTaskMixin, BaseParallelWrapper):
    """Task API for a PettingZoo ``ParallelEnv`` via its attributes."""

    def __init__(
        self,
        env,
        params: TaskSpace | Mapping[str, TaskField | tuple[float, float]],
        on_set: OnTaskSet | None = None,
        target: Any | None = None,
    ) -> None:
        BaseParallelWrapper.__init__(self, env)
        self._init_parameters(params, on_set, env.unwrapped if target is None else target)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._reset_task_from_options(options)
        return self.env.reset(seed=seed, options=options)


class AECTaskWrapper(_ParameterTaskMixin, BaseWrapper):
    """Task API for a PettingZoo ``AECEnv`` via its attributes."""

    def __init__(
        self,
        env,
        params: TaskSpace | Mapping[str, TaskField | tuple[float, float]],
        on_set: OnTaskSet | None = None,
        target: Any | None = None,
    ) -> None:
        BaseWrapper.__init__(self, env)
        self._init_parameters(params, on_set, env.unwrapped if target is None else target)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._reset_task_from_options(options)
        return self.env.reset(seed=seed, options=options)
