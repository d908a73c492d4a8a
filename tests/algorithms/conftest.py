"""Helpers shared by the algorithm tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns


def assert_same_steps(a: Any, b: Any) -> None:
    """Two single-agent episodes (or one agent's episodes) hold the same steps: observations
    exactly; actions, rewards and the sampling outputs up to float rounding."""
    np.testing.assert_array_equal(a.get_observations(), b.get_observations())
    np.testing.assert_allclose(a.get_actions(), b.get_actions(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.get_rewards(), b.get_rewards(), rtol=1e-6)
    for key in (Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS):
        np.testing.assert_allclose(
            a.get_extra_model_outputs(key), b.get_extra_model_outputs(key), rtol=1e-5, atol=1e-6
        )


def metric_value(stats: Any) -> Any:
    """A value of ``EnvRunner.get_metrics()``: a plain number or a reduced ``Stats``."""
    return stats.peek() if hasattr(stats, "peek") else stats
