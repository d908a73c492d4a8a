"""MAML's EnvRunners: many tasks at once, a task per sub-env, nothing discarded.

RLlib's EnvRunners step all of their vector sub-envs together with one RLModule. MAML needs
each task's own episodes, sampled with that task's own (adapted) weights. Sampling the tasks one
after the other with all sub-envs on one task either wastes the sub-envs (many tasks, few
episodes each) or throws away the extra episodes they finish. These runners instead take a
runner's whole share of a meta-batch as one *episode plan*:

- the plan is a queue of ``(task, episode)`` items, ``episodes_per_task`` per task; every
  sub-env takes the next item at each of its resets (sets the task, resets with the episode's
  own seed) and tags the episode with the task (its reset info), so the episodes of one task
  may run on several sub-envs and a sub-env runs several tasks in turn;
- one ``sample(num_episodes=len(plan))`` call runs the plan through RLlib's own sampling loop
  and connectors; a sub-env with nothing left to do idles (it returns its last observation
  without stepping its env) until the last planned episode ends, and its idle steps are not
  counted as sampled;
- the RLModule acts on each row with the weights of that row's task: the tasks' parameters are
  stacked once per call and evaluated per row with ``torch.func.vmap`` over
  ``torch.func.functional_call``, or per group of rows when a batch holds few tasks;
- each row's exploration noise comes from its episode's own generator (one per agent in a
  multi-agent episode), seeded from the task's job seed and the episode index, so an episode
  does not depend on which runner or sub-env ran it, nor on which other tasks shared the batch
  (for RLlib's diagonal-Gaussian and categorical action distributions; others use torch's
  global generator).

:class:`MAMLEnvRunner` is the single-agent runner, :class:`MultiAgentMAMLEnvRunner` the
multi-agent one. Used when ``episodes_per_task`` is set; ``env_steps_per_task`` samples the
tasks one after the other (``sampling.py``).
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tree
from ray.rllib.connectors.module_to_env import NormalizeAndClipActions
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchCategorical,
    TorchDiagGaussian,
)
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

from rllib_marl_meta.tasks import require_task_env

# Reset-info key under which a planned episode carries the position of its task in the plan.
PLAN_TASK = "maml_plan_task"
# Up to this many distinct tasks in one batch are evaluated per group of rows, more by vmap.
MAX_GROUPS = 2


def episode_seed(job_seed: int, episode_index: int) -> int:
    """The reset and exploration seed of one episode of a task: a function of the two only."""
    return int(np.random.SeedSequence([job_seed, episode_index]).generate_state(1)[0])


class EpisodePlan:
    """The episodes one ``sample`` call runs: a queue of ``(task position, task, seed)``."""

    def __init__(self, items: list[tuple[int, Any, int]], num_rows: int) -> None:
        self.queue = deque(items)
        self.size = len(items)
        self.row_task = np.zeros(num_rows, dtype=np.int64)  # Task position of each sub-env.
        self.row_seed = np.zeros(num_rows, dtype=np.int64)
        self._rngs: dict[tuple[int, Any], np.random.Generator] = {}
        self.version = 0  # Changes whenever a sub-env changes task.

    def take(self, row: int) -> tuple[int, Any, int] | None:
        if not self.queue:
            return None
        position, task, seed = self.queue.popleft()
        self.version += self.row_task[row] != position
        self.row_task[row], self.row_seed[row] = position, seed
        self._rngs = {key: rng for key, rng in self._rngs.items() if key[0] != row}
        return position, task, seed

    def rng(self, row: int, agent: Any = None) -> np.random.Generator:
        """The exploration-noise generator of the episode on ``row`` (and ``agent``)."""
        key = (row, agent)
        if key not in self._rngs:
            agent_key = 0 if agent is None else zlib.crc32(str(agent).encode())
            self._rngs[key] = np.random.default_rng([int(self.row_seed[row]), agent_key])
        return self._rngs[key]


class PlannedSubEnv(gym.Wrapper):
    """A vector sub-env that runs the episodes of the runner's current plan (if any).

    Works for gymnasium envs and RLlib ``MultiAgentEnv`` s (whose steps are per-agent dicts).
    """

    def __init__(self, env: gym.Env, row: int, multi_agent: bool) -> None:
        super().__init__(env)
        self.row = row
        self.multi_agent = multi_agent
        self.plan: EpisodePlan | None = None
        self.idle = False
        self.idle_steps = 0  # Steps taken while idle since the runner last counted them.
        self._task_env = require_task_env(env)
        self._last_obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.plan is None:
            return self.env.reset(seed=seed, options=options)
        item = self.plan.take(self.row)
        self.idle = item is None
        if item is None:
            if self._last_obs is None:
                self._last_obs, _ = self.env.reset()
            return self._last_obs, self._tag({}, -1)
        position, task, seed_ = item
        self._task_env.set_task(task)
        obs, info = self.env.reset(seed=seed_)
        self._last_obs = obs
        return obs, self._tag(info, position)

    def step(self, action):
        if self.plan is not None and self.idle:
            self.idle_steps += 1
            if not self.multi_agent:
                return self._last_obs, 0.0, False, False, {}
            agents = list(self._last_obs)
            not_done = {a: False for a in agents} | {"__all__": False}
            return self._last_obs, dict.fromkeys(agents, 0.0), not_done, dict(not_done), {}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self.multi_agent or obs:
            self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def _tag(self, info: dict, position: int) -> dict:
        if not self.multi_agent:
            return {**info, PLAN_TASK: position}
        return {a: {**info.get(a, {}), PLAN_TASK: position} for a in self._last_obs}


class _Exploration(torch.nn.Module):
    """An RLModule's exploration forward as ``forward``, for ``torch.func.functional_call``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict) -> dict:
        # The class's method: the runner may shadow the instance's `forward_exploration`.
        return type(self.module).forward_exploration(self.module, batch)


class _RowWeights:
    """One RLModule's weights per task, and the forward of rows that belong to many tasks."""

    def __init__(self, module: torch.nn.Module, task_weights: list[dict] | None) -> None:
        """``task_weights`` None: the module keeps its own weights (it is not meta-trained)."""
        self.module = module
        self.shared = task_weights is None or all(w is task_weights[0] for w in task_weights)
        self.dist_cls = module.get_exploration_action_dist_cls()
        if self.shared:  # One set of weights (theta, before adaptation): a plain forward.
            if task_weights is not None:
                module.set_state(task_weights[0])
            return
        device = next(module.parameters()).device
        self.wrapper = _Exploration(module)
        self.stacked = {
            f"module.{name}": torch.as_tensor(
                np.stack([np.asarray(w[name]) for w in task_weights]), device=device
            )
            for name, _ in module.named_parameters()
        }
        self._layout: tuple[Any, Any] | None = None

    def inputs(self, batch: dict, row_tasks: np.ndarray, key: Any) -> torch.Tensor:
        """Action-distribution inputs of each row with its task's weights.

        A forward per group of rows costs about half a vmapped forward over 10 to 20 rows
        (measured with a (64, 64) MLP), so up to ``MAX_GROUPS`` tasks in a batch go by groups.
        The layout is rebuilt only when ``key`` (which rows hold which task) changes.
        """
        if self.shared:
            return type(self.module).forward_exploration(self.module, batch)[
                Columns.ACTION_DIST_INPUTS
            ]
        if self._layout is None or self._layout[0] != key:
            positions = np.unique(row_tasks)
            if len(positions) <= MAX_GROUPS or set(batch) != {Columns.OBS}:
                layout: Any = [
                    (
                        torch.as_tensor(np.flatnonzero(row_tasks == position)),
                        {name: stack[position] for name, stack in self.stacked.items()},
                    )
                    for position in positions
                ]
            else:
                rows = torch.as_tensor(row_tasks)
                layout = {name: stack[rows] for name, stack in self.stacked.items()}
            self._layout = (key, layout)
        layout = self._layout[1]
        if isinstance(layout, dict):

            def one_row(row_params, obs):
                out = torch.func.functional_call(
                    self.wrapper, row_params, ({Columns.OBS: tree.map_structure(_one, obs)},)
                )
                return out[Columns.ACTION_DIST_INPUTS][0]

            return torch.func.vmap(one_row)(layout, batch[Columns.OBS])
        if len(layout) == 1:  # One task in the whole batch.
            out = torch.func.functional_call(self.wrapper, layout[0][1], (batch,))
            return out[Columns.ACTION_DIST_INPUTS]
        inputs = None
        for index, task_params in layout:
            group = tree.map_structure(lambda x, i=index: x[i], batch)
            group_inputs = torch.func.functional_call(self.wrapper, task_params, (group,))[
                Columns.ACTION_DIST_INPUTS
            ]
            if inputs is None:
                inputs = group_inputs.new_empty((len(row_tasks), *group_inputs.shape[1:]))
            inputs[index] = group_inputs
        return inputs

    def sample(self, inputs: torch.Tensor, rngs: list[np.random.Generator]) -> dict:
        """Actions (each row with its own generator) and their log-probabilities."""
        dist = self.dist_cls.from_logits(inputs)
        if issubclass(self.dist_cls, TorchDiagGaussian):
            loc, log_std = inputs.chunk(2, dim=-1)
            noise = np.stack([rng.standard_normal(loc.shape[-1]) for rng in rngs])
            actions = loc + log_std.exp() * torch.as_tensor(noise, dtype=loc.dtype)
        elif issubclass(self.dist_cls, TorchCategorical):
            uniform = np.stack([rng.random(inputs.shape[-1]) for rng in rngs])
            gumbel = -torch.log(-torch.log(torch.as_tensor(uniform, dtype=inputs.dtype)))
            actions = torch.argmax(inputs + gumbel, dim=-1)
        else:
            actions = dist.sample()
        return {
            Columns.ACTION_DIST_INPUTS: inputs,
            Columns.ACTIONS: actions,
            Columns.ACTION_LOGP: dist.logp(actions),
        }


class _PlanSamplingMixin:
    """What both runners share: sub-env wrapping, running a plan, sorting episodes by task."""

    def make_env(self) -> None:
        super().make_env()
        vector_env = self.env.unwrapped
        rows = getattr(vector_env, "envs", None)
        multi_agent = isinstance(self, MultiAgentEnvRunner)
        if isinstance(rows, list) and len(rows) == self.num_envs:
            vector_env.envs = [PlannedSubEnv(env, i, multi_agent) for i, env in enumerate(rows)]
            self._planned_rows = vector_env.envs
        else:  # An async vector env: its sub-envs live in other processes.
            self._planned_rows = None

    @property
    def supports_plans(self) -> bool:
        return getattr(self, "_planned_rows", None) is not None

    def sample_plan(self, jobs: list, episodes_per_task: int) -> list[list]:
        """Samples ``episodes_per_task`` episodes of every job; returns them per job."""
        items = [
            (position, job.task, episode_seed(job.seed, e))
            for position, job in enumerate(jobs)
            for e in range(episodes_per_task)
        ]
        plan = EpisodePlan(items, self.num_envs)
        forward = self._plan_forward(jobs, plan)
        for row in self._planned_rows:
            row.plan = plan
        self.module.forward_exploration = forward  # Instance attribute: shadows the method.
        try:
            episodes = self.sample(num_episodes=plan.size, explore=True)
        finally:
            del self.module.forward_exploration
            for row in self._planned_rows:
                row.plan = None
            self._needs_initial_reset = True
        per_job: list[list] = [[] for _ in jobs]
        for episode in episodes:
            per_job[self._plan_task_of(episode)].append(episode)
        return per_job

    def _row_is_idle(self, episode: Any) -> bool:
        rows = getattr(self, "_planned_rows", None) or []
        for row, ongoing in zip(rows, self._ongoing_episodes):
            if ongoing is episode:
                return row.plan is not None and row.idle
        return False


class MAMLEnvRunner(_PlanSamplingMixin, SingleAgentEnvRunner):
    """``SingleAgentEnvRunner`` that samples a whole plan of MAML task episodes at once."""

    def _plan_forward(self, jobs: list, plan: EpisodePlan):
        weights = _RowWeights(self.module, [job.weights[DEFAULT_MODULE_ID] for job in jobs])

        @torch.no_grad()
        def forward(batch: dict, **kwargs) -> dict:
            inputs = weights.inputs(batch, plan.row_task, plan.version)
            return weights.sample(inputs, [plan.rng(row) for row in range(self.num_envs)])

        return forward

    def _plan_task_of(self, episode: Any) -> int:
        return episode.get_infos(0)[PLAN_TASK]

    def _increase_sampled_metrics(self, num_steps, num_episodes_completed):
        # Idle rows do not step their envs: their steps are neither sampled nor counted.
        rows = getattr(self, "_planned_rows", None) or []
        idle = sum(row.idle_steps for row in rows) if rows else 0
        for row in rows:
            row.idle_steps = 0
        return super()._increase_sampled_metrics(num_steps - idle, num_episodes_completed)


class MultiAgentMAMLEnvRunner(_PlanSamplingMixin, MultiAgentEnvRunner):
    """``MultiAgentEnvRunner`` that samples a whole plan of MAML task episodes at once."""

    def _plan_forward(self, jobs: list, plan: EpisodePlan):
        modules = {
            mid: _RowWeights(
                self.module[mid],
                [job.weights[mid] for job in jobs] if mid in jobs[0].weights else None,
            )
            for mid in self.module.keys()
        }

        @torch.no_grad()
        def forward(batch: dict, **kwargs) -> dict:
            row_of_episode = {ep.id_: i for i, ep in enumerate(self._ongoing_episodes)}
            renamed = self._shared_data.get("vector_env_episodes_map") or {}
            rows_of = self._shared_data.get("memorized_map_structure") or {}
            out = {}
            for mid, module_batch in batch.items():
                rows = [
                    (row_of_episode[renamed.get(eps_id, eps_id)], agent)
                    for eps_id, agent in rows_of[mid]
                ]
                row_tasks = plan.row_task[[row for row, _ in rows]]
                key = (plan.version, tuple(row for row, _ in rows))
                inputs = modules[mid].inputs(module_batch, row_tasks, key)
                out[mid] = modules[mid].sample(inputs, [plan.rng(r, a) for r, a in rows])
            return out

        return forward

    def _plan_task_of(self, episode: Any) -> int:
        infos = episode.get_infos(0)
        return next(iter(infos.values()))[PLAN_TASK]

    def _increase_sampled_metrics(self, num_steps, next_obs, episode):
        # Idle rows do not step their envs: their steps are neither sampled nor counted.
        if self._row_is_idle(episode):
            return 0
        return super()._increase_sampled_metrics(num_steps, next_obs, episode)


class BatchedNormalizeAndClipActions(NormalizeAndClipActions):
    """RLlib's ``NormalizeAndClipActions`` on the whole batch at once, before unbatching.

    RLlib's piece deep-copies the actions and unsquashes (or clips) them one batch item at a
    time, which costs about a quarter of a single-agent EnvRunner's time per vector step with
    20 sub-envs. Unsquashing and clipping are elementwise, so they apply to the batched actions
    in one numpy call with the same result (tested against RLlib's piece).
    """

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs):
        if self.normalize_actions or self.clip_actions:
            to_env = unsquash_action if self.normalize_actions else clip_action
            actions = tree.map_structure(np.array, batch[Columns.ACTIONS])  # A copy.
            batch[Columns.ACTIONS_FOR_ENV] = to_env(actions, self._action_space_struct)
        return batch


def _one(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(0)
