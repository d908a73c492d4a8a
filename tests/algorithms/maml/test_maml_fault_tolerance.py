"""A failing env or EnvRunner never loses a task: its tasks are re-sampled, with one runner too."""

from __future__ import annotations

import time

import pytest
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED

from tests.algorithms.maml.conftest import small_maml_config
from tests.faulty_envs import FailingEnv


@pytest.mark.parametrize("how", ["raise", "exit"])
@pytest.mark.parametrize("num_env_runners", [1, 2])
def test_failed_env_or_runner_is_survived_and_its_tasks_resampled(
    ray_session, tmp_path, num_env_runners, how
):
    marker = tmp_path / "failed"
    env_config = {
        "horizon": 10,
        "marker": str(marker),
        "fail_at_step": 15,
        "fail_on_worker": num_env_runners,
        "how": how,
    }
    config = (
        small_maml_config(meta_batch_size=4, episodes_per_task=2)
        .environment(FailingEnv, env_config=env_config)
        .env_runners(num_env_runners=num_env_runners)
        # RLlib's default delay (60 s) is what a sampler that does not wait would trip over.
        .fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=1)
    )
    algo = config.build_algo()
    try:
        start = time.monotonic()
        result = algo.train()
        assert marker.exists(), "the env never failed: the test did not exercise a failure"
        assert time.monotonic() - start < 90
        # Every task has its full set of episodes, pre and post adaptation: 4 tasks x 2
        # episodes x 10 steps x 2 rounds, and nothing from the failed attempt is counted.
        assert result["num_episodes_per_task"] == 2
        assert result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] == 4 * 2 * 10 * 2
        # The failed runner comes back (Ray restarts a dead process in the background; with
        # two runners the iteration did not have to wait for it).
        deadline = time.monotonic() + 120
        while algo.env_runner_group.num_healthy_remote_env_runners() < num_env_runners:
            assert time.monotonic() < deadline, "the failed EnvRunner was not restarted"
            time.sleep(0.5)
            algo.restore_env_runners(algo.env_runner_group)
        second = algo.train()
        assert second["num_episodes_per_task"] == 2
        assert second[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] == 4 * 2 * 10 * 2
    finally:
        algo.stop()
