"""The MAML paper's half-cheetah locomotion tasks (target velocity, running direction).

Built on gymnasium's ``HalfCheetah-v5``. This module imports MuJoCo at import time; the env
registry imports it only when one of these envs is created, so the rest of the package works
without the ``mujoco`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import error, utils

from rllib_marl_meta.envs._config import (
    integer,
    number,
    one_of,
    read_env_config,
    task_key,
)
from rllib_marl_meta.tasks import Task, TaskField, TaskSettableMixin, TaskSpace

try:
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
except (ImportError, error.DependencyNotInstalled) as exc:  # MuJoCo is optional.
    raise ImportError(
        "HalfCheetahVelocity / HalfCheetahDirection need MuJoCo: "
        "pip install -c constraints.txt 'rllib-marl-meta[mujoco]'."
    ) from exc


class _HalfCheetahTask(TaskSettableMixin, HalfCheetahEnv):
    """HalfCheetah-v5 with a task-dependent forward reward and a fixed horizon.

    The reward is ``forward_reward(x_velocity) - ctrl_cost``, where ``ctrl_cost`` is
    gymnasium's ``ctrl_cost_weight * |action|^2`` and subclasses define ``forward_reward``.
    Episodes are truncated after ``horizon`` steps (200, as in the MAML paper) and never
    terminate. Config: ``horizon`` (int >= 1), ``ctrl_cost_weight`` (>= 0, 0.1),
    ``reset_noise_scale`` (>= 0, 0.1), ``render_mode`` (one of HalfCheetah-v5's render modes, or
    null) and an initial ``task``.
    """

    CONFIG_KEYS = {
        "horizon": integer(200, minimum=1),
        "ctrl_cost_weight": number(0.1, minimum=0.0),
        "reset_noise_scale": number(0.1, minimum=0.0),
        "render_mode": one_of(None, HalfCheetahEnv.metadata["render_modes"], optional=True),
        "task": task_key(),
    }

    def __init__(self, config: dict | None = None) -> None:
        given = dict(config or {})
        config = read_env_config(type(self).__name__, given, self.CONFIG_KEYS)
        self.horizon = config["horizon"]
        super().__init__(
            ctrl_cost_weight=config["ctrl_cost_weight"],
            reset_noise_scale=config["reset_noise_scale"],
            render_mode=config["render_mode"],
        )
        self._config = {k: v for k, v in given.items() if k != "task"}
        self._t = 0
        # HalfCheetahEnv records its own constructor arguments for pickling (EzPickle); record
        # ours instead, so a pickled copy is rebuilt with this class's signature.
        utils.EzPickle.__init__(self, self._config)
        if config["task"] is not None:
            self.set_task(config["task"])

    def forward_reward(self, x_velocity: float) -> float:
        raise NotImplementedError

    def _apply_task(self, task: Task) -> None:
        # Keep the task in the pickled state too.
        self._ezpickle_args = ({**self._config, "task": dict(task)},)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._reset_task_from_options(options)
        self._t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, _, terminated, _, info = super().step(action)
        self._t += 1
        forward = self.forward_reward(float(info["x_velocity"]))
        reward = forward + float(info["reward_ctrl"])  # `reward_ctrl` is minus the ctrl cost.
        info: dict[str, Any] = {**info, "reward_forward": forward}
        return obs, reward, terminated, self._t >= self.horizon, info


class HalfCheetahVelocity(_HalfCheetahTask):
    """Run at a target forward velocity.

    Task space: ``target_velocity`` uniform in [0, 2]. Reward:
    ``-|x_velocity - target_velocity| - ctrl_cost`` (MAML paper, section 5.3).
    """

    task_space = TaskSpace(target_velocity=(0.0, 2.0))

    def _apply_task(self, task: Task) -> None:
        super()._apply_task(task)
        self.target_velocity = float(task["target_velocity"])

    def forward_reward(self, x_velocity: float) -> float:
        return -abs(x_velocity - self.target_velocity)


class HalfCheetahDirection(_HalfCheetahTask):
    """Run forward or backward.

    Task space: ``direction`` in {-1, +1}, each with probability 1/2. Reward:
    ``direction * x_velocity - ctrl_cost`` (MAML paper, section 5.3). The default task is +1.
    """

    task_space = TaskSpace(direction=TaskField.one_of(-1.0, 1.0))

    def default_task(self) -> Task:
        return {"direction": 1.0}

    def _apply_task(self, task: Task) -> None:
        super()._apply_task(task)
        self.direction = float(np.sign(task["direction"]))

    def forward_reward(self, x_velocity: float) -> float:
        return self.direction * x_velocity
