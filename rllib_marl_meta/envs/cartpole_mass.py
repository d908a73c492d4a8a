"""CartPole with task-dependent masses."""

from __future__ import annotations

from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from rllib_marl_meta.envs._config import integer, read_env_config, task_key
from rllib_marl_meta.tasks import Task, TaskSettableMixin, TaskSpace


class CartPoleMass(TaskSettableMixin, CartPoleEnv):
    """Gymnasium's CartPole (500-step limit) where the task sets the cart and pole masses.

    Task space: ``masscart`` uniform in [0.5, 2.0], ``masspole`` uniform in [0.05, 0.2]. Unlike
    old RLlib's ``CartPoleMassEnv``, the derived ``total_mass`` and ``polemass_length`` are
    updated too, so the whole physics changes with the task. Config: ``max_episode_steps``
    (int >= 1, 500) and an initial ``task``.
    """

    task_space = TaskSpace(masscart=(0.5, 2.0), masspole=(0.05, 0.2))
    CONFIG_KEYS = {"max_episode_steps": integer(500, minimum=1), "task": task_key()}

    def __init__(self, config: dict | None = None) -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        super().__init__()
        self.max_episode_steps = config["max_episode_steps"]
        self._t = 0
        if config["task"] is not None:
            self.set_task(config["task"])

    def _apply_task(self, task: Task) -> None:
        self.masscart = task["masscart"]
        self.masspole = task["masspole"]
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._reset_task_from_options(options)
        self._t = 0
        return super().reset(seed=seed)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self._t += 1
        return obs, reward, terminated, truncated or self._t >= self.max_episode_steps, info
