"""A crashing EnvRunner is restarted; its tasks are re-sampled; no partial task is reported."""

from __future__ import annotations

import time
from pathlib import Path

from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED

from rllib_marl_meta.envs.point_navigation import PointNavigation2D
from tests.algorithms.maml.conftest import small_maml_config


class CrashOnceEnv(PointNavigation2D):
    """Raises on step ``crash_at_step`` of its EnvRunner, the first time only (marker file)."""

    def __init__(self, config=None):
        self.worker_index = getattr(config, "worker_index", None)
        config = dict(config or {})
        self.marker = Path(config.pop("marker"))
        self.crash_at_step = config.pop("crash_at_step")
        self.crash_on_worker = config.pop("crash_on_worker")
        super().__init__(config)
        self.steps_taken = 0

    def step(self, action):
        self.steps_taken += 1
        if (
            self.worker_index == self.crash_on_worker
            and self.steps_taken == self.crash_at_step
            and not self.marker.exists()
        ):
            self.marker.write_text("crashed")
            raise RuntimeError("CrashOnceEnv: simulated env failure")
        return super().step(action)


def test_failed_env_runner_is_restarted_and_its_tasks_resampled(ray_session, tmp_path):
    marker = tmp_path / "crashed"
    env_config = {"horizon": 10, "marker": str(marker), "crash_at_step": 15, "crash_on_worker": 2}
    config = (
        small_maml_config(meta_batch_size=4, episodes_per_task=2)
        .environment(CrashOnceEnv, env_config=env_config)
        .env_runners(num_env_runners=2)
        .fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=0.5)
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        assert marker.exists(), "the env never crashed: the test did not exercise a failure"
        # Every task has its full set of episodes in the metrics, pre and post adaptation.
        assert result["num_episodes_per_task"] == 2
        assert set(result) >= {"episode_return_mean", "episode_return_mean_adapt_1"}
        # The failed runner is restarted (Ray restarts the actor, RLlib probes it back in).
        deadline = time.monotonic() + 120
        while algo.env_runner_group.num_healthy_remote_env_runners() < 2:
            assert time.monotonic() < deadline, "the failed EnvRunner was not restarted"
            time.sleep(1)
            algo.restore_env_runners(algo.env_runner_group)
        second = algo.train()
        assert second["num_episodes_per_task"] == 2
        assert second[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED] > 0
    finally:
        algo.stop()
