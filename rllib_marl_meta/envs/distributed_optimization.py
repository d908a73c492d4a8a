"""Distributed optimisation: a team moves one parameter vector towards a hidden target (PettingZoo).

``N`` agents each own a slice of a ``D``-dimensional vector ``x``. At every step each agent
changes its own slice; the whole team shares the reward ``-|target - f(x)|`` for the global
objective ``f(x) = sum_i w_i x_i``. The task is the ``target`` and, optionally, the weights
``w``: neither is observed, so the team has to find out from its reward which way, and how far,
to push ``f``, and which of its coordinates count for how much. With the default weights (all
1) ``f`` is the plain sum, the setting of the user's multi-agent meta-RL notebook (4 agents,
``D`` = 20, ``T`` = 50).
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
)
from rllib_marl_meta.envs._team import TeamParallelEnv
from rllib_marl_meta.tasks import Task, TaskField, TaskSpace


class DistributedOptimization(TeamParallelEnv):
    """``num_agents`` agents, each owning a slice of ``x`` in ``[-x_bound, x_bound]^dim``.

    Task space: ``target`` uniform in ``target_range`` (default ``[-5, 5]``) and ``weights``
    uniform in ``weight_range^dim`` (default ``[1, 1]``: the weights are fixed at 1 and only the
    target varies; e.g. ``[0.5, 1.5]`` makes them part of the task). The default task is the
    middle of both ranges.

    Slices: ``np.array_split`` of the ``dim`` coordinates over the agents (sizes differ by at
    most one). Start: ``x`` uniform in ``[-init_range, init_range]`` (default 0.5).

    Action of an agent: a change of its slice in ``[-1, 1]^slice``, scaled by ``step_size``
    (default 0.1); ``x`` is clipped to ``[-x_bound, x_bound]`` (default 1). Observation of an
    agent: its own slice of ``x`` followed by ``f(x)`` (config ``observe_objective``, default
    True; without it the agents see only their own coordinates). Reward (the same for all
    agents): ``-|target - f(x)|`` after the step. Episodes are truncated for all agents after
    ``horizon`` (50) steps and never terminate. Agent ids are ``"agent_0"``, ``"agent_1"``...

    Config keys and their allowed values are in ``CONFIG_KEYS``; ``seed`` seeds the env's
    generator (start vectors, sampled tasks) until ``reset(seed=...)`` re-seeds it.
    """

    metadata = {
        "name": "distributed_optimization_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }
    CONFIG_KEYS = {
        "num_agents": integer(4, minimum=1),
        "dim": integer(20, minimum=1),
        "horizon": integer(50, minimum=1),
        "step_size": number(0.1, minimum=0.0, exclusive_minimum=True),
        "x_bound": number(1.0, minimum=0.0, exclusive_minimum=True),
        "init_range": number(0.5, minimum=0.0),
        "target_range": interval((-5.0, 5.0)),
        "weight_range": interval((1.0, 1.0)),
        "observe_objective": flag(True),
        "seed": seed_key(),
        "task": task_key(),
    }

    def __init__(self, config: dict | None = None) -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        self._n, self.dim = config["num_agents"], config["dim"]
        if self.dim < self._n:
            raise ValueError(
                f"DistributedOptimization: dim ({self.dim}) must be at least num_agents "
                f"({self._n}), so that every agent owns a coordinate."
            )
        self.render_mode = None  # Nothing to render; PettingZoo wrappers read this attribute.
        self.horizon = config["horizon"]
        self.step_size = config["step_size"]
        self.x_bound = config["x_bound"]
        self.init_range = min(config["init_range"], self.x_bound)
        self.observe_objective = config["observe_objective"]
        self.task_space = TaskSpace(
            target=TaskField(*config["target_range"]),
            weights=TaskField(*config["weight_range"], shape=(self.dim,)),
        )

        self.possible_agents = [f"agent_{i}" for i in range(self._n)]
        self.agents: list[str] = []
        self.slices = [
            slice(int(part[0]), int(part[-1]) + 1)
            for part in np.array_split(np.arange(self.dim), self._n)
        ]
        extra = 1 if self.observe_objective else 0
        self.observation_spaces = {
            a: spaces.Box(-np.inf, np.inf, shape=(s.stop - s.start + extra,), dtype=np.float32)
            for a, s in zip(self.possible_agents, self.slices)
        }
        self.action_spaces = {
            a: spaces.Box(-1.0, 1.0, shape=(s.stop - s.start,), dtype=np.float32)
            for a, s in zip(self.possible_agents, self.slices)
        }
        self.state_space = spaces.Box(-np.inf, np.inf, shape=(self.dim + 1,), dtype=np.float32)

        self.np_random, _ = seeding.np_random(config["seed"])
        self._x = np.zeros(self.dim)
        self._weights = np.ones(self.dim)
        self._target = 0.0
        self._t = 0
        self.set_task(config["task"] if config["task"] is not None else self.default_task())

    # --- task API -----------------------------------------------------------------------------

    def default_task(self) -> Task:
        """The middle of the target and weight ranges."""
        fields = self.task_space.fields
        return {
            "target": (fields["target"].low + fields["target"].high) / 2.0,
            "weights": np.full(self.dim, (fields["weights"].low + fields["weights"].high) / 2.0),
        }

    def _apply_task(self, task: Task) -> None:
        self._target = float(task["target"])
        self._weights = np.array(task["weights"], dtype=np.float64).reshape(self.dim)

    # --- PettingZoo API -----------------------------------------------------------------------

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._start_episode(seed, options)
        self._x = self.np_random.uniform(-self.init_range, self.init_range, size=self.dim)
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self._check_running()
        delta = np.zeros(self.dim)
        for agent, part in zip(self.possible_agents, self.slices):
            action = actions.get(agent)
            if action is not None:
                delta[part] = np.asarray(action, dtype=np.float64).reshape(-1)
        np.clip(delta, -1.0, 1.0, out=delta)
        self._x = np.clip(self._x + self.step_size * delta, -self.x_bound, self.x_bound)
        return self._end_step(self._observations(), -abs(self._target - self.objective()))

    def objective(self) -> float:
        """``f(x) = sum_i w_i x_i`` at the current ``x``."""
        return float(self._weights @ self._x)

    def state(self) -> np.ndarray:
        """Global state: the whole vector and ``f(x)`` (the task stays hidden)."""
        return np.append(self._x, self.objective()).astype(np.float32)

    # --- internals ----------------------------------------------------------------------------

    def _observations(self) -> dict[str, np.ndarray]:
        f = self.objective()
        out = {}
        for agent, part in zip(self.possible_agents, self.slices):
            if agent in self.agents:
                obs = self._x[part]
                out[agent] = (np.append(obs, f) if self.observe_objective else obs).astype(
                    np.float32
                )
        return out
