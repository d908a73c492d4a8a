"""MPE's ``simple_spread`` (from ``mpe2``) as a task distribution.

mpe2 draws new landmark positions in every ``reset_world``. Here the landmark layout is part of
the task: it is written back *after* the inner reset (and the first observations recomputed),
and agent speed and world damping are written on ``set_task``. ``mpe2`` is imported when the env
is created, so the package works without the ``mpe`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pettingzoo.utils import BaseParallelWrapper

from rllib_marl_meta.envs._config import (
    flag,
    integer,
    interval,
    number,
    one_of,
    read_env_config,
    task_key,
    task_range,
)
from rllib_marl_meta.tasks import Task, TaskField, TaskSettableMixin, TaskSpace
from rllib_marl_meta.tasks.wrappers import inner_options


class MPESpread(TaskSettableMixin, BaseParallelWrapper):
    """mpe2's ``simple_spread_v3`` parallel env (``N`` agents, ``N`` landmarks) with tasks.

    Task space: ``landmarks`` uniform in ``[-1, 1]^(N, 2)`` (mpe2's own range),
    ``max_speed`` of every agent uniform in [0.5, 2.0] and the world's velocity ``damping``
    uniform in [0.1, 0.5]. Config ``max_speed`` / ``damping`` fix a value, and
    ``max_speed_range`` / ``damping_range`` change a range. The default task puts the landmarks
    on a circle of radius 0.5, with max speed 2.0 and damping 0.25 (mpe2's defaults, whose free
    top speed is 2.0). Other config keys: ``N`` (3), ``local_ratio`` (0.5), ``max_cycles`` (25),
    ``continuous_actions`` (False), ``render_mode``; ``CONFIG_KEYS`` lists the allowed values.

    ``observe_landmarks`` (default True, mpe2's observation) set to False removes the landmark
    positions from every agent's observation, so that the layout is hidden, as the goal is in
    the MAML paper's navigation tasks, and the team has something to adapt to: it then sees
    its own velocity and position, the other agents and their messages.

    ``spawn_range`` (default None: mpe2's own spawn, uniform in ``[-1, 1]^2``) starts every
    agent uniformly in ``[-spawn_range, spawn_range]^2`` instead; a small value starts the team
    near the origin, as in the MAML paper's navigation tasks and ``CooperativeNavigation``, so
    that where to go depends on the hidden layout only, not on where each agent happened to
    start.
    """

    # mpe2's agents all act at every step and are truncated together (see `_team.py`).
    agents_act_together = True
    CONFIG_KEYS = {
        "N": integer(3, minimum=1),
        "local_ratio": number(0.5, minimum=0.0, maximum=1.0),
        "max_cycles": integer(25, minimum=1),
        "continuous_actions": flag(False),
        "render_mode": one_of(None, ("human", "rgb_array"), optional=True),
        "max_speed_range": interval((0.5, 2.0), minimum=0.0, exclusive_minimum=True),
        "max_speed": number(None, minimum=0.0, exclusive_minimum=True, optional=True),
        "damping_range": interval((0.1, 0.5), minimum=0.0, maximum=1.0),
        "damping": number(None, minimum=0.0, maximum=1.0, optional=True),
        "observe_landmarks": flag(True),
        "spawn_range": number(None, minimum=0.0, optional=True),
        "task": task_key(),
    }

    def __init__(self, config: dict | None = None) -> None:
        try:
            from mpe2 import simple_spread_v3
        except ImportError as exc:
            raise ImportError(
                "MPESpread needs mpe2: pip install -c constraints.txt 'rllib-marl-meta[mpe]'."
            ) from exc
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        n = config["N"]
        env = simple_spread_v3.parallel_env(
            N=n,
            local_ratio=config["local_ratio"],
            max_cycles=config["max_cycles"],
            continuous_actions=config["continuous_actions"],
            render_mode=config["render_mode"],
        )
        BaseParallelWrapper.__init__(self, env)
        self.task_space = TaskSpace(
            landmarks=TaskField(-1.0, 1.0, shape=(n, 2)),
            max_speed=TaskField(*task_range(config, "max_speed")),
            damping=TaskField(*task_range(config, "damping")),
        )
        self._n = n
        self._spawn_range = config["spawn_range"]
        # mpe2's observation: own velocity (2), own position (2), the landmarks relative to the
        # agent (2 N), the other agents, their messages. Hidden landmarks drop the third part.
        self._landmark_columns = None if config["observe_landmarks"] else np.arange(4, 4 + 2 * n)
        self._observation_spaces: dict[str, Any] = {}
        self.set_task(config["task"] if config["task"] is not None else self.default_task())

    @property
    def np_random(self) -> np.random.Generator:
        """mpe2's generator, re-seeded by ``reset(seed=...)``; ``sample_tasks`` draws from it."""
        return self.env.unwrapped.np_random

    @property
    def world(self) -> Any:
        """mpe2's ``World`` object (agents, landmarks, damping)."""
        return self.env.unwrapped.world

    def default_task(self) -> Task:
        """Landmarks on a circle of radius 0.5, mpe2's speed and damping (clipped to range)."""
        angles = 2.0 * np.pi * np.arange(self._n) / self._n
        speed, damping = self.task_space.fields["max_speed"], self.task_space.fields["damping"]
        return {
            "landmarks": 0.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1),
            "max_speed": float(np.clip(2.0, speed.low, speed.high)),
            "damping": float(np.clip(0.25, damping.low, damping.high)),
        }

    def _apply_task(self, task: Task) -> None:
        world = self.world
        for agent in world.agents:
            agent.max_speed = task["max_speed"]
        world.damping = task["damping"]
        self._place_landmarks()

    def _place_landmarks(self) -> None:
        landmarks = self._current_task["landmarks"]
        for landmark, position in zip(self.world.landmarks, landmarks):
            landmark.state.p_pos = np.array(position, dtype=np.float64)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._reset_task_from_options(options)
        obs, infos = self.env.reset(seed=seed, options=inner_options(options))
        # mpe2's reset_world drew fresh landmarks: put the task's back and observe again.
        self._place_landmarks()
        if self._spawn_range is not None:
            for agent in self.world.agents:
                agent.state.p_pos = self.np_random.uniform(
                    -self._spawn_range, self._spawn_range, size=2
                )
        raw = self.env.unwrapped
        positions = np.array([e.state.p_pos for e in self.world.entities])
        raw.original_cam_range = float(np.max(np.abs(positions)))  # Used by render().
        return {agent: self._observe(raw.observe(agent)) for agent in obs}, infos

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        return (
            {agent: self._observe(o) for agent, o in obs.items()},
            rewards,
            terminations,
            truncations,
            infos,
        )

    def observation_space(self, agent: str) -> Any:
        space = self.env.observation_space(agent)
        if self._landmark_columns is None:
            return space
        if agent not in self._observation_spaces:
            from gymnasium.spaces import Box

            self._observation_spaces[agent] = Box(
                np.delete(space.low, self._landmark_columns),
                np.delete(space.high, self._landmark_columns),
                dtype=space.dtype,
            )
        return self._observation_spaces[agent]

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if self._landmark_columns is None:
            return obs
        return np.delete(obs, self._landmark_columns)
