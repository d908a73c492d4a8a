"""What the pure-numpy team envs share: a PettingZoo ``ParallelEnv`` whose agents share one
reward, with tasks, per-agent spaces in dicts, and episodes truncated after ``horizon`` steps."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from rllib_marl_meta.tasks import TaskSettableMixin


class TeamParallelEnv(TaskSettableMixin, ParallelEnv):
    """Base of the team envs: subclasses set ``possible_agents``, ``observation_spaces``,
    ``action_spaces``, ``horizon`` and ``np_random``, and call :meth:`_start_episode` in
    ``reset`` and :meth:`_end_step` at the end of ``step``."""

    # Every agent observes and acts at every step; the episode ends for all at once. Plan
    # sampling may then use its direct multi-agent loop (`plan_sampling.MultiAgentPlanMixin`).
    agents_act_together = True
    horizon: int
    observation_spaces: dict[str, spaces.Space]
    action_spaces: dict[str, spaces.Space]

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def close(self) -> None:
        pass

    def _start_episode(self, seed: int | None, options: dict | None) -> None:
        """Re-seeds (if ``seed``), sets ``options["task"]`` (if given), brings the agents in."""
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        self._reset_task_from_options(options)
        self.agents = list(self.possible_agents)
        self._t = 0

    def _check_running(self) -> None:
        if not self.agents:
            raise RuntimeError(f"{type(self).__name__}.step() called after the episode ended.")

    def _end_step(
        self, observations: dict[str, Any], reward: float
    ) -> tuple[dict, dict, dict, dict, dict]:
        """Counts the step and returns PettingZoo's step result for a team that shares
        ``reward``; after ``horizon`` steps every agent is truncated and the episode ends."""
        self._t += 1
        truncated = self._t >= self.horizon
        agents = self.agents
        rewards = dict.fromkeys(agents, reward)
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        infos = {a: {} for a in agents}
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos
