"""Meta-testing a checkpoint or a built algorithm, whichever meta-learner it is."""

from __future__ import annotations

import os
from typing import Any

from rllib_marl_meta.meta_learner import MetaTestResult, is_meta_learner


def meta_test(
    algorithm: Any, num_tasks: int = 20, seed: int = 0, steps: int | None = None
) -> MetaTestResult:
    """Meta-tests ``algorithm`` (a built algorithm, or the path of its checkpoint, which is
    restored, tested and stopped) on ``num_tasks`` new tasks drawn with ``seed``.

    Any algorithm that meets :class:`~rllib_marl_meta.meta_learner.MetaLearner` works;
    ``steps`` means what its ``meta_test`` says (MAML: inner steps; RL²: inner episodes).
    """
    if isinstance(algorithm, (str, os.PathLike)):
        from ray.rllib.algorithms.algorithm import Algorithm

        restored = Algorithm.from_checkpoint(os.path.abspath(os.path.expanduser(algorithm)))
        try:
            return meta_test(restored, num_tasks=num_tasks, seed=seed, steps=steps)
        finally:
            restored.stop()
    if not is_meta_learner(algorithm):
        raise TypeError(
            f"Cannot meta-test {type(algorithm).__name__}: it has no `meta_test` and "
            "`progress_columns` (see rllib_marl_meta.meta_learner.MetaLearner); MAML and RL2 "
            "have them."
        )
    return algorithm.meta_test(num_tasks=num_tasks, seed=seed, steps=steps)
