"""MAML's single-agent EnvRunner: many tasks at once, a task per sub-env, nothing discarded.

RLlib's ``SingleAgentEnvRunner`` steps all of its vector sub-envs together with one RLModule.
MAML needs each task's own episodes, sampled with that task's own (adapted) weights. Sampling
the tasks one after the other with all sub-envs on one task either wastes the sub-envs (many
tasks, few episodes each) or throws away the extra episodes they finish. This runner instead
takes a runner's whole share of a meta-batch as one *episode plan*:

- the plan is a queue of ``(task, episode)`` items, ``episodes_per_task`` per task; every
  sub-env takes the next item at each of its resets (sets the task, resets with the episode's
  own seed) and tags the episode with the task (its reset info), so the episodes of one task
  may run on several sub-envs and a sub-env runs several tasks in turn;
- one ``sample(num_episodes=len(plan))`` call runs the plan through RLlib's own sampling loop
  and connectors; a sub-env with nothing left to do idles (it returns its last observation
  without stepping its env) until the last planned episode ends, and its idle steps are not
  counted as sampled;
- the RLModule acts on each row with the weights of that row's task: the runner's tasks'
  parameters are stacked once per call and evaluated per row with ``torch.func.vmap`` over
  ``torch.func.functional_call`` (or, for a batch with more columns than observations, per
  group of rows);
- each row's exploration noise comes from its episode's own generator (seeded from the task's
  job seed and the episode index), so an episode does not depend on which runner or sub-env
  ran it, nor on which other tasks shared the batch (for RLlib's diagonal-Gaussian and
  categorical action distributions; others use torch's global generator).

Used when ``episodes_per_task`` is set and the env is single-agent; otherwise MAML samples the
tasks one after the other (``sampling.py``).
"""

from __future__ import annotations

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
        self.row_task = np.zeros(num_rows, dtype=np.int64)  # Task position of each row.
        idle = np.random.default_rng(0)
        self.row_rng: list[np.random.Generator] = [idle] * num_rows
        self.idle_steps = 0
        self.version = 0  # Changes whenever a row changes task.

    def take(self, row: int) -> tuple[int, Any, int] | None:
        if not self.queue:
            return None
        position, task, seed = self.queue.popleft()
        self.version += self.row_task[row] != position
        self.row_task[row] = position
        self.row_rng[row] = np.random.default_rng(seed)
        return position, task, seed


class PlannedSubEnv(gym.Wrapper):
    """A vector sub-env that runs the episodes of the runner's current plan (if any)."""

    def __init__(self, env: gym.Env, row: int) -> None:
        super().__init__(env)
        self.row = row
        self.plan: EpisodePlan | None = None
        self._task_env = require_task_env(env)
        self._idle = False
        self._last_obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.plan is None:
            return self.env.reset(seed=seed, options=options)
        item = self.plan.take(self.row)
        self._idle = item is None
        if item is None:
            if self._last_obs is None:
                self._last_obs, _ = self.env.reset()
            return self._last_obs, {PLAN_TASK: -1}
        position, task, episode_seed_ = item
        self._task_env.set_task(task)
        obs, info = self.env.reset(seed=episode_seed_)
        self._last_obs = obs
        return obs, {**info, PLAN_TASK: position}

    def step(self, action):
        if self.plan is not None and self._idle:
            self.plan.idle_steps += 1
            return self._last_obs, 0.0, False, False, {}
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._last_obs = obs
        return obs, reward, terminated, truncated, info


class _Exploration(torch.nn.Module):
    """The RLModule's exploration forward as ``forward``, for ``torch.func.functional_call``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict) -> dict:
        # The class's method: the instance's `forward_exploration` is `_PerRowForward`.
        return type(self.module).forward_exploration(self.module, batch)


class MAMLEnvRunner(SingleAgentEnvRunner):
    """``SingleAgentEnvRunner`` that samples a whole plan of MAML task episodes at once."""

    def make_env(self) -> None:
        super().make_env()
        vector_env = self.env.unwrapped
        rows = getattr(vector_env, "envs", None)
        if isinstance(rows, list) and len(rows) == self.num_envs:
            vector_env.envs = [PlannedSubEnv(env, i) for i, env in enumerate(rows)]
            self._planned_rows = vector_env.envs
        else:  # An async vector env: its sub-envs live in other processes.
            self._planned_rows = None
        self._plan: EpisodePlan | None = None

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
        forward = _PerRowForward(
            self.module, [job.weights[DEFAULT_MODULE_ID] for job in jobs], plan
        )
        for row in self._planned_rows:
            row.plan = plan
        self._plan = plan
        self.module.forward_exploration = forward  # Instance attribute: shadows the method.
        try:
            episodes = self.sample(num_episodes=plan.size, explore=True)
        finally:
            del self.module.forward_exploration
            for row in self._planned_rows:
                row.plan = None
            self._plan = None
            self._needs_initial_reset = True
        per_job: list[list] = [[] for _ in jobs]
        for episode in episodes:
            per_job[episode.get_infos(0)[PLAN_TASK]].append(episode)
        return per_job

    def _increase_sampled_metrics(self, num_steps, num_episodes_completed):
        # Idle rows do not step their envs: their steps are neither sampled nor counted.
        idle = self._plan.idle_steps if getattr(self, "_plan", None) is not None else 0
        return super()._increase_sampled_metrics(num_steps - idle, num_episodes_completed)


class _PerRowForward:
    """``forward_exploration`` with each row's task weights and each episode's own noise."""

    def __init__(self, module, task_weights: list[dict], plan: EpisodePlan) -> None:
        self.module = module
        self.plan = plan
        self.method = type(module).forward_exploration.__get__(module)
        names = [name for name, _ in module.named_parameters()]
        shared = all(w is task_weights[0] for w in task_weights)
        if shared:  # One set of weights (theta, before adaptation): a plain forward.
            module.set_state(task_weights[0])
            self.stacked = None
        else:
            device = next(module.parameters()).device
            self.stacked = {
                f"module.{name}": torch.as_tensor(
                    np.stack([np.asarray(w[name]) for w in task_weights]), device=device
                )
                for name in names
            }
            self.wrapper = _Exploration(module)
        self.dist_cls = module.get_exploration_action_dist_cls()
        self._layout: tuple[int, Any] | None = None  # (plan version, rows' params or groups)

    @torch.no_grad()
    def __call__(self, batch: dict, **kwargs) -> dict:
        if self.stacked is None:
            out = self.method(batch, **kwargs)
        else:
            out = self._per_row(batch)
        out[Columns.ACTIONS], out[Columns.ACTION_LOGP] = self._sample(
            out[Columns.ACTION_DIST_INPUTS]
        )
        return out

    def _per_row(self, batch: dict) -> dict:
        """Each row with its task's weights: a vmap over rows, or a call per task's rows.

        A forward per group of rows costs about half a vmapped forward over 10 to 20 rows
        (measured with a (64, 64) MLP), so up to ``MAX_GROUPS`` distinct tasks in a batch go
        by groups. The layout is rebuilt only when a row changes task.
        """
        if self._layout is None or self._layout[0] != self.plan.version:
            positions = np.unique(self.plan.row_task)
            if len(positions) <= MAX_GROUPS or set(batch) != {Columns.OBS}:
                groups = [
                    (
                        torch.as_tensor(np.flatnonzero(self.plan.row_task == position)),
                        {name: stack[position] for name, stack in self.stacked.items()},
                    )
                    for position in positions
                ]
                self._layout = (self.plan.version, groups)
            else:
                rows = torch.as_tensor(self.plan.row_task)
                params = {name: stack[rows] for name, stack in self.stacked.items()}
                self._layout = (self.plan.version, params)
        layout = self._layout[1]
        if isinstance(layout, dict):

            def one_row(row_params, obs):
                out = torch.func.functional_call(
                    self.wrapper, row_params, ({Columns.OBS: tree.map_structure(_one, obs)},)
                )
                return out[Columns.ACTION_DIST_INPUTS][0]

            inputs = torch.func.vmap(one_row)(layout, batch[Columns.OBS])
            return {Columns.ACTION_DIST_INPUTS: inputs}
        if len(layout) == 1:  # One task in the whole batch.
            out = torch.func.functional_call(self.wrapper, layout[0][1], (batch,))
            return {Columns.ACTION_DIST_INPUTS: out[Columns.ACTION_DIST_INPUTS]}
        inputs = None
        for index, task_params in layout:
            group = tree.map_structure(lambda x, i=index: x[i], batch)
            out = torch.func.functional_call(self.wrapper, task_params, (group,))
            group_inputs = out[Columns.ACTION_DIST_INPUTS]
            if inputs is None:
                inputs = group_inputs.new_empty((len(self.plan.row_task), *group_inputs.shape[1:]))
            inputs[index] = group_inputs
        return {Columns.ACTION_DIST_INPUTS: inputs}

    def _sample(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rngs = self.plan.row_rng
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
        return actions, dist.logp(actions)


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
