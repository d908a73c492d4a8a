"""The global state that MAML's and RL²'s central critics see."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rllib_marl_meta.algorithms.central_value import global_state_space, global_states


def test_global_state_is_every_agents_observation_then_the_agents_one_hot():
    observations = {"b": np.array([[3.0], [4.0]]), "a": np.array([[1.0, 2.0], [5.0, 6.0]])}
    states = global_states(observations)
    np.testing.assert_array_equal(states["a"], [[1, 2, 3, 1, 0], [5, 6, 4, 1, 0]])
    np.testing.assert_array_equal(states["b"], [[1, 2, 3, 0, 1], [5, 6, 4, 0, 1]])


def test_global_state_needs_every_agent_at_every_step():
    with pytest.raises(
        ValueError, match=r"every agent to act at every step.*per-agent value function"
    ):
        global_states({"a": np.zeros((3, 2)), "b": np.zeros((2, 2))})


def test_global_state_space_needs_box_observations():
    box = gym.spaces.Box(-1, 1, (3,))
    assert global_state_space({"a": box, "b": box}).shape == (3 + 3 + 2,)
    with pytest.raises(ValueError, match=r"needs Box observation spaces; agents \['b'\]"):
        global_state_space({"a": box, "b": gym.spaces.Discrete(3)})
