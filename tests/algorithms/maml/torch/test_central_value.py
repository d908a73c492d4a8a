"""MAML's central critic (baseline="central_value"): its input, where it lives, its training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rllib_marl_meta.algorithms.central_value import GLOBAL_STATE
from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES, episode_advantages
from rllib_marl_meta.algorithms.maml.torch.central_value import CENTRAL_VALUE_MODULE_ID


def central_value_config(**training) -> MAMLConfig:
    """Two agents sharing one module on 10-step CooperativeNavigation, tiny networks."""
    settings = dict(meta_batch_size=3, episodes_per_task=2, maml_optimizer_steps=2)
    return (
        MAMLConfig()
        .environment("CooperativeNavigation", env_config={"horizon": 10})
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *a, **kw: "shared")
        .debugging(seed=3)
        .training(baseline="central_value", **settings | training)
    )


def test_central_value_is_rejected_for_a_single_agent_env(ray_session):
    config = (
        MAMLConfig()
        .environment("PointNavigation2D")
        .training(baseline="central_value", meta_batch_size=2, episodes_per_task=1)
    )
    with pytest.raises(ValueError, match="multi-agent envs; with one agent use baseline='value'"):
        config.validate()


def test_central_critic_lives_on_the_learner_sets_the_advantages_and_trains(ray_session):
    algo = central_value_config().build_algo()
    try:
        learner = algo.learner_group._learner
        assert CENTRAL_VALUE_MODULE_ID in learner.module.keys()
        assert CENTRAL_VALUE_MODULE_ID not in algo.env_runner.module.keys()
        critic = learner.module[CENTRAL_VALUE_MODULE_ID]
        obs_size = learner.module["shared"].observation_space.shape[0]
        # Both agents' observations, then a one-hot of the agent.
        assert critic.observation_space.shape == (2 * obs_size + 2,)

        tasks = algo._task_env.sample_tasks(1, seed=0)
        algo._sample_and_adapt(tasks, num_steps=1, seed=0)
        batch = learner._task_batches[0][0]["shared"]
        with torch.no_grad():
            values = critic.compute_values(batch).numpy().astype(np.float64)
        # The advantages are GAE from the critic's values (lambda 1: returns minus values),
        # episode by episode, standardised: recomputed here from the batch's own columns.
        rewards = batch["rewards"].numpy().astype(np.float64)
        episode = batch["episode_index"].numpy()
        expected = np.concatenate(
            [
                episode_advantages(
                    rewards[episode == e], values[episode == e], 0.0, 0.99, 1.0, True
                )[0]
                for e in np.unique(episode)
            ]
        )
        expected = (expected - expected.mean()) / expected.std()
        np.testing.assert_allclose(batch[ADVANTAGES].numpy(), expected, rtol=1e-4, atol=1e-4)
        # Each row's critic input starts with the observation the row's agent saw.
        row_obs = batch["obs"].numpy()
        state = batch[GLOBAL_STATE].numpy()
        one_hot = state[:, -2:]
        assert set(map(tuple, one_hot)) == {(1.0, 0.0), (0.0, 1.0)}
        own = np.where(one_hot[:, :1] == 1, state[:, :obs_size], state[:, obs_size:-2])
        np.testing.assert_array_equal(own, row_obs)
        learner.clear_tasks()

        before = {n: p.detach().clone() for n, p in critic.named_parameters()}
        frozen = {n: p.detach().clone() for n, p in learner.module["shared"].named_parameters()}
        result = algo.train()
        assert result["learners"]["__all_modules__"]["value_loss"] > 0
        changed = [n for n, p in critic.named_parameters() if not torch.equal(p, before[n])]
        assert changed, "the outer loop did not train the central critic"
        # The policy module's own value head is not trained: the critic replaces it.
        vf = [n for n in frozen if n.startswith("vf") or "value" in n]
        assert vf and all(
            torch.equal(dict(learner.module["shared"].named_parameters())[n], frozen[n]) for n in vf
        )
    finally:
        algo.stop()
