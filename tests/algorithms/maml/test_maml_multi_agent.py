"""Multi-agent MAML on CooperativeNavigation: shared and per-agent modules, modules_to_adapt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rllib_marl_meta.algorithms.maml import MAMLConfig

AGENTS = ("agent_0", "agent_1")


def multi_agent_config(mapping: str, **training) -> MAMLConfig:
    settings = dict(meta_batch_size=3, episodes_per_task=2, maml_optimizer_steps=1)
    settings.update(training)
    config = (
        MAMLConfig()
        .environment("CooperativeNavigation", env_config={"horizon": 10})
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=3)
        .training(**settings)
    )
    if mapping == "shared":
        return config.multi_agent(
            policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kw: "shared"
        )
    return config.multi_agent(
        policies=set(AGENTS), policy_mapping_fn=lambda agent_id, episode, **kw: agent_id
    )


@pytest.mark.parametrize(
    ("mapping", "modules"), [("shared", {"shared"}), ("per_agent", set(AGENTS))]
)
def test_multi_agent_runs_report_per_module_and_per_agent_metrics(ray_session, mapping, modules):
    algo = multi_agent_config(mapping).build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert set(result["module_episode_return_mean"]) == modules
    assert set(result["module_episode_return_mean_adapt_1"]) == modules
    assert set(result["agent_episode_return_mean_adapt_1"]) == set(AGENTS)
    for mid in modules:
        assert {"kl", "surrogate", "curr_kl_coeff"} <= set(result["learners"][mid])
    # Team return (sum over agents) = the sum of the per-agent returns.
    team = sum(result["agent_episode_return_mean"][a] for a in AGENTS)
    assert result["episode_return_mean"] == pytest.approx(team)


def test_modules_to_adapt_leaves_excluded_modules_bit_identical(ray_session):
    algo = multi_agent_config("per_agent", modules_to_adapt=["agent_0"]).build_algo()
    try:
        tasks = algo._task_env.sample_tasks(2, seed=0)
        algo._sample_and_adapt(tasks, num_steps=1, seed=0)
        learner = algo.learner_group._learner
        meta = {n: p.detach().clone() for n, p in learner.module["agent_1"].named_parameters()}
        meta0 = {n: p.detach().clone() for n, p in learner.module["agent_0"].named_parameters()}
        for task_id in range(2):
            adapted = learner._adapted_params[task_id]
            for name, value in meta.items():
                assert torch.equal(adapted["agent_1"][name], value)
            assert any(not torch.equal(adapted["agent_0"][n], v) for n, v in meta0.items())
        learner.clear_tasks()
        # The meta-update still trains the excluded module (its outer loss has a gradient).
        before = {n: v.clone() for n, v in meta.items()}
        algo.train()
        after = dict(learner.module["agent_1"].named_parameters())
        assert any(not np.allclose(before[n].numpy(), after[n].detach().numpy()) for n in before)
    finally:
        algo.stop()
