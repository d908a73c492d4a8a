"""Plan sampling on a multi-agent runner: RLlib's loop with two of its per-step costs removed."""

from __future__ import annotations

import pytest
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_MODULE_STEPS_SAMPLED,
)

from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.maml.sampling import TaskJob
from rllib_marl_meta.tasks import require_task_env

AGENTS = ["agent_0", "agent_1"]


@pytest.fixture
def team_runner_and_jobs(ray_session):
    """A local multi-agent MAML runner (a module per agent, 3 sub-envs) and 4 jobs."""
    algo = (
        MAMLConfig()
        .environment("CooperativeNavigation", env_config={"horizon": 10})
        .multi_agent(policies=set(AGENTS), policy_mapping_fn=lambda aid, *a, **k: aid)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=3)
        .debugging(seed=3)
        .build_algo()
    )
    runner = algo.env_runner
    weights = algo.learner_group._learner.meta_weights()
    tasks = require_task_env(runner._planned_rows[0].env).sample_tasks(4, seed=5)
    yield runner, [TaskJob(i, task, weights, 30 + i) for i, task in enumerate(tasks)]
    algo.stop()


@pytest.fixture
def numpy_conversions(monkeypatch):
    """Counts ``MultiAgentEpisode.to_numpy`` calls per episode id."""
    calls: dict[str, int] = {}
    to_numpy = MultiAgentEpisode.to_numpy

    def counted(episode):
        calls[episode.id_] = calls.get(episode.id_, 0) + 1
        return to_numpy(episode)

    monkeypatch.setattr(MultiAgentEpisode, "to_numpy", counted)
    return calls


def test_rllibs_multi_agent_loop_converts_finished_episodes_again_at_every_step(
    team_runner_and_jobs, numpy_conversions
):
    """The RLlib 2.60 behaviour `MultiAgentPlanMixin._sample` works around. If this fails,
    RLlib converts each episode once and the override can go."""
    runner, _ = team_runner_and_jobs
    episodes = runner.sample(num_episodes=6)
    assert len(episodes) == 6
    assert max(numpy_conversions.values()) > 1


def test_a_plan_converts_each_episode_once_and_logs_rllibs_step_counts(
    team_runner_and_jobs, numpy_conversions
):
    runner, jobs = team_runner_and_jobs
    runner.get_metrics()  # Start from empty counters.
    per_job = runner.sample_plan(jobs, episodes_per_task=2)
    episodes = [episode for job_episodes in per_job for episode in job_episodes]
    assert len(episodes) == 8
    assert all(episode.is_numpy for episode in episodes)
    assert sorted(numpy_conversions) == sorted(e.id_ for e in episodes)
    assert set(numpy_conversions.values()) == {1}

    metrics = runner.get_metrics()
    env_steps = sum(episode.env_steps() for episode in episodes)
    assert env_steps == 8 * 10
    assert metrics[NUM_ENV_STEPS_SAMPLED] == env_steps
    assert metrics[NUM_ENV_STEPS_SAMPLED_LIFETIME] == env_steps
    assert metrics[NUM_EPISODES] == 8
    for agent in AGENTS:
        agent_steps = sum(len(e.agent_episodes[agent]) for e in episodes)
        assert metrics[NUM_AGENT_STEPS_SAMPLED][agent] == agent_steps == env_steps
        assert metrics[NUM_AGENT_STEPS_SAMPLED_LIFETIME][agent] == agent_steps
        assert metrics[NUM_MODULE_STEPS_SAMPLED][agent] == agent_steps
    assert runner._pending_step_metrics is None  # Outside a plan, RLlib logs as it goes.
