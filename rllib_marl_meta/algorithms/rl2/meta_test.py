"""Meta-testing RL²: whole trials on new tasks, hidden state carried, no gradient steps.

RL² adapts only through its recurrent state, so meta-testing is just running the trained
policy on trials of held-out tasks: the rise of the return from inner episode 1 to inner
episode n is the adaptation. :func:`meta_test` runs the trials in lock-step batches (one
forward pass per RLModule per step) and returns the return of every (task, inner episode);
``MetaTestResult.to_common`` hands them to :mod:`rllib_marl_meta.evaluation`'s reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import tree
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.env.env_context import EnvContext
from ray.rllib.utils.spaces.space_utils import (
    clip_action,
    get_base_struct_from_space,
    unsquash_action,
)

from rllib_marl_meta import evaluation
from rllib_marl_meta.algorithms.rl2.rl2 import TrialEnvCreator
from rllib_marl_meta.algorithms.rl2.trial_wrapper import (
    INNER_EPISODE_RETURNS,
    TASK,
    MultiAgentRL2TrialWrapper,
)
from rllib_marl_meta.envs.creation import env_creator
from rllib_marl_meta.tasks import Task, draw_tasks, require_task_env

_SINGLE = "__single_agent__"


@dataclass
class MetaTestResult:
    """Returns of meta-test trials: one row per task, one column per inner-episode index.

    ``returns`` sums over agents in multi-agent envs; ``agent_returns`` has one such array per
    agent (empty for single-agent envs). :meth:`to_common` gives the form that
    :mod:`rllib_marl_meta.evaluation` reports (tables, JSON, plots) for every algorithm.
    """

    returns: np.ndarray
    tasks: list[Task]
    agent_returns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        return int(self.returns.shape[0])

    @property
    def mean(self) -> np.ndarray:
        """Mean return per inner-episode index (index 0 is inner episode 1)."""
        return self.returns.mean(axis=0)

    def to_common(self, env: str, seed: int) -> evaluation.MetaTestResult:
        """This result as :class:`rllib_marl_meta.evaluation.MetaTestResult`: one curve point
        ``episode_i`` per inner episode, per-agent returns in ``groups["agent"]``."""
        groups = {}
        if self.agent_returns:
            groups["agent"] = {str(a): r.T.tolist() for a, r in self.agent_returns.items()}
        return evaluation.MetaTestResult(
            algorithm="RL2",
            env=env,
            num_tasks=self.num_tasks,
            seed=seed,
            labels=[f"episode_{i}" for i in range(1, self.returns.shape[1] + 1)],
            returns=self.returns.T.tolist(),
            groups=groups,
        )


def _modules_of(algo_or_module: Any) -> dict[Hashable, RLModule]:
    module = algo_or_module
    if not isinstance(module, RLModule):  # An Algorithm.
        if algo_or_module.env_runner is not None:
            module = algo_or_module.env_runner.module
        else:
            module = algo_or_module.env_runner_group.foreach_env_runner(
                lambda runner: runner.module, remote_worker_ids=[1], local_env_runner=False
            )[0]
    if isinstance(module, MultiRLModule):
        return dict(module.items())
    return {DEFAULT_MODULE_ID: module}


def _to_env_action(space: Any, normalize_actions: bool, clip_actions: bool) -> Callable[[Any], Any]:
    """Module action -> env action, as RLlib's ``NormalizeAndClipActions`` does in training:
    Box components (also inside Dict / Tuple spaces) unsquashed or clipped to their bounds."""
    struct = get_base_struct_from_space(space)
    if normalize_actions:
        return lambda action: unsquash_action(action, struct)
    if clip_actions:
        return lambda action: clip_action(action, struct)
    return lambda action: action


def _stack_states(states: list[Any]) -> Any:
    return tree.map_structure(lambda *xs: torch.stack([torch.as_tensor(x) for x in xs]), *states)


def meta_test(
    algo_or_module: Any,
    env_name: str | type | None = None,
    env_config: dict | None = None,
    num_tasks: int = 100,
    seed: int | None = 0,
    *,
    episodes_per_trial: int | None = None,
    tasks: Sequence[Task] | None = None,
    explore: bool = True,
    policy_mapping_fn: Callable[..., Hashable] | None = None,
    num_envs: int = 64,
    max_trial_steps: int = 1_000_000,
) -> MetaTestResult:
    """Runs one RL² trial on each of ``num_tasks`` new tasks and returns per-episode returns.

    No gradient step is taken: the policy adapts only through its recurrent state, which is
    carried across the inner episodes of a trial and reset between trials.

    Args:
        algo_or_module: A trained :class:`~rllib_marl_meta.algorithms.rl2.RL2` (its EnvRunner's
            module and, unless given here, its env, env_config, episodes_per_trial, policy
            mapping and action normalisation are used), a path to its checkpoint (restored,
            used, stopped), or an ``RLModule`` / ``MultiRLModule`` (then ``env_name`` and
            ``episodes_per_trial`` are required).
        env_name: The user's env (Tune-registered name, gymnasium id, class path or class).
        env_config: Its config.
        num_tasks: Tasks to test on, one trial each.
        seed: Seeds the task draw (``sample_tasks(num_tasks, seed=seed)``), each trial's env
            RNG and the action sampling.
        episodes_per_trial: Inner episodes per trial.
        tasks: Explicit tasks instead of drawing ``num_tasks`` of them.
        explore: Sample actions from the policy (as in training, the default) or act greedily.
        policy_mapping_fn: Multi-agent only: ``fn(agent_id, episode)`` -> module id.
        num_envs: Trials run in lock-step batches of this many envs.
        max_trial_steps: Safety limit on the steps of one trial.

    Returns:
        A :class:`MetaTestResult` with the return of every (task, inner episode).
    """
    if isinstance(algo_or_module, (str, os.PathLike)):
        from ray.rllib.algorithms.algorithm import Algorithm

        algo = Algorithm.from_checkpoint(os.fspath(algo_or_module))
        try:
            return meta_test(
                algo,
                env_name,
                env_config,
                num_tasks,
                seed,
                episodes_per_trial=episodes_per_trial,
                tasks=tasks,
                explore=explore,
                policy_mapping_fn=policy_mapping_fn,
                num_envs=num_envs,
                max_trial_steps=max_trial_steps,
            )
        finally:
            algo.stop()
    modules = _modules_of(algo_or_module)
    normalize_actions, clip_actions = True, False
    if not isinstance(algo_or_module, RLModule):
        config = algo_or_module.config
        env_name = config.inner_env if env_name is None else env_name
        env_config = config.env_config if env_config is None else env_config
        episodes_per_trial = episodes_per_trial or config.episodes_per_trial
        if policy_mapping_fn is None and config.is_multi_agent:
            policy_mapping_fn = config.policy_mapping_fn
        normalize_actions, clip_actions = config.normalize_actions, config.clip_actions
    if env_name is None or episodes_per_trial is None:
        raise ValueError("meta_test with a bare RLModule needs env_name and episodes_per_trial.")
    if policy_mapping_fn is None:
        only = next(iter(modules)) if len(modules) == 1 else None

        def policy_mapping_fn(agent_id, episode=None, **kwargs):
            return agent_id if agent_id in modules else only

    to_env_action = {
        mid: _to_env_action(m.action_space, normalize_actions, clip_actions)
        for mid, m in modules.items()
    }
    creator = TrialEnvCreator(env_creator(env_name), episodes_per_trial)
    make = lambda: creator(EnvContext(dict(env_config or {}), worker_index=0))  # noqa: E731

    envs = [make()]
    if tasks is None:
        tasks = draw_tasks(require_task_env(envs[0].env), num_tasks, seed=seed)
    tasks = list(tasks)
    multi_agent = isinstance(envs[0], MultiAgentRL2TrialWrapper)
    seeds = np.random.SeedSequence(seed).generate_state(len(tasks)) if seed is not None else None

    team: list[list[float]] = [[] for _ in tasks]
    per_agent: list[dict[str, list[float]]] = [{} for _ in tasks]
    was_training = {mid: m.training for mid, m in modules.items()}
    for m in modules.values():
        m.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            if seed is not None:
                torch.manual_seed(int(seed))
            for start in range(0, len(tasks), num_envs):
                batch = list(range(start, min(start + num_envs, len(tasks))))
                while len(envs) < len(batch):
                    envs.append(make())
                _run_batch(
                    envs[: len(batch)],
                    [tasks[i] for i in batch],
                    None if seeds is None else [int(seeds[i]) for i in batch],
                    modules,
                    policy_mapping_fn,
                    multi_agent,
                    explore,
                    to_env_action,
                    max_trial_steps,
                    [team[i] for i in batch],
                    [per_agent[i] for i in batch],
                )
    finally:
        for mid, m in modules.items():
            m.train(was_training[mid])
        for env in envs:
            env.close()
    agent_ids = sorted({a for d in per_agent for a in d})
    return MetaTestResult(
        returns=np.asarray(team, dtype=np.float64),
        tasks=tasks,
        agent_returns={
            a: np.asarray([d.get(a, [0.0] * episodes_per_trial) for d in per_agent])
            for a in agent_ids
        },
    )


def _run_batch(
    envs: list[Any],
    tasks: list[Task],
    seeds: list[int] | None,
    modules: dict[Hashable, RLModule],
    mapping_fn: Callable[..., Hashable],
    multi_agent: bool,
    explore: bool,
    to_env_action: dict[Hashable, Callable[[Any], Any]],
    max_trial_steps: int,
    team_out: list[list[float]],
    agent_out: list[dict[str, list[float]]],
) -> None:
    """Runs one trial per env in lock-step; appends results to ``team_out`` / ``agent_out``."""
    obs: list[dict] = []
    for k, (env, task) in enumerate(zip(envs, tasks)):
        o, _ = env.reset(seed=None if seeds is None else seeds[k], options={TASK: task})
        obs.append(o if multi_agent else {_SINGLE: o})
    module_of: dict[tuple[int, Hashable], Hashable] = {}
    states: dict[tuple[int, Hashable], Any] = {}
    active = set(range(len(envs)))
    for _ in range(max_trial_steps):
        if not active:
            return
        rows_by_module: dict[Hashable, list[tuple[int, Hashable]]] = {}
        for k in sorted(active):
            for agent in obs[k]:
                key = (k, agent)
                if key not in module_of:
                    module_of[key] = mapping_fn(agent, None) if multi_agent else DEFAULT_MODULE_ID
                    states[key] = modules[module_of[key]].get_initial_state()
                rows_by_module.setdefault(module_of[key], []).append(key)
        actions: dict[int, dict] = {k: {} for k in active}
        for mid, rows in rows_by_module.items():
            module = modules[mid]
            batch = {
                Columns.OBS: torch.as_tensor(
                    np.stack([obs[k][a] for k, a in rows]), dtype=torch.float32
                )[:, None],
                Columns.STATE_IN: _stack_states([states[r] for r in rows]),
            }
            out = module.forward_exploration(batch) if explore else module.forward_inference(batch)
            dist_cls = (
                module.get_exploration_action_dist_cls()
                if explore
                else module.get_inference_action_dist_cls()
            )
            dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS][:, 0])
            if not explore:
                dist = dist.to_deterministic()
            sampled = tree.map_structure(lambda t: t.cpu().numpy(), dist.sample())
            for b, (k, a) in enumerate(rows):
                states[(k, a)] = tree.map_structure(lambda s, b=b: s[b], out[Columns.STATE_OUT])
                action = tree.map_structure(lambda x, b=b: x[b], sampled)
                actions[k][a] = to_env_action[mid](action)
        for k in sorted(active):
            env = envs[k]
            if multi_agent:
                o, _, terminateds, truncateds, infos = env.step(actions[k])
                done = terminateds.get("__all__") or truncateds.get("__all__")
            else:
                o, _, terminated, truncated, info = env.step(actions[k][_SINGLE])
                o, infos, done = {_SINGLE: o}, {_SINGLE: info}, terminated or truncated
            obs[k] = o
            if done:
                active.discard(k)
                per_agent = {
                    str(a): list(map(float, info[INNER_EPISODE_RETURNS]))
                    for a, info in infos.items()
                    if INNER_EPISODE_RETURNS in info
                }
                n = max(len(r) for r in per_agent.values())
                team_out[k].extend(
                    sum(r[i] for r in per_agent.values() if i < len(r)) for i in range(n)
                )
                if multi_agent:
                    agent_out[k].update(per_agent)
    raise RuntimeError(f"An RL² trial ran longer than max_trial_steps={max_trial_steps}.")
