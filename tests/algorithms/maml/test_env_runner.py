"""MAMLEnvRunner: a task per sub-env, each with its own weights, exact quotas, no waste."""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED

from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.maml.env_runner import MAMLEnvRunner
from rllib_marl_meta.algorithms.maml.sampling import TaskJob
from rllib_marl_meta.algorithms.plan_sampling import many_env_stepper
from rllib_marl_meta.tasks import require_task_env
from tests.algorithms.conftest import assert_same_steps, metric_value
from tests.algorithms.maml.conftest import small_maml_config

PI_BIAS = "pi.net.mlp.0.bias"
PI_WEIGHT = "pi.net.mlp.0.weight"


def _weights_acting(base: dict, mean: float, log_std: float) -> dict:
    """Inference weights whose policy ignores the observation: N(mean, exp(log_std)^2)."""
    weights = {k: np.array(v, copy=True) for k, v in base.items()}
    weights[PI_WEIGHT][:] = 0.0
    weights[PI_BIAS][:] = [mean, mean, log_std, log_std]
    return {DEFAULT_MODULE_ID: weights}


@pytest.fixture
def local_runner_algo(ray_session):
    config = small_maml_config(meta_batch_size=2, episodes_per_task=2).env_runners(
        num_env_runners=0, num_envs_per_env_runner=3
    )
    algo = config.build_algo()
    yield algo
    algo.stop()


@pytest.fixture(params=["row-wise linears", "vmap over rows", "per task's rows"])
def rows_path(request, monkeypatch):
    """Each way `_RowWeights` evaluates rows of several tasks."""
    from rllib_marl_meta.algorithms.maml import env_runner

    monkeypatch.setattr(env_runner, "ROW_WISE_LINEARS", request.param == "row-wise linears")
    monkeypatch.setattr(env_runner, "MAX_GROUPS", 3 if request.param == "per task's rows" else 0)
    return request.param


def test_each_sub_env_acts_with_its_own_tasks_weights(local_runner_algo, rows_path):
    runner = local_runner_algo.env_runner
    assert isinstance(runner, MAMLEnvRunner) and runner.supports_plans
    theta = local_runner_algo.learner_group._learner.meta_weights()[DEFAULT_MODULE_ID]
    # Task 0 pushes +x with little noise, task 1 pushes -x with much noise; 3 sub-envs take
    # their 4 + 4 episodes in turn, so rows mix the two tasks in one batch.
    jobs = [
        TaskJob(0, {"goal": np.array([0.1, 0.1])}, _weights_acting(theta, 0.05, -3.0), 1),
        TaskJob(1, {"goal": np.array([-0.1, 0.1])}, _weights_acting(theta, -0.05, -1.0), 2),
    ]
    per_job = runner.sample_plan(jobs, episodes_per_task=4)
    assert [len(episodes) for episodes in per_job] == [4, 4]
    for (mean, std), episodes in zip([(0.05, np.exp(-3.0)), (-0.05, np.exp(-1.0))], per_job):
        actions = np.concatenate([e.get_actions() for e in episodes])  # Before clipping.
        assert actions.shape == (4 * 10, 2)
        np.testing.assert_allclose(actions.mean(), mean, atol=4 * std / np.sqrt(actions.size))
        assert actions.std() == pytest.approx(std, rel=0.25)


def test_an_episode_does_not_depend_on_its_sub_env_or_batch_mates(local_runner_algo, rows_path):
    runner = local_runner_algo.env_runner
    theta = local_runner_algo.learner_group._learner.meta_weights()[DEFAULT_MODULE_ID]
    alone = TaskJob(0, {"goal": np.array([0.2, -0.3])}, _weights_acting(theta, 0.01, -2.0), 11)
    other = TaskJob(1, {"goal": np.array([0.0, 0.3])}, _weights_acting(theta, -0.02, -1.5), 5)
    solo = runner.sample_plan([alone], episodes_per_task=2)[0]
    mixed = runner.sample_plan([other, alone], episodes_per_task=2)[1]
    for a, b in zip(solo, mixed):
        np.testing.assert_allclose(a.get_actions(), b.get_actions(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(a.get_rewards(), b.get_rewards(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("meta_batch_size", "episodes_per_task", "num_envs"), [(4, 3, 2), (3, 1, 2), (5, 2, 4)]
)
def test_every_task_gets_its_quota_and_no_step_is_discarded(
    maml_config, meta_batch_size, episodes_per_task, num_envs
):
    """(3, 1, 2) and (5, 2, 4) leave a sub-env idle in the last round: it is not counted."""
    config = maml_config(
        meta_batch_size=meta_batch_size, episodes_per_task=episodes_per_task
    ).env_runners(num_env_runners=1, num_envs_per_env_runner=num_envs)
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert result["num_episodes_per_task"] == episodes_per_task
    used = meta_batch_size * episodes_per_task * 2 * 10  # (K + 1 = 2) rounds, 10 steps.
    assert result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] == used


@pytest.mark.parametrize("num_envs", [2, 5])
def test_multi_agent_tasks_per_sub_env_give_the_same_update_and_exact_steps(maml_config, num_envs):
    """Per-agent modules on CooperativeNavigation: 1 sub-env vs several (5 leaves sub-envs
    idle in the last round) give the same episodes and update, and only used steps count."""
    import torch

    def config(envs: int):
        return (
            maml_config(meta_batch_size=4, episodes_per_task=3)
            .environment("CooperativeNavigation", env_config={"horizon": 10, "spawn_range": 0.1})
            .multi_agent(
                policies={"agent_0", "agent_1"}, policy_mapping_fn=lambda aid, *a, **k: aid
            )
            .env_runners(num_env_runners=0, num_envs_per_env_runner=envs)
        )

    results, weights = [], []
    for envs in (1, num_envs):
        algo = config(envs).build_algo()
        try:
            assert type(algo.env_runner).__name__ == "MultiAgentMAMLEnvRunner"
            results.append(algo.train())
            weights.append(algo.learner_group.get_weights())
        finally:
            algo.stop()
    for result in results:
        assert result["num_episodes_per_task"] == 3
        assert result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] == 4 * 3 * 2 * 10
    for key in ("episode_return_mean", "episode_return_mean_adapt_1"):
        assert results[1][key] == pytest.approx(results[0][key], rel=1e-6)
    for mid, module_weights in weights[0].items():
        for name, value in module_weights.items():
            torch.testing.assert_close(
                torch.as_tensor(weights[1][mid][name]), torch.as_tensor(value), rtol=1e-5, atol=1e-7
            )


def _runner_and_jobs(env: str, env_config: dict, theta_noise: float):
    """A local MAMLEnvRunner with 3 sub-envs and 3 jobs whose weights differ per task."""
    algo = (
        MAMLConfig()
        .environment(env, env_config=env_config)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=7)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=3)
        .build_algo()
    )
    runner = algo.env_runner
    theta = algo.learner_group._learner.meta_weights()[DEFAULT_MODULE_ID]
    tasks = require_task_env(runner._planned_rows[0].env).sample_tasks(3, seed=4)
    rng = np.random.default_rng(0)
    jobs = [
        TaskJob(
            i,
            task,
            {
                DEFAULT_MODULE_ID: {
                    k: v + theta_noise * rng.standard_normal(np.shape(v)).astype(v.dtype)
                    for k, v in theta.items()
                }
            },
            20 + i,
        )
        for i, task in enumerate(tasks)
    ]
    return algo, runner, jobs


@pytest.mark.parametrize(
    ("env", "env_config"),
    [("PointNavigation2D", {"horizon": 10}), ("CartPoleMass", {"max_episode_steps": 60})],
    ids=["Gaussian, truncated", "categorical, terminated"],
)
def test_direct_sampling_gives_the_episodes_of_rllibs_loop(ray_session, rows_path, env, env_config):
    """The direct plan loop and RLlib's own loop sample the same episodes, step counts and
    episode metrics; 3 tasks x 3 episodes on 3 sub-envs, each task with its own weights."""
    algo, runner, jobs = _runner_and_jobs(env, env_config, theta_noise=0.3)
    try:
        per_path, metrics = {}, {}
        for direct in (True, False):
            runner.sample_directly = direct
            assert runner._can_sample_directly() is direct
            # The direct loop steps PointNavigation2D's sub-envs together, CartPoleMass's in turn.
            stepper = many_env_stepper(runner._planned_rows)
            assert (stepper is not None) is (env == "PointNavigation2D")
            runner.get_metrics()  # Clears what earlier calls logged.
            per_path[direct] = runner.sample_plan(jobs, episodes_per_task=3)
            metrics[direct] = runner.get_metrics()
    finally:
        algo.stop()
    lengths = [len(e) for episodes in per_path[True] for e in episodes]
    assert lengths == [len(e) for episodes in per_path[False] for e in episodes]
    if env == "CartPoleMass":
        assert len(set(lengths)) > 1  # Episodes end by termination, at different steps.
    for direct_episodes, rllib_episodes in zip(per_path[True], per_path[False]):
        assert len(direct_episodes) == 3
        for a, b in zip(direct_episodes, rllib_episodes):
            assert (a.is_terminated, a.is_truncated) == (b.is_terminated, b.is_truncated)
            assert a.get_infos(0) == b.get_infos(0)  # Carries the task's plan position.
            assert_same_steps(a, b)

    for key in (NUM_ENV_STEPS_SAMPLED, "num_episodes", "episode_return_mean", "episode_len_max"):
        assert metric_value(metrics[True][key]) == pytest.approx(
            metric_value(metrics[False][key]), rel=1e-6
        )
    assert metric_value(metrics[True][NUM_ENV_STEPS_SAMPLED]) == sum(lengths)


def test_direct_sampling_leaves_custom_connectors_and_callbacks_to_rllibs_loop(ray_session):
    """A user's connector or episode callback must run: such runners use RLlib's loop."""
    from ray.rllib.callbacks.callbacks import RLlibCallback
    from ray.rllib.connectors.env_to_module import MeanStdFilter

    class CountSteps(RLlibCallback):
        def on_episode_step(self, *, episode, **kwargs):
            episode.custom_data["steps"] = episode.custom_data.get("steps", 0) + 1

    base = small_maml_config(meta_batch_size=2, episodes_per_task=1).env_runners(
        num_env_runners=0, num_envs_per_env_runner=2
    )
    for config, direct in [
        (base, True),
        (
            base.copy(copy_frozen=False).env_runners(
                env_to_module_connector=lambda env, spaces=None, device=None: MeanStdFilter()
            ),
            False,
        ),
        (base.copy(copy_frozen=False).callbacks(CountSteps), False),
    ]:
        algo = config.build_algo()
        try:
            runner = algo.env_runner
            assert runner._can_sample_directly() is direct
            theta = algo.learner_group._learner.meta_weights()
            job = TaskJob(0, {"goal": np.array([0.1, 0.2])}, theta, 3)
            (episodes,) = runner.sample_plan([job], episodes_per_task=1)
            if config.callbacks_class is CountSteps:
                assert episodes[0].custom_data["steps"] == len(episodes[0])
        finally:
            algo.stop()


def test_the_three_ways_of_evaluating_rows_agree(ray_session, monkeypatch):
    """Row-wise linears, vmap over rows and groups of rows give the same action inputs."""
    import torch

    from rllib_marl_meta.algorithms.maml import env_runner

    algo, runner, jobs = _runner_and_jobs("PointNavigation2D", {"horizon": 10}, theta_noise=0.3)
    try:
        weights = [job.weights[DEFAULT_MODULE_ID] for job in jobs]
        obs = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
        row_tasks = np.array([0, 2, 1, 1, 0, 2, 2])
        outputs = []
        for row_wise, max_groups in [(True, 0), (False, 0), (False, 3)]:
            monkeypatch.setattr(env_runner, "ROW_WISE_LINEARS", row_wise)
            monkeypatch.setattr(env_runner, "MAX_GROUPS", max_groups)
            rows = env_runner._RowWeights(runner.module, weights)
            assert rows.row_linears
            outputs.append(rows.inputs({Columns.OBS: obs}, row_tasks, key=0))
        for task in range(3):  # Each task's rows alone, with that task's weights only.
            alone = env_runner._RowWeights(runner.module, [weights[task]])
            expected = alone.inputs({Columns.OBS: obs[row_tasks == task]}, None, key=0)
            for out in outputs:
                torch.testing.assert_close(out[row_tasks == task], expected, rtol=1e-5, atol=1e-6)
    finally:
        algo.stop()


def test_closed_form_gaussian_logp_equals_rllibs():
    import torch
    from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian

    from rllib_marl_meta.algorithms.plan_sampling import sample_actions

    inputs = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 2
    rngs = [np.random.default_rng(i) for i in range(6)]

    def draws(method, shape):
        return np.stack([getattr(rng, method)(shape) for rng in rngs])

    out = sample_actions(TorchDiagGaussian, inputs, draws)
    expected = TorchDiagGaussian.from_logits(inputs).logp(out[Columns.ACTIONS])
    torch.testing.assert_close(out[Columns.ACTION_LOGP], expected, rtol=1e-5, atol=1e-5)


def test_row_wise_linears_refuse_inputs_that_are_not_one_row_per_batch_row():
    import torch

    from rllib_marl_meta.algorithms.maml.env_runner import _row_linear

    weight, bias = torch.randn(4, 3, 2), torch.randn(4, 3)
    rows = torch.randn(4, 2)
    expected = torch.stack([weight[i] @ rows[i] + bias[i] for i in range(4)])
    torch.testing.assert_close(_row_linear(rows, weight, bias), expected)
    with pytest.raises(ValueError, match="ROW_WISE_LINEARS = False"):
        _row_linear(torch.randn(8, 2), weight, bias)
