"""Advantages for MAML's inner and outer losses, as a learner-connector piece.

MAML calls the learner connector once per (task, adaptation step), so every call sees the
episodes of exactly one task. That is what a per-task baseline needs:

- ``baseline="linear"``: a linear feature baseline refit on each call (ProMP, garage): ridge
  regression of the discounted return on ``[obs, obs², t, t², t³, 1]``. Most published MAML-RL
  results use it, and it needs no value head.
- ``baseline="value"``: the module's value head (trained in the outer loop).
- ``baseline="central_value"`` (multi-agent): a central critic that sees every agent's
  observation (``torch/central_value.py``); each row also gets its critic input, ``GLOBAL_STATE``.

Advantages are generalised advantage estimates (``use_gae``, ``lambda_``) from that baseline,
standardised per call; ``value_targets`` are the discounted returns. ``episode_index`` numbers
each step's episode within the module's batch (0, 0, ..., 1, 1, ...; an episode's steps are
contiguous and in time order): the DiCE inner loss needs episode boundaries, which RLlib's
learner connector does not provide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.postprocessing.zero_padding import unpad_data_if_necessary
from scipy.signal import lfilter

from rllib_marl_meta.algorithms.central_value import GLOBAL_STATE, episode_global_states
from rllib_marl_meta.algorithms.maml.torch.central_value import CENTRAL_VALUE_MODULE_ID

ADVANTAGES = "advantages"
VALUE_TARGETS = "value_targets"
EPISODE_INDEX = "episode_index"


def discount_cumsum(x: np.ndarray, gamma: float) -> np.ndarray:
    """``y[t] = sum_k gamma^k x[t+k]`` along the first axis."""
    return lfilter([1.0], [1.0, -gamma], x[::-1], axis=0)[::-1]


def linear_baseline_values(
    observations: np.ndarray, timesteps: np.ndarray, returns: np.ndarray, reg: float = 1e-5
) -> np.ndarray:
    """Fits the linear feature baseline to ``returns`` and returns its predictions."""
    obs = np.clip(observations.reshape(len(observations), -1).astype(np.float64), -10, 10)
    t = timesteps.reshape(-1, 1).astype(np.float64) / 100.0
    features = np.concatenate([obs, obs**2, t, t**2, t**3, np.ones_like(t)], axis=1)
    gram = features.T @ features
    rhs = features.T @ returns
    eye = np.eye(gram.shape[0])
    for _ in range(5):  # Raise the ridge term until the system is well conditioned.
        coeffs = np.linalg.lstsq(gram + reg * eye, rhs, rcond=None)[0]
        if np.all(np.isfinite(coeffs)):
            break
        reg *= 10
    return features @ coeffs


def episode_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    bootstrap_value: float,
    gamma: float,
    lambda_: float,
    use_gae: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, value targets) of one episode, given baseline values per step."""
    returns = discount_cumsum(rewards, gamma)
    if not use_gae:
        return returns - values, returns
    next_values = np.append(values[1:], bootstrap_value)
    deltas = rewards + gamma * next_values - values
    return discount_cumsum(deltas, gamma * lambda_), returns


class MetaAdvantages(ConnectorV2):
    """Adds ``advantages``, ``value_targets`` and ``episode_index`` to each module's batch."""

    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        baseline: str = "linear",
        gamma: float = 0.99,
        lambda_: float = 1.0,
        use_gae: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.baseline = baseline
        self.gamma = gamma
        self.lambda_ = lambda_
        self.use_gae = use_gae

    def __call__(self, *, rl_module, episodes, batch, **kwargs):
        import torch

        sa_episodes = list(
            self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)
        )
        states_of = episode_global_states(episodes) if self.baseline == "central_value" else {}
        for module_id, module_batch in batch.items():
            module_episodes = [e for e in sa_episodes if e.module_id in (None, module_id)]
            lens = [len(e) for e in module_episodes]
            if not lens or Columns.REWARDS not in module_batch:
                continue
            rewards = unpad_data_if_necessary(lens, convert_to_numpy(module_batch[Columns.REWARDS]))
            rewards = rewards.astype(np.float64)
            obs = unpad_data_if_necessary(lens, convert_to_numpy(module_batch[Columns.OBS]))
            bounds = np.cumsum([0, *lens])
            returns = np.concatenate(
                [discount_cumsum(rewards[a:b], self.gamma) for a, b in zip(bounds, bounds[1:])]
            )
            if self.baseline == "central_value":
                critic_input = np.concatenate(
                    [states_of[(e.multi_agent_episode_id, e.agent_id)] for e in module_episodes]
                )
                module_batch[GLOBAL_STATE] = torch.as_tensor(
                    critic_input, device=module_batch[Columns.REWARDS].device
                )
                critic = rl_module[CENTRAL_VALUE_MODULE_ID].unwrapped()
                with torch.no_grad():
                    values = convert_to_numpy(critic.compute_values(module_batch))
                values = values.astype(np.float64)
            elif self.baseline == "value":
                module = rl_module[module_id]
                if not isinstance(module.unwrapped(), ValueFunctionAPI):
                    raise TypeError(
                        f"baseline='value' needs module '{module_id}' to implement "
                        "ValueFunctionAPI; use baseline='linear' instead."
                    )
                with torch.no_grad():
                    values = convert_to_numpy(module.unwrapped().compute_values(module_batch))
                values = unpad_data_if_necessary(lens, values).astype(np.float64)
            else:
                timesteps = np.concatenate(
                    [np.arange(e.t_started, e.t_started + len(e)) for e in module_episodes]
                )
                values = linear_baseline_values(obs, timesteps, returns)
            advantages = np.empty_like(rewards)
            targets = np.empty_like(rewards)
            for a, b in zip(bounds, bounds[1:]):
                # A truncated episode would be bootstrapped with the value of its last
                # observation; the linear baseline has time features instead (ProMP).
                advantages[a:b], targets[a:b] = episode_advantages(
                    rewards[a:b], values[a:b], 0.0, self.gamma, self.lambda_, self.use_gae
                )
            advantages = (advantages - advantages.mean()) / max(1e-8, advantages.std())
            device = module_batch[Columns.REWARDS].device
            module_batch[ADVANTAGES] = torch.as_tensor(
                advantages, dtype=torch.float32, device=device
            )
            module_batch[VALUE_TARGETS] = torch.as_tensor(
                targets, dtype=torch.float32, device=device
            )
            module_batch[EPISODE_INDEX] = torch.repeat_interleave(
                torch.arange(len(lens), device=device), torch.tensor(lens, device=device)
            )
        return batch
