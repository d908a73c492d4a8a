"""A centralised critic for multi-agent MAML: centralised training, decentralised execution.

With ``baseline="central_value"`` the Learner's MultiRLModule gets one extra module,
``CENTRAL_VALUE_MODULE_ID``: a value network that sees the *global state* (every agent's
observation at the same env step, in sorted agent order) and a one-hot of the agent whose
return it predicts. Every agent's advantages come from it; the agents' own modules still act on
their own observations only. The critic is trained in MAML's outer loop (value regression on
discounted returns) and never adapts in the inner loop. EnvRunners don't build it: they only act.

Envs that provide a global ``state()`` are not read: the concatenated observations are the
state, which needs each agent to act at every step (the PettingZoo parallel envs here do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.env import INPUT_ENV_SINGLE_SPACES

CENTRAL_VALUE_MODULE_ID = "__central_value__"
GLOBAL_STATE = "global_state"  # Learner-batch column: the critic's input for each row.


def global_state_space(agent_observation_spaces: Mapping[Any, gym.Space]) -> gym.spaces.Box:
    """The critic's input space: all agents' observations, flat, then the agent's one-hot."""
    bad = {a: s for a, s in agent_observation_spaces.items() if not isinstance(s, gym.spaces.Box)}
    if bad:
        raise ValueError(
            "baseline='central_value' concatenates the agents' observations, which needs Box "
            f"observation spaces; agents {sorted(bad, key=str)} have {list(bad.values())}. Use "
            "baseline='value' or 'linear', or flatten the observations in the env."
        )
    size = sum(int(np.prod(s.shape)) for s in agent_observation_spaces.values())
    size += len(agent_observation_spaces)
    return gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)


def global_states(agent_observations: Mapping[Any, np.ndarray]) -> dict[Any, np.ndarray]:
    """Each agent's critic inputs over one episode, from every agent's per-step observations.

    ``agent_observations[agent]`` holds one row per step (all agents the same number of
    steps). Row t of every agent's result is the concatenation, in sorted agent order, of all
    agents' step-t observations, followed by that agent's one-hot.
    """
    agents = sorted(agent_observations, key=str)
    steps = {len(agent_observations[a]) for a in agents}
    if len(steps) != 1:
        lengths = {a: len(agent_observations[a]) for a in agents}
        raise ValueError(
            "baseline='central_value' needs every agent to act at every step of an episode "
            f"(the global state is all agents' observations at one step); got steps {lengths}. "
            "Use baseline='value' or 'linear' for envs where agents act in turn or leave early."
        )
    (length,) = steps
    flat = [np.asarray(agent_observations[a], np.float32).reshape(length, -1) for a in agents]
    state = np.concatenate(flat, axis=1)
    one_hot = np.eye(len(agents), dtype=np.float32)
    return {
        a: np.hstack([state, np.repeat(one_hot[i : i + 1], length, 0)])
        for i, a in enumerate(agents)
    }


class CentralValueModule(TorchRLModule, ValueFunctionAPI):
    """An MLP from the global state (``GLOBAL_STATE`` column) to one agent's value.

    Hidden layers and activation follow the config's ``model_config`` (``fcnet_hiddens``,
    ``fcnet_activation``). It has no policy: it is never mapped to an agent.
    """

    def setup(self) -> None:
        hiddens = list(self.model_config.get("fcnet_hiddens", [64, 64]))
        activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}.get(
            str(self.model_config.get("fcnet_activation", "tanh")).lower(), torch.nn.Tanh
        )
        layers: list[torch.nn.Module] = []
        size = int(np.prod(self.observation_space.shape))
        for hidden in hiddens:
            layers += [torch.nn.Linear(size, hidden), activation()]
            size = hidden
        layers.append(torch.nn.Linear(size, 1))
        self.value_net = torch.nn.Sequential(*layers)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.value_net(batch[GLOBAL_STATE]).squeeze(-1)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError(
            f"{CENTRAL_VALUE_MODULE_ID!r} is MAML's central critic; no agent may map to it."
        )


def central_value_spec(spaces: Mapping[str, Any] | None, model_config: dict) -> RLModuleSpec:
    """The critic's module spec, sized from the env's per-agent observation spaces."""
    env_spaces = (spaces or {}).get(INPUT_ENV_SINGLE_SPACES)
    observation_spaces = env_spaces[0] if env_spaces else None
    if not isinstance(observation_spaces, gym.spaces.Dict):
        raise ValueError(
            "baseline='central_value' needs the env's per-agent observation spaces to size the "
            f"central critic; got {observation_spaces!r}. It works with multi-agent envs only."
        )
    some_action_space = next(iter(env_spaces[1].spaces.values()))
    return RLModuleSpec(
        module_class=CentralValueModule,
        observation_space=global_state_space(dict(observation_spaces.spaces)),
        action_space=some_action_space,
        model_config=dict(model_config),
        learner_only=True,
    )
