"""Settings fixed where RLlib would leave them to chance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.rl2 import RL2Config

# Builds the team's modules from a seeded config and prints a fingerprint of their weights.
_FINGERPRINT = textwrap.dedent(
    """
    import torch
    import rllib_marl_meta
    from rllib_marl_meta.algorithms.maml import MAMLConfig
    from rllib_marl_meta.envs import make_rllib_env

    env = make_rllib_env("CooperativeNavigation", {"num_agents": 4})
    config = (
        MAMLConfig()
        .environment("CooperativeNavigation", env_config={"num_agents": 4})
        .multi_agent(policies={f"agent_{i}" for i in range(4)},
                     policy_mapping_fn=lambda agent_id, episode, **kw: agent_id)
        .rl_module(model_config={"fcnet_hiddens": [8]})
    )
    torch.manual_seed(0)
    module = config.get_multi_rl_module_spec(env=env).build()
    print({mid: round(float(sum(p.sum() for p in m.parameters())), 6)
           for mid, m in sorted(module.items())})
    """
)


@pytest.mark.parametrize("config_class", [MAMLConfig, RL2Config])
def test_policies_given_as_a_set_are_kept_in_sorted_order(config_class):
    config = config_class().multi_agent(policies={"c", "a", "b"})
    assert list(config.policies) == ["a", "b", "c"]
    config.update_from_dict({"multiagent": {"policies": {"z", "y"}}})  # The YAML and Tune path.
    assert list(config.policies) == ["y", "z"]


def test_same_seed_gives_the_same_team_weights_in_every_process():
    """RLlib draws the modules' weights in the order of `config.policies`; from a set that
    order followed Python's per-process string hashing, so a seeded run was not reproducible."""
    prints = set()
    for hash_seed in ("1", "2", "3"):
        out = subprocess.run(
            [sys.executable, "-c", _FINGERPRINT],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        )
        prints.add(out.stdout.strip().splitlines()[-1])
    assert len(prints) == 1, prints
