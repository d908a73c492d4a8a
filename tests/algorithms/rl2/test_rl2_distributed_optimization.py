"""A short learning check: multi-agent RL² learns on DistributedOptimization.

Budget: 40 iterations of 1,200 env steps (48,000) on trials of 3 inner episodes of 10 steps, 4
agents sharing one GRU module; about 50-80 s on 2 CPUs. Meta-test on 32 held-out tasks (seed 1),
hidden state carried, no gradient step.

Multi-agent RL² training is not bit-reproducible across processes with different string-hash
seeds (PYTHONHASHSEED). The likely cause: RLlib's multi-agent connectors order a batch's agents
by iterating sets, and PPO draws exploration noise from torch's global generator in that order.
Measured with seed 0 under PYTHONHASHSEED 1 / 2 / 3 and a random one, the held-out team return
per inner episode went from [-117.65, -123.90, -131.10] (untrained, the same every time)
to [-107.08, -107.47, -113.70], [-106.45, -111.17, -117.99], [-107.64, -110.19, -101.13],
[-105.98, -114.91, -123.37]: a trial gain of +44.4, +37.0, +53.7, +28.4. Adaptation across
inner episodes (a later episode above the first) does not show at this budget and is not
asserted.
"""

from __future__ import annotations

import numpy as np

from rllib_marl_meta.algorithms.rl2 import RL2Config

ITERATIONS = 40
TRIAL_IMPROVEMENT_MARGIN = 15.0  # Held-out trial return, after - before; measured 28.4-53.7.


def test_multi_agent_rl2_learns_on_distributed_optimization(ray_session):
    config = (
        RL2Config()
        .environment("DistributedOptimization", env_config={"horizon": 10})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=8)
        .multi_agent(
            policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kw: "shared"
        )
        .debugging(seed=0)
        .training(
            episodes_per_trial=3,
            cell_size=32,
            max_seq_len=30,
            train_batch_size_per_learner=1200,
            minibatch_size=300,
            num_epochs=5,
            lr=3e-3,
        )
    )
    algo = config.build_algo()
    try:
        before = algo.meta_test(num_tasks=32, seed=1)
        for _ in range(ITERATIONS):
            algo.train()
        after = algo.meta_test(num_tasks=32, seed=1)
    finally:
        algo.stop()
    trial_before = np.sum(before.returns, axis=0)  # Per task: the sum over inner episodes.
    trial_after = np.sum(after.returns, axis=0)
    print(f"held-out per inner episode: {np.round(before.mean, 2)} -> {np.round(after.mean, 2)}")
    assert set(after.groups["agent"]) == {f"agent_{i}" for i in range(4)}
    assert trial_after.mean() - trial_before.mean() > TRIAL_IMPROVEMENT_MARGIN
