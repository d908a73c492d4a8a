"""MAML: model-agnostic meta-learning for RLlib, single- and multi-agent."""

from rllib_marl_meta.algorithms.maml.maml import MAML, MAMLConfig

__all__ = ["MAML", "MAMLConfig"]
