"""RL²: meta-RL as PPO with a recurrent policy on trials of several episodes of one task."""

from rllib_marl_meta.algorithms.rl2.callbacks import RL2MetricsCallback
from rllib_marl_meta.algorithms.rl2.catalog import RL2Catalog
from rllib_marl_meta.algorithms.rl2.rl2 import RL2, RL2Config, trial_env_name
from rllib_marl_meta.algorithms.rl2.trial_wrapper import (
    MultiAgentRL2TrialWrapper,
    RL2TrialWrapper,
    augmented_observation_space,
    make_trial_env,
)

__all__ = [
    "RL2",
    "MultiAgentRL2TrialWrapper",
    "RL2Catalog",
    "RL2Config",
    "RL2MetricsCallback",
    "RL2TrialWrapper",
    "augmented_observation_space",
    "make_trial_env",
    "trial_env_name",
]
