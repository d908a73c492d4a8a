"""Per-task sampling on EnvRunners, independent of how many runners and sub-envs there are.

Tasks are dealt round-robin to the healthy EnvRunners (the local one when there are no remote
runners); each runner samples its tasks one after the other, all of its vector sub-envs on the
same task. Each job carries the weights to sample with and a seed, so a task's episodes do not
depend on which runner samples it. Tasks of a runner that fails are re-dispatched to healthy
(possibly restarted) runners; an iteration never reports a partially sampled task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import ray
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.env.env_context import EnvContext
from ray.tune.registry import ENV_CREATOR, _global_registry

from rllib_marl_meta.tasks import Task, set_tasks_on_env_runner

logger = logging.getLogger(__name__)


@dataclass
class TaskJob:
    """Sample one task's episodes for one adaptation step."""

    task_index: int
    task: Task
    weights: dict[str, Any]  # {module_id: inference-only module state}
    seed: int


def make_driver_env(config) -> Any:
    """Creates one instance of ``config.env`` on the driver, as an EnvRunner would."""
    ctx = EnvContext(config.env_config or {}, worker_index=0, num_workers=0)
    env = config.env
    if isinstance(env, str) and _global_registry.contains(ENV_CREATOR, env):
        return _global_registry.get(ENV_CREATOR, env)(ctx)
    if isinstance(env, str):
        return gym.make(env, **(config.env_config or {}))
    if callable(env):
        return env(ctx)
    raise ValueError(f"Cannot create env from {env!r}; pass a registered name, gym id or class.")


def _run_jobs(runner, payloads: dict, episodes_per_task: int | None, env_steps: int | None):
    """Executed on an EnvRunner: sample every job addressed to this runner."""
    jobs: list[TaskJob] = payloads.get(runner.worker_index, [])
    if isinstance(jobs, ray.ObjectRef):
        jobs = ray.get(jobs)
    results = []
    for job in jobs:
        set_tasks_on_env_runner(runner, job.task)
        if isinstance(runner.module, MultiRLModule):
            runner.module.set_state(job.weights)
        else:
            runner.module.set_state(job.weights[DEFAULT_MODULE_ID])
        torch.manual_seed(job.seed)
        if episodes_per_task is not None:
            # Vector sub-envs may finish more episodes than asked for in their last step;
            # keep exactly `episodes_per_task`, so every task weighs the same.
            episodes = _sample_seeded(runner, job.seed, episodes_per_task)[:episodes_per_task]
        else:
            episodes, steps = [], 0
            while steps < env_steps:
                batch = _sample_seeded(runner, job.seed + 7919 * len(episodes), runner.num_envs)
                episodes.extend(batch)
                steps += sum(len(e) for e in batch)
        results.append((job.task_index, episodes))
    return runner.worker_index, results, runner.get_metrics()


def _sample_seeded(runner, seed: int, num_episodes: int) -> list:
    """``runner.sample(num_episodes=...)`` with its envs reset under ``seed``.

    RLlib resets the envs with the runner's own fixed seed (``config.seed`` + worker index)
    at every ``sample(num_episodes=...)``: every task would replay the same initial states, and
    they would depend on the runner. The job's seed makes them depend on the job only.
    """
    runner_seed = runner._seed
    runner._seed, runner._needs_initial_reset = seed, True
    try:
        return runner.sample(num_episodes=num_episodes, explore=True)
    finally:
        runner._seed = runner_seed


def sample_tasks(algo, jobs: list[TaskJob]) -> tuple[dict[int, list], list[dict]]:
    """Samples every job on the algorithm's EnvRunners; re-dispatches failed runners' jobs.

    Returns the episodes per task index and the runners' metrics (for RLlib's aggregation).
    """
    cfg = algo.config
    group = algo.env_runner_group
    pending = list(jobs)
    episodes: dict[int, list] = {}
    metrics: list[dict] = []
    for attempt in range(cfg.max_task_resamples + 1):
        if not pending:
            break
        if attempt > 0:
            restored = algo.restore_env_runners(group)
            logger.warning(
                "Re-dispatching %d task(s) after EnvRunner failure (restored runners: %s).",
                len(pending),
                restored,
            )
        use_local = group.num_remote_env_runners() == 0
        runner_ids = [0] if use_local else sorted(group.healthy_env_runner_ids())
        if not runner_ids:
            raise RuntimeError("No healthy EnvRunner left to sample MAML tasks on.")
        assignment: dict[int, list[TaskJob]] = {r: [] for r in runner_ids}
        for n, job in enumerate(pending):
            assignment[runner_ids[n % len(runner_ids)]].append(job)
        payloads = (
            assignment if use_local else {r: ray.put(js) for r, js in assignment.items() if js}
        )
        results = group.foreach_env_runner(
            lambda runner, p=payloads: _run_jobs(
                runner, p, cfg.episodes_per_task, cfg.env_steps_per_task
            ),
            local_env_runner=use_local,
            remote_worker_ids=None if use_local else [r for r in runner_ids if assignment[r]],
        )
        for _, task_results, runner_metrics in results:
            metrics.append(runner_metrics)
            for task_index, task_episodes in task_results:
                episodes[task_index] = task_episodes
        pending = [job for job in pending if job.task_index not in episodes]
    if pending:
        raise RuntimeError(
            f"{len(pending)} MAML task(s) could not be sampled after "
            f"{cfg.max_task_resamples} re-dispatches; see the EnvRunner errors above."
        )
    return episodes, metrics
