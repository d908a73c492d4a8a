"""RL² trials: ``episodes_per_trial`` episodes of one task, presented to RLlib as ONE episode.

RL² is PPO with a recurrent policy on trials. Making the trial a single RLlib episode means
RLlib's own recurrent-state handling (the state is carried within an episode and reset between
episodes) carries the hidden state across the inner episodes of a trial without any change to
RLlib's EnvRunners, connectors or Learner.

Each observation the agent sees is the inner env's observation, flattened, followed by

* the previous action: one-hot for ``Discrete`` (flattened one-hots for ``MultiDiscrete``), the
  raw action clipped to the action space's bounds for ``Box``;
* the previous reward;
* the inner-episode-done flag: 1.0 on the first observation of inner episodes 2..n (the previous
  step ended an inner episode) and on the trial's final observation, else 0.0.

All three are zero at the start of a trial. Layout: ``[obs | prev_action | prev_reward | done]``,
declared exactly by :func:`augmented_observation_space` (a float32 ``Box``).

Infos carry ``inner_episode`` (0-based index of the inner episode that the returned observation
belongs to) and, on the trial's last step, ``inner_episode_returns`` (a list with one return per
inner episode) and, for single-agent envs that report ``info["success"]`` (Meta-World),
``inner_episode_successes`` (1.0 per inner episode in which the flag was set at any step).
Reset infos carry the trial's ``task``. Whether a step ended an inner episode is the
observation's done flag.

Seeding: ``reset(seed=s)`` seeds the inner env (through its own ``reset(seed=s)``) before the
task is drawn from the env's RNG, so trial task sequences are reproducible. Passing again the
seed that was applied last does not rewind them (see ``_TaskSampler.seed``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from rllib_marl_meta.tasks import Task, draw_tasks, require_task_env

INNER_EPISODE = "inner_episode"
INNER_EPISODE_RETURNS = "inner_episode_returns"
# Per inner episode, 1.0 if the env set ``info["success"]`` at any of its steps (Meta-World).
INNER_EPISODE_SUCCESSES = "inner_episode_successes"
TASK = "task"


def _flat_space(space: gym.Space, what: str) -> Box:
    try:
        flat = gym.spaces.flatten_space(space)
    except NotImplementedError:
        flat = None
    if not isinstance(flat, Box):
        raise ValueError(
            f"RL² needs a {what} space that flattens to a Box (Box, Discrete, MultiDiscrete, "
            f"MultiBinary, or Dict/Tuple of those); got {space}."
        )
    return flat


def augmented_observation_space(observation_space: gym.Space, action_space: gym.Space) -> Box:
    """The exact float32 ``Box`` of ``[obs | prev_action | prev_reward | done]``."""
    obs = _flat_space(observation_space, "observation")
    act = _flat_space(action_space, "action")
    low = np.concatenate([obs.low, act.low, [-np.inf], [0.0]]).astype(np.float32)
    high = np.concatenate([obs.high, act.high, [np.inf], [1.0]]).astype(np.float32)
    return Box(low, high, dtype=np.float32)


def encode_action(action_space: gym.Space, action: Any) -> np.ndarray:
    """The previous-action part of an observation: one-hot if discrete, clipped raw if Box."""
    if isinstance(action_space, Box):
        raw = np.asarray(action, dtype=np.float64).reshape(action_space.shape)
        return np.clip(raw, action_space.low, action_space.high).ravel().astype(np.float32)
    return np.asarray(gym.spaces.flatten(action_space, action), dtype=np.float32)


def _flattener(space: gym.Space, clip: bool) -> Any:
    """A fast ``value -> float32 vector`` for ``space`` (Box / Discrete fast paths)."""
    if isinstance(space, Box):
        if clip:
            return lambda x: encode_action(space, x)
        return lambda x: np.asarray(x, dtype=np.float32).reshape(-1)
    if isinstance(space, gym.spaces.Discrete):
        eye = np.eye(int(space.n), dtype=np.float32)
        start = int(space.start)
        return lambda x: eye[int(x) - start]
    return lambda x: np.asarray(gym.spaces.flatten(space, x), dtype=np.float32)


class _Augmenter:
    """Builds ``[obs | prev_action | prev_reward | done]`` for one agent's spaces."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.space = augmented_observation_space(observation_space, action_space)
        self.no_action = np.zeros(_flat_space(action_space, "action").shape, np.float32)
        self.flat_obs = _flattener(observation_space, clip=False)
        self.encode_action = _flattener(action_space, clip=True)

    def __call__(self, obs: Any, prev_action: np.ndarray, reward: float, done: float) -> np.ndarray:
        return np.concatenate(
            [self.flat_obs(obs), prev_action, np.array([reward, done], dtype=np.float32)]
        )


class _TaskSampler:
    """Draws one task per trial through the task API of the wrapped env.

    Uses the env's own seeded ``np_random`` (``sample_tasks(1)``) when it has one. Envs without
    a generator (some PettingZoo envs) get a seed from the wrapper's RNG, which the trial reset's
    ``seed`` seeds, so task sequences are reproducible either way.
    """

    def __init__(self, env: Any) -> None:
        self.task_env = require_task_env(env)
        self.rng = np.random.default_rng()
        self.last_seed: int | None = None

    def seed(self, env: Any, seed: int | None, force: bool = False) -> None:
        """Seeds the inner ``env`` (by a reset, which seeds its RNG) and this sampler.

        A seed equal to the last one applied is ignored: RLlib's EnvRunners pass the same
        ``config.seed`` again on every ``sample()`` call in ``complete_episodes`` mode, which
        would otherwise replay the same tasks (and rewards) every training iteration. ``force``
        applies it anyway.
        """
        if seed is None or (seed == self.last_seed and not force):
            return
        self.last_seed = seed
        self.rng = np.random.default_rng(seed)
        env.reset(seed=seed)

    def sample(self) -> Task:
        if isinstance(getattr(self.task_env, "np_random", None), np.random.Generator):
            return draw_tasks(self.task_env, 1)[0]
        return draw_tasks(self.task_env, 1, seed=int(self.rng.integers(2**31 - 1)))[0]


class _TrialProgress:
    """Where a trial wrapper is (its task, the current inner episode) and how trials start."""

    episodes_per_trial: int
    _sampler: _TaskSampler
    _task: Task | None
    _episode_index: int

    def _init_trials(self, env: Any, episodes_per_trial: int) -> None:
        if int(episodes_per_trial) < 1:
            raise ValueError(f"episodes_per_trial must be >= 1, got {episodes_per_trial}.")
        self.episodes_per_trial = int(episodes_per_trial)
        self._sampler = _TaskSampler(env)
        self._task = None
        self._next_task: Task | None = None
        self._episode_index = 0

    def _start_trial(self, env: Any, seed: int | None, options: dict | None) -> dict | None:
        """Sets the trial's task (``options["task"]`` or a new draw); returns the other options."""
        options = dict(options or {})
        task = options.pop(TASK, None)
        if task is None and self._next_task is not None:
            task, self._next_task = self._next_task, None
        # The inner env's RNG draws the task. A trial on a given task replays from its seed.
        self._sampler.seed(env, seed, force=task is not None)
        if task is None:
            task = self._sampler.sample()
        self._sampler.task_env.set_task(task)
        self._task = self._sampler.task_env.get_task()
        return options or None

    def _check_reward(self, reward: float, agent: Hashable | None = None) -> float:
        """``reward`` as a float; a NaN or infinite one is an error naming where it came from."""
        reward = float(reward)
        if not math.isfinite(reward):
            who = "" if agent is None else f" for agent {agent!r}"
            raise ValueError(
                f"RL2: non-finite reward ({reward}) from the env{who} in inner episode "
                f"{self._episode_index + 1} of a trial on task {self._task!r}. RL² cannot learn "
                "from NaN or infinite rewards: make the env return finite values (for example "
                "clip them with a gymnasium wrapper)."
            )
        return reward

    # The task API, so that a trial env's tasks are set like any task env's (meta-testing).

    def sample_tasks(
        self, n_tasks: int, seed: int | None = None, split: str = "train"
    ) -> list[Task]:
        """Tasks of the wrapped env's distribution (of its ``split``, if it has splits)."""
        return draw_tasks(self._sampler.task_env, n_tasks, seed=seed, split=split)

    def set_task(self, task: Task) -> None:
        """Runs the next trial (from the next ``reset``) on ``task``; later trials draw their
        own tasks again, as in training."""
        self._next_task = task

    def get_task(self) -> Task | None:
        """The task of the current trial."""
        return self._task

    @property
    def _in_last_inner_episode(self) -> bool:
        return self._episode_index + 1 >= self.episodes_per_trial

    @property
    def task(self) -> Task | None:
        """The task of the current trial."""
        return self._task

    @property
    def inner_episode(self) -> int:
        """0-based index of the current inner episode."""
        return self._episode_index


class RL2TrialWrapper(_TrialProgress, gym.Wrapper):
    """Turns a single-agent task env into RL² trials of ``episodes_per_trial`` episodes.

    ``reset()`` draws a new task (``reset(options={"task": t})`` or a ``set_task(t)`` before
    it uses ``t``); inner-episode
    ends, by termination or truncation alike, reset the inner env on the same task; the trial
    terminates after the last inner episode. See the module docstring for the observation.
    """

    def __init__(self, env: gym.Env, episodes_per_trial: int) -> None:
        super().__init__(env)
        self._init_trials(env, episodes_per_trial)
        self._augment = _Augmenter(env.observation_space, env.action_space)
        self.observation_space = self._augment.space
        self._episode_return = 0.0
        self._returns: list[float] = []
        self._episode_success: float | None = None
        self._successes: list[float | None] = []

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        options = self._start_trial(self.env, seed, options)
        obs, info = self.env.reset(options=options)
        self._episode_index = 0
        self._episode_return = 0.0
        self._returns = []
        self._episode_success, self._successes = None, []
        info = {**info, INNER_EPISODE: 0, TASK: self._task}
        return self._augment(obs, self._augment.no_action, 0.0, 0.0), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward = self._check_reward(reward)
        self._episode_return += reward
        prev_action = self._augment.encode_action(action)
        info = dict(info)
        inner_done = bool(terminated or truncated)
        trial_done = False
        if "success" in info:
            self._episode_success = max(self._episode_success or 0.0, float(info["success"] > 0))
        if inner_done:
            self._returns.append(self._episode_return)
            self._successes.append(self._episode_success)
            self._episode_return, self._episode_success = 0.0, None
            if self._in_last_inner_episode:
                trial_done = True
                info[INNER_EPISODE_RETURNS] = list(self._returns)
                if None not in self._successes:
                    info[INNER_EPISODE_SUCCESSES] = list(self._successes)
            else:
                obs, _ = self.env.reset()
                self._episode_index += 1
        info[INNER_EPISODE] = self._episode_index
        aug = self._augment(obs, prev_action, reward, float(inner_done))
        return aug, reward, trial_done, False, info


def _is_parallel_env(env: Any) -> bool:
    try:
        from pettingzoo.utils.env import ParallelEnv
    except ImportError:  # pragma: no cover - PettingZoo is a dependency.
        return False
    return isinstance(env, ParallelEnv)


def _as_multi_agent_env(env: Any) -> Any:
    """RLlib ``MultiAgentEnv`` as is; a PettingZoo ``ParallelEnv`` in ``ParallelPettingZooEnv``."""
    if _is_parallel_env(env):
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

        return ParallelPettingZooEnv(env)
    return env


class MultiAgentRL2TrialWrapper(_TrialProgress, MultiAgentEnv):
    """RL² trials for an RLlib ``MultiAgentEnv`` (or a PettingZoo ``ParallelEnv``), per agent.

    Every agent's observation is augmented with its own previous action, previous reward and
    inner-episode-done flag. An agent that finishes inner episode ``i`` before the others
    (terminated or truncated) stops receiving observations, so it takes no actions, and waits;
    when the inner episode is over for all agents (``__all__``, or every agent that took part
    is done), the inner env resets and all agents start episode ``i + 1`` together, their first
    observation carrying the done flag. Rewards that reach an agent while it waits are paid
    with its next observation. Agents are never reported done to RLlib before the trial ends,
    so their recurrent states carry across inner episodes. At the trial's end every agent that
    took part gets a final observation and ``terminated=True``.

    Per-agent infos carry ``inner_episode`` and, at the end, ``inner_episode_returns``.
    """

    def __init__(self, env: Any, episodes_per_trial: int) -> None:
        super().__init__()
        self.env = _as_multi_agent_env(env)
        self._init_trials(self.env, episodes_per_trial)
        agents = list(getattr(self.env, "possible_agents", None) or self.env.agents)
        self.possible_agents = list(agents)
        self.agents = list(agents)
        self.action_spaces = {a: self.env.get_action_space(a) for a in agents}
        self._augment = {
            a: _Augmenter(self.env.get_observation_space(a), self.action_spaces[a]) for a in agents
        }
        self.observation_spaces = {a: self._augment[a].space for a in agents}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)
        self._reset_trial_state()

    def _reset_trial_state(self) -> None:
        self._episode_index = 0
        self._prev_action = {a: aug.no_action for a, aug in self._augment.items()}
        self._pending_reward: dict[Hashable, float] = {}
        self._new_episode: set[Hashable] = set()  # Agents whose next obs opens an episode.
        self._last_obs: dict[Hashable, Any] = {}  # Keys: the agents that took part in the trial.
        self._returns: dict[Hashable, list[float]] = {a: [] for a in self.possible_agents}
        self._start_inner_episode()

    def _start_inner_episode(self) -> None:
        self._inner_seen: set[Hashable] = set()
        self._inner_done: set[Hashable] = set()
        self._episode_return = {a: 0.0 for a in self.possible_agents}

    def _observe(self, obs: dict) -> None:
        self._inner_seen.update(obs)
        self._last_obs.update(obs)

    def _emit(self, agent: Hashable, obs: Any, done_flag: bool) -> tuple[np.ndarray, float]:
        reward = self._pending_reward.pop(agent, 0.0)
        self._new_episode.discard(agent)
        aug = self._augment[agent](obs, self._prev_action[agent], reward, float(done_flag))
        return aug, reward

    def _info(self, agent: Hashable, infos: dict) -> dict:
        info = dict(infos.get(agent) or {})
        info[INNER_EPISODE] = self._episode_index
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = self._start_trial(self.env, seed, options)
        obs, infos = self.env.reset(options=options)
        infos = infos or {}
        self._reset_trial_state()
        self._observe(obs)
        out_obs, out_infos = {}, {}
        for agent, o in obs.items():
            out_obs[agent], _ = self._emit(agent, o, done_flag=False)
            out_infos[agent] = {**self._info(agent, infos), TASK: self._task}
        return out_obs, out_infos

    def step(self, action_dict: dict):
        for agent, action in action_dict.items():
            self._prev_action[agent] = self._augment[agent].encode_action(action)
        obs, rewards, terminateds, truncateds, infos = self.env.step(action_dict)
        infos = infos or {}
        for agent, r in rewards.items():
            r = self._check_reward(r, agent)
            self._pending_reward[agent] = self._pending_reward.get(agent, 0.0) + r
            self._episode_return[agent] = self._episode_return.get(agent, 0.0) + r
        self._observe(obs)
        for dones in (terminateds, truncateds):
            self._inner_done.update(a for a, done in dones.items() if done and a != "__all__")
        inner_over = bool(
            terminateds.get("__all__")
            or truncateds.get("__all__")
            or (self._inner_seen and self._inner_seen <= self._inner_done)
        )
        out_obs, out_rewards, out_infos = {}, {}, {}
        if not inner_over:
            for agent, o in obs.items():
                if agent in self._inner_done:
                    continue  # Finished this inner episode early: waits for the others.
                out_obs[agent], out_rewards[agent] = self._emit(
                    agent, o, done_flag=agent in self._new_episode
                )
                out_infos[agent] = self._info(agent, infos)
            return out_obs, out_rewards, {"__all__": False}, {"__all__": False}, out_infos

        for agent in self.possible_agents:
            self._returns[agent].append(self._episode_return.get(agent, 0.0))
        if self._in_last_inner_episode:
            out_terminateds = {"__all__": True}
            for agent, last_obs in self._last_obs.items():
                out_obs[agent], out_rewards[agent] = self._emit(agent, last_obs, done_flag=True)
                out_infos[agent] = {
                    **self._info(agent, infos),
                    INNER_EPISODE_RETURNS: list(self._returns[agent]),
                }
                out_terminateds[agent] = True
            return out_obs, out_rewards, out_terminateds, {"__all__": False}, out_infos

        obs, reset_infos = self.env.reset()
        reset_infos = reset_infos or {}
        self._episode_index += 1
        self._start_inner_episode()
        self._new_episode = set(self.possible_agents)
        self._observe(obs)
        for agent, o in obs.items():
            out_obs[agent], out_rewards[agent] = self._emit(agent, o, done_flag=True)
            out_infos[agent] = self._info(agent, {**infos, **reset_infos})
        return out_obs, out_rewards, {"__all__": False}, {"__all__": False}, out_infos

    def close(self) -> None:
        self.env.close()


def make_trial_env(env: Any, episodes_per_trial: int) -> Any:
    """Wraps ``env`` for RL²: multi-agent (RLlib or PettingZoo parallel) or single-agent."""
    if isinstance(env, MultiAgentEnv) or _is_parallel_env(env):
        return MultiAgentRL2TrialWrapper(env, episodes_per_trial)
    return RL2TrialWrapper(env, episodes_per_trial)
