"""The RL² paper's multi-armed Bernoulli bandits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rllib_marl_meta.envs._config import integer, read_env_config, task_key
from rllib_marl_meta.tasks import Task, TaskField, TaskSettableMixin, TaskSpace


class BernoulliBandit(TaskSettableMixin, gym.Env):
    """``k`` arms; the task is each arm's success probability, drawn from U[0, 1].

    Each step is one pull: the reward is 1 with the pulled arm's probability, else 0. An episode
    is ``pulls_per_episode`` pulls (default 1), so an RL² trial of ``n`` episodes is ``n`` pulls,
    as in the RL² paper. The observation is a constant zero: all information reaches the agent
    through rewards. Config: ``num_arms`` (int >= 1, 5), ``pulls_per_episode`` (int >= 1, 1)
    and an initial ``task``.
    """

    metadata = {"render_modes": []}
    CONFIG_KEYS = {
        "num_arms": integer(5, minimum=1),
        "pulls_per_episode": integer(1, minimum=1),
        "task": task_key(),
    }

    def __init__(self, config: dict | None = None) -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        self.num_arms = config["num_arms"]
        self.pulls_per_episode = config["pulls_per_episode"]
        self.task_space = TaskSpace(probs=TaskField(0.0, 1.0, shape=(self.num_arms,)))
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.num_arms)
        self._probs = np.full(self.num_arms, 0.5)
        self._t = 0
        if config["task"] is not None:
            self.set_task(config["task"])

    def _apply_task(self, task: Task) -> None:
        self._probs = np.asarray(task["probs"], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._reset_task_from_options(options)
        self._t = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        reward = float(self.np_random.random() < self._probs[int(action)])
        self._t += 1
        done = self._t >= self.pulls_per_episode
        return np.zeros(1, dtype=np.float32), reward, done, False, {}
