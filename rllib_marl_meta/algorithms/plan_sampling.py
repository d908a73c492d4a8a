"""Sampling an *episode plan*: exactly the episodes of given tasks, on RLlib's EnvRunners.

RLlib's EnvRunners step all of their vector sub-envs together with one RLModule and keep
whatever episodes end. Meta-RL needs a given number of episodes of each of several tasks, each
episode tagged with its task. A plan does that inside one ``sample(num_episodes=...)`` call,
through RLlib's own sampling loop and connectors (or, for a single-agent runner with RLlib's
default connectors, in an equivalent loop of its own that skips their per-step cost; see
:class:`SingleAgentPlanMixin`):

- the plan is a queue of ``(task, episode)`` items; every sub-env takes the next item at each
  of its resets (sets the task through the task API, resets with the episode's own seed) and
  tags the episode with the task (its reset info), so a task's episodes may run on several
  sub-envs and a sub-env runs several tasks in turn;
- a sub-env with nothing left to do idles (returns its last observation without stepping its
  env) until the last planned episode ends, and its idle steps are not counted as sampled;
- each row's exploration noise can come from its episode's own generator
  (:meth:`EpisodePlan.rng`, :func:`sample_actions`), seeded from the task's seed and the episode
  index, so an episode does not depend on which runner or sub-env ran it.

MAML's runners (``maml/env_runner.py``) sample each task with its own adapted weights this way;
RL²'s meta-test (``rl2/meta_test.py``) runs one trial per held-out task.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tree
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors import env_to_module, module_to_env
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchCategorical,
    TorchDiagGaussian,
)
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics import SAMPLE_TIMER, WEIGHTS_SEQ_NO
from ray.rllib.utils.spaces.space_utils import (
    clip_action,
    get_base_struct_from_space,
    unsquash_action,
)

from rllib_marl_meta.tasks import require_task_env

# Reset-info key under which a planned episode carries the position of its task in the plan.
PLAN_TASK = "plan_task"


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


def _to_module(observations: np.ndarray, device: torch.device) -> torch.Tensor:
    """The batched observations as RLlib's ``NumpyToTensor`` gives them to the module."""
    tensor = torch.from_numpy(observations)
    if tensor.is_floating_point() and tensor.dtype != torch.float16:
        tensor = tensor.float()
    return tensor.to(device)


def action_transform(normalize: bool, clip: bool, action_space_struct: Any):
    """Batched actions to what the env gets: unsquashed (``normalize``) or clipped (``clip``)
    as RLlib's ``NormalizeAndClipActions`` does, in one numpy call for the whole batch.

    A flat space gets its own function with the bounds looked up once, the same arithmetic in
    the same order as RLlib's ``unsquash_action`` / ``clip_action``: at a few dozen rows these
    spend most of their time walking the space's structure (tested equal for every kind).
    """
    if not (normalize or clip):
        return lambda actions: actions
    space = action_space_struct
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
        if not normalize:
            return lambda actions: np.clip(actions, low, high)
        bounded = np.all(space.bounded_below) and np.all(space.bounded_above)
        if bounded and space.dtype in (np.float32, np.float64):
            span = high - low
            return lambda actions: np.clip(low + (actions + 1.0) * span / 2.0, low, high)
        if bounded and np.issubdtype(space.dtype, np.integer):
            return lambda actions: low + actions
        return np.array
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return np.array  # Neither unsquashed nor clipped: a copy, as RLlib's piece gives.
    to_env = unsquash_action if normalize else clip_action

    def transform(actions):
        copied = tree.map_structure(np.array, actions)  # RLlib's piece works on a copy too.
        return to_env(copied, action_space_struct)

    return transform


class BatchedNormalizeAndClipActions(module_to_env.NormalizeAndClipActions):
    """RLlib's ``NormalizeAndClipActions`` on the whole batch at once, before unbatching.

    RLlib's piece deep-copies the actions and unsquashes (or clips) them one batch item at a
    time, which costs about a quarter of a single-agent EnvRunner's time per vector step with
    20 sub-envs (a tenth of a multi-agent one's). Unsquashing and clipping are elementwise, so
    they apply to the batched actions in one numpy call with the same result (tested against
    RLlib's piece). Multi-agent: each module's rows, grouped by agent when its agents' action
    spaces differ. Placed after ``TensorToNumpy`` (see :func:`use_batched_action_transform`).
    """

    def recompute_output_action_space(self, input_observation_space, input_action_space):
        self._transforms: dict = {}  # Per agent (None: single-agent), built at first use.
        self._space_of: dict = {}  # Per agent, the first agent seen with an equal space.
        return super().recompute_output_action_space(input_observation_space, input_action_space)

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs):
        if not (self.normalize_actions or self.clip_actions):
            return batch
        rows_of = (shared_data or {}).get("memorized_map_structure")
        if not isinstance(rows_of, dict):  # Single-agent.
            batch[Columns.ACTIONS_FOR_ENV] = self._transform(None)(batch[Columns.ACTIONS])
            return batch
        for module_id, module_batch in batch.items():
            actions = module_batch[Columns.ACTIONS]
            row_agents = [agent for _, agent in rows_of[module_id]]
            spaces = {self._space_key(agent) for agent in dict.fromkeys(row_agents)}
            if len(spaces) == 1:
                module_batch[Columns.ACTIONS_FOR_ENV] = self._transform(spaces.pop())(actions)
                continue
            agents = np.array(row_agents, dtype=object)
            for_env = np.array(actions)
            for agent in dict.fromkeys(row_agents):
                rows = agents == agent
                for_env[rows] = self._transform(agent)(actions[rows])
            module_batch[Columns.ACTIONS_FOR_ENV] = for_env
        return batch

    def _space_key(self, agent: Any) -> Any:
        """The first agent seen whose action space equals ``agent``'s (compared once)."""
        if agent not in self._space_of:
            struct = self._action_space_struct[agent]
            seen = (a for a in self._space_of.values() if self._action_space_struct[a] == struct)
            self._space_of[agent] = next(seen, agent)
        return self._space_of[agent]

    def _transform(self, agent: Any):
        """The batched transform of ``agent``'s action space (None: single-agent)."""
        if agent not in self._transforms:
            struct = self._action_space_struct
            self._transforms[agent] = action_transform(
                self.normalize_actions,
                self.clip_actions,
                struct if agent is None else struct[agent],
            )
        return self._transforms[agent]


def use_batched_action_transform(
    pipeline: Any, normalize: bool, clip: bool, multi_agent: bool
) -> None:
    """Swaps RLlib's per-item ``NormalizeAndClipActions`` in a module-to-env ``pipeline`` for
    :class:`BatchedNormalizeAndClipActions` after ``TensorToNumpy``. Multi-agent only where
    every agent's action space is flat (one array per module batch, split by rows); else the
    pipeline stays as it is."""
    names = [type(piece).__name__ for piece in pipeline.connectors]
    if not {"NormalizeAndClipActions", "TensorToNumpy"} <= set(names):
        return
    if multi_agent:
        agent_spaces = getattr(pipeline.input_action_space, "spaces", None) or {}
        if not agent_spaces or not all(
            isinstance(space, _FLAT_ACTION_SPACES) for space in agent_spaces.values()
        ):
            return
    pipeline.remove("NormalizeAndClipActions")
    batched = BatchedNormalizeAndClipActions(normalize_actions=normalize, clip_actions=clip)
    pipeline.insert_after("TensorToNumpy", batched)


def sample_actions(
    dist_cls: type, inputs: torch.Tensor, rngs: list[np.random.Generator]
) -> dict[str, torch.Tensor]:
    """Actions drawn row by row with each row's own generator, and their log-probabilities.

    Exact for RLlib's diagonal-Gaussian and categorical distributions (any shape after the
    batch dimension, e.g. a recurrent module's time dimension); others fall back to torch's
    global generator.
    """
    if issubclass(dist_cls, TorchDiagGaussian):
        loc, log_std = inputs.chunk(2, dim=-1)
        noise = torch.as_tensor(
            np.stack([rng.standard_normal(loc.shape[1:]) for rng in rngs]), dtype=loc.dtype
        )
        actions = loc + log_std.exp() * noise
        # The Gaussian's log-density at loc + std * noise in closed form: a tenth of the cost
        # of building the torch distribution at every step (tested equal to RLlib's `logp`).
        logp = (-0.5 * noise.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return {
            Columns.ACTION_DIST_INPUTS: inputs,
            Columns.ACTIONS: actions,
            Columns.ACTION_LOGP: logp,
        }
    dist = dist_cls.from_logits(inputs)
    if issubclass(dist_cls, TorchCategorical):
        uniform = np.stack([rng.random(inputs.shape[1:]) for rng in rngs])
        gumbel = -torch.log(-torch.log(torch.as_tensor(uniform, dtype=inputs.dtype)))
        actions = torch.argmax(inputs + gumbel, dim=-1)
    else:
        actions = dist.sample()
    return {
        Columns.ACTION_DIST_INPUTS: inputs,
        Columns.ACTIONS: actions,
        Columns.ACTION_LOGP: dist.logp(actions),
    }


class PlanSamplingMixin:
    """An EnvRunner that can sample a plan: sub-env wrapping, running it, sorting by task.

    Subclasses may give ``_plan_forward(jobs, plan)``: the exploration forward to use while the
    plan runs (None: the module's own). Mix in before RLlib's runner class, through
    :class:`SingleAgentPlanMixin` or :class:`MultiAgentPlanMixin`.
    """

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

    def sample_plan(self, jobs: list, episodes_per_task: int, explore: bool = True) -> list[list]:
        """Samples ``episodes_per_task`` episodes of every job; returns them per job.

        A job has a ``task`` and a ``seed`` (the seed of its episodes' resets and noise).
        """
        items = [
            (position, job.task, episode_seed(job.seed, e))
            for position, job in enumerate(jobs)
            for e in range(episodes_per_task)
        ]
        plan = EpisodePlan(items, self.num_envs)
        forward = self._plan_forward(jobs, plan) if explore else None
        for row in self._planned_rows:
            row.plan = plan
        # Eval mode once for the plan, not at every forward pass (see maml/env_runner.py).
        modules = self.module.values() if isinstance(self.module, MultiRLModule) else [self.module]
        training = {module: module.training for module in modules}
        for module in training:
            module.eval()
        try:
            if forward is not None and self._can_sample_directly():
                episodes = self._sample_plan_directly(plan, forward)
            else:
                episodes = self._sample_plan_with_rllib(plan, forward, explore)
        finally:
            for module, mode in training.items():
                module.train(mode)
            for row in self._planned_rows:
                row.plan = None
            self._needs_initial_reset = True
        per_job: list[list] = [[] for _ in jobs]
        for episode in episodes:
            per_job[self._plan_task_of(episode)].append(episode)
        return per_job

    def _sample_plan_with_rllib(self, plan: EpisodePlan, forward: Any, explore: bool) -> list:
        """The plan through RLlib's own ``sample`` loop, connectors and callbacks."""
        if forward is not None:  # Instance attribute: shadows the method.
            self.module.forward_exploration = forward
        try:
            return self.sample(num_episodes=plan.size, explore=explore)
        finally:
            if forward is not None:
                del self.module.forward_exploration

    def _can_sample_directly(self) -> bool:
        return False

    def _sample_plan_directly(self, plan: EpisodePlan, forward: Any) -> list:
        raise NotImplementedError

    def _row_is_idle(self, episode: Any) -> bool:
        rows = getattr(self, "_planned_rows", None) or []
        for row, ongoing in zip(rows, self._ongoing_episodes):
            if ongoing is episode:
                return row.plan is not None and row.idle
        return False

    def _plan_forward(self, jobs: list, plan: EpisodePlan) -> Any:
        return None


# RLlib's default connector pieces of a ``SingleAgentEnvRunner`` (with MAML's batched action
# piece): a runner whose pipelines hold exactly these types (no subclasses, which may change
# what they do) can sample a plan directly.
_DEFAULT_ENV_TO_MODULE = {
    env_to_module.AddObservationsFromEpisodesToBatch,
    env_to_module.AddTimeDimToBatchAndZeroPad,
    env_to_module.AddStatesFromEpisodesToBatch,
    env_to_module.BatchIndividualItems,
    env_to_module.NumpyToTensor,
}
_DEFAULT_MODULE_TO_ENV = {
    module_to_env.GetActions,
    module_to_env.TensorToNumpy,
    module_to_env.NormalizeAndClipActions,
    BatchedNormalizeAndClipActions,
    module_to_env.UnBatchToIndividualItems,
    module_to_env.RemoveSingleTsTimeRankFromBatch,
    module_to_env.ListifyDataForVectorEnv,
}
_EPISODE_CALLBACKS = ("created", "start", "step", "end")
# Action spaces whose batched actions are one array (the direct loop's assumption).
_FLAT_ACTION_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete)


class _EpisodeRecord:
    """One planned episode's data, collected step by step as plain lists."""

    __slots__ = ("observations", "infos", "actions", "rewards", "outputs", "start")

    def __init__(self, observation: Any, info: dict, output_keys) -> None:
        self.observations, self.infos = [observation], [info]
        self.actions: list = []
        self.rewards: list = []
        self.outputs: dict[str, list] = {key: [] for key in output_keys}
        self.start = time.perf_counter()


class SingleAgentPlanMixin(PlanSamplingMixin):
    """Plan sampling for a ``SingleAgentEnvRunner``.

    With RLlib's default connectors and no episode callbacks, a plan is sampled by
    :meth:`_sample_plan_directly`: the same episodes as RLlib's loop (tested equal), without its
    per-step, per-sub-env connector and episode bookkeeping (about twice as fast on the
    built-in envs). Anything else goes through RLlib's loop.
    """

    # Off: always sample through RLlib's own loop (for comparisons and debugging).
    sample_directly: bool = True

    def _can_sample_directly(self) -> bool:
        cfg = self.config
        pieces_in = {type(c) for c in self._env_to_module.connectors}
        pieces_out = {type(c) for c in self._module_to_env.connectors}
        return (
            self.sample_directly
            and isinstance(self.env.single_observation_space, gym.spaces.Box)
            and isinstance(self.env.single_action_space, _FLAT_ACTION_SPACES)
            and not self.module.is_stateful()
            and pieces_in <= _DEFAULT_ENV_TO_MODULE
            and pieces_out <= _DEFAULT_MODULE_TO_ENV
            and all(type(c) is RLlibCallback for c in self._callbacks)
            and not any(getattr(cfg, f"callbacks_on_episode_{w}") for w in _EPISODE_CALLBACKS)
            and not cfg.callbacks_on_sample_end
        )

    def _sample_plan_directly(self, plan: EpisodePlan, forward: Any) -> list:
        """Runs the plan's episodes: one batched forward per step, sub-envs stepped in turn.

        Idle rows (nothing left in the plan) join the forward pass, as in RLlib's loop, but are
        not stepped. Episodes are built once they end, with the metrics RLlib logs for them.
        """
        rows = self._planned_rows
        obs_space = self.env.single_observation_space
        act_space = self.env.single_action_space
        to_env = action_transform(
            self.config.normalize_actions,
            self.config.clip_actions,
            get_base_struct_from_space(act_space),
        )
        observations = np.zeros((len(rows), *obs_space.shape), dtype=obs_space.dtype)
        records: list[_EpisodeRecord | None] = [None] * len(rows)
        output_keys = (Columns.ACTION_DIST_INPUTS, Columns.ACTION_LOGP)
        done: list[SingleAgentEpisode] = []
        steps = 0
        device = next(iter(self.module.parameters()), torch.empty(0)).device

        def start(index: int) -> None:
            observation, info = rows[index].reset()
            observations[index] = observation
            idle = rows[index].idle
            records[index] = (
                None if idle else _EpisodeRecord(observations[index].copy(), info, output_keys)
            )

        with self.metrics.log_time(SAMPLE_TIMER):
            for index in range(len(rows)):
                start(index)
            while any(record is not None for record in records):
                out = forward({Columns.OBS: _to_module(observations, device)})
                out = {key: value.cpu().numpy() for key, value in out.items()}
                actions = out[Columns.ACTIONS]
                actions_for_env = to_env(actions)
                for index, record in enumerate(records):
                    if record is None:
                        continue
                    observation, reward, terminated, truncated, info = rows[index].step(
                        actions_for_env[index]
                    )
                    observations[index] = observation
                    steps += 1
                    record.observations.append(observations[index].copy())
                    record.infos.append(info)
                    record.actions.append(actions[index])
                    record.rewards.append(float(reward))
                    for key in output_keys:
                        record.outputs[key].append(out[key][index])
                    if terminated or truncated:
                        done.append(self._finish_episode(record, terminated, truncated))
                        start(index)
        self._done_episodes_for_metrics.extend(done)
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=steps)
        self._increase_sampled_metrics(steps, len(done))
        return done

    def _finish_episode(
        self, record: _EpisodeRecord, terminated: bool, truncated: bool
    ) -> SingleAgentEpisode:
        outputs = dict(record.outputs)
        outputs[WEIGHTS_SEQ_NO] = [self._weights_seq_no] * len(record.actions)
        episode = SingleAgentEpisode(
            observations=record.observations,
            infos=record.infos,
            actions=record.actions,
            rewards=record.rewards,
            extra_model_outputs=outputs,
            terminated=terminated,
            truncated=truncated,
            observation_space=self.env.single_observation_space,
            action_space=self.env.single_action_space,
            len_lookback_buffer=0,
            t_started=0,
        )
        episode._start_time, episode._last_step_time = record.start, time.perf_counter()
        return episode.to_numpy() if self.episodes_to_numpy else episode

    def _plan_task_of(self, episode: Any) -> int:
        return episode.get_infos(0)[PLAN_TASK]

    def _increase_sampled_metrics(self, num_steps, num_episodes_completed):
        # Idle rows do not step their envs: their steps are neither sampled nor counted.
        rows = getattr(self, "_planned_rows", None) or []
        idle = sum(row.idle_steps for row in rows) if rows else 0
        for row in rows:
            row.idle_steps = 0
        return super()._increase_sampled_metrics(num_steps - idle, num_episodes_completed)


class MultiAgentPlanMixin(PlanSamplingMixin):
    """Plan sampling for a ``MultiAgentEnvRunner``, through RLlib's loop, with two of its
    per-step costs taken out while a plan runs (the episodes and metrics are the same):

    - RLlib 2.60's ``MultiAgentEnvRunner._sample`` converts *every* episode finished so far
      to numpy after *every* vector step (quadratic in a plan's episodes; about a tenth of a
      40-episode plan on CooperativeNavigation). A plan's episodes are converted once, at
      the end; ``tests/algorithms/test_plan_sampling.py`` shows RLlib's repeat conversions.
    - Its step counters are logged at every step for every agent (five ``log_value`` calls
      per agent, about a sixth of the plan's time); a plan adds them up and logs the totals.
    """

    _pending_step_metrics: dict | None = None

    def _plan_task_of(self, episode: Any) -> int:
        infos = episode.get_infos(0)
        return next(iter(infos.values()))[PLAN_TASK]

    def _sample(self, **kwargs) -> list:
        rows = getattr(self, "_planned_rows", None)
        if not rows or rows[0].plan is None:
            return super()._sample(**kwargs)
        to_numpy, self.episodes_to_numpy = self.episodes_to_numpy, False
        self._pending_step_metrics = {}
        try:
            episodes = super()._sample(**kwargs)
        finally:
            self.episodes_to_numpy = to_numpy
            pending, self._pending_step_metrics = self._pending_step_metrics, None
            for (key, options), value in pending.items():
                self.metrics.log_value(key, value, **dict(options))
        return [episode.to_numpy() for episode in episodes] if to_numpy else episodes

    def _increase_sampled_metrics(self, num_steps, next_obs, episode):
        # Idle rows do not step their envs: their steps are neither sampled nor counted.
        if self._row_is_idle(episode):
            return 0
        pending = self._pending_step_metrics
        if pending is None:
            return super()._increase_sampled_metrics(num_steps, next_obs, episode)

        def add_up(key, value, **options):  # Sums and lifetime sums: totals log the same.
            entry = (key, tuple(sorted(options.items())))
            pending[entry] = pending.get(entry, 0) + value

        self.metrics.log_value = add_up  # An instance attribute over the method, for one call.
        try:
            return super()._increase_sampled_metrics(num_steps, next_obs, episode)
        finally:
            del self.metrics.log_value

    def _rows_of_batch(self) -> dict[Any, list[tuple[int, Any]]]:
        """Per module id, the ``(sub-env row, agent)`` of each row of the module's batch."""
        row_of_episode = {ep.id_: i for i, ep in enumerate(self._ongoing_episodes)}
        renamed = self._shared_data.get("vector_env_episodes_map") or {}
        rows_of = self._shared_data.get("memorized_map_structure") or {}
        return {
            mid: [(row_of_episode[renamed.get(eps_id, eps_id)], agent) for eps_id, agent in rows]
            for mid, rows in rows_of.items()
        }
