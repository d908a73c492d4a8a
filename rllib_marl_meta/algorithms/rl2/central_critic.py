"""RL²'s centralised critic: PPO's value function, given the team's global state as well.

With ``RL2Config.training(central_critic=True)`` every agent's module is
:class:`RL2CentralCriticModule`: RLlib's default PPO module whose value head reads the
critic's own recurrent embedding of the agent's trial history *and* the global state (every
agent's trial observation at the step, plus the agent's one-hot; see
``algorithms/central_value.py``). The recurrent part keeps what the agent has learnt about the
task within the trial, which a critic on the current state alone would lose; the global state
adds what the other agents see. PPO's loss, GAE and Learner are RLlib's, unchanged: the
learner-connector piece :class:`AddGlobalState` adds the column before RLlib pads the batch into
sequences, so both GAE and the value loss see it. Agents still act on their own observations;
EnvRunners build the module without a value function, as for any PPO module.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import CRITIC, ENCODER_OUT

from rllib_marl_meta.algorithms.central_value import (
    GLOBAL_STATE,
    episode_global_states,
    value_mlp,
)

GLOBAL_STATE_SIZE_KEY = "central_critic_global_state_size"  # model_config: the input size.


class RL2CentralCriticModule(DefaultPPOTorchRLModule):
    """RLlib's default (recurrent) PPO module; its value head also reads ``GLOBAL_STATE``."""

    def setup(self) -> None:
        super().setup()
        if self.inference_only:  # EnvRunners: no value function, as RLlib's own module.
            return
        embedding_size = next(m for m in self.vf.modules() if isinstance(m, torch.nn.Linear))
        head_config = {
            "fcnet_hiddens": [self.model_config.get("lstm_cell_size", 64)],
            "fcnet_activation": "tanh",
        }
        self.central_vf = value_mlp(
            embedding_size.in_features + int(self.model_config[GLOBAL_STATE_SIZE_KEY]), head_config
        )

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        if embeddings is None:  # The critic's own (recurrent) embedding, as RLlib computes it.
            if hasattr(self.encoder, "critic_encoder"):
                critic_batch = dict(batch)
                if self.is_stateful():
                    critic_batch[Columns.STATE_IN] = batch[Columns.STATE_IN][CRITIC]
                embeddings = self.encoder.critic_encoder(critic_batch)[ENCODER_OUT]
            else:
                embeddings = self.encoder(batch)[ENCODER_OUT][CRITIC]
        inputs = torch.cat([embeddings, batch[GLOBAL_STATE].to(embeddings.dtype)], dim=-1)
        return self.central_vf(inputs).squeeze(-1)


class AddGlobalState(ConnectorV2):
    """Learner-connector piece: each agent step's global state, as column ``GLOBAL_STATE``.

    Goes before RLlib's ``AddTimeDimToBatchAndZeroPad``, which then cuts and pads it into
    sequences like the observations.
    """

    def __call__(self, *, rl_module, batch, episodes, **kwargs):
        states = episode_global_states(episodes)
        for sa_episode in self.single_agent_episode_iterator(
            episodes, agents_that_stepped_only=False
        ):
            key = (sa_episode.multi_agent_episode_id, sa_episode.agent_id)
            self.add_n_batch_items(
                batch,
                GLOBAL_STATE,
                items_to_add=states[key],
                num_items=len(sa_episode),
                single_agent_episode=sa_episode,
            )
        return batch
