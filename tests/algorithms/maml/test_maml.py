"""MAML end to end: metrics, task/runner layout, checkpoints, several learners, Tune."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS, NUM_ENV_STEPS_SAMPLED

from rllib_marl_meta.algorithms.maml import MAML
from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES, EPISODE_INDEX
from rllib_marl_meta.algorithms.maml.torch.maml_torch_learner import (
    meta_loss,
    outer_loss,
    repeat_params,
    stack_tasks,
)
from tests.algorithms.maml.test_meta_gradient import fake_batch, tiny_module


def module_weights(algo) -> dict[str, np.ndarray]:
    return algo.learner_group.get_weights()["default_policy"]


def train_once(config) -> tuple[dict, dict]:
    algo = config.build_algo()
    try:
        result = algo.train()
        return result, module_weights(algo)
    finally:
        algo.stop()


def test_iteration_reports_pre_and_post_adaptation_metrics(maml_config):
    config = maml_config(inner_adaptation_steps=2)
    result, _ = train_once(config)
    pre, post1, post2 = (
        result["episode_return_mean"],
        result["episode_return_mean_adapt_1"],
        result["episode_return_mean_adapt_2"],
    )
    assert result["adaptation_delta"] == pytest.approx(post2 - pre)
    assert all(np.isfinite([pre, post1, post2]))
    # 3 tasks x 2 episodes x (K + 1 = 3) sampling rounds x 10 steps.
    assert result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] == 3 * 2 * 3 * 10
    stats = result[LEARNER_RESULTS]["default_policy"]
    assert {"kl", "surrogate", "entropy", "curr_kl_coeff"} <= set(stats)
    assert np.isfinite(result[LEARNER_RESULTS]["__all_modules__"]["outer_loss"])
    assert np.isfinite(result[LEARNER_RESULTS]["__all_modules__"]["inner_loss"])


@pytest.mark.parametrize("num_env_runners", [1, 2])
def test_results_do_not_depend_on_how_tasks_are_spread_over_env_runners(
    maml_config, num_env_runners
):
    """5 tasks on the local runner vs on 1 or 2 remote runners: the same episodes and update."""
    local, local_weights = train_once(maml_config(meta_batch_size=5))
    remote, remote_weights = train_once(
        maml_config(meta_batch_size=5).env_runners(num_env_runners=num_env_runners)
    )
    for key in ("episode_return_mean", "episode_return_mean_adapt_1"):
        assert remote[key] == pytest.approx(local[key], rel=1e-6)
    for name, value in local_weights.items():
        np.testing.assert_allclose(remote_weights[name], value, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("num_env_runners", "num_envs"), [(0, 3), (1, 2), (2, 4)])
def test_results_do_not_depend_on_how_tasks_are_spread_over_sub_envs(
    maml_config, num_env_runners, num_envs
):
    """A task per sub-env, several tasks per runner: the same episodes and update as one
    sub-env on the local runner, and exactly the used steps are sampled."""
    config = maml_config(meta_batch_size=4, episodes_per_task=3)
    local, local_weights = train_once(config)
    spread, spread_weights = train_once(
        config.copy().env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs)
    )
    assert spread["num_episodes_per_task"] == 3
    assert spread[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] == 4 * 3 * 2 * 10
    for key in ("episode_return_mean", "episode_return_mean_adapt_1"):
        assert spread[key] == pytest.approx(local[key], rel=1e-6)
    for name, value in local_weights.items():
        np.testing.assert_allclose(spread_weights[name], value, rtol=1e-5, atol=1e-7)


def test_env_steps_per_task_samples_whole_episodes(maml_config):
    config = maml_config(meta_batch_size=2, episodes_per_task=None, env_steps_per_task=25)
    result, _ = train_once(config)
    # 25 steps rounds up to 3 whole 10-step episodes per task and step.
    assert result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] == 2 * 30 * 2


def test_checkpoint_restores_meta_parameters_optimizer_kl_and_task_rng(maml_config, tmp_path):
    config = maml_config(maml_optimizer_steps=3)
    algo = config.build_algo()
    algo.train()
    # Make the KL coefficient differ from its initial value, so restoring it matters.
    checkpoint = algo.save_to_path(tmp_path / "ckpt")
    expected = algo.train()
    expected_weights = module_weights(algo)
    expected_kl = algo.learner_group._learner.curr_kl_coeffs_per_module
    algo.stop()

    restored = MAML.from_checkpoint(checkpoint)
    result = restored.train()
    for key in ("episode_return_mean", "episode_return_mean_adapt_1", "adaptation_delta"):
        assert result[key] == pytest.approx(expected[key], rel=1e-9), key
    for name, value in expected_weights.items():
        np.testing.assert_allclose(module_weights(restored)[name], value, rtol=1e-6, atol=1e-8)
    assert restored.learner_group._learner.curr_kl_coeffs_per_module == expected_kl
    restored.stop()


def test_two_learners_average_the_meta_gradient_like_one(maml_config):
    """Tasks split over 2 CPU learners (all-reduced) == all tasks on the local learner."""
    one, one_weights = train_once(maml_config(meta_batch_size=4))
    two, two_weights = train_once(maml_config(meta_batch_size=4).learners(num_learners=2))
    assert two["episode_return_mean_adapt_1"] == pytest.approx(
        one["episode_return_mean_adapt_1"], rel=1e-5
    )
    for name, value in one_weights.items():
        np.testing.assert_allclose(two_weights[name], value, rtol=1e-4, atol=1e-6)


def test_outer_loss_is_taken_on_post_adaptation_data():
    """With inner_lr = 0, the meta-loss must equal the outer loss on D_K, not on D_0."""
    module = tiny_module(11)
    pre, post = fake_batch(module, 1), fake_batch(module, 2)
    post[ADVANTAGES] = post[ADVANTAGES] + 3.0  # Make the two batches' losses far apart.
    theta = repeat_params({"p": dict(module.named_parameters())}, 1)
    kwargs = dict(clip_param=0.2, kl_coeff=0.1, entropy_coeff=0.0)
    pre_rows, post_rows = stack_tasks([{"p": pre}]), stack_tasks([{"p": post}])
    loss, _ = meta_loss(
        {"p": module},
        theta,
        [pre_rows, post_rows],
        inner_lr=0.0,
        second_order=True,
        adapt_module_ids=["p"],
        estimator="pg",
        clip_param=0.2,
        kl_coeffs={"p": 0.1},
        entropy_coeff=0.0,
    )
    on_post, _ = outer_loss(module, theta["p"], post_rows["p"], **kwargs)
    on_pre, _ = outer_loss(module, theta["p"], pre_rows["p"], **kwargs)
    torch.testing.assert_close(loss, on_post)
    assert abs(float((on_post - on_pre).detach())) > 1.0


def test_tune_runs_maml_by_registered_name_and_by_class(maml_config, tmp_path):
    from ray import tune

    for trainable in ("MAML", MAML):
        results = tune.Tuner(
            trainable,
            param_space=maml_config(meta_batch_size=2),
            run_config=tune.RunConfig(
                stop={"training_iteration": 1}, storage_path=str(tmp_path), verbose=0
            ),
        ).fit()
        assert not results.errors
        metrics = results.get_best_result(metric="adaptation_delta", mode="max").metrics
        assert np.isfinite(metrics["adaptation_delta"])
        assert metrics["training_iteration"] == 1


@pytest.mark.parametrize("baseline", ["linear", "value"])
def test_value_head_is_trained_only_with_value_baseline(maml_config, baseline):
    algo = maml_config(
        baseline=baseline, inner_loss="lvc", meta_gradient="first_order"
    ).build_algo()
    try:
        before = module_weights(algo)
        result = algo.train()
        after = module_weights(algo)
    finally:
        algo.stop()
    assert np.isfinite(result["adaptation_delta"])
    vf_keys = [k for k in before if k.startswith("vf") or "critic" in k]
    pi_keys = [k for k in before if k.startswith("pi") or "actor" in k]
    assert vf_keys and pi_keys
    assert any(not np.array_equal(before[k], after[k]) for k in pi_keys)
    vf_changed = any(not np.array_equal(before[k], after[k]) for k in vf_keys)
    assert vf_changed == (baseline == "value")


def test_dice_inner_loss_trains_on_real_batches_with_episode_boundaries(maml_config):
    """Two second-order iterations with DiCE stay finite; the learner connector's batches
    number each step's episode, as DiCE's cumulative log-probabilities need."""
    algo = maml_config(inner_loss="dice").build_algo()
    learner = algo.learner_group._learner
    seen = []
    add_task_episodes = learner.add_task_episodes

    def spy(task_id, step, episodes):
        add_task_episodes(task_id, step, episodes)
        seen.append((episodes, learner._task_batches[task_id][step]["default_policy"]))

    learner.add_task_episodes = spy
    try:
        before = module_weights(algo)
        results = [algo.train() for _ in range(2)]
        after = module_weights(algo)
    finally:
        algo.stop()
    for result in results:
        assert np.isfinite(result["adaptation_delta"])
        assert np.isfinite(result[LEARNER_RESULTS]["__all_modules__"]["outer_loss"])
    assert all(np.isfinite(w).all() for w in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert len(seen) == 2 * 3 * 2  # iterations x tasks x (K + 1)
    for episodes, batch in seen:
        lengths = torch.tensor([len(e) for e in episodes])
        expected = torch.arange(len(episodes)).repeat_interleave(lengths)
        assert torch.equal(batch[EPISODE_INDEX].cpu(), expected)
