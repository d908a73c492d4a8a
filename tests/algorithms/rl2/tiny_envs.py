"""Tiny scripted task envs whose every step is predictable, for RL² wrapper tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from rllib_marl_meta.tasks import Task, TaskSettableMixin, TaskSpace


class ScriptedEnv(TaskSettableMixin, gym.Env):
    """Obs ``[t, offset]``; reward ``10 * (a + 1) + t + offset`` for Discrete(3) actions.

    Config ``lengths``: inner episode ``k`` (counted over resets) lasts ``lengths[k % len]``
    steps and ends by termination when ``k`` is even, by truncation when odd. ``box_actions``:
    actions are ``Box(-1, 1, (2,))`` and the reward uses ``a[0]`` in place of ``a``.
    """

    task_space = TaskSpace(offset=(0.0, 1.0))

    def __init__(self, config: dict | None = None) -> None:
        config = dict(config or {})
        self.lengths = list(config.get("lengths", [2, 3, 1]))
        self.observation_space = gym.spaces.Box(
            np.array([0.0, 0.0], np.float32), np.array([100.0, 1.0], np.float32)
        )
        if config.get("box_actions"):
            self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        else:
            self.action_space = gym.spaces.Discrete(3)
        self.offset = 0.5
        self.resets = -1
        self.set_task_calls = 0
        self.t = 0

    def set_task(self, task: Task) -> None:
        self.set_task_calls += 1
        super().set_task(task)

    def _apply_task(self, task: Task) -> None:
        self.offset = float(task["offset"])

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.offset], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._reset_task_from_options(options)
        self.resets += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        a = float(np.asarray(action).ravel()[0])
        reward = 10.0 * (a + 1.0) + self.t + self.offset
        over = self.t >= self.lengths[self.resets % len(self.lengths)]
        terminated = over and self.resets % 2 == 0
        truncated = over and self.resets % 2 == 1
        return self._obs(), reward, terminated, truncated, {"t": self.t}


class NoTaskEnv(gym.Env):
    """A plain env without the task API."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, config: dict | None = None) -> None:
        pass

    def reset(self, *, seed=None, options=None):
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, True, False, {}


class TwoAgentEnv(TaskSettableMixin, MultiAgentEnv):
    """Agents ``fast`` and ``slow``: ``fast`` terminates after 1 step, ``slow`` truncates after 3.

    Obs of each agent: ``[t, offset]``. Reward of an acting agent: ``a + 1 + offset`` (Discrete(2)
    actions). While ``fast`` waits for ``slow``, it still receives 0.5 per step (a team
    reward), which the RL² wrapper must pay with its next observation.
    """

    task_space = TaskSpace(offset=(0.0, 1.0))

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.possible_agents = ["fast", "slow"]
        self.agents = list(self.possible_agents)
        box = gym.spaces.Box(np.array([0.0, 0.0], np.float32), np.array([100.0, 1.0], np.float32))
        self.observation_spaces = {a: box for a in self.agents}
        self.action_spaces = {a: gym.spaces.Discrete(2) for a in self.agents}
        self.offset = 0.5
        self.t = 0

    def _apply_task(self, task: Task) -> None:
        self.offset = float(task["offset"])

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.offset], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        gym.Env.reset(self, seed=seed)
        self._reset_task_from_options(options)
        self.t = 0
        return {a: self._obs() for a in self.agents}, {}

    def step(self, action_dict):
        self.t += 1
        obs, rewards, terminateds, truncateds = {}, {}, {}, {}
        for agent, action in action_dict.items():
            rewards[agent] = float(action) + 1.0 + self.offset
        if "fast" not in action_dict:
            rewards["fast"] = 0.5
        if self.t == 1:
            obs["fast"] = self._obs()
            terminateds["fast"] = True
        obs["slow"] = self._obs()
        truncateds["slow"] = self.t >= 3
        terminateds["__all__"] = False
        truncateds["__all__"] = self.t >= 3
        return obs, rewards, terminateds, truncateds, {}
