"""Cooperative navigation: a fast, pure-numpy multi-agent task distribution (PettingZoo).

``N`` agents must cover ``N`` landmarks between them, as in MPE's ``simple_spread``, but the
landmark layout and the agents' top speed are the *task*, so a meta-learner has to find out
where the landmarks are (from the team reward alone) and how fast its team can move. The
physics are vectorised over agents with numpy, so an env step costs a few microseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from rllib_marl_meta.envs._config import (
    flag,
    integer,
    interval,
    number,
    read_env_config,
    seed_key,
    task_key,
    task_range,
)
from rllib_marl_meta.envs._team import TeamParallelEnv
from rllib_marl_meta.tasks import Task, TaskField, TaskSpace


class CooperativeNavigation(TeamParallelEnv):
    """``num_agents`` point agents in the plane share one reward for covering the landmarks.

    Task space: ``landmarks`` uniform in ``[-1, 1]^(num_agents, 2)`` and ``max_speed`` uniform
    in ``[0.5, 2.0]`` (config ``max_speed_range``; config ``max_speed`` fixes it, the field then
    allows that single value). The default task puts the landmarks on a circle of radius 0.5.

    Dynamics (per step of ``dt`` = 0.1): an agent's action ``a`` in ``[-1, 1]^2`` is an
    acceleration command, ``v <- (1 - damping) * v + accel * dt * a`` (``damping`` 0.25,
    ``accel`` 5.0, so the free top speed is 2.0), the speed is clipped to ``max_speed`` and
    ``p <- p + dt * v``. Agents start at rest, uniformly in ``[-spawn_range, spawn_range]^2``
    (config ``spawn_range``, default 1.0; a small value starts the team near the origin, as
    the MAML paper's navigation agent starts, which makes one gradient step go further).

    Observation of each agent: own position, own velocity and the other agents relative to the
    agent (in agent order), ``2 * num_agents + 2`` floats. The landmarks are hidden, as the goal
    is in the MAML paper's navigation tasks: the team must find them from its reward. Config
    ``observe_landmarks=True`` adds the landmarks relative to the agent (``4 * num_agents + 2``
    floats), which makes the task fully observed (a multi-task rather than a meta-RL problem).
    Reward (same for all agents): minus the sum over landmarks of the distance of the nearest
    agent, minus ``collision_penalty`` (default 0) per pair of agents closer than
    ``2 * agent_radius``. Episodes are truncated for all agents after ``horizon`` (50) steps and
    never terminate. Agent ids are ``"agent_0"``, ``"agent_1"``...

    Config keys and their allowed values are in ``CONFIG_KEYS``; ``seed`` seeds the env's
    generator (spawn positions, sampled tasks) until ``reset(seed=...)`` re-seeds it.
    """

    metadata = {"name": "cooperative_navigation_v0", "render_modes": [], "is_parallelizable": True}
    CONFIG_KEYS = {
        "num_agents": integer(2, minimum=1),
        "horizon": integer(50, minimum=1),
        "dt": number(0.1, minimum=0.0, exclusive_minimum=True),
        "accel": number(5.0, minimum=0.0, exclusive_minimum=True),
        "damping": number(0.25, minimum=0.0, maximum=1.0),
        "agent_radius": number(0.05, minimum=0.0),
        "collision_penalty": number(0.0, minimum=0.0),
        "spawn_range": number(1.0, minimum=0.0),
        "max_speed_range": interval((0.5, 2.0), minimum=0.0, exclusive_minimum=True),
        "max_speed": number(None, minimum=0.0, exclusive_minimum=True, optional=True),
        "observe_landmarks": flag(False),
        "seed": seed_key(),
        "task": task_key(),
    }

    def __init__(self, config: dict | None = None) -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        self._n = config["num_agents"]
        self.render_mode = None  # Nothing to render; PettingZoo wrappers read this attribute.
        self.horizon = config["horizon"]
        self.dt = config["dt"]
        self.accel = config["accel"]
        self.damping = config["damping"]
        self.agent_radius = config["agent_radius"]
        self.collision_penalty = config["collision_penalty"]
        self.spawn_range = config["spawn_range"]
        low, high = task_range(config, "max_speed")  # `max_speed` fixes it.
        self.task_space = TaskSpace(
            landmarks=TaskField(-1.0, 1.0, shape=(self._n, 2)),
            max_speed=TaskField(low, high),
        )

        self.possible_agents = [f"agent_{i}" for i in range(self._n)]
        self.agents: list[str] = []
        self.observe_landmarks = config["observe_landmarks"]
        obs_dim = 4 + 2 * (self._n - 1) + (2 * self._n if self.observe_landmarks else 0)
        # One space object per agent, returned as is by observation_space(agent).
        self.observation_spaces = {
            a: spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
            for a in self.possible_agents
        }
        self.action_spaces = {
            a: spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32) for a in self.possible_agents
        }
        self.state_space = spaces.Box(-np.inf, np.inf, shape=(6 * self._n,), dtype=np.float32)

        self.np_random, _ = seeding.np_random(config["seed"])
        self._pos = np.zeros((self._n, 2))
        self._vel = np.zeros((self._n, 2))
        self._landmarks = np.zeros((self._n, 2))
        self.max_speed = high
        self._t = 0
        self._others = ~np.eye(self._n, dtype=bool)
        self._pairs = np.triu_indices(self._n, k=1)
        self.set_task(config["task"] if config["task"] is not None else self.default_task())

    # --- task API -----------------------------------------------------------------------------

    def default_task(self) -> Task:
        """Landmarks evenly spaced on a circle of radius 0.5; the middle of the speed range."""
        angles = 2.0 * np.pi * np.arange(self._n) / self._n
        field = self.task_space.fields["max_speed"]
        return {
            "landmarks": 0.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1),
            "max_speed": (field.low + field.high) / 2.0,
        }

    def _apply_task(self, task: Task) -> None:
        self._landmarks = np.array(task["landmarks"], dtype=np.float64)
        self.max_speed = float(task["max_speed"])

    # --- PettingZoo API -----------------------------------------------------------------------

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._start_episode(seed, options)
        self._pos = self.np_random.uniform(-self.spawn_range, self.spawn_range, size=(self._n, 2))
        self._vel = np.zeros((self._n, 2))
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self._check_running()
        act = np.zeros((self._n, 2))
        for i, agent in enumerate(self.possible_agents):
            if agent in actions and actions[agent] is not None:
                act[i] = actions[agent]
        np.clip(act, -1.0, 1.0, out=act)

        vel = (1.0 - self.damping) * self._vel + (self.accel * self.dt) * act
        speed = np.sqrt(np.einsum("ij,ij->i", vel, vel))
        too_fast = speed > self.max_speed
        if too_fast.any():
            vel[too_fast] *= (self.max_speed / speed[too_fast])[:, None]
        self._vel = vel
        self._pos = self._pos + self.dt * vel
        return self._end_step(self._observations(), self._team_reward())

    def state(self) -> np.ndarray:
        """Global state: all positions, all velocities, the landmarks."""
        return np.concatenate(
            [self._pos.ravel(), self._vel.ravel(), self._landmarks.ravel()]
        ).astype(np.float32)

    # --- internals ----------------------------------------------------------------------------

    def _team_reward(self) -> float:
        diff = self._pos[:, None, :] - self._landmarks[None, :, :]  # (agents, landmarks, 2)
        dists = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        reward = -float(dists.min(axis=0).sum())
        if self.collision_penalty and self._n > 1:
            gap = self._pos[self._pairs[0]] - self._pos[self._pairs[1]]
            collisions = np.einsum("ij,ij->i", gap, gap) < (2.0 * self.agent_radius) ** 2
            reward -= self.collision_penalty * float(collisions.sum())
        return reward

    def _observations(self) -> dict[str, np.ndarray]:
        n = self._n
        rel_agents = (self._pos[None, :, :] - self._pos[:, None, :])[self._others]
        parts = [self._pos, self._vel, rel_agents.reshape(n, 2 * (n - 1))]
        if self.observe_landmarks:
            rel_landmarks = self._landmarks[None, :, :] - self._pos[:, None, :]
            parts.append(rel_landmarks.reshape(n, 2 * n))
        obs = np.concatenate(parts, axis=1).astype(np.float32)
        return {agent: obs[i] for i, agent in enumerate(self.agents)}
