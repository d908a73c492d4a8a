"""MAML: model-agnostic meta-learning for RLlib, single- and multi-agent."""

from rllib_marl_meta.algorithms.maml.maml import MAML, TEAM_TRAINING, MAMLConfig

__all__ = ["MAML", "MAMLConfig", "TEAM_TRAINING"]
