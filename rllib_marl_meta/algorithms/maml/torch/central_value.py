"""A centralised critic for multi-agent MAML: centralised training, decentralised execution.

With ``baseline="central_value"`` the Learner's MultiRLModule gets one extra module,
``CENTRAL_VALUE_MODULE_ID``: a value network that sees the *global state* (every agent's
observation at the same env step, in sorted agent order) and a one-hot of the agent whose
return it predicts. Every agent's advantages come from it; the agents' own modules still act on
their own observations only. The critic is trained in MAML's outer loop (value regression on
discounted returns) and never adapts in the inner loop. EnvRunners don't build it: they only act.

The global state is ``algorithms/central_value.py``'s, which RL²'s central critic shares.
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

from rllib_marl_meta.algorithms.central_value import GLOBAL_STATE, global_state_space, value_mlp

CENTRAL_VALUE_MODULE_ID = "__central_value__"


class CentralValueModule(TorchRLModule, ValueFunctionAPI):
    """An MLP from the global state (``GLOBAL_STATE`` column) to one agent's value.

    Hidden layers and activation follow the config's ``model_config`` (``fcnet_hiddens``,
    ``fcnet_activation``). It has no policy: it is never mapped to an agent.
    """

    def setup(self) -> None:
        self.value_net = value_mlp(int(np.prod(self.observation_space.shape)), self.model_config)

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
            "A central critic needs the env's per-agent observation spaces to size its input; "
            f"got {observation_spaces!r}. It works with multi-agent envs only."
        )
    some_action_space = next(iter(env_spaces[1].spaces.values()))
    return RLModuleSpec(
        module_class=CentralValueModule,
        observation_space=global_state_space(dict(observation_spaces.spaces)),
        action_space=some_action_space,
        model_config=dict(model_config),
        learner_only=True,
    )
