"""PPO's catalog, plus a GRU option for the recurrent encoder.

RLlib's ``PPOCatalog`` builds a recurrent encoder when ``model_config["use_lstm"]`` is true, but
always an LSTM. RLlib already ships a torch GRU encoder (``RecurrentEncoderConfig`` with
``recurrent_layer_type="gru"``); :class:`RL2Catalog` only picks it when
``model_config["recurrent_layer_type"] == "gru"``, so the default PPO RLModule, its value
function and PPO's Learner are reused unchanged. ``use_lstm`` stays RLlib's switch for "make the
encoder recurrent"; ``recurrent_layer_type`` says which cell.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
from ray.rllib.algorithms.ppo.ppo_catalog import PPOCatalog
from ray.rllib.core.models.configs import ModelConfig, RecurrentEncoderConfig

RNN_CELLS = ("lstm", "gru")


class RL2Catalog(PPOCatalog):
    """``PPOCatalog`` whose recurrent encoder is an LSTM or a GRU (``recurrent_layer_type``)."""

    @classmethod
    def _get_encoder_config(
        cls,
        observation_space: gym.Space,
        model_config_dict: dict,
        action_space: gym.Space | None = None,
    ) -> ModelConfig:
        config = super()._get_encoder_config(
            observation_space=observation_space,
            model_config_dict=model_config_dict,
            action_space=action_space,
        )
        cell = model_config_dict.get("recurrent_layer_type", "lstm")
        if cell not in RNN_CELLS:
            raise ValueError(f"recurrent_layer_type must be one of {RNN_CELLS}, got {cell!r}.")
        if isinstance(config, RecurrentEncoderConfig) and config.recurrent_layer_type != cell:
            config = dataclasses.replace(config, recurrent_layer_type=cell)
        return config
