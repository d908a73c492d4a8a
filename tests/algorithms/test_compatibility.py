"""Envs written for old RLlib's TaskSettableEnv contract, and every documented env form, work
with both algorithms."""

from __future__ import annotations

import numpy as np

from rllib_marl_meta.algorithms.maml import MAMLConfig
from tests.algorithms.rl2.conftest import small_rl2_config
from tests.faulty_envs import OldContractEnv


def _tiny_maml(env, env_config: dict | None = None) -> MAMLConfig:
    return (
        MAMLConfig()
        .environment(env, env_config={"horizon": 5} if env_config is None else env_config)
        .rl_module(model_config={"fcnet_hiddens": [8]})
        # Two sub-envs: a tuple task unpacked over them would reach OldContractEnv.set_task
        # as a float and raise.
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
        .debugging(seed=0)
        .training(meta_batch_size=3, episodes_per_task=2, maml_optimizer_steps=1)
    )


def test_maml_trains_on_an_old_contract_env_with_tuple_tasks(ray_session):
    algo = _tiny_maml(OldContractEnv).build_algo()
    try:
        first = algo.train()
        second = algo.train()
        assert first["num_episodes_per_task"] == 2
        assert first["env_runners"]["num_env_steps_sampled"] == 3 * 2 * 5 * 2
        # The seeded draw gives new tasks each iteration, reproducibly.
        assert first["episode_return_mean"] != second["episode_return_mean"]
        held_out = algo.meta_test(num_tasks=2, seed=0)
        assert all(isinstance(t, tuple) and len(t) == 2 for t in held_out.tasks)
        assert held_out.tasks == algo.meta_test(num_tasks=2, seed=0).tasks
        assert np.isfinite(np.asarray(held_out.returns)).all()
    finally:
        algo.stop()


def test_maml_accepts_the_documented_class_path_env_form(ray_session):
    # RLlib creates a class-path env as `EnvClass(**env_config)`, so no env_config here.
    config = _tiny_maml("rllib_marl_meta.envs.point_navigation.PointNavigation2D", {})
    config.validate()
    algo = config.build_algo()
    try:
        assert algo.train()["num_episodes_per_task"] == 2
    finally:
        algo.stop()


def test_rl2_trains_on_an_old_contract_env_with_tuple_tasks(ray_session):
    config = small_rl2_config(
        OldContractEnv,
        env_config={"horizon": 4},
        episodes_per_trial=2,
        max_seq_len=8,
        train_batch_size_per_learner=32,
        minibatch_size=16,
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        runners = result["env_runners"]
        assert runners["num_env_steps_sampled"] >= 32
        assert np.isfinite(runners["trial_episode_2_return_mean"])
    finally:
        algo.stop()
