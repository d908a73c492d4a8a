"""One entry point for meta-testing any of our algorithms, from an object or a checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class MetaTestResult:
    """Returns on new tasks at each point of the adaptation curve.

    ``labels[i]`` names a point of the curve: ``"pre"``, ``"adapt_k"`` (MAML, after k inner
    steps) or ``"episode_i"`` (RL², inner episode i of a trial). ``returns[i]`` holds one value
    per task (the task's mean episode return at that point). ``groups`` holds the same per module
    and per agent for multi-agent envs: ``{"module": {id: [[...] per label]}, "agent": {...}}``.
    """

    algorithm: str
    env: str
    num_tasks: int
    seed: int
    labels: list[str]
    returns: list[list[float]]
    groups: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)

    @property
    def mean(self) -> list[float]:
        return [float(np.mean(r)) for r in self.returns]

    @property
    def stderr(self) -> list[float]:
        return [
            float(np.std(r, ddof=1) / math.sqrt(len(r))) if len(r) > 1 else 0.0
            for r in self.returns
        ]

    def to_dict(self) -> dict[str, Any]:
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
        }


def env_display_name(env: Any) -> str:
    """A registered name or gym id as is; a class or function by its name."""
    return env if isinstance(env, str) else getattr(env, "__name__", str(env))


def meta_test_algorithm(
    algo, num_tasks: int = 20, seed: int = 0, steps: int | None = None
) -> MetaTestResult:
    """Meta-tests a built MAML or RL2 algorithm on ``num_tasks`` new tasks drawn with ``seed``.

    ``steps``: inner adaptation steps for MAML (default: the training value); inner episodes per
    trial for RL² (default: the training value).
    """
    from rllib_marl_meta.algorithms.maml import MAML

    env_name = env_display_name(algo.config.env)
    if isinstance(algo, MAML):
        out = algo.meta_test(num_tasks=num_tasks, seed=seed, adaptation_steps=steps)
        return MetaTestResult(
            "MAML", env_name, num_tasks, seed, out["labels"], out["returns"], out["groups"]
        )
    from rllib_marl_meta.algorithms.rl2 import RL2

    if isinstance(algo, RL2):
        from rllib_marl_meta.algorithms.rl2 import meta_test as rl2_meta_test

        trials = rl2_meta_test(algo, num_tasks=num_tasks, seed=seed, episodes_per_trial=steps)
        # RL² runs the user's env wrapped in trials; report the user's env.
        return trials.to_common(env_display_name(algo.config.inner_env), seed)
    raise TypeError(f"Cannot meta-test {type(algo).__name__}: only MAML and RL2 are supported.")


def meta_test(
    checkpoint: str | Path, num_tasks: int = 20, seed: int = 0, steps: int | None = None
) -> MetaTestResult:
    """Loads an algorithm checkpoint (MAML or RL2) and meta-tests it; see meta_test_algorithm."""
    from ray.rllib.algorithms.algorithm import Algorithm

    algo = Algorithm.from_checkpoint(str(Path(checkpoint).expanduser().resolve()))
    try:
        return meta_test_algorithm(algo, num_tasks=num_tasks, seed=seed, steps=steps)
    finally:
        algo.stop()
