"""The contract every meta-learner here meets, and its one result type.

A meta-learner is an RLlib ``Algorithm`` that also

* meta-tests itself: ``meta_test(num_tasks, seed, steps) -> MetaTestResult`` adapts to
  ``num_tasks`` new tasks (drawn with ``seed``) and returns the adaptation curve, without
  changing what it has learned;
* names its progress-table columns: ``progress_columns(max_setting)`` maps the result keys that
  show its adaptation to column headers.

:mod:`rllib_marl_meta.evaluation` (tables, JSON, plots) and the CLI take any algorithm that meets
the contract, so a new algorithm is its own folder plus one line in
``rllib_marl_meta.ALGORITHMS``. This module is a leaf: it imports nothing of the package.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class MetaTestResult:
    """Returns on new tasks at each point of an adaptation curve.

    Attributes:
        algorithm: The algorithm's name (``"MAML"``, ``"RL2"``).
        env: The env the tasks come from (for RL², the user's env, not the trial wrapper).
        num_tasks: How many tasks were tested.
        seed: The seed the tasks were drawn with.
        labels: One name per point of the curve: ``"pre"`` and ``"adapt_k"`` (MAML, before and
            after k inner steps) or ``"episode_i"`` (RL², inner episode i of a trial).
        returns: Per label, one value per task: the task's mean episode return at that point
            (summed over agents in a multi-agent env).
        groups: The same per module and per agent in multi-agent envs:
            ``{"module": {id: [[...] per label]}, "agent": {id: [[...] per label]}}``.
        tasks: The tasks, in the order of the values in ``returns``.
        success: For envs that report a ``success`` flag in their infos (Meta-World): per
            label, per task, the fraction of the task's episodes that succeeded (the flag set at
            any step). Empty for envs without the flag.
    """

    algorithm: str
    env: str
    num_tasks: int
    seed: int
    labels: list[str]
    returns: list[list[float]]
    groups: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    tasks: list[Any] = field(default_factory=list, repr=False, compare=False)
    success: list[list[float]] = field(default_factory=list)

    @property
    def mean(self) -> list[float]:
        """Mean over tasks, per label."""
        return [float(np.mean(r)) for r in self.returns]

    @property
    def stderr(self) -> list[float]:
        """Standard error of the mean over tasks, per label."""
        return [
            float(np.std(r, ddof=1) / math.sqrt(len(r))) if len(r) > 1 else 0.0
            for r in self.returns
        ]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the tasks, as plain lists and dicts (for JSON)."""
        return {
            "algorithm": self.algorithm,
            "env": self.env,
            "num_tasks": self.num_tasks,
            "seed": self.seed,
            "labels": self.labels,
            "mean": self.mean,
            "stderr": self.stderr,
            "returns": self.returns,
            "groups": self.groups,
            "success": self.success,
        }


def held_out_seed(seed: int) -> int:
    """The seed with which ``meta_test(seed=seed)`` draws its tasks (``sample_tasks``).

    Every meta-learner uses it, so the same ``seed`` gives every algorithm the same held-out
    tasks, from a stream apart from the seeds that training draws its tasks with.
    """
    return 10_000_019 + seed


# ``max_setting(key, default)``: the largest value a config setting takes in an experiment
# (over its search space, if any), so the progress table has a column for every point.
MaxSetting = Callable[[str, int], int]


@runtime_checkable
class MetaLearner(Protocol):
    """What :mod:`rllib_marl_meta.evaluation` and the CLI need from an algorithm."""

    def meta_test(
        self, num_tasks: int = 20, seed: int = 0, steps: int | None = None
    ) -> MetaTestResult:
        """Adapts to ``num_tasks`` new tasks drawn with ``seed``; ``steps`` points of
        adaptation (MAML: inner steps; RL²: inner episodes), default the training value."""
        ...

    @classmethod
    def progress_columns(cls, max_setting: MaxSetting) -> dict[str, str]:
        """Result keys (``/``-separated) and headers of the columns that show adaptation."""
        ...


def is_meta_learner(algorithm: Any) -> bool:
    """Whether an algorithm (class or instance) meets the :class:`MetaLearner` contract."""
    return all(
        callable(getattr(algorithm, name, None)) for name in ("meta_test", "progress_columns")
    )
