"""Pendulum with a task-dependent pendulum mass."""

from __future__ import annotations

import numpy as np
from gymnasium.envs.classic_control.pendulum import PendulumEnv, angle_normalize

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

    @classmethod
    def step_many(cls, envs: list[PendulumMass], actions: np.ndarray) -> tuple:
        """``[env.step(a) for env, a in zip(envs, actions)]`` in one numpy pass, as arrays
        (infos None: all empty): gymnasium's Pendulum dynamics with each env's own mass, the
        same dtypes and operations (tested equal). A direct sampling loop steps its sub-envs
        this way: the env's own step takes microseconds, less than calling it through its
        wrappers."""
        actions = np.asarray(actions)
        # Bounds in the actions' dtype, as numpy treats gymnasium's Python-float bound.
        torque = np.array([[env.max_torque] for env in envs], dtype=actions.dtype)
        u = np.clip(actions, -torque, torque)[:, 0]
        th, thdot = np.stack([env.state for env in envs]).T
        g, m, length, dt, max_speed = (
            np.array([getattr(env, name) for env in envs])
            for name in ("g", "m", "l", "dt", "max_speed")
        )
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        # Per env: gymnasium multiplies a Python or numpy scalar by the action's scalar, whose
        # result dtype (float32 or float64) depends on the type of `m`.
        torque_term = np.array(
            [3.0 / (env.m * env.l**2) * u_i for env, u_i in zip(envs, u)], dtype=np.float64
        )
        new_thdot = thdot + (3 * g / (2 * length) * np.sin(th) + torque_term) * dt
        new_thdot = np.clip(new_thdot, -max_speed, max_speed)
        new_th = th + new_thdot * dt
        truncated = np.empty(len(envs), dtype=bool)
        for i, env in enumerate(envs):
            env.last_u = u[i]
            env.state = np.array([new_th[i], new_thdot[i]])
            env._t += 1
            truncated[i] = env._t >= env.max_episode_steps
            if env.render_mode == "human":
                env.render()
        observations = np.stack([np.cos(new_th), np.sin(new_th), new_thdot], axis=1)
        terminated = np.zeros(len(envs), dtype=bool)
        return observations.astype(np.float32), -costs, terminated, truncated, None
