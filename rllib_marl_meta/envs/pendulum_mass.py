"""Pendulum with a task-dependent pendulum mass."""

from __future__ import annotations

from gymnasium.envs.classic_control.pendulum import PendulumEnv

from rllib_marl_meta.envs._config import (
    integer,
    number,
    one_of,
    read_env_config,
    task_key,
)
from rllib_marl_meta.tasks import Task, TaskSettableMixin, TaskSpace


class PendulumMass(TaskSettableMixin, PendulumEnv):
    """Gymnasium's Pendulum swing-up where the task sets the pendulum mass ``m``.

    Task space: ``m`` uniform in [0.5, 2.0]; the default task is Pendulum's own ``m = 1.0``. A
    heavier pendulum needs more of the bounded torque to swing up, so the optimal policy changes
    with the task. Episodes are truncated after ``max_episode_steps`` (200, as ``Pendulum-v1``);
    they never terminate. Config: ``max_episode_steps`` (int >= 1), ``g`` (gravity >= 0, 10.0),
    ``render_mode`` (one of Pendulum's render modes, or null) and an initial ``task``.
    """

    task_space = TaskSpace(m=(0.5, 2.0))
    CONFIG_KEYS = {
        "max_episode_steps": integer(200, minimum=1),
        "g": number(10.0, minimum=0.0),
        "render_mode": one_of(None, PendulumEnv.metadata["render_modes"], optional=True),
        "task": task_key(),
    }

    def __init__(self, config: dict | None = None) -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        super().__init__(render_mode=config["render_mode"], g=config["g"])
        self.max_episode_steps = config["max_episode_steps"]
        self._t = 0
        if config["task"] is not None:
            self.set_task(config["task"])

    def default_task(self) -> Task:
        """Gymnasium's unmodified pendulum."""
        return {"m": 1.0}

    def _apply_task(self, task: Task) -> None:
        # PendulumEnv.step reads `self.m` on every step; nothing is derived from it.
        self.m = task["m"]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._reset_task_from_options(options)
        self._t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self._t += 1
        return obs, reward, terminated, truncated or self._t >= self.max_episode_steps, info
