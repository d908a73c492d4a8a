"""RL2Config / RL2: validation, env wrapping, recurrent state, metrics, checkpoints, Tune."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tree
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.models.torch.encoder import TorchGRUEncoder, TorchLSTMEncoder
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

import rllib_marl_meta.algorithms.rl2.meta_test as rl2_meta_test
from rllib_marl_meta import evaluation
from rllib_marl_meta.algorithms.rl2 import RL2, RL2Catalog, RL2Config
from rllib_marl_meta.algorithms.rl2.trial_wrapper import RL2TrialWrapper
from rllib_marl_meta.tasks import TaskAPIError
from tests.algorithms.rl2.conftest import small_rl2_config, train_then_meta_test
from tests.algorithms.rl2.tiny_envs import NoTaskEnv, ScriptedEnv, TwoAgentEnv

# --- validate() ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -2, 2.5, None])
def test_validate_rejects_bad_episodes_per_trial(bad):
    with pytest.raises(ValueError, match=r"episodes_per_trial.*>= 1"):
        small_rl2_config(episodes_per_trial=bad).validate()


def test_validate_rejects_non_recurrent_models():
    config = small_rl2_config().rl_module(model_config={"use_lstm": False})
    with pytest.raises(ValueError, match="RL2 needs a recurrent policy.*use_lstm"):
        config.validate()
    config = small_rl2_config().rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[8]))
    with pytest.raises(ValueError, match="RL2 needs a recurrent policy"):
        config.validate()


def test_validate_rejects_bad_rnn_settings():
    with pytest.raises(ValueError, match="rnn_cell"):
        small_rl2_config(rnn_cell="transformer").validate()
    with pytest.raises(ValueError, match="cell_size"):
        small_rl2_config(cell_size=0).validate()


@pytest.mark.parametrize("env", [NoTaskEnv, "CartPole-v1"])
def test_validate_rejects_envs_without_task_api(env):
    config = small_rl2_config(env=env, env_config={})
    with pytest.raises(TaskAPIError, match=r"task API.*sample_tasks.*TaskSettableMixin"):
        config.validate()


def test_validate_rejects_multi_agent_env_without_multi_agent_setup():
    config = small_rl2_config(env=TwoAgentEnv, env_config={})
    with pytest.raises(ValueError, match=r"multi-agent.*config.multi_agent\(policies"):
        config.validate()


def test_validate_wraps_env_once_and_keeps_the_users_env():
    config = small_rl2_config()
    config.validate()
    assert config.env == "RL2Trials[BernoulliBandit|episodes_per_trial=3]"
    assert config.inner_env == "BernoulliBandit"
    config.validate()  # Idempotent: no double wrapping.
    assert config.inner_env == "BernoulliBandit"
    copy = config.copy(copy_frozen=False).training(episodes_per_trial=5)
    copy.validate()
    assert copy.env == "RL2Trials[BernoulliBandit|episodes_per_trial=5]"
    from ray.tune.registry import ENV_CREATOR, _global_registry

    env = _global_registry.get(ENV_CREATOR, copy.env)({"num_arms": 3})
    assert isinstance(env, RL2TrialWrapper) and env.episodes_per_trial == 5


def test_defaults_follow_garage_rl2_ppo():
    config = RL2Config()
    assert (config.rnn_cell, config.cell_size) == ("gru", 64)
    assert (config.gamma, config.lambda_, config.clip_param) == (0.99, 0.95, 0.2)
    assert config.model_config["use_lstm"] is True
    assert config.model_config["lstm_cell_size"] == 64
    assert config.batch_mode == "complete_episodes"  # Whole trials per sample.


@pytest.mark.parametrize("cell, encoder", [("gru", TorchGRUEncoder), ("lstm", TorchLSTMEncoder)])
def test_rnn_cell_picks_rllibs_gru_or_lstm_encoder(cell, encoder):
    config = small_rl2_config(rnn_cell=cell)
    env = RL2TrialWrapper(__import__("rllib_marl_meta").make_env("BernoulliBandit"), 2)
    module = RLModuleSpec(
        module_class=DefaultPPOTorchRLModule,
        catalog_class=RL2Catalog,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config=config.model_config,
    ).build()
    assert isinstance(module.encoder.actor_encoder, encoder)
    assert isinstance(module.encoder.critic_encoder, encoder)
    assert module.is_stateful()


# --- Algorithm -------------------------------------------------------------------------------


def test_recurrent_state_is_carried_across_inner_episodes(ray_session):
    """At the first step of inner episode 2 the module gets the state of the last step of
    inner episode 1, not its initial state."""
    algo = small_rl2_config().build_algo()
    try:
        module = algo.env_runner.module
        episode = algo.env_runner.sample(num_episodes=1, explore=False)[0]
        infos = episode.get_infos()
        obs = episode.get_observations()
        state_out = episode.get_extra_model_outputs("state_out")
        logits = episode.get_extra_model_outputs("action_dist_inputs")
        # 3 inner episodes of 2 pulls: one RLlib episode of 6 steps.
        assert len(episode) == 6 and episode.is_terminated
        b = next(t for t, info in enumerate(infos) if info["inner_episode"] == 1)
        assert b == 2 and obs[b][-1] == 1.0  # First obs of inner episode 2: done flag set.

        def step(observation, state):
            batch = {
                "obs": torch.as_tensor(observation)[None, None],
                "state_in": tree.map_structure(lambda s: torch.as_tensor(s)[None], state),
            }
            with torch.no_grad():
                out = module.forward_inference(batch)
            return out["action_dist_inputs"][0, 0].numpy(), out["state_out"]

        carried = tree.map_structure(lambda s: s[b - 1], state_out)
        initial = tree.map_structure(lambda s: s.numpy(), module.get_initial_state())
        assert not all(
            np.allclose(c, i) for c, i in zip(tree.flatten(carried), tree.flatten(initial))
        )
        replay, replay_state = step(obs[b], carried)
        np.testing.assert_allclose(replay, logits[b], rtol=1e-5, atol=1e-6)
        for got, want in zip(tree.flatten(replay_state), tree.flatten(state_out)):
            np.testing.assert_allclose(got[0].numpy(), want[b], rtol=1e-5, atol=1e-6)
        from_scratch, _ = step(obs[b], initial)
        assert not np.allclose(from_scratch, logits[b], atol=1e-6)
    finally:
        algo.stop()


def test_training_reports_returns_per_inner_episode(ray_session):
    algo = small_rl2_config().build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    runners = result["env_runners"]
    per_episode = [runners[f"trial_episode_{i}_return_mean"] for i in (1, 2, 3)]
    assert "trial_episode_4_return_mean" not in runners
    # RLlib's episode return is the trial return: the sum over inner episodes.
    assert sum(per_episode) == pytest.approx(runners["episode_return_mean"], rel=1e-6)
    assert runners["trial_adaptation_mean"] == pytest.approx(
        per_episode[-1] - per_episode[0], rel=1e-6
    )
    # Bandit trials: 3 inner episodes of 2 pulls.
    assert runners["episode_len_mean"] == 6


def test_checkpoint_round_trip(ray_session, tmp_path):
    algo = small_rl2_config().build_algo()
    try:
        algo.train()
        path = algo.save_to_path(tmp_path / "ckpt")
        restored = RL2.from_checkpoint(path)
        try:
            assert isinstance(restored, RL2)
            assert restored.config.inner_env == "BernoulliBandit"
            assert restored.config.episodes_per_trial == 3
            before = algo.get_module().get_state()
            after = restored.get_module().get_state()
            assert before.keys() == after.keys()
            for key in before:
                np.testing.assert_array_equal(np.asarray(before[key]), np.asarray(after[key]))
            learner_before = algo.learner_group.get_weights()
            learner_after = restored.learner_group.get_weights()
            for a, b in zip(tree.flatten(learner_before), tree.flatten(learner_after)):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            # Same inputs -> identical greedy actions over whole trials on the same tasks.
            # Same state -> identical trials on the same tasks, with the same exploration noise.
            one = algo.meta_test(num_tasks=8, seed=3)
            two = restored.meta_test(num_tasks=8, seed=3)
            assert one.returns == two.returns
            from_path = evaluation.meta_test(path, num_tasks=8, seed=3)
            assert one.returns == from_path.returns
            obs = torch.rand(4, 1, algo.get_module().observation_space.shape[0])
            state = tree.map_structure(
                lambda s: torch.stack([s] * 4), algo.get_module().get_initial_state()
            )
            with torch.no_grad():
                out_a = algo.get_module().forward_inference({"obs": obs, "state_in": state})
                out_b = restored.get_module().forward_inference({"obs": obs, "state_in": state})
            torch.testing.assert_close(out_a["action_dist_inputs"], out_b["action_dist_inputs"])
        finally:
            restored.stop()
    finally:
        algo.stop()


@pytest.mark.parametrize("trainable", ["RL2", RL2], ids=["by-name", "by-class"])
def test_tune_tuner_runs_rl2(ray_session, tmp_path, trainable):
    from ray import tune

    tuner = tune.Tuner(
        trainable,
        param_space=small_rl2_config(),
        run_config=tune.RunConfig(
            stop={"training_iteration": 1}, storage_path=str(tmp_path), verbose=0
        ),
    )
    results = tuner.fit()
    assert not results.errors
    metrics = results[0].metrics
    assert metrics["training_iteration"] == 1
    assert "trial_episode_3_return_mean" in metrics["env_runners"]


# --- Multi-agent -----------------------------------------------------------------------------


def test_multi_agent_rl2_reports_per_agent_metrics(ray_session):
    config = small_rl2_config(env=TwoAgentEnv, env_config={}, episodes_per_trial=2).multi_agent(
        policies={"fast", "slow"}, policy_mapping_fn=lambda agent_id, episode, **kw: agent_id
    )
    # Several updates on trials in which `fast` waits for `slow`.
    runners, returns, agent_returns = train_then_meta_test(config, iterations=3, num_tasks=4)
    for i in (1, 2):
        per_agent = runners[f"agent_trial_episode_{i}_return_mean"]
        assert set(per_agent) == {"fast", "slow"}
        assert runners[f"trial_episode_{i}_return_mean"] == pytest.approx(
            per_agent["fast"] + per_agent["slow"], rel=1e-6
        )
    assert runners["episode_len_mean"] == 6  # 2 inner episodes of 3 env steps
    assert returns.shape == (4, 2)
    assert set(agent_returns) == {"fast", "slow"}
    np.testing.assert_allclose(returns, agent_returns["fast"] + agent_returns["slow"])
    # fast: 1 step rewarded a+1+offset in [1, 3], then 2 waiting steps of 0.5.
    assert np.all((agent_returns["fast"] >= 2.0) & (agent_returns["fast"] <= 4.0))


def test_multi_agent_rl2_on_cooperative_navigation(ray_session):
    pytest.importorskip("rllib_marl_meta.envs.cooperative_navigation")
    config = small_rl2_config(
        env="CooperativeNavigation",
        env_config={"num_agents": 2, "horizon": 5},
        episodes_per_trial=2,
    ).multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kw: "shared")
    runners, returns, agent_returns = train_then_meta_test(config, iterations=1, num_tasks=3)
    assert set(runners["agent_trial_episode_2_return_mean"]) == {"agent_0", "agent_1"}
    assert runners["episode_len_mean"] == 10
    assert returns.shape == (3, 2)
    assert set(agent_returns) == {"agent_0", "agent_1"}


def test_multi_agent_rl2_on_a_turn_based_aec_env(aec_env_name):
    """A PettingZoo AECEnv: one agent acts per step; each keeps its own trial history."""
    config = small_rl2_config(
        env=aec_env_name, env_config={"num_agents": 2, "horizon": 4}, episodes_per_trial=2
    ).multi_agent(
        policies={"agent_0", "agent_1"},
        policy_mapping_fn=lambda agent_id, episode, **kw: agent_id,
    )
    runners, returns, agent_returns = train_then_meta_test(config, iterations=1, num_tasks=3)
    for i in (1, 2):
        per_agent = runners[f"agent_trial_episode_{i}_return_mean"]
        assert set(per_agent) == {"agent_0", "agent_1"}
        assert all(np.isfinite(v) and v < 0 for v in per_agent.values())
    assert returns.shape == (3, 2)
    np.testing.assert_allclose(returns, agent_returns["agent_0"] + agent_returns["agent_1"])


def test_multi_agent_rl2_groups_agents_by_role(ray_session):
    roles = {"agent_0": "leader", "agent_1": "follower", "agent_2": "follower"}
    config = small_rl2_config(
        env="CooperativeNavigation",
        env_config={"num_agents": 3, "horizon": 3},
        episodes_per_trial=2,
    ).multi_agent(
        policies={"leader", "follower"},
        policy_mapping_fn=lambda agent_id, episode, **kw: roles[agent_id],
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        weights = algo.learner_group.get_weights()
    finally:
        algo.stop()
    assert set(weights) == {"leader", "follower"}
    assert set(result["learners"]) >= {"leader", "follower"}
    per_agent = result["env_runners"]["agent_trial_episode_2_return_mean"]
    assert set(per_agent) == set(roles)
    # A shared reward: every agent of the team gets the same return.
    assert per_agent["agent_1"] == pytest.approx(per_agent["agent_0"], rel=1e-6)


# --- meta_test -------------------------------------------------------------------------------


def test_meta_test_is_seeded_and_independent_of_parallel_trials(ray_session, monkeypatch):
    algo = small_rl2_config().build_algo()
    try:
        algo.train()
        a = algo.meta_test(num_tasks=10, seed=5)
        again = algo.meta_test(num_tasks=10, seed=5)
        other = algo.meta_test(num_tasks=10, seed=6)
        longer = algo.meta_test(num_tasks=10, seed=5, steps=4)
        greedy = algo.meta_test(num_tasks=10, seed=5, explore=False)
        greedy_again = algo.meta_test(num_tasks=10, seed=5, explore=False)
        monkeypatch.setattr(rl2_meta_test, "MAX_PARALLEL_TRIALS", 3)
        three_at_a_time = algo.meta_test(num_tasks=10, seed=5)
        tasks = algo.meta_test(num_tasks=10, seed=5).tasks
    finally:
        algo.stop()
    assert a.labels == ["episode_1", "episode_2", "episode_3"]
    assert np.asarray(a.returns).shape == (3, 10)  # [inner episode, task]
    assert (a.algorithm, a.env, a.num_tasks, a.seed) == ("RL2", "BernoulliBandit", 10, 5)
    assert a.returns == again.returns != other.returns
    assert greedy.returns == greedy_again.returns != a.returns
    # Trials are seeded by task, not by the sub-env that ran them.
    assert three_at_a_time.returns == a.returns
    assert longer.labels[-1] == "episode_4"
    # A bandit pull pays 0 or 1: 2 pulls per inner episode.
    assert set(np.unique(a.returns)) <= {0.0, 1.0, 2.0}
    assert [t["probs"].tolist() for t in tasks] == [t["probs"].tolist() for t in a.tasks]
    assert "Meta-test of RL2 on BernoulliBandit: 10 new tasks (seed 5)" in evaluation.format_table(
        a
    )


def test_meta_test_runs_each_trial_on_its_task(ray_session):
    """Each trial runs on the task drawn for it, set through the trial wrapper's task API.

    ScriptedEnv with one-step inner episodes pays ``10 * (a + 1) + 1 + offset``, so every
    inner-episode return reveals the task's offset.
    """
    algo = small_rl2_config(env=ScriptedEnv, env_config={"lengths": [1]}).build_algo()
    try:
        result = algo.meta_test(num_tasks=7, seed=2)
    finally:
        algo.stop()
    offsets = [task["offset"] for task in result.tasks]
    assert len(set(offsets)) == 7
    for episode_returns in result.returns:
        np.testing.assert_allclose(np.asarray(episode_returns) % 10.0 - 1.0, offsets, atol=1e-5)


def test_remote_env_runners_create_the_trial_env(ray_session):
    """The derived env name resolves in EnvRunner actors through Tune's registry."""
    algo = small_rl2_config().env_runners(num_env_runners=1, num_envs_per_env_runner=1).build_algo()
    try:
        runners = algo.train()["env_runners"]
        stacks = algo.env_runner_group.foreach_env_runner(
            lambda runner: str(runner.env.unwrapped.envs[0]), local_env_runner=False
        )
    finally:
        algo.stop()
    assert runners["episode_len_mean"] == 6 and "trial_episode_3_return_mean" in runners
    assert len(stacks) == 1 and "RL2TrialWrapper<BernoulliBandit" in stacks[0]


def test_validate_checks_custom_modules_for_state():
    from ray.rllib.examples.rl_modules.classes.lstm_containing_rlm import (
        LSTMContainingRLModule,
    )
    from ray.rllib.examples.rl_modules.classes.vpg_torch_rlm import VPGTorchRLModule

    stateless = small_rl2_config().rl_module(
        rl_module_spec=RLModuleSpec(module_class=VPGTorchRLModule, model_config={"hidden_dim": 8})
    )
    with pytest.raises(ValueError, match=r"recurrent RLModules.*not stateful"):
        stateless.validate()
    stateful = small_rl2_config().rl_module(
        rl_module_spec=RLModuleSpec(
            module_class=LSTMContainingRLModule, model_config={"lstm_cell_size": 8}
        )
    )
    stateful.validate()  # A custom recurrent module passes.
