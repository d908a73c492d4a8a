"""The MAML paper's 2D navigation task distribution."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rllib_marl_meta.envs._config import integer, number, read_env_config, task_key
from rllib_marl_meta.tasks import Task, TaskField, TaskSettableMixin, TaskSpace


class PointNavigation2D(TaskSettableMixin, gym.Env):
    """A point agent moves in the plane towards a hidden goal.

    Task space: ``goal`` uniform in ``[-0.5, 0.5]^2``. The agent starts at the origin, observes
    its own position, takes actions clipped to ``[-0.1, 0.1]^2`` (added to its position) and
    receives minus its distance to the goal after each step. Episodes last ``horizon`` (100)
    steps; there is no early termination, as in the MAML paper.

    Config: ``horizon`` (int >= 1), ``action_bound`` (> 0, 0.1) and an initial ``task``.
    """

    CONFIG_KEYS = {
        "horizon": integer(100, minimum=1),
        "action_bound": number(0.1, minimum=0.0, exclusive_minimum=True),
        "task": task_key(),
    }

    metadata = {"render_modes": []}
    task_space = TaskSpace(goal=TaskField(-0.5, 0.5, shape=(2,)))

    def __init__(self, config: dict | None = None) -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        self.horizon = config["horizon"]
        self.action_bound = config["action_bound"]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(
            -self.action_bound, self.action_bound, shape=(2,), dtype=np.float32
        )
        self._position = np.zeros(2)
        self._goal = np.zeros(2)
        self._t = 0
        if config["task"] is not None:
            self.set_task(config["task"])

    def _apply_task(self, task: Task) -> None:
        self._goal = np.asarray(task["goal"], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._reset_task_from_options(options)
        self._position = np.zeros(2)
        self._t = 0
        return self._position.astype(np.float32), {}

    def step(self, action):
        action = np.clip(
            np.asarray(action, dtype=np.float64), -self.action_bound, self.action_bound
        )
        self._position = self._position + action
        self._t += 1
        reward = -float(np.sqrt(np.square(self._position - self._goal).sum()))  # As step_many.
        truncated = self._t >= self.horizon
        return self._position.astype(np.float32), reward, False, truncated, {}

    @classmethod
    def step_many(cls, envs: list[PointNavigation2D], actions: np.ndarray) -> tuple:
        """``[env.step(a) for env, a in zip(envs, actions)]`` in one numpy pass, as arrays
        (infos None: all empty). A direct sampling loop steps its sub-envs this way: the env's
        own step takes a few microseconds, less than calling it through its wrappers."""
        bounds = np.array([[env.action_bound] for env in envs])
        moves = np.clip(np.asarray(actions, dtype=np.float64), -bounds, bounds)
        positions = np.array([env._position for env in envs]) + moves
        goals = np.array([env._goal for env in envs])
        rewards = -np.sqrt(np.square(positions - goals).sum(axis=1))
        for env, position in zip(envs, positions):
            env._position = position
            env._t += 1
        truncated = np.array([env._t >= env.horizon for env in envs])
        terminated = np.zeros(len(envs), dtype=bool)
        return positions.astype(np.float32), rewards, terminated, truncated, None
