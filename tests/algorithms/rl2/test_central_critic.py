"""RL²'s central critic: PPO's value head reads the team's global state; PPO trains it."""

from __future__ import annotations

import pytest
import torch
import tree
from ray.rllib.core.columns import Columns

from rllib_marl_meta.algorithms.central_value import GLOBAL_STATE
from rllib_marl_meta.algorithms.rl2 import RL2Config
from rllib_marl_meta.algorithms.rl2.central_critic import RL2CentralCriticModule

AGENTS = ("agent_0", "agent_1")


def central_critic_config() -> RL2Config:
    return (
        RL2Config()
        .environment("CooperativeNavigation", env_config={"horizon": 5, "spawn_range": 0.1})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
        .multi_agent(policies=set(AGENTS), policy_mapping_fn=lambda agent_id, *a, **kw: agent_id)
        .debugging(seed=0)
        .training(
            episodes_per_trial=2,
            central_critic=True,
            cell_size=8,
            max_seq_len=10,
            train_batch_size_per_learner=100,
            minibatch_size=50,
            num_epochs=1,
        )
    )


def test_central_critic_needs_a_multi_agent_env(ray_session):
    config = RL2Config().environment("BernoulliBandit").training(central_critic=True)
    with pytest.raises(ValueError, match="central_critic=True .* for multi-agent envs"):
        config.validate()


def test_central_critic_rejects_a_custom_module_class(ray_session):
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    config = central_critic_config().rl_module(
        rl_module_spec=RLModuleSpec(module_class=DefaultPPOTorchRLModule)
    )
    with pytest.raises(ValueError, match="central_critic=True needs RL2's own module"):
        config.validate()


def test_value_reads_the_global_state_and_ppo_trains_the_central_head(ray_session):
    algo = central_critic_config().build_algo()
    try:
        module = algo.learner_group._learner.module["agent_0"]
        assert isinstance(module, RL2CentralCriticModule)
        # Trial observations of both agents, then the agent's one-hot.
        obs_size = module.observation_space.shape[0]
        size = 2 * obs_size + 2
        batch = {
            Columns.OBS: torch.zeros(1, 3, obs_size),
            Columns.STATE_IN: tree.map_structure(
                lambda s: torch.as_tensor(s)[None], module.get_initial_state()
            ),
            GLOBAL_STATE: torch.zeros(1, 3, size),
        }
        with torch.no_grad():
            base = module.compute_values(batch)
            batch[GLOBAL_STATE][..., obs_size : 2 * obs_size] = 1.0  # The other agent moved.
            other = module.compute_values(batch)
        assert base.shape == (1, 3) and not torch.allclose(base, other)

        head = {n: p.detach().clone() for n, p in module.central_vf.named_parameters()}
        own_vf = {n: p.detach().clone() for n, p in module.vf.named_parameters()}
        result = algo.train()
        assert torch.isfinite(torch.tensor(result["learners"]["agent_0"]["vf_loss"]))
        assert any(not torch.equal(p, head[n]) for n, p in module.central_vf.named_parameters())
        # RLlib's own value head gets no gradient: the central head replaces it.
        assert all(torch.equal(p, own_vf[n]) for n, p in module.vf.named_parameters())
    finally:
        algo.stop()
