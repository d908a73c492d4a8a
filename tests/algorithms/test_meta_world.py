"""MAML and RL² run on Meta-World ML1 and report its success flag. Needs the metaworld extra."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from rllib_marl_meta.algorithms.maml import MAMLConfig  # noqa: E402
from tests.algorithms.rl2.conftest import small_rl2_config  # noqa: E402

ML1 = {"env_name": "reach-v3", "horizon": 10}


def _is_rate(value) -> bool:
    return 0.0 <= float(value) <= 1.0


def test_maml_iteration_on_ml1_reports_success_before_and_after_adaptation(ray_session):
    config = (
        MAMLConfig()
        .environment("MetaWorldML1", env_config=ML1)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=0)
        .training(meta_batch_size=2, episodes_per_task=2, maml_optimizer_steps=1)
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        held_out = algo.meta_test(num_tasks=3, seed=0)
    finally:
        algo.stop()
    assert _is_rate(result["success_rate"]) and _is_rate(result["success_rate_adapt_1"])
    assert result["env_runners"]["num_env_steps_sampled"] == 2 * 2 * 10 * 2
    # Held-out tasks come from the benchmark's test split (indices 50..99 of ML1).
    assert all(task["index"] >= 50 for task in held_out.tasks)
    assert np.asarray(held_out.success).shape == (2, 3)  # [pre / adapt_1, task]
    assert all(_is_rate(v) for point in held_out.success for v in point)


def test_rl2_iteration_on_ml1_reports_success_per_inner_episode(ray_session):
    config = small_rl2_config(
        "MetaWorldML1",
        ML1,
        episodes_per_trial=2,
        max_seq_len=20,
        train_batch_size_per_learner=40,
        minibatch_size=20,
    )
    algo = config.build_algo()
    try:
        runners = algo.train()["env_runners"]
        held_out = algo.meta_test(num_tasks=3, seed=0)
    finally:
        algo.stop()
    assert _is_rate(runners["trial_episode_1_success_mean"])
    assert _is_rate(runners["trial_episode_2_success_mean"])
    assert all(task["index"] >= 50 for task in held_out.tasks)
    assert np.asarray(held_out.success).shape == (2, 3)  # [inner episode, task]
