"""Envs that misbehave on purpose, and an env written to old RLlib's task contract.

They live in an importable module (not a test module) so that remote EnvRunners can unpickle
them.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np

from rllib_marl_meta.envs.point_navigation import PointNavigation2D


class FailingEnv(PointNavigation2D):
    """PointNavigation2D that fails on one EnvRunner once.

    Config: ``marker`` (a file: the failure happens only while it does not exist),
    ``fail_at_step``, ``fail_on_worker`` (EnvRunner index, 0 is the local one) and ``how``:
    ``"raise"`` (the env raises, the process lives) or ``"exit"`` (the process dies).
    """

    def __init__(self, config=None):
        self.worker_index = getattr(config, "worker_index", None)
        config = dict(config or {})
        self.marker = Path(config.pop("marker"))
        self.fail_at_step = config.pop("fail_at_step")
        self.fail_on_worker = config.pop("fail_on_worker")
        self.how = config.pop("how", "raise")
        super().__init__(config)
        self.steps_taken = 0

    def step(self, action):
        self.steps_taken += 1
        if (
            self.worker_index == self.fail_on_worker
            and self.steps_taken == self.fail_at_step
            and not self.marker.exists()
        ):
            self.marker.write_text("failed")
            if self.how == "exit":
                os._exit(3)
            raise ZeroDivisionError("FailingEnv: simulated env failure")
        return super().step(action)


class NonFiniteEnv(PointNavigation2D):
    """Gives a NaN reward (``what="reward"``) or an infinite observation
    (``what="observation"``) at step 3 of every episode from its ``from_episode``-th reset on
    (1-based). The driver's probe (one reset, one step) never sees it.
    """

    def __init__(self, config=None):
        config = dict(config or {})
        self.what = config.pop("what", "reward")
        self.from_episode = config.pop("from_episode", 1)
        super().__init__(config)
        self.resets = 0

    def reset(self, *, seed=None, options=None):
        self.resets += 1
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.resets >= self.from_episode and self._t == 3:
            if self.what == "reward":
                reward = float("nan")
            else:
                obs = np.array([np.inf, 0.0], dtype=np.float32)
        return obs, reward, terminated, truncated, info


class RaisingEnv(PointNavigation2D):
    """Raises ``KeyError('boom ...')`` in ``step`` on EnvRunners (not in the driver's probe)."""

    def __init__(self, config=None):
        super().__init__(dict(config or {}))
        self.steps_taken = 0

    def step(self, action):
        self.steps_taken += 1
        if self.steps_taken > 1:  # The driver's probe takes one step only.
            raise KeyError("boom from the env step")
        return super().step(action)


class WrongShapeEnv(PointNavigation2D):
    """Declares a (2,) observation space but returns (3,) observations."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return np.zeros(3, dtype=np.float32), info


class OldContractEnv(gym.Env):
    """Written to old RLlib's ``TaskSettableEnv`` contract: ``sample_tasks(n_tasks)`` without a
    seed, draws from numpy's global RNG, and a task is a plain tuple ``(goal_x, goal_y)``.

    ``set_task`` insists on a whole tuple, so a task that is unpacked across sub-envs fails.
    """

    def __init__(self, config=None):
        config = dict(config or {})
        self.horizon = int(config.get("horizon", 10))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-0.1, 0.1, shape=(2,), dtype=np.float32)
        self.goal = (0.0, 0.0)
        self.position = np.zeros(2)
        self.t = 0

    def sample_tasks(self, n_tasks):
        return [tuple(np.random.uniform(-0.5, 0.5, size=2)) for _ in range(n_tasks)]

    def set_task(self, task):
        if not (isinstance(task, tuple) and len(task) == 2):
            raise TypeError(f"OldContractEnv got a task that is not a 2-tuple: {task!r}")
        self.goal = task

    def get_task(self):
        return self.goal

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = np.zeros(2)
        self.t = 0
        return self.position.astype(np.float32), {}

    def step(self, action):
        self.position = self.position + np.clip(action, -0.1, 0.1)
        self.t += 1
        reward = -float(np.linalg.norm(self.position - np.asarray(self.goal)))
        return self.position.astype(np.float32), reward, False, self.t >= self.horizon, {}
