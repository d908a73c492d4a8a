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
  (:meth:`EpisodePlan.draws`, :func:`sample_actions`), seeded from the task's seed and the episode
  index, so an episode does not depend on which runner or sub-env ran it.

MAML's runners (``maml/env_runner.py``) sample each task with its own adapted weights this way;
RL²'s meta-test (``rl2/meta_test.py``) runs one trial per held-out task.
"""

from __future__ import annotations

import functools
import math
import time
import zlib
from collections import deque
from collections.abc import Callable
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
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    SAMPLE_TIMER,
    WEIGHTS_SEQ_NO,
)
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


# Steps of exploration noise drawn at once from an episode's generator: the same numbers as
# drawing them step by step, for a generator call per row every NOISE_BLOCK steps.
NOISE_BLOCK = 64


class EpisodePlan:
    """The episodes one ``sample`` call runs: a queue of ``(task position, task, seed)``."""

    def __init__(self, items: list[tuple[int, Any, int]], num_rows: int) -> None:
        self.queue = deque(items)
        self.size = len(items)
        self.row_task = np.zeros(num_rows, dtype=np.int64)  # Task position of each sub-env.
        self.row_seed = np.zeros(num_rows, dtype=np.int64)
        self._rngs: dict[tuple[int, Any], np.random.Generator] = {}
        self._noise: dict[tuple[str, tuple], _NoiseBlocks] = {}
        self.version = 0  # Changes whenever a sub-env changes task.

    def take(self, row: int) -> tuple[int, Any, int] | None:
        if not self.queue:
            return None
        position, task, seed = self.queue.popleft()
        self.version += self.row_task[row] != position
        self.row_task[row], self.row_seed[row] = position, seed
        self._rngs = {key: rng for key, rng in self._rngs.items() if key[0] != row}
        for blocks in self._noise.values():
            blocks.forget(row)
        return position, task, seed

    def rng(self, row: int, agent: Any = None) -> np.random.Generator:
        """The exploration-noise generator of the episode on ``row`` (and ``agent``)."""
        key = (row, agent)
        if key not in self._rngs:
            agent_key = 0 if agent is None else zlib.crc32(str(agent).encode())
            self._rngs[key] = np.random.default_rng([int(self.row_seed[row]), agent_key])
        return self._rngs[key]

    def draws(self, keys: list[tuple[int, Any]], method: str, shape: tuple) -> np.ndarray:
        """Each ``(row, agent)`` key's next ``self.rng(row, agent).<method>(shape)``, stacked.

        ``method`` is a ``numpy.random.Generator`` method that fills its output in order
        (``"standard_normal"``, ``"random"``), so drawing ``NOISE_BLOCK`` steps at once gives
        the numbers of drawing them one step at a time (a generator call per row and step
        costs a direct sampling loop more than a fast env's step).
        """
        blocks = self._noise.get((method, shape))
        if blocks is None:
            blocks = self._noise[(method, shape)] = _NoiseBlocks(method, shape)
        return blocks.next(keys, self.rng)


class _NoiseBlocks:
    """Blocks of draws of one generator method and shape, one block per ``(row, agent)``."""

    def __init__(self, method: str, shape: tuple) -> None:
        self.method, self.shape = method, shape
        self.slot_of: dict[tuple[int, Any], int] = {}
        self.keys: list[tuple[int, Any]] = []  # Of each slot.
        self.values = np.zeros((0, NOISE_BLOCK, *shape))
        self.cursor = np.zeros(0, dtype=np.int64)  # NOISE_BLOCK: the block must be drawn.
        self._last: tuple[Any, np.ndarray] = (None, self.cursor)  # Last keys and their slots.

    def forget(self, row: int) -> None:
        """``row`` starts a new episode (a new generator): its blocks are drawn again."""
        for key, slot in self.slot_of.items():
            if key[0] == row:
                self.cursor[slot] = NOISE_BLOCK

    def next(self, keys: list[tuple[int, Any]], rng: Any) -> np.ndarray:
        """The next draw of every key; ``keys`` is usually the same list object at every step
        (its slots are then looked up once), and is never changed in place by the callers."""
        if keys is self._last[0]:
            slots = self._last[1]
        else:
            if any(key not in self.slot_of for key in keys):
                for key in keys:
                    if key not in self.slot_of:
                        self.slot_of[key] = len(self.keys)
                        self.keys.append(key)
                grow = len(self.slot_of) - len(self.cursor)
                new_values = np.zeros((grow, *self.values.shape[1:]))
                self.values = np.concatenate([self.values, new_values])
                self.cursor = np.concatenate([self.cursor, np.full(grow, NOISE_BLOCK)])
            slots = np.fromiter((self.slot_of[key] for key in keys), np.int64, len(keys))
            self._last = (keys, slots)
        for slot in slots[self.cursor[slots] >= NOISE_BLOCK]:
            draw = getattr(rng(*self.keys[slot]), self.method)
            self.values[slot] = draw((NOISE_BLOCK, *self.shape))
            self.cursor[slot] = 0
        draws = self.values[slots, self.cursor[slots]]
        self.cursor[slots] += 1
        return draws


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
        # What the row returns while idle: its env's latest observation (kept up to date by a
        # direct loop that steps the env in one call with others, see `many_env_stepper`).
        self.last_observation: Any = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.plan is None:
            return self.env.reset(seed=seed, options=options)
        item = self.plan.take(self.row)
        self.idle = item is None
        if item is None:
            if self.last_observation is None:
                self.last_observation, _ = self.env.reset()
            return self.last_observation, self._tag({}, -1)
        position, task, seed_ = item
        self._task_env.set_task(task)
        obs, info = self.env.reset(seed=seed_)
        self.last_observation = obs
        return obs, self._tag(info, position)

    def step(self, action):
        if self.plan is not None and self.idle:
            self.idle_steps += 1
            if not self.multi_agent:
                return self.last_observation, 0.0, False, False, {}
            agents = list(self.last_observation)
            not_done = {a: False for a in agents} | {"__all__": False}
            return self.last_observation, dict.fromkeys(agents, 0.0), not_done, dict(not_done), {}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self.multi_agent or obs:
            self.last_observation = obs
        return obs, reward, terminated, truncated, info

    def _tag(self, info: dict, position: int) -> dict:
        if not self.multi_agent:
            return {**info, PLAN_TASK: position}
        return {a: {**info.get(a, {}), PLAN_TASK: position} for a in self.last_observation}


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
    dist_cls: type, inputs: torch.Tensor, draws: Callable[[str, tuple], np.ndarray]
) -> dict[str, torch.Tensor]:
    """Actions drawn with each row's own noise, and their log-probabilities.

    ``draws(method, shape)`` gives every row's next ``Generator.<method>(shape)`` from that
    row's own generator, stacked (see :meth:`EpisodePlan.draws`). Exact for RLlib's
    diagonal-Gaussian and categorical distributions (any shape after the batch dimension, e.g. a
    recurrent module's time dimension); others fall back to torch's global generator.
    """
    if issubclass(dist_cls, TorchDiagGaussian):
        loc, log_std = inputs.chunk(2, dim=-1)
        noise = torch.as_tensor(draws("standard_normal", tuple(loc.shape[1:])), dtype=loc.dtype)
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
        uniform = draws("random", tuple(inputs.shape[1:]))
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

    def _has_only_rllibs_defaults(self, env_to_module_pieces, module_to_env_pieces) -> bool:
        """No connector piece but RLlib's defaults, no episode or sample callback, no
        stateful module: what a direct loop may skip does nothing else."""
        cfg = self.config
        modules = self.module.values() if isinstance(self.module, MultiRLModule) else [self.module]
        return (
            {type(c) for c in self._env_to_module.connectors} <= env_to_module_pieces
            and {type(c) for c in self._module_to_env.connectors} <= module_to_env_pieces
            and not any(module.is_stateful() for module in modules)
            and all(type(c) is RLlibCallback for c in self._callbacks)
            and not any(getattr(cfg, f"callbacks_on_episode_{w}") for w in _EPISODE_CALLBACKS)
            and not cfg.callbacks_on_sample_end
        )

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
# ... and of a ``MultiAgentEnvRunner``.
_DEFAULT_MULTI_AGENT_ENV_TO_MODULE = _DEFAULT_ENV_TO_MODULE | {env_to_module.AgentToModuleMapping}
_DEFAULT_MULTI_AGENT_MODULE_TO_ENV = _DEFAULT_MODULE_TO_ENV | {module_to_env.ModuleToAgentUnmapping}
_EPISODE_CALLBACKS = ("created", "start", "step", "end")
# Action spaces whose batched actions are one array (the direct loop's assumption).
_FLAT_ACTION_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete)


# Gymnasium wrappers that ``gym.make`` adds and that change no step: a direct loop may step the
# env inside them (checks on the first step are left to the next plain step).
_PASS_THROUGH_WRAPPERS = (gym.wrappers.OrderEnforcing, gym.wrappers.PassiveEnvChecker)


def _behind_pass_through_wrappers(row: PlannedSubEnv) -> Any:
    """The env inside ``row``'s gymnasium wrappers if they are all pass-through, else None."""
    env = row.env
    while isinstance(env, gym.Wrapper):
        if type(env) not in _PASS_THROUGH_WRAPPERS:
            return None
        env = env.env
    return env


def many_env_stepper(rows: list[PlannedSubEnv]) -> Any:
    """``step(indices, actions)`` that steps the envs of ``rows[indices]`` in one call of their
    class's ``step_many`` (see below), or None where that would skip something.

    An env class may give ``step_many(envs, actions)``: the same as
    ``[env.step(a) for env, a in zip(envs, actions)]``, for instances of that class with their
    own tasks and states, as arrays ``(observations, rewards, terminated, truncated, infos)``,
    ``infos`` a list of dicts or None (all empty). The built-in envs that step in a few
    microseconds have one: stepping them in turn behind their wrappers costs a direct loop more
    than the env. Used only where every row's env is of one such class, with nothing but
    pass-through wrappers around it, and where that class's ``step`` is the one defined next
    to its ``step_many`` (a subclass that overrides ``step`` steps in turn).
    """
    envs = [_behind_pass_through_wrappers(row) for row in rows]
    if any(env is None for env in envs):
        return None
    env_class = type(envs[0])
    step_many = getattr(env_class, "step_many", None)
    if step_many is None or any(type(env) is not env_class for env in envs):
        return None
    # A subclass that overrides `step` does not inherit its parent's `step_many`.
    owner = next(c for c in env_class.__mro__ if "step_many" in vars(c))
    if env_class.step is not vars(owner).get("step"):
        return None
    return lambda indices, actions: step_many([envs[i] for i in indices], actions)


def _step_in_turn(rows: list[PlannedSubEnv], indices: np.ndarray, actions: Any) -> tuple:
    """``rows[indices]`` stepped one after the other, as :func:`many_env_stepper`'s steps."""
    results = [rows[i].step(action) for i, action in zip(indices, actions)]
    observations, rewards, terminated, truncated, infos = zip(*results)
    return (
        np.stack(observations),
        np.array(rewards, dtype=np.float64),
        np.array(terminated, dtype=bool),
        np.array(truncated, dtype=bool),
        list(infos),
    )


class _StepColumns:
    """One plan's per-step arrays over all rows, grown as it runs; an episode is one row's
    slice of them (no per-row, per-step bookkeeping)."""

    def __init__(self) -> None:
        self.size = 0
        self._arrays: dict[str, np.ndarray] = {}

    def append(self, **values: np.ndarray) -> None:
        for key, value in values.items():
            array = self._arrays.get(key)
            if array is None or len(array) == self.size:
                grown = np.empty((max(64, 2 * self.size), *value.shape), dtype=value.dtype)
                if array is not None:
                    grown[: self.size] = array[: self.size]
                self._arrays[key] = array = grown
            array[self.size] = value
        self.size += 1

    def row(self, key: str, row: int, start: int) -> list:
        """Row ``row``'s values from step ``start`` to the last one, one array per step."""
        return list(self._arrays[key][start : self.size, row].copy())


class _EpisodeStart:
    """Where a planned episode began: its first step, reset info and start time."""

    __slots__ = ("step", "info", "time")

    def __init__(self, step: int, info: dict) -> None:
        self.step, self.info, self.time = step, info, time.perf_counter()


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
        return (
            self.sample_directly
            and isinstance(self.env.single_observation_space, gym.spaces.Box)
            and isinstance(self.env.single_action_space, _FLAT_ACTION_SPACES)
            and self._has_only_rllibs_defaults(_DEFAULT_ENV_TO_MODULE, _DEFAULT_MODULE_TO_ENV)
        )

    def _sample_plan_directly(self, plan: EpisodePlan, forward: Any) -> list:
        """Runs the plan's episodes: one batched forward per step, then the sub-envs stepped
        in one call of their env's ``step_many`` (see :func:`many_env_stepper`) or in turn.

        Idle rows (nothing left in the plan) join the forward pass, as in RLlib's loop, but are
        not stepped. Every step's arrays are kept for all rows at once; an episode takes its
        row's slice when it ends and is built with the metrics RLlib logs for it.
        """
        rows = self._planned_rows
        obs_space = self.env.single_observation_space
        to_env = action_transform(
            self.config.normalize_actions,
            self.config.clip_actions,
            get_base_struct_from_space(self.env.single_action_space),
        )
        step_rows = many_env_stepper(rows) or functools.partial(_step_in_turn, rows)
        observations = np.zeros((len(rows), *obs_space.shape), dtype=obs_space.dtype)
        rewards = np.zeros(len(rows), dtype=np.float64)
        history = _StepColumns()
        step_infos: list[list | None] = []  # Per step: every row's info (None: all empty).
        starts: list[_EpisodeStart | None] = [None] * len(rows)
        done: list[SingleAgentEpisode] = []
        steps = 0
        device = next(iter(self.module.parameters()), torch.empty(0)).device

        def start(index: int) -> None:
            observation, info = rows[index].reset()
            observations[index] = observation
            starts[index] = None if rows[index].idle else _EpisodeStart(history.size, info)

        with self.metrics.log_time(SAMPLE_TIMER):
            for index in range(len(rows)):
                start(index)
            active = np.flatnonzero([s is not None for s in starts])
            while len(active):
                out = forward({Columns.OBS: _to_module(observations, device)})
                out = {key: value.cpu().numpy() for key, value in out.items()}
                actions = out[Columns.ACTIONS]
                observed = observations.copy()
                next_obs, step_rewards, terminated, truncated, infos = step_rows(
                    active, to_env(actions)[active]
                )
                observations[active] = next_obs
                rewards[active] = step_rewards
                steps += len(active)
                history.append(
                    observations=observed,
                    actions=actions,
                    rewards=rewards,
                    logp=out[Columns.ACTION_LOGP],
                    dist_inputs=out[Columns.ACTION_DIST_INPUTS],
                )
                if infos is not None:
                    row_infos: list = [None] * len(rows)
                    for index, info in zip(active, infos):
                        row_infos[index] = info
                    infos = row_infos
                step_infos.append(infos)
                ended = np.flatnonzero(terminated | truncated)
                for position in ended:
                    index = int(active[position])
                    rows[index].last_observation = next_obs[position]
                    done.append(
                        self._finish_episode(
                            history,
                            step_infos,
                            index,
                            starts[index],
                            observations[index].copy(),
                            bool(terminated[position]),
                            bool(truncated[position]),
                        )
                    )
                    start(index)
                if len(ended):
                    active = np.flatnonzero([s is not None for s in starts])
        self._done_episodes_for_metrics.extend(done)
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=steps)
        self._increase_sampled_metrics(steps, len(done))
        return done

    def _finish_episode(
        self,
        history: _StepColumns,
        step_infos: list,
        row: int,
        episode_start: _EpisodeStart,
        last_observation: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> SingleAgentEpisode:
        first = episode_start.step
        actions = history.row("actions", row, first)
        infos = [episode_start.info]
        infos += [{} if infos_t is None else infos_t[row] for infos_t in step_infos[first:]]
        episode = SingleAgentEpisode(
            observations=[*history.row("observations", row, first), last_observation],
            infos=infos,
            actions=actions,
            rewards=history.row("rewards", row, first),
            extra_model_outputs={
                Columns.ACTION_LOGP: history.row("logp", row, first),
                Columns.ACTION_DIST_INPUTS: history.row("dist_inputs", row, first),
                WEIGHTS_SEQ_NO: [self._weights_seq_no] * len(actions),
            },
            terminated=terminated,
            truncated=truncated,
            observation_space=self.env.single_observation_space,
            action_space=self.env.single_action_space,
            len_lookback_buffer=0,
            t_started=0,
        )
        episode._start_time, episode._last_step_time = episode_start.time, time.perf_counter()
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


def _for_env(actions: np.ndarray, row_transforms: list) -> np.ndarray:
    """A module batch's actions for the env, each row with its agent's transform: in one call
    where every row's agent has the same action space."""
    first = row_transforms[0]
    if all(transform is first for transform in row_transforms):
        return first(actions)
    for_env = np.array(actions)
    for transform in dict.fromkeys(row_transforms):
        rows = np.array([t is transform for t in row_transforms])
        for_env[rows] = transform(actions[rows])
    return for_env


def _agents_act_together(row: PlannedSubEnv) -> bool:
    """Whether the multi-agent env that ``row`` steps promises ``agents_act_together``: its
    class says so (a wrapper class in between, e.g. PettingZoo's AEC-to-parallel, does not
    inherit the promise), with nothing but pass-through wrappers and RLlib's
    ``ParallelPettingZooEnv`` between it and the row."""
    env = _behind_pass_through_wrappers(row)
    if isinstance(env, ParallelPettingZooEnv):
        env = env.par_env
    return bool(getattr(type(env), "agents_act_together", False))


def _check_agents_act_together(
    row: PlannedSubEnv, record: Any, observation: dict, over: bool, ends: dict
) -> None:
    """Raises if a step breaks the promise of the row's env's ``agents_act_together``:
    every agent observes at every step, and agents end only all at once, with the episode."""
    agents_end = {agent for agent, end in ends.items() if agent != "__all__" and end}
    if set(observation) == record.agents and (
        not agents_end or (agents_end == record.agents and over)
    ):
        return
    raise RuntimeError(
        f"{type(row._task_env).__name__} has `agents_act_together = True`, but a step "
        f"returned observations for {sorted(observation)} and ends for {sorted(agents_end)} "
        f"(episode over: {over}) where its agents are {sorted(record.agents)}: every agent "
        "must observe at every step and the episode must end for all agents at once. Set "
        "`agents_act_together = False` on the env class to sample it through RLlib's loop."
    )


class _TeamEpisodeRecord:
    """One planned multi-agent episode's data, step by step, as RLlib's episode takes it."""

    __slots__ = (
        "id_",
        "agents",
        "module_of",
        "observations",
        "infos",
        "actions",
        "rewards",
        "outputs",
        "start",
    )

    def __init__(self, id_: str, module_of: dict, observation: dict, info: dict) -> None:
        self.id_, self.module_of = id_, module_of
        self.agents = set(observation)
        self.observations, self.infos = [observation], [info]
        self.actions: list[dict] = []
        self.rewards: list[dict] = []
        self.outputs: list[dict] = []
        self.start = time.perf_counter()


class MultiAgentPlanMixin(PlanSamplingMixin):
    """Plan sampling for a ``MultiAgentEnvRunner``.

    Where every row's env declares ``agents_act_together`` (every agent observes and acts at
    every step and the episode ends for all at once: the built-in team envs), with RLlib's
    default connectors and no episode callbacks, a plan is sampled by
    :meth:`_sample_plan_directly`: the same episodes and metrics as RLlib's loop (tested
    equal), one forward pass per module and step, each ``MultiAgentEpisode`` built once it
    ends. Anything else goes through RLlib's loop, with two of its per-step costs taken out
    while a plan runs (the episodes and metrics are the same):

    - RLlib 2.60's ``MultiAgentEnvRunner._sample`` converts *every* episode finished so far
      to numpy after *every* vector step (quadratic in a plan's episodes; about a tenth of a
      40-episode plan on CooperativeNavigation). A plan's episodes are converted once, at
      the end; ``tests/algorithms/test_plan_sampling.py`` shows RLlib's repeat conversions.
    - Its step counters are logged at every step for every agent (five ``log_value`` calls
      per agent, about a sixth of the plan's time); a plan adds them up and logs the totals.
    """

    # Off: always sample through RLlib's own loop (for comparisons and debugging).
    sample_directly: bool = True

    def _can_sample_directly(self) -> bool:
        rows = self._planned_rows
        env = rows[0].env.unwrapped
        agents = getattr(env, "possible_agents", None)
        return bool(
            self.sample_directly
            and agents
            and all(_agents_act_together(row) for row in rows)
            and all(isinstance(env.get_observation_space(a), gym.spaces.Box) for a in agents)
            and all(isinstance(env.get_action_space(a), _FLAT_ACTION_SPACES) for a in agents)
            and self._has_only_rllibs_defaults(
                _DEFAULT_MULTI_AGENT_ENV_TO_MODULE, _DEFAULT_MULTI_AGENT_MODULE_TO_ENV
            )
        )

    def _sample_plan_directly(self, plan: EpisodePlan, forward: Any) -> list:
        """Runs the plan's episodes: per step one forward pass per module over its agents'
        rows, then each sub-env stepped with its agents' actions.

        Idle rows are not stepped. An episode's per-step dicts are kept as the env gave them
        and become a ``MultiAgentEpisode`` when it ends; step counters are logged as totals.
        """
        rows = self._planned_rows
        cfg = self.config
        env = rows[0].env.unwrapped
        # One batched transform per distinct action space (agents with equal spaces share it).
        transforms: dict[Any, Any] = {}
        transform_of: dict[Any, Any] = {}
        for agent in env.possible_agents:
            space = env.get_action_space(agent)
            same = next((a for a in transforms if env.get_action_space(a) == space), None)
            if same is None:
                transforms[agent] = action_transform(
                    cfg.normalize_actions, cfg.clip_actions, get_base_struct_from_space(space)
                )
            transform_of[agent] = transforms[same if same is not None else agent]
        records: list[_TeamEpisodeRecord | None] = [None] * len(rows)
        observations: list[dict] = [{} for _ in rows]
        done: list[MultiAgentEpisode] = []
        devices = {
            mid: next(iter(module.parameters()), torch.empty(0)).device
            for mid, module in self.module.items()
        }
        holder: list = [None]

        def start(index: int) -> None:
            observation, info = rows[index].reset()
            observations[index] = observation
            if rows[index].idle:
                records[index] = None
                return
            self._new_episode(0, holder)  # RLlib's empty episode: its id and module mapping.
            module_of = {agent: holder[0].module_for(agent) for agent in observation}
            records[index] = _TeamEpisodeRecord(holder[0].id_, module_of, observation, info)

        def layout() -> dict[Any, list[tuple[int, Any]]]:
            """Per module, the ``(row, agent)`` of each row of its batch."""
            rows_of: dict[Any, list[tuple[int, Any]]] = {}
            for index, record in enumerate(records):
                if record is not None:
                    for agent in observations[index]:
                        rows_of.setdefault(record.module_of[agent], []).append((index, agent))
            return rows_of

        with self.metrics.log_time(SAMPLE_TIMER):
            for index in range(len(rows)):
                start(index)
            rows_of = layout()
            while rows_of:
                batch = {
                    mid: {
                        Columns.OBS: _to_module(
                            np.stack([observations[row][agent] for row, agent in keys]),
                            devices[mid],
                        )
                    }
                    for mid, keys in rows_of.items()
                }
                out = forward(batch, rows_of=rows_of)
                step_actions: list[dict] = [{} for _ in rows]
                step_for_env: list[dict] = [{} for _ in rows]
                step_outputs: list[dict] = [{} for _ in rows]
                for mid, keys in rows_of.items():
                    module_out = {key: value.cpu().numpy() for key, value in out[mid].items()}
                    actions = module_out[Columns.ACTIONS]
                    logp = module_out[Columns.ACTION_LOGP]
                    dist_inputs = module_out[Columns.ACTION_DIST_INPUTS]
                    for_env = _for_env(actions, [transform_of[agent] for _, agent in keys])
                    for position, (row, agent) in enumerate(keys):
                        step_actions[row][agent] = actions[position]
                        step_for_env[row][agent] = for_env[position]
                        step_outputs[row][agent] = {
                            Columns.ACTION_DIST_INPUTS: dist_inputs[position],
                            Columns.ACTION_LOGP: logp[position],
                            WEIGHTS_SEQ_NO: self._weights_seq_no,
                        }
                ended = False
                for index, record in enumerate(records):
                    if record is None:
                        continue
                    observation, reward, terminated, truncated, info = rows[index].step(
                        step_for_env[index]
                    )
                    over = terminated.get("__all__", False) or truncated.get("__all__", False)
                    _check_agents_act_together(rows[index], record, observation, over, truncated)
                    _check_agents_act_together(rows[index], record, observation, over, terminated)
                    record.observations.append(observation)
                    record.infos.append(info)
                    record.actions.append(step_actions[index])
                    record.rewards.append(reward)
                    record.outputs.append(step_outputs[index])
                    observations[index] = observation
                    if over:
                        done.append(self._finish_team_episode(record, terminated, truncated))
                        start(index)
                        ended = True
                if ended:
                    rows_of = layout()
        self._done_episodes_for_metrics.extend(done)
        self._log_step_totals(done)
        return done

    def _finish_team_episode(
        self, record: _TeamEpisodeRecord, terminated: dict, truncated: dict
    ) -> MultiAgentEpisode:
        env = self._planned_rows[0].env.unwrapped
        agents = env.possible_agents
        episode = MultiAgentEpisode(
            id_=record.id_,
            observations=record.observations,
            infos=record.infos,
            actions=record.actions,
            rewards=record.rewards,
            extra_model_outputs=record.outputs,
            terminateds=terminated,
            truncateds=truncated,
            observation_space={a: env.get_observation_space(a) for a in agents},
            action_space={a: env.get_action_space(a) for a in agents},
            len_lookback_buffer=0,
            env_t_started=0,
            agent_module_ids=record.module_of,
            agent_to_module_mapping_fn=self.config.policy_mapping_fn,
        )
        episode._start_time, episode._last_step_time = record.start, time.perf_counter()
        return episode.to_numpy() if self.episodes_to_numpy else episode

    def _log_step_totals(self, done: list[MultiAgentEpisode]) -> None:
        """RLlib's per-step counters (``_increase_sampled_metrics``), logged as totals taken
        from the plan's episodes (a plan runs until every episode it steps has ended)."""
        env_steps, episodes = sum(len(episode) for episode in done), len(done)
        agent_steps: dict[Any, int] = {}
        module_steps: dict[Any, int] = {}
        for episode in done:
            for agent, agent_episode in episode.agent_episodes.items():
                agent_steps[agent] = agent_steps.get(agent, 0) + len(agent_episode)
                module = agent_episode.module_id
                module_steps[module] = module_steps.get(module, 0) + len(agent_episode)
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=env_steps)
        log = self.metrics.log_value
        log(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
        log(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True)
        if episodes:
            log(NUM_EPISODES, episodes, reduce="sum")
            log(NUM_EPISODES_LIFETIME, episodes, reduce="lifetime_sum")
        for agent, steps in agent_steps.items():
            log((NUM_AGENT_STEPS_SAMPLED, str(agent)), steps, reduce="sum")
            log((NUM_AGENT_STEPS_SAMPLED_LIFETIME, str(agent)), steps, reduce="lifetime_sum")
        for module, steps in module_steps.items():
            log((NUM_MODULE_STEPS_SAMPLED, module), steps, reduce="sum")
            log((NUM_MODULE_STEPS_SAMPLED_LIFETIME, module), steps, reduce="lifetime_sum")

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
