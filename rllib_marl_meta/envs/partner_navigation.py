"""Partner navigation: adapting to a new teammate (ad hoc teamwork), a PettingZoo team task.

A ``learner`` and a ``partner`` must meet at the partner's landmark. Partners differ in their
*convention*: which point of the plane they head for. The convention is the task, and the
learner does not observe it, so it has to adapt to each new partner; the partner plays its
convention with the fixed, scripted module :class:`ScriptedPartnerModule` and never learns.
Meta-train the learner with ``modules_to_adapt=["learner"]`` and ``policies_to_train=
["learner"]`` (:func:`partner_team_setup` gives the settings) against partners drawn from the
task distribution; meta-test on held-out partners.

The partner starts ``partner_delay`` steps late, so in the first steps of an episode its
motion gives nothing away and a learner that knows its partner already moves the right way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.models.torch.torch_distributions import TorchDiagGaussian

from rllib_marl_meta.envs._config import (
    flag,
    integer,
    number,
    read_env_config,
    seed_key,
    task_key,
)
from rllib_marl_meta.envs._team import TeamParallelEnv
from rllib_marl_meta.tasks import Task, TaskField, TaskSpace

LEARNER, PARTNER = "learner", "partner"


class PartnerNavigation(TeamParallelEnv):
    """Two point agents in the plane; the team is rewarded for meeting at the partner's landmark.

    Task space: ``landmark`` uniform in ``[-landmark_range, landmark_range]^2`` (0.6), the
    partner's convention: the point it heads for. The default task is ``(landmark_range, 0)``.

    Dynamics are CooperativeNavigation's (per step of ``dt`` 0.1: ``v <- 0.75 v + 0.5 a``,
    speed clipped to ``max_speed`` 1.0, ``p <- p + dt v``); both agents start at rest,
    uniformly in ``[-spawn_range, spawn_range]^2`` (0.1). The partner's actions take effect
    from step ``partner_delay`` (default 5) on.

    Observations: the learner sees its own position and velocity and the partner relative to it
    (config ``observe_partner``, default True; 6 floats, else 4). The partner sees its own
    position, velocity and its landmark relative to it (6 floats): that is how the scripted
    partner plays its convention. Reward (shared): minus the sum of both agents' distances to
    the partner's landmark. Episodes are truncated after ``horizon`` (20) steps.
    """

    metadata = {"name": "partner_navigation_v0", "render_modes": [], "is_parallelizable": True}
    CONFIG_KEYS = {
        "horizon": integer(20, minimum=1),
        "partner_delay": integer(5, minimum=0),
        "landmark_range": number(0.6, minimum=0.0, exclusive_minimum=True),
        "max_speed": number(1.0, minimum=0.0, exclusive_minimum=True),
        "spawn_range": number(0.1, minimum=0.0),
        "observe_partner": flag(True),
        "seed": seed_key(),
        "task": task_key(),
    }
    DT, ACCEL, DAMPING = 0.1, 5.0, 0.25

    def __init__(self, config: dict | None = None) -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        self.render_mode = None
        self.horizon = config["horizon"]
        self.partner_delay = config["partner_delay"]
        self.max_speed = config["max_speed"]
        self.spawn_range = config["spawn_range"]
        self.observe_partner = config["observe_partner"]
        bound = config["landmark_range"]
        self.task_space = TaskSpace(landmark=TaskField(-bound, bound, shape=(2,)))
        self.possible_agents = [LEARNER, PARTNER]
        self.agents: list[str] = []
        learner_dim = 6 if self.observe_partner else 4
        self.observation_spaces = {
            LEARNER: spaces.Box(-np.inf, np.inf, shape=(learner_dim,), dtype=np.float32),
            PARTNER: spaces.Box(-np.inf, np.inf, shape=(6,), dtype=np.float32),
        }
        self.action_spaces = {
            a: spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32) for a in self.possible_agents
        }
        self.np_random, _ = seeding.np_random(config["seed"])
        self._pos = np.zeros((2, 2))
        self._vel = np.zeros((2, 2))
        self._landmark = np.zeros(2)
        self._t = 0
        self.set_task(config["task"] if config["task"] is not None else self.default_task())

    def default_task(self) -> Task:
        return {"landmark": np.array([self.task_space.fields["landmark"].high, 0.0])}

    def _apply_task(self, task: Task) -> None:
        self._landmark = np.array(task["landmark"], dtype=np.float64)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._start_episode(seed, options)
        self._pos = self.np_random.uniform(-self.spawn_range, self.spawn_range, size=(2, 2))
        self._vel = np.zeros((2, 2))
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        self._check_running()
        act = np.zeros((2, 2))
        for i, agent in enumerate(self.possible_agents):
            if actions.get(agent) is not None:
                act[i] = actions[agent]
        if self._t < self.partner_delay:
            act[1] = 0.0
        np.clip(act, -1.0, 1.0, out=act)
        vel = (1.0 - self.DAMPING) * self._vel + (self.ACCEL * self.DT) * act
        speed = np.linalg.norm(vel, axis=1, keepdims=True)
        self._vel = vel * np.minimum(1.0, self.max_speed / np.maximum(speed, 1e-12))
        self._pos = self._pos + self.DT * self._vel
        reward = -float(np.linalg.norm(self._pos - self._landmark, axis=1).sum())
        return self._end_step(self._observations(), reward)

    def _observations(self) -> dict[str, np.ndarray]:
        learner = [self._pos[0], self._vel[0]]
        if self.observe_partner:
            learner.append(self._pos[1] - self._pos[0])
        partner = [self._pos[1], self._vel[1], self._landmark - self._pos[1]]
        obs = {
            LEARNER: np.concatenate(learner).astype(np.float32),
            PARTNER: np.concatenate(partner).astype(np.float32),
        }
        return {agent: obs[agent] for agent in self.agents}


class ScriptedPartnerModule(TorchRLModule, ValueFunctionAPI):
    """The partner's fixed convention player: heads for the landmark in its observation.

    Action mean ``clip(gain * to_landmark - damping * velocity, -1, 1)`` with a (nearly)
    deterministic Gaussian (log std -5). ``gain`` is its one parameter, so RLlib's Learners can
    hold it like any module; keep it out of ``policies_to_train``. Its value is 0.
    """

    def setup(self) -> None:
        self.gain = torch.nn.Parameter(torch.tensor(4.0))

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        velocity, to_landmark = obs[..., 2:4], obs[..., 4:6]
        mean = torch.clamp(self.gain * to_landmark - 0.5 * velocity, -1.0, 1.0)
        log_std = torch.full_like(mean, -5.0)
        return {Columns.ACTION_DIST_INPUTS: torch.cat([mean, log_std], dim=-1)}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return torch.zeros(batch[Columns.OBS].shape[:-1], device=batch[Columns.OBS].device)

    def get_inference_action_dist_cls(self) -> type:
        return TorchDiagGaussian

    def get_exploration_action_dist_cls(self) -> type:
        return TorchDiagGaussian

    def get_train_action_dist_cls(self) -> type:
        return TorchDiagGaussian


def partner_team_setup() -> dict[str, Any]:
    """Keyword arguments for the config's ``multi_agent(...)`` and ``rl_module(...)``: the
    learner's module is the algorithm's default, the partner's is :class:`ScriptedPartnerModule`
    and only the learner trains.

    Example::

        setup = partner_team_setup()
        config.multi_agent(**setup["multi_agent"]).rl_module(**setup["rl_module"])
        config.training(modules_to_adapt=[LEARNER])  # MAML
    """
    return {
        "multi_agent": {
            "policies": {LEARNER, PARTNER},
            "policy_mapping_fn": _agent_is_module,
            "policies_to_train": [LEARNER],
        },
        "rl_module": {
            "rl_module_spec": MultiRLModuleSpec(
                rl_module_specs={
                    LEARNER: RLModuleSpec(),
                    PARTNER: RLModuleSpec(module_class=ScriptedPartnerModule),
                }
            )
        },
    }


def _agent_is_module(agent_id: str, *args: Any, **kwargs: Any) -> str:
    return agent_id
