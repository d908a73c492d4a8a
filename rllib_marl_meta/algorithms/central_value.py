"""The global state a centralised critic sees, shared by MAML's and RL²'s central critics.

Centralised training, decentralised execution: a critic may see the whole team while each agent
acts on its own observation. The *global state* of an agent at a step is every agent's
observation at that step (flattened, in sorted agent order) followed by a one-hot of the agent,
so one critic can predict each agent's own return. Envs' own ``state()`` is not read, so this
needs Box observations and every agent acting at every step (the built-in team envs do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

GLOBAL_STATE = "global_state"  # Learner-batch column: each row's critic input.


def global_state_space(agent_observation_spaces: Mapping[Any, gym.Space]) -> gym.spaces.Box:
    """The critic's input space: all agents' observations, flat, then the agent's one-hot."""
    bad = {a: s for a, s in agent_observation_spaces.items() if not isinstance(s, gym.spaces.Box)}
    if bad:
        raise ValueError(
            "A central critic concatenates the agents' observations, which needs Box "
            f"observation spaces; agents {sorted(bad, key=str)} have {list(bad.values())}. "
            "Flatten the observations in the env, or use a per-agent value function."
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
            "A central critic needs every agent to act at every step of an episode (the "
            f"global state is all agents' observations at one step); got steps {lengths}. Use "
            "a per-agent value function for envs where agents act in turn or leave early."
        )
    (length,) = steps
    flat = [np.asarray(agent_observations[a], np.float32).reshape(length, -1) for a in agents]
    state = np.concatenate(flat, axis=1)
    one_hot = np.eye(len(agents), dtype=np.float32)
    return {
        a: np.hstack([state, np.repeat(one_hot[i : i + 1], length, 0)])
        for i, a in enumerate(agents)
    }


def episode_global_states(episodes: list) -> dict[tuple[str, Any], np.ndarray]:
    """``(multi-agent episode id, agent id)`` -> the agent's critic input at each of its steps
    (``len(agent_episode)`` rows), for RLlib ``MultiAgentEpisode`` s."""
    out = {}
    for episode in episodes:
        agent_episodes = getattr(episode, "agent_episodes", None)
        if agent_episodes is None:
            raise ValueError("A central critic works with multi-agent envs only.")
        observations = {
            agent: agent_episode.get_observations(slice(0, len(agent_episode)))
            for agent, agent_episode in agent_episodes.items()
        }
        for agent, states in global_states(observations).items():
            out[(episode.id_, agent)] = states
    return out


def value_mlp(input_size: int, model_config: Mapping[str, Any]) -> torch.nn.Sequential:
    """An MLP to one value, with the hidden layers and activation of ``model_config``
    (``fcnet_hiddens``, ``fcnet_activation``: tanh or relu)."""
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}.get(
        str(model_config.get("fcnet_activation", "tanh")).lower(), torch.nn.Tanh
    )
    layers: list[torch.nn.Module] = []
    size = input_size
    for hidden in model_config.get("fcnet_hiddens", [64, 64]):
        layers += [torch.nn.Linear(size, int(hidden)), activation()]
        size = int(hidden)
    layers.append(torch.nn.Linear(size, 1))
    return torch.nn.Sequential(*layers)
