"""Multi-agent MAML on CooperativeNavigation: shared and per-agent modules, modules_to_adapt."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.tasks import TaskSettableMixin, TaskSpace
from tests.conftest import aec_cooperative_navigation

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


def assert_team_metrics_add_up(result: dict) -> None:
    """The team return is the sum of the agents' returns; the delta is post minus pre."""
    for suffix in ("", "_adapt_1"):
        team = result[f"episode_return_mean{suffix}"]
        assert team == pytest.approx(sum(result[f"agent_episode_return_mean{suffix}"].values()))
    assert result["adaptation_delta"] == pytest.approx(
        result["episode_return_mean_adapt_1"] - result["episode_return_mean"]
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
    assert_team_metrics_add_up(result)


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


class StaggeredAgentsEnv(TaskSettableMixin, MultiAgentEnv):
    """RLlib MultiAgentEnv with the task API: "early" stops after 3 steps, "late" joins at 2.

    Each agent is rewarded for moving its 1-D position towards the task's ``target``.
    """

    task_space = TaskSpace(target=(-1.0, 1.0))

    def __init__(self, config=None):
        super().__init__()
        self.possible_agents = ["early", "main", "late"]
        self.agents = []
        space = gym.spaces.Box(-5.0, 5.0, (1,), np.float32)
        self.observation_spaces = dict.fromkeys(self.possible_agents, space)
        self.action_spaces = {
            a: gym.spaces.Box(-1.0, 1.0, (1,), np.float32) for a in self.possible_agents
        }
        self._target = 0.0

    def _apply_task(self, task):
        self._target = task["target"]

    def reset(self, *, seed=None, options=None):
        self._reset_task_from_options(options)
        self.t = 0
        self.pos = dict.fromkeys(self.possible_agents, 0.0)
        self.agents = ["early", "main"]
        return {a: np.zeros(1, np.float32) for a in self.agents}, {}

    def step(self, actions):
        self.t += 1
        obs, rewards, terminateds = {}, {}, {}
        for agent, action in actions.items():
            self.pos[agent] = float(np.clip(self.pos[agent] + 0.2 * float(action[0]), -5, 5))
            obs[agent] = np.array([self.pos[agent]], np.float32)
            rewards[agent] = -abs(self.pos[agent] - self._target)
        if self.t == 3:
            terminateds["early"] = True
            self.agents.remove("early")
        if self.t == 2:
            self.agents.append("late")
            obs["late"] = np.zeros(1, np.float32)
        terminateds["__all__"] = self.t >= 8
        return obs, rewards, terminateds, {"__all__": False}, {}


def test_agents_that_finish_early_or_join_late_adapt_without_error(ray_session):
    config = (
        MAMLConfig()
        .environment(StaggeredAgentsEnv)
        .rl_module(model_config={"fcnet_hiddens": [8]})
        .debugging(seed=0)
        .training(meta_batch_size=2, episodes_per_task=2, maml_optimizer_steps=1)
        .multi_agent(
            policies={"early", "main", "late"},
            policy_mapping_fn=lambda agent_id, episode, **kw: agent_id,
        )
    )
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    for agent in ("early", "main", "late"):
        assert {"kl", "surrogate"} <= set(result["learners"][agent])
    # -|pos - target| per step taken, at most 6 in size: early acts 3 steps, late 6, main 8.
    for steps, agent in ((3, "early"), (6, "late"), (8, "main")):
        assert -6.0 * steps <= result["agent_episode_return_mean_adapt_1"][agent] < 0.0
    assert_team_metrics_add_up(result)


def test_pettingzoo_aec_env_runs_maml_and_reaches_the_inner_env_task(aec_env_name):
    from rllib_marl_meta.tasks import find_task_env

    env = aec_cooperative_navigation({"horizon": 10})
    inner = find_task_env(env)
    task = inner.sample_tasks(1, seed=0)[0]
    inner.set_task(task)
    np.testing.assert_array_equal(inner.get_task()["landmarks"], task["landmarks"])

    config = multi_agent_config("per_agent").environment(aec_env_name, env_config={"horizon": 10})
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert set(result["agent_episode_return_mean_adapt_1"]) == set(AGENTS)
    assert_team_metrics_add_up(result)


def test_agents_grouped_by_role_share_a_module(ray_session):
    roles = {"agent_0": "leader", "agent_1": "follower", "agent_2": "follower"}
    config = (
        multi_agent_config("per_agent")
        .environment("CooperativeNavigation", env_config={"horizon": 10, "num_agents": 3})
        .multi_agent(
            policies={"leader", "follower"},
            policy_mapping_fn=lambda agent_id, episode, **kw: roles[agent_id],
        )
    )
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert set(result["module_episode_return_mean"]) == {"leader", "follower"}
    per_agent = result["agent_episode_return_mean"]
    assert result["module_episode_return_mean"]["follower"] == pytest.approx(
        per_agent["agent_1"] + per_agent["agent_2"]
    )


def test_multi_agent_tasks_reach_every_runner_and_sub_env(ray_session):
    """1 vs 2 remote runners, 2 sub-envs each: the same episodes and update.

    Both layouts sample in Ray worker processes, which the session starts with a fixed
    PYTHONHASHSEED (RLlib orders agents by set iteration; see tests/conftest.py).
    """

    def run(num_env_runners):
        config = multi_agent_config("per_agent", meta_batch_size=3, episodes_per_task=2)
        config = config.env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=2)
        algo = config.build_algo()
        try:
            return algo.train(), algo.learner_group.get_weights()["agent_1"]
        finally:
            algo.stop()

    (local, local_weights), (remote, remote_weights) = run(1), run(2)
    for key in ("episode_return_mean", "episode_return_mean_adapt_1"):
        assert remote[key] == pytest.approx(local[key], rel=1e-6)
    for name, value in local_weights.items():
        np.testing.assert_allclose(remote_weights[name], value, rtol=1e-5, atol=1e-7)


def test_frozen_scripted_partner_neither_trains_nor_adapts(ray_session):
    """PartnerNavigation's team: only the learner is in policies_to_train and modules_to_adapt;
    the partner is a custom module spec (built whole on the EnvRunners too)."""
    from rllib_marl_meta.envs.partner_navigation import LEARNER, PARTNER, partner_team_setup

    setup = partner_team_setup()
    algo = (
        MAMLConfig()
        .environment("PartnerNavigation", env_config={"horizon": 10})
        .rl_module(model_config={"fcnet_hiddens": [16]}, **setup["rl_module"])
        .multi_agent(**setup["multi_agent"])
        .debugging(seed=3)
        .training(modules_to_adapt=[LEARNER], meta_batch_size=3, episodes_per_task=2)
        .build_algo()
    )
    try:
        learner = algo.learner_group._learner
        partner = {n: p.detach().clone() for n, p in learner.module[PARTNER].named_parameters()}
        mine = {n: p.detach().clone() for n, p in learner.module[LEARNER].named_parameters()}
        result = algo.train()
        assert set(result["module_episode_return_mean_adapt_1"]) == {LEARNER, PARTNER}
        for name, value in learner.module[PARTNER].named_parameters():
            assert torch.equal(value, partner[name])
        assert any(
            not torch.equal(v, mine[n]) for n, v in learner.module[LEARNER].named_parameters()
        )
    finally:
        algo.stop()
