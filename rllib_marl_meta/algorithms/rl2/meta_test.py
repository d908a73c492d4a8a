"""Meta-testing RL²: one trial per held-out task on an EnvRunner, no gradient steps.

RL² adapts only through its recurrent state, so meta-testing runs the trained policy on one
trial of each held-out task: the rise of the return from inner episode 1 to inner episode n is
the adaptation. The trials run as an episode plan (:mod:`..plan_sampling`) on an EnvRunner of
the algorithm's own class of env and connectors: each trial's task is set through the trial
wrapper's task API, its seed is a function of the meta-test seed and the task's position only,
and its per-inner-episode returns come from the trial wrapper's last info. So a result does
not depend on how many trials run side by side.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from rllib_marl_meta.algorithms.config_checks import boolean, integer
from rllib_marl_meta.algorithms.plan_sampling import (
    EpisodePlan,
    MultiAgentPlanMixin,
    SingleAgentPlanMixin,
    sample_actions,
)
from rllib_marl_meta.algorithms.rl2.trial_wrapper import (
    INNER_EPISODE_RETURNS,
    INNER_EPISODE_SUCCESSES,
)
from rllib_marl_meta.envs.creation import env_display_name
from rllib_marl_meta.meta_learner import MetaTestResult, held_out_seed
from rllib_marl_meta.tasks import Task, draw_tasks, require_task_env

# At most this many trials run side by side (vector sub-envs of the meta-test EnvRunner).
MAX_PARALLEL_TRIALS = 64


class RL2MetaTestEnvRunner(SingleAgentPlanMixin, SingleAgentEnvRunner):
    """Runs a plan of single-agent RL² trials, each row's noise from its trial's generator."""

    def _plan_forward(self, jobs: list, plan: EpisodePlan):
        module = self.module
        dist_cls = module.get_exploration_action_dist_cls()
        draws = functools.partial(plan.draws, [(row, None) for row in range(self.num_envs)])

        @torch.no_grad()
        def forward(batch: dict, **kwargs) -> dict:
            out = type(module).forward_exploration(module, batch, **kwargs)
            return out | sample_actions(dist_cls, out[Columns.ACTION_DIST_INPUTS], draws)

        return forward


class MultiAgentRL2MetaTestEnvRunner(MultiAgentPlanMixin, MultiAgentEnvRunner):
    """Runs a plan of multi-agent RL² trials, each agent's noise from its own generator."""

    def _plan_forward(self, jobs: list, plan: EpisodePlan):
        modules = dict(self.module.items())
        dist_classes = {mid: m.get_exploration_action_dist_cls() for mid, m in modules.items()}

        @torch.no_grad()
        def forward(batch: dict, **kwargs) -> dict:
            rows_of = self._rows_of_batch()
            out = {}
            for mid, module_batch in batch.items():
                module = modules[mid]
                module_out = type(module).forward_exploration(module, module_batch, **kwargs)
                draws = functools.partial(plan.draws, rows_of[mid])
                out[mid] = module_out | sample_actions(
                    dist_classes[mid], module_out[Columns.ACTION_DIST_INPUTS], draws
                )
            return out

        return forward


class _Trial(NamedTuple):
    task: Task
    seed: int


def meta_test(
    algo: Any,
    num_tasks: int = 100,
    seed: int = 0,
    steps: int | None = None,
    explore: bool = True,
    trials_per_task: int = 1,
) -> MetaTestResult:
    """``RL2.meta_test``: one trial on each of ``num_tasks`` new tasks; no gradient step.

    The policy adapts only through its recurrent state, carried across the inner episodes of a
    trial and reset between trials.

    Args:
        algo: The RL2 algorithm (this is its ``meta_test`` method).
        num_tasks: Tasks to test on, from the env's test split, drawn with
            ``held_out_seed(seed)`` as MAML draws its.
        seed: Seeds the task draw, each trial's env and its action sampling.
        steps: Inner episodes per trial (default: ``episodes_per_trial``).
        explore: Sample actions from the policy (as in training, the default) or act greedily.
        trials_per_task: Trials per task; a task's value is the mean over its trials.

    Returns:
        The curve ``"episode_1", ..., "episode_{steps}"``: each task's return in each inner
        episode (summed over agents), per agent in ``groups["agent"]``, success rates for envs
        with a success flag.
    """
    config = algo.config
    steps = config.episodes_per_trial if steps is None else steps
    for name, value, setting in (
        ("num_tasks", num_tasks, integer(1)),
        ("seed", seed, integer(0)),
        ("steps", steps, integer(1)),
        ("explore", explore, boolean()),
        ("trials_per_task", trials_per_task, integer(1)),
    ):
        if not setting.check(value):
            raise ValueError(f"RL2.meta_test: `{name}` must be {setting.allowed}; got {value!r}.")
    runner = _meta_test_runner(algo, steps, min(num_tasks, MAX_PARALLEL_TRIALS))
    task_env = require_task_env(runner.env.unwrapped.envs[0])
    tasks = draw_tasks(task_env, num_tasks, seed=held_out_seed(seed), split="test")
    seeds = np.random.SeedSequence(seed).generate_state(num_tasks)
    jobs = [_Trial(task, int(s)) for task, s in zip(tasks, seeds)]
    per_task_trials = runner.sample_plan(jobs, trials_per_task, explore)
    # Per task, per agent: the mean return of each inner episode over the task's trials.
    per_agent = [_mean_inner_episode_returns(trials) for trials in per_task_trials]
    agents = sorted({str(a) for returns in per_agent for a in returns})
    team = [np.sum([r[a] for a in sorted(r)], axis=0) for r in per_agent]  # Fixed order.
    groups = {}
    if isinstance(runner, MultiAgentEnvRunner):
        groups["agent"] = {
            a: [[float(r.get(a, [0.0] * steps)[i]) for r in per_agent] for i in range(steps)]
            for a in agents
        }
    success = [_mean_inner_episode_successes(trials) for trials in per_task_trials]
    return MetaTestResult(
        algorithm="RL2",
        env=env_display_name(config.inner_env),  # The user's env, not the trial wrapper.
        num_tasks=num_tasks,
        seed=seed,
        labels=[f"episode_{i}" for i in range(1, steps + 1)],
        returns=[[float(t[i]) for t in team] for i in range(steps)],
        groups=groups,
        tasks=tasks,
        success=[] if any(s is None for s in success) else np.asarray(success).T.tolist(),
    )


def _mean_inner_episode_successes(trials: list) -> np.ndarray | None:
    """Each inner episode's success rate over a task's trials (None: no success flag)."""
    flags = []
    for trial in trials:
        info = None if hasattr(trial, "agent_episodes") else trial.get_infos(-1)
        if not info or INNER_EPISODE_SUCCESSES not in info:
            return None
        flags.append(info[INNER_EPISODE_SUCCESSES])
    return np.mean(flags, axis=0)


def _mean_inner_episode_returns(trials: list) -> dict[str, np.ndarray]:
    """Per agent (``"agent"`` in a single-agent env), each inner episode's mean return."""
    per_trial = []
    for trial in trials:
        if hasattr(trial, "agent_episodes"):
            per_trial.append(
                {
                    str(agent): agent_episode.get_infos(-1)[INNER_EPISODE_RETURNS]
                    for agent, agent_episode in trial.agent_episodes.items()
                }
            )
        else:
            per_trial.append({"agent": trial.get_infos(-1)[INNER_EPISODE_RETURNS]})
    agents = {agent for returns in per_trial for agent in returns}
    return {a: np.mean([r[a] for r in per_trial if a in r], axis=0) for a in agents}


def _meta_test_runner(algo: Any, steps: int, num_envs: int) -> Any:
    """A local EnvRunner for trials of ``steps`` inner episodes, holding the algo's state.

    Built once per ``(steps, num_envs)`` and kept on the algorithm (stopped with it); the
    module weights and connector states (e.g. observation filters) are refreshed every call.
    """
    cache = algo.__dict__.setdefault("_rl2_meta_test_runners", {})
    runner = cache.get((steps, num_envs))
    if runner is None:
        config = algo.config.copy(copy_frozen=False)
        multi_agent = config.is_multi_agent
        config.environment(config.inner_env)  # `validate` wraps it in trials of `steps`.
        config.training(episodes_per_trial=steps)
        config.env_runners(
            num_env_runners=0,
            num_envs_per_env_runner=num_envs,
            env_runner_cls=(
                MultiAgentRL2MetaTestEnvRunner if multi_agent else RL2MetaTestEnvRunner
            ),
        )
        config.validate()
        runner = config.env_runner_cls(config=config)
        cache[(steps, num_envs)] = runner
    if algo.env_runner is not None:
        state = algo.env_runner.get_state()
    else:
        state = algo.env_runner_group.foreach_env_runner(
            lambda r: r.get_state(), remote_worker_ids=[1], local_env_runner=False
        )[0]
    runner.set_state(state)
    return runner


def stop_meta_test_runners(algo: Any) -> None:
    """Stops the EnvRunners that :func:`meta_test` kept on ``algo``."""
    for runner in algo.__dict__.pop("_rl2_meta_test_runners", {}).values():
        runner.stop()
