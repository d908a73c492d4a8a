"""Per-task sampling on EnvRunners, independent of how many runners and sub-envs there are.

Tasks are dealt round-robin to the healthy EnvRunners (the local one when there are no remote
runners). A runner (:mod:`~.env_runner`, single- or multi-agent) samples all of its tasks at
once, a task per sub-env, each with its own weights, exactly ``episodes_per_task`` episodes per
task and no discarded steps. With ``env_steps_per_task`` (or a custom ``env_runner_cls``) the
tasks are sampled one after the other, all sub-envs on one task. Each job carries the weights
to sample with and a seed, so a task's episodes do not depend on which runner samples it.

Failures never leave a task partially sampled, and never lose the env's own error text:

- an env that raises while a runner samples a job: the runner reports the env's error for that
  job and rebuilds its envs (RLlib would instead exit the actor after
  ``delay_between_env_runner_restarts_s``, 60 s by default, and lose the message);
- a runner process that dies: with ``restart_failed_env_runners`` Ray restarts it; the sampler
  waits for a healthy runner (also when there is only one) and re-dispatches the tasks.

With fault tolerance on (RLlib's default), a failed task is re-dispatched at most
``max_task_resamples`` times; without it, the first failure raises :class:`TaskSamplingError`
with the env's error.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
import tree
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

from rllib_marl_meta.tasks import Task, set_task_on_env_runner

logger = logging.getLogger(__name__)

# How long to wait, beyond RLlib's restart delay and health-probe timeout, for Ray to bring a
# dead EnvRunner back (actor restart plus env construction).
RESTART_GRACE_S = 60.0


class TaskSamplingError(RuntimeError):
    """A task could not be sampled; the message carries the env's or runner's own error."""


@dataclass
class TaskJob:
    """Sample one task's episodes for one adaptation step."""

    task_index: int
    task: Task
    weights: dict[str, Any]  # {module_id: inference-only module state}
    seed: int


def describe_error(exc: BaseException) -> str:
    """The root cause of ``exc`` as ``Type: message (file:line in function)``.

    RLlib re-raises env errors as ``RuntimeError() from env_error``, whose own text is empty;
    the env's error is the root of the ``__cause__`` chain.
    """
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    cause = getattr(root, "cause", None)  # Ray's RayTaskError wraps the remote exception.
    if isinstance(cause, BaseException) and cause is not root:
        return describe_error(cause)
    text = f"{type(root).__name__}: {root}" if str(root) else type(root).__name__
    frames = traceback.extract_tb(root.__traceback__) if root.__traceback__ else []
    if frames:
        last = frames[-1]
        text += f" ({last.filename}:{last.lineno} in {last.name})"
    return text


def _sample_job(runner, job: TaskJob, episodes_per_task: int | None, env_steps: int | None):
    set_task_on_env_runner(runner, job.task)
    if isinstance(runner.module, MultiRLModule):
        runner.module.set_state(job.weights)
    else:
        runner.module.set_state(job.weights[DEFAULT_MODULE_ID])
    torch.manual_seed(job.seed)
    if episodes_per_task is not None:
        # Vector sub-envs may finish more episodes than asked for in their last step;
        # keep exactly `episodes_per_task`, so every task weighs the same.
        return _sample_seeded(runner, job.seed, episodes_per_task)[:episodes_per_task]
    episodes, steps = [], 0
    while steps < env_steps:
        batch = _sample_seeded(runner, job.seed + 7919 * len(episodes), runner.num_envs)
        episodes.extend(batch)
        steps += sum(len(e) for e in batch)
    return episodes


def _run_jobs(runner, payloads: dict, episodes_per_task: int | None, env_steps: int | None):
    """Executed on an EnvRunner: samples every job addressed to this runner.

    Returns ``(worker_index, [(task_index, episodes)], [(task_index, error text)], metrics)``.
    """
    jobs: list[TaskJob] = payloads.get(runner.worker_index, [])
    if isinstance(jobs, ray.ObjectRef):
        jobs = ray.get(jobs)
    results, failures = [], []
    if episodes_per_task is not None and getattr(runner, "supports_plans", False) and jobs:
        # All of this runner's tasks at once, a task per sub-env (see `env_runner.py`).
        try:
            per_job = runner.sample_plan(jobs, episodes_per_task)
            results = [(job.task_index, episodes) for job, episodes in zip(jobs, per_job)]
        except Exception as exc:  # noqa: BLE001 - reported to the driver with the env's text.
            failures = [(job.task_index, describe_error(exc)) for job in jobs]
            runner.make_env()
        return runner.worker_index, results, failures, runner.get_metrics()
    for job in jobs:
        try:
            results.append((job.task_index, _sample_job(runner, job, episodes_per_task, env_steps)))
        except Exception as exc:  # noqa: BLE001 - reported to the driver with the env's text.
            failures.append((job.task_index, describe_error(exc)))
            runner.make_env()  # The failed envs may be mid-step: start the next job afresh.
    return runner.worker_index, results, failures, runner.get_metrics()


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


def _fault_tolerant(cfg) -> bool:
    return bool(cfg.restart_failed_env_runners or cfg.ignore_env_runner_failures)


def _healthy_runner_ids(algo, errors: dict[int, str]) -> list[int]:
    """The healthy remote runners; waits (bounded) for Ray to restart failed ones."""
    cfg, group = algo.config, algo.env_runner_group
    budget = (
        cfg.delay_between_env_runner_restarts_s
        + cfg.env_runner_health_probe_timeout_s
        + RESTART_GRACE_S
    )
    deadline = time.monotonic() + budget
    algo.restore_env_runners(group)
    while not group.healthy_env_runner_ids():
        if time.monotonic() > deadline or not cfg.restart_failed_env_runners:
            raise TaskSamplingError(
                f"No healthy EnvRunner to sample MAML tasks on after waiting {budget:.0f} s for "
                f"Ray to restart the failed ones. {_last_errors(errors)}"
            )
        time.sleep(0.5)
        algo.restore_env_runners(group)
    return sorted(group.healthy_env_runner_ids())


def _last_errors(errors: dict[int, str], most: int = 3) -> str:
    lines = [f"task {i}: {text}" for i, text in sorted(errors.items())[:most]]
    more = f" (and {len(errors) - most} more)" if len(errors) > most else ""
    return "Errors: " + "; ".join(lines) + more + "." if lines else ""


def _dispatch(algo, assignment: dict[int, list[TaskJob]], use_local: bool):
    """Runs the jobs; returns ``[(runner_id, result or None, error text or None)]``."""
    cfg, group = algo.config, algo.env_runner_group

    def run(runner, payloads):
        return _run_jobs(runner, payloads, cfg.episodes_per_task, cfg.env_steps_per_task)

    if use_local:
        return [(0, run(group.local_env_runner, assignment), None)]
    payloads = {r: ray.put(jobs) for r, jobs in assignment.items() if jobs}
    # RLlib's `foreach_env_runner` drops failed calls without their errors; its actor manager
    # returns them (and marks the failed runners unhealthy, as RLlib does).
    calls = group._worker_manager.foreach_actor(
        lambda runner: run(runner, payloads),
        remote_actor_ids=sorted(payloads),
        healthy_only=False,
    )
    return [
        (c.actor_id, c.get() if c.ok else None, None if c.ok else describe_error(c.get()))
        for c in calls
    ]


def sample_task_episodes(
    algo, jobs: list[TaskJob], step: int
) -> tuple[dict[int, list], list[dict]]:
    """Samples every job on the algorithm's EnvRunners; re-dispatches failed jobs.

    ``step`` is the adaptation step (0: pre-adaptation), used in error messages. Returns the
    episodes per task index and the runners' metrics (for RLlib's aggregation).
    """
    cfg = algo.config
    group = algo.env_runner_group
    tasks = {job.task_index: job.task for job in jobs}
    pending = list(jobs)
    episodes: dict[int, list] = {}
    metrics: list[dict] = []
    errors: dict[int, str] = {}
    for attempt in range(cfg.max_task_resamples + 1):
        if not pending:
            break
        use_local = group.num_remote_env_runners() == 0
        runner_ids = [0] if use_local else _healthy_runner_ids(algo, errors)
        if attempt > 0:
            logger.warning(
                "Re-dispatching %d MAML task(s) to EnvRunners %s. %s",
                len(pending),
                runner_ids,
                _last_errors(errors),
            )
        assignment: dict[int, list[TaskJob]] = {r: [] for r in runner_ids}
        for n, job in enumerate(pending):
            assignment[runner_ids[n % len(runner_ids)]].append(job)
        for runner_id, result, runner_error in _dispatch(algo, assignment, use_local):
            if runner_error is not None:
                for job in assignment[runner_id]:
                    errors[job.task_index] = f"EnvRunner {runner_id} failed: {runner_error}"
                continue
            _, task_results, failures, runner_metrics = result
            metrics.append(runner_metrics)
            for task_index, task_episodes in task_results:
                episodes[task_index] = task_episodes
            for task_index, text in failures:
                errors[task_index] = (
                    f"sampling (env or module) raised on EnvRunner {runner_id}: {text}"
                )
        pending = [job for job in pending if job.task_index not in episodes]
        if pending and not _fault_tolerant(cfg):
            raise TaskSamplingError(
                f"Sampling {len(pending)} MAML task(s) failed and fault tolerance is off. "
                f"{_last_errors({j.task_index: errors[j.task_index] for j in pending})} "
                "Fix the env, or let RLlib retry with "
                "`config.fault_tolerance(restart_failed_env_runners=True)`."
            )
    if pending:
        raise TaskSamplingError(
            f"{len(pending)} MAML task(s) could not be sampled after {cfg.max_task_resamples} "
            f"re-dispatches. {_last_errors({j.task_index: errors[j.task_index] for j in pending})}"
        )
    for task_index in sorted(episodes):
        check_finite_episodes(episodes[task_index], task_index, tasks[task_index], step)
    return episodes, metrics


def _stage(step: int) -> str:
    if step == 0:
        return "pre-adaptation episodes (D_0, sampled with the meta-parameters)"
    return f"post-adaptation episodes of inner step {step} (D_{step})"


def check_finite_episodes(episodes: list, task_index: int, task: Any, step: int) -> None:
    """Raises ``ValueError`` on a NaN or infinite reward or observation, naming where it is."""
    for n, episode in enumerate(episodes):
        if isinstance(episode, MultiAgentEpisode):
            parts = [(f"agent {a!r}, ", e) for a, e in episode.agent_episodes.items()]
        else:
            parts = [("", episode)]
        for who, sa_episode in parts:
            observations = tree.flatten(sa_episode.get_observations())
            columns = [("reward", sa_episode.get_rewards())]
            columns += [("observation", leaf) for leaf in observations]
            for what, values in columns:
                array = np.asarray(values)
                if array.dtype.kind not in "fc":
                    continue
                bad = np.argwhere(~np.isfinite(array))
                if len(bad):
                    value = float(np.real(array[tuple(bad[0])]))
                    # Reward i comes from env step i + 1; observation 0 is the reset's.
                    env_step = int(bad[0][0]) + (1 if what == "reward" else 0)
                    raise ValueError(
                        f"Non-finite {what} ({value}) from the env in task {task_index} "
                        f"({task!r}), {_stage(step)}, episode {n}, {who}env step {env_step}. MAML "
                        f"cannot learn from NaN or infinite {what}s: make the env return finite "
                        "values (for example clip them with a gymnasium wrapper)."
                    )
