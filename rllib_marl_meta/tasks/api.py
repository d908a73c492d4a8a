"""The task contract: ``sample_tasks`` / ``set_task`` / ``get_task``.

A *task* is a plain ``dict`` that maps parameter names to values (floats or numpy arrays). Plain
dicts pickle cheaply across Ray actors, print readably and round-trip through YAML and JSON.

Any env (gymnasium ``Env``, RLlib ``MultiAgentEnv``, PettingZoo ``ParallelEnv`` or ``AECEnv``)
takes part in meta-learning once it offers these three methods, and honours
``reset(options={"task": task})``. :class:`TaskSettableMixin` gives all of that from a declared
:class:`TaskSpace` plus one ``_apply_task`` hook.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

Task = dict[str, Any]

TASK_API_METHODS = ("sample_tasks", "set_task", "get_task")


class TaskAPIError(TypeError):
    """An env lacks the task contract (``sample_tasks`` / ``set_task`` / ``get_task``)."""


@runtime_checkable
class TaskSettable(Protocol):
    """What meta-learning algorithms need from an env."""

    def sample_tasks(self, n: int, seed: int | None = None) -> list[Task]: ...

    def set_task(self, task: Task) -> None: ...

    def get_task(self) -> Task: ...


@dataclass(frozen=True)
class TaskField:
    """One task parameter: a uniform range ``[low, high]`` of a given shape.

    ``integer=True`` samples whole numbers in ``[low, high]`` inclusive. ``choices`` restricts
    the field to a finite set of values, drawn uniformly (for example a running direction in
    ``{-1, +1}``); :meth:`one_of` builds such a field.
    """

    low: float
    high: float
    shape: tuple[int, ...] = ()
    integer: bool = False
    choices: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"TaskField needs low <= high, got [{self.low}, {self.high}].")
        if self.choices is not None:
            choices = tuple(self.choices)
            if not choices:
                raise ValueError("TaskField choices must not be empty.")
            if any(not self.low <= c <= self.high for c in choices):
                raise ValueError(
                    f"TaskField choices {choices} must lie in [{self.low}, {self.high}]."
                )
            object.__setattr__(self, "choices", choices)

    @classmethod
    def one_of(
        cls, *values: float, shape: tuple[int, ...] = (), integer: bool = False
    ) -> TaskField:
        """A field that takes one of ``values`` (each element, if ``shape`` is not scalar)."""
        if not values:
            raise ValueError("TaskField.one_of needs at least one value.")
        return cls(min(values), max(values), shape=shape, integer=integer, choices=values)

    def _cast(self, value: Any) -> float | np.ndarray:
        if self.shape:
            return np.asarray(value, dtype=np.int64 if self.integer else np.float64)
        return int(value) if self.integer else float(value)

    def sample(self, rng: np.random.Generator) -> float | np.ndarray:
        """Draws one value uniformly from the range (or from ``choices``)."""
        if self.choices is not None:
            value = rng.choice(np.asarray(self.choices), size=self.shape or None)
        elif self.integer:
            value = rng.integers(int(self.low), int(self.high) + 1, size=self.shape or None)
        else:
            value = rng.uniform(self.low, self.high, size=self.shape or None)
        return self._cast(value)

    def allowed(self) -> str:
        """Human-readable description of the allowed values, used in error messages."""
        if self.choices is not None:
            text = "allowed values {" + ", ".join(f"{c:g}" for c in self.choices) + "}"
        else:
            text = f"allowed range [{self.low}, {self.high}]"
        return text + (f" with shape {self.shape}" if self.shape else "")

    def validate(self, name: str, value: Any) -> float | np.ndarray:
        """Returns ``value`` normalised to this field's type; raises ``ValueError`` if invalid."""
        allowed = self.allowed()
        # Strings, bools, None and objects convert to floats with numpy (or become NaN), which
        # would hide type errors in user tasks: accept only integer and float data.
        if isinstance(value, (str, bytes)):
            raise ValueError(f"Task field '{name}' must be numeric ({allowed}); got {value!r}.")
        try:
            raw = np.asarray(value)
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"Task field '{name}' must be numeric ({allowed}); got {value!r}."
            ) from None
        if raw.dtype.kind not in "iuf":
            raise ValueError(f"Task field '{name}' must be numeric ({allowed}); got {value!r}.")
        if array.shape != self.shape:
            raise ValueError(
                f"Task field '{name}' must have shape {self.shape} ({allowed}); "
                f"got shape {array.shape}."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"Task field '{name}' must be finite ({allowed}); got {value!r}.")
        if np.any(array < self.low) or np.any(array > self.high):
            raise ValueError(f"Task field '{name}' is out of range: got {value!r}, {allowed}.")
        if self.integer and np.any(array != np.round(array)):
            raise ValueError(f"Task field '{name}' must be an integer ({allowed}); got {value!r}.")
        if self.choices is not None and not np.all(np.isin(array, self.choices)):
            raise ValueError(f"Task field '{name}' is not allowed: got {value!r}, {allowed}.")
        return self._cast(array)

    def default(self) -> float | np.ndarray:
        """The value an env starts with: the middle of the range, or the first choice."""
        if self.choices is not None:
            middle = self.choices[0]
        elif self.integer:
            middle = (self.low + self.high) // 2
        else:
            middle = (self.low + self.high) / 2.0
        return self._cast(np.full(self.shape, middle) if self.shape else middle)

    def describe(self, name: str) -> str:
        """``name~U[low, high]`` (with ``^shape``), or ``name~U{a, b}`` for choices."""
        if self.choices is not None:
            text = f"{name}~U{{" + ", ".join(f"{c:g}" for c in self.choices) + "}"
        else:
            text = f"{name}~U[{self.low}, {self.high}]"
        return text + (f"^{self.shape}" if self.shape else "")


class TaskSpace:
    """A product of :class:`TaskField` s: the distribution tasks are drawn from.

    Fields may be given as ``TaskField`` or as a ``(low, high)`` tuple for a scalar range.
    """

    def __init__(self, **fields: TaskField | tuple[float, float]) -> None:
        if not fields:
            raise ValueError("A TaskSpace needs at least one field.")
        self.fields: dict[str, TaskField] = {
            name: f if isinstance(f, TaskField) else TaskField(float(f[0]), float(f[1]))
            for name, f in fields.items()
        }

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"sample_tasks(n) needs a non-negative integer n; got {n!r}.")
        return [{name: f.sample(rng) for name, f in self.fields.items()} for _ in range(n)]

    def validate(self, task: Any) -> Task:
        """Returns a normalised copy of ``task``; raises ``ValueError`` naming the bad field."""
        if not isinstance(task, Mapping):
            raise ValueError(
                f"A task must be a dict with the fields {sorted(self.fields)} "
                f"({self.describe()}); got {type(task).__name__}: {task!r}."
            )
        unknown = set(task) - set(self.fields)
        if unknown:
            raise ValueError(
                f"Unknown task field(s) {sorted(unknown, key=str)}; allowed fields are "
                f"{sorted(self.fields)} ({self.describe()})."
            )
        missing = set(self.fields) - set(task)
        if missing:
            raise ValueError(
                f"Task is missing field(s) {sorted(missing)}; "
                + ", ".join(
                    f"'{name}' needs {self.fields[name].allowed()}" for name in sorted(missing)
                )
                + "."
            )
        return {name: self.fields[name].validate(name, task[name]) for name in self.fields}

    def describe(self) -> str:
        """One line per field, for docs and ``rllib-marl-meta list``."""
        return ", ".join(f.describe(name) for name, f in self.fields.items())

    def __repr__(self) -> str:
        return f"TaskSpace({self.describe()})"


class TaskSettableMixin:
    """Implements the task contract from a :class:`TaskSpace`.

    Subclasses set ``task_space`` (class or instance attribute), implement
    ``_apply_task(task)`` to push a validated task into their dynamics, and call
    ``self._reset_task_from_options(options)`` at the top of ``reset``. Works for gymnasium
    envs, RLlib ``MultiAgentEnv`` and PettingZoo envs alike.
    """

    task_space: TaskSpace

    def sample_tasks(self, n: int, seed: int | None = None, split: str = "train") -> list[Task]:
        """Draws ``n`` tasks; reproducible under ``seed`` or under the env's seeded RNG.

        ``split``: ``"train"`` or ``"test"``. A parametric distribution has no finite set of
        tasks to hold out, so both splits draw from the same space; what keeps test tasks apart
        from training's is the seed (``meta_test`` draws with ``held_out_seed(seed)``, a stream
        that training never uses). Benchmarks with a fixed split (Meta-World) override this.
        """
        check_split(split)
        rng = np.random.default_rng(seed) if seed is not None else self._task_generator()
        return self.task_space.sample(rng, n)

    def _task_generator(self) -> np.random.Generator:
        """The env's seeded ``np_random`` if it has one, else a private generator.

        The private generator is re-seeded by :meth:`_seed_task_rng` (wrappers call it from
        ``reset(seed=...)``), so ``sample_tasks`` is reproducible under a seeded reset either way.
        """
        rng = getattr(self, "np_random", None)
        if isinstance(rng, np.random.Generator):
            return rng
        if getattr(self, "_task_rng", None) is None:
            self._task_rng = np.random.default_rng()
        return self._task_rng

    def _seed_task_rng(self, seed: int | None) -> None:
        """Re-seeds the private task generator (used when the env has no ``np_random``)."""
        if seed is not None:
            self._task_rng = np.random.default_rng(seed)

    def set_task(self, task: Task) -> None:
        task = self.task_space.validate(task)
        self._current_task = task
        self._apply_task(task)

    def get_task(self) -> Task:
        task = getattr(self, "_current_task", None)
        if task is None:
            task = self.default_task()
            self.set_task(task)
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in task.items()}

    def default_task(self) -> Task:
        """The task an env starts with; by default the middle of each range (first choice)."""
        return {name: f.default() for name, f in self.task_space.fields.items()}

    def _apply_task(self, task: Task) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _apply_task(task).")

    def _reset_task_from_options(self, options: Mapping | None) -> None:
        """Sets ``options["task"]`` if given; otherwise makes sure a task is set."""
        if options and options.get("task") is not None:
            self.set_task(options["task"])
        elif getattr(self, "_current_task", None) is None:
            self.set_task(self.default_task())


def missing_task_methods(obj: Any) -> list[str]:
    """The names of the task-API methods that ``obj`` lacks."""
    return [m for m in TASK_API_METHODS if not callable(getattr(obj, m, None))]


def has_task_api(obj: Any) -> bool:
    return not missing_task_methods(obj)


def _accepts(sample_tasks: Any, argument: str) -> bool:
    """Whether a ``sample_tasks`` method takes ``argument`` (``seed``, ``split``)."""
    try:
        parameters = inspect.signature(sample_tasks).parameters
    except (TypeError, ValueError):
        return argument == "seed"
    return argument in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


@contextmanager
def _seeded_global_rngs(env: Any, seed: int):
    """Seeds what an old-contract env may draw tasks from, and restores it afterwards.

    Old RLlib ``TaskSettableEnv`` envs define ``sample_tasks(self, n_tasks)`` without a seed
    and draw from numpy's global RNG, Python's ``random`` or their own ``np_random``.
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    own = vars(env).get("_np_random", vars(env).get("np_random"))
    attr = "_np_random" if "_np_random" in vars(env) else "np_random"
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if isinstance(own, np.random.Generator):
        setattr(env, attr, np.random.default_rng(seed))
    elif isinstance(own, np.random.RandomState):
        setattr(env, attr, np.random.RandomState(seed % 2**32))
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        if own is not None:
            setattr(env, attr, own)


SPLITS = ("train", "test")


def check_split(split: Any) -> None:
    """Raises ``ValueError`` unless ``split`` is ``"train"`` or ``"test"``."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")


def draw_tasks(env: Any, n: int, seed: int | None = None, split: str = "train") -> list[Any]:
    """``n`` tasks from ``env.sample_tasks``, reproducible under ``seed``, from ``split``.

    Works for this package's contract (``sample_tasks(n, seed=None, split="train")``), for envs
    without a ``split`` argument (both splits are then the env's one distribution), and for envs
    written to old RLlib's ``TaskSettableEnv`` contract (``sample_tasks(n_tasks)``, tasks of any
    type), whose RNGs are seeded for the call instead. Tasks are returned as they are: a task
    is opaque and is never unpacked.
    """
    check_split(split)
    sample = env.sample_tasks
    if split != "train" and _accepts(sample, "split"):
        sample = functools.partial(sample, split=split)
    if seed is None:
        tasks = sample(n)
    elif _accepts(sample, "seed"):
        tasks = sample(n, seed=seed)
    else:
        with _seeded_global_rngs(env, seed):
            tasks = sample(n)
    if isinstance(tasks, np.ndarray):
        tasks = list(tasks)
    if not isinstance(tasks, (list, tuple)) or len(tasks) != n:
        raise TaskAPIError(
            f"{type(env).__name__}.sample_tasks({n}) must return a list of {n} tasks, got "
            f"{type(tasks).__name__}"
            + (f" of length {len(tasks)}" if hasattr(tasks, "__len__") else "")
            + "."
        )
    return list(tasks)
