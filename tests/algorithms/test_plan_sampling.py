"""Plan sampling (`plan_sampling.py`): the direct loops against RLlib's, RLlib's loop with its
per-step costs removed, batched action transforms and per-episode noise."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tree
from ray.rllib.connectors.module_to_env import NormalizeAndClipActions, TensorToNumpy
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_MODULE_STEPS_SAMPLED,
)

from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.maml.sampling import TaskJob
from rllib_marl_meta.algorithms.plan_sampling import (
    NOISE_BLOCK,
    BatchedNormalizeAndClipActions,
    EpisodePlan,
    action_transform,
    many_env_stepper,
)
from rllib_marl_meta.envs import make_env
from rllib_marl_meta.tasks import require_task_env
from tests.algorithms.conftest import assert_same_steps, metric_value
from tests.faulty_envs import FailingEnv

AGENTS = ["agent_0", "agent_1"]


@pytest.fixture
def team_runner_and_jobs(ray_session):
    """A local multi-agent MAML runner (a module per agent, 3 sub-envs) and 4 jobs."""
    algo = (
        MAMLConfig()
        .environment("CooperativeNavigation", env_config={"horizon": 10})
        .multi_agent(policies=set(AGENTS), policy_mapping_fn=lambda aid, *a, **k: aid)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=3)
        .debugging(seed=3)
        .build_algo()
    )
    runner = algo.env_runner
    weights = algo.learner_group._learner.meta_weights()
    tasks = require_task_env(runner._planned_rows[0].env).sample_tasks(4, seed=5)
    yield runner, [TaskJob(i, task, weights, 30 + i) for i, task in enumerate(tasks)]
    algo.stop()


@pytest.fixture
def numpy_conversions(monkeypatch):
    """Counts ``MultiAgentEpisode.to_numpy`` calls per episode id."""
    calls: dict[str, int] = {}
    to_numpy = MultiAgentEpisode.to_numpy

    def counted(episode):
        calls[episode.id_] = calls.get(episode.id_, 0) + 1
        return to_numpy(episode)

    monkeypatch.setattr(MultiAgentEpisode, "to_numpy", counted)
    return calls


def test_rllibs_multi_agent_loop_converts_finished_episodes_again_at_every_step(
    team_runner_and_jobs, numpy_conversions
):
    """The RLlib 2.60 behaviour `MultiAgentPlanMixin._sample` works around. If this fails,
    RLlib converts each episode once and the override can go."""
    runner, _ = team_runner_and_jobs
    episodes = runner.sample(num_episodes=6)
    assert len(episodes) == 6
    assert max(numpy_conversions.values()) > 1


@pytest.mark.parametrize("direct", [True, False], ids=["direct loop", "RLlib's loop"])
def test_a_plan_converts_each_episode_once_and_logs_rllibs_step_counts(
    team_runner_and_jobs, numpy_conversions, direct
):
    runner, jobs = team_runner_and_jobs
    runner.sample_directly = direct
    assert runner._can_sample_directly() is direct
    runner.get_metrics()  # Start from empty counters.
    per_job = runner.sample_plan(jobs, episodes_per_task=2)
    episodes = [episode for job_episodes in per_job for episode in job_episodes]
    assert len(episodes) == 8
    assert all(episode.is_numpy for episode in episodes)
    assert sorted(numpy_conversions) == sorted(e.id_ for e in episodes)
    assert set(numpy_conversions.values()) == {1}

    metrics = runner.get_metrics()
    env_steps = sum(episode.env_steps() for episode in episodes)
    assert env_steps == 8 * 10
    assert metrics[NUM_ENV_STEPS_SAMPLED] == env_steps
    assert metrics[NUM_ENV_STEPS_SAMPLED_LIFETIME] == env_steps
    assert metrics[NUM_EPISODES] == 8
    for agent in AGENTS:
        agent_steps = sum(len(e.agent_episodes[agent]) for e in episodes)
        assert metrics[NUM_AGENT_STEPS_SAMPLED][agent] == agent_steps == env_steps
        assert metrics[NUM_AGENT_STEPS_SAMPLED_LIFETIME][agent] == agent_steps
        assert metrics[NUM_MODULE_STEPS_SAMPLED][agent] == agent_steps
    assert runner._pending_step_metrics is None  # Outside a plan, RLlib logs as it goes.


def _action_spaces() -> dict:
    import gymnasium as gym

    float_box = gym.spaces.Box(np.float32([-2.0, 0.0]), np.float32([-0.5, 3.0]))
    return {
        "float box": float_box,
        "float64 box": gym.spaces.Box(-1.5, 4.0, shape=(3,), dtype=np.float64),
        "half-bounded box": gym.spaces.Box(
            np.array([-1.0, -np.inf], np.float32), np.array([1.0, 1.0], np.float32)
        ),
        "int box": gym.spaces.Box(low=2, high=9, shape=(2,), dtype=np.int64),
        "discrete": gym.spaces.Discrete(4, start=1),
        "multi-discrete": gym.spaces.MultiDiscrete([3, 5]),
        "dict": gym.spaces.Dict({"move": float_box, "pick": gym.spaces.Discrete(3)}),
    }


@pytest.mark.parametrize("space_name", list(_action_spaces()))
@pytest.mark.parametrize(("normalize", "clip"), [(True, True), (True, False), (False, True)])
def test_batched_unsquash_equals_rllibs_per_item_piece(space_name, normalize, clip):
    space = _action_spaces()[space_name]
    rng = np.random.default_rng(0)

    def draw(sub):  # Outside the bounds too, where the space has bounds to clip to.
        if sub.dtype.kind == "f":
            return rng.normal(scale=3.0, size=(7, *sub.shape)).astype(sub.dtype)
        return np.stack([sub.sample() for _ in range(7)]) - (2 if sub.shape else 0)

    actions = (
        {key: draw(sub) for key, sub in space.spaces.items()}
        if isinstance(space, gym.spaces.Dict)
        else draw(space)
    )
    kwargs = dict(input_action_space=space, normalize_actions=normalize, clip_actions=clip)
    batched = BatchedNormalizeAndClipActions(**kwargs)(
        rl_module=None, batch={Columns.ACTIONS: tree.map_structure(np.copy, actions)}, episodes=[]
    )
    rows = [tree.map_structure(lambda a, i=i: a[i].copy(), actions) for i in range(7)]
    per_item = NormalizeAndClipActions(**kwargs)(
        rl_module=None,
        batch={Columns.ACTIONS: {(i,): [row] for i, row in enumerate(rows)}},
        episodes=[],
    )
    expected = [per_item[Columns.ACTIONS_FOR_ENV][(i,)][0] for i in range(7)]
    for i, row in enumerate(expected):
        got = tree.map_structure(lambda a, i=i: a[i], batched[Columns.ACTIONS_FOR_ENV])
        tree.map_structure(np.testing.assert_array_equal, got, row)
    # The sampled actions stay as they were, and the env's are not the same arrays.
    tree.map_structure(np.testing.assert_array_equal, batched[Columns.ACTIONS], actions)
    for out, sampled in zip(
        tree.flatten(batched[Columns.ACTIONS_FOR_ENV]), tree.flatten(batched[Columns.ACTIONS])
    ):
        assert not np.shares_memory(out, sampled)
    if space_name in ("float box", "int box") and (normalize or space_name == "float box"):
        assert not np.array_equal(np.stack(expected), actions)  # Unsquashing/clipping ran.


def test_batched_unsquash_of_module_batches_equals_rllibs_per_agent_piece():
    """Multi-agent: a module's rows may belong to agents with different action bounds."""
    wide = gym.spaces.Box(np.float32([-3.0, 0.0]), np.float32([3.0, 1.0]))
    narrow = gym.spaces.Box(np.float32([-0.5, -0.5]), np.float32([0.5, 0.5]))
    agents = {"a": wide, "b": narrow, "c": wide, "d": gym.spaces.Discrete(3)}
    rows_of = {"m1": [("e1", "a"), ("e2", "b"), ("e1", "c"), ("e2", "a")], "m2": [("e1", "d")]}
    rng = np.random.default_rng(1)
    actions = {"m1": rng.normal(scale=2.0, size=(4, 2)).astype(np.float32), "m2": np.array([2])}
    for normalize in (True, False):
        kwargs = dict(
            input_action_space=gym.spaces.Dict(agents),
            normalize_actions=normalize,
            clip_actions=True,
        )
        batched = BatchedNormalizeAndClipActions(**kwargs)(
            rl_module=None,
            batch={mid: {Columns.ACTIONS: a.copy()} for mid, a in actions.items()},
            episodes=[],
            shared_data={"memorized_map_structure": rows_of},
        )
        items = {
            (eps, agent, mid): [actions[mid][i].copy()]
            for mid, rows in rows_of.items()
            for i, (eps, agent) in enumerate(rows)
        }
        per_item = NormalizeAndClipActions(**kwargs)(
            rl_module=None, batch={Columns.ACTIONS: items}, episodes=[]
        )[Columns.ACTIONS_FOR_ENV]
        for mid, rows in rows_of.items():
            expected = np.stack([per_item[(eps, agent, mid)][0] for eps, agent in rows])
            np.testing.assert_array_equal(batched[mid][Columns.ACTIONS_FOR_ENV], expected)
            np.testing.assert_array_equal(batched[mid][Columns.ACTIONS], actions[mid])
        # Rows of agent b (narrow bounds) differ from what the wide bounds would give.
        assert np.abs(batched["m1"][Columns.ACTIONS_FOR_ENV][1]).max() <= 0.5


def test_maml_pipelines_carry_the_batched_piece_for_flat_action_spaces(team_runner_and_jobs):
    runner, _ = team_runner_and_jobs
    pieces = [type(piece) for piece in runner._module_to_env.connectors]
    assert BatchedNormalizeAndClipActions in pieces
    assert NormalizeAndClipActions not in pieces
    assert pieces.index(BatchedNormalizeAndClipActions) == pieces.index(TensorToNumpy) + 1


def test_plan_draws_equal_each_episodes_generator_drawn_step_by_step():
    """Noise drawn NOISE_BLOCK steps at a time per (row, agent) equals the episode's own
    generator drawn once per step, across blocks and a row's change of episode. (A key draws
    with one method only: its module's distribution decides which.)"""
    plan = EpisodePlan([(0, None, 11), (1, None, 12), (0, None, 13)], num_rows=2)
    plan.take(0), plan.take(1)
    keys = [(0, None), (1, "a"), (1, "b")]
    expected = {key: plan.rng(*key) for key in keys}  # Fresh generators of the same seeds.
    plan._rngs.clear()
    for _ in range(NOISE_BLOCK + 5):
        draws = plan.draws(keys, "standard_normal", (3,))
        want = np.stack([expected[key].standard_normal((3,)) for key in keys])
        np.testing.assert_array_equal(draws, want)
    plan.take(0)  # Row 0 starts the third episode: a new generator.
    expected[(0, None)] = np.random.default_rng([13, 0])
    for _ in range(3):
        draws = plan.draws(keys[:1], "standard_normal", (3,))
        np.testing.assert_array_equal(draws[0], expected[(0, None)].standard_normal((3,)))
    fresh = EpisodePlan([(0, None, 13)], num_rows=1)  # Another generator method, new key.
    fresh.take(0)
    np.testing.assert_array_equal(
        plan.draws([(0, "c")], "random", (2,))[0], fresh.rng(0, "c").random((2,))
    )


def test_direct_loop_steps_built_in_envs_together_only_behind_pass_through_wrappers(ray_session):
    """PointNavigation2D's sub-envs step in one `step_many` call; an extra wrapper around the
    env (which may change a step), envs of different classes or a subclass that overrides
    `step` step in turn."""
    algo = (
        MAMLConfig()
        .environment("PointNavigation2D")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
        .build_algo()
    )
    try:
        rows = algo.env_runner._planned_rows
        assert many_env_stepper(rows) is not None
        original = rows[1].env
        rows[1].env = gym.wrappers.TimeLimit(original, max_episode_steps=5)
        assert many_env_stepper(rows) is None
        rows[1].env = make_env("PendulumMass")
        assert many_env_stepper(rows) is None
        # A subclass that overrides `step` (here: one that fails on purpose) steps in turn.
        rows[1].env = original
        overriding = FailingEnv({"marker": "/nonexistent", "fail_at_step": 0, "fail_on_worker": 0})
        for row in rows:
            row.env = overriding
        assert many_env_stepper(rows) is None
        for row in rows:
            row.env = original
    finally:
        algo.stop()


def test_direct_team_loop_gives_the_episodes_and_metrics_of_rllibs_loop(team_runner_and_jobs):
    """The multi-agent direct loop and RLlib's loop sample the same episodes (every agent's
    data, module, ends, infos with the task tag) and log the same metrics; 4 tasks x 2
    episodes on 3 sub-envs, a module per agent, each task with its own weights."""
    runner, jobs = team_runner_and_jobs
    rng = np.random.default_rng(0)
    for job in jobs:
        job.weights = {
            mid: {
                k: v + 0.3 * rng.standard_normal(np.shape(v)).astype(v.dtype) for k, v in w.items()
            }
            for mid, w in job.weights.items()
        }
    per_loop, metrics = {}, {}
    for direct in (True, False):
        runner.sample_directly = direct
        runner.get_metrics()
        per_loop[direct] = runner.sample_plan(jobs, episodes_per_task=2)
        metrics[direct] = runner.get_metrics()
    for direct_episodes, rllib_episodes in zip(per_loop[True], per_loop[False]):
        assert len(direct_episodes) == len(rllib_episodes) == 2
        for a, b in zip(direct_episodes, rllib_episodes):
            assert len(a) == len(b) == 10
            # Every agent is truncated at the horizon; RLlib's loop also marks the episode
            # (and every agent's) terminated (see the test below); the direct loop does not.
            assert (a.is_terminated, a.is_truncated) == (False, True)
            assert (b.is_terminated, b.is_truncated) == (True, True)
            assert a.agent_episodes.keys() == b.agent_episodes.keys() == set(AGENTS)
            for agent in AGENTS:
                x, y = a.agent_episodes[agent], b.agent_episodes[agent]
                assert x.module_id == y.module_id == agent
                assert (x.is_terminated, x.is_truncated) == (False, True)
                assert x.get_infos() == y.get_infos()
                assert_same_steps(x, y)

    for key in ("episode_return_mean", "episode_len_mean", NUM_ENV_STEPS_SAMPLED, NUM_EPISODES):
        assert metric_value(metrics[True][key]) == pytest.approx(
            metric_value(metrics[False][key]), rel=1e-6
        )
    for key in ("agent_episode_returns_mean", NUM_AGENT_STEPS_SAMPLED, NUM_MODULE_STEPS_SAMPLED):
        for agent in AGENTS:
            direct = metric_value(metrics[True][key][agent])
            rllib = metric_value(metrics[False][key][agent])
            assert direct == pytest.approx(rllib, rel=1e-6)


def test_direct_team_loop_refuses_an_env_that_breaks_agents_act_together(
    team_runner_and_jobs, monkeypatch
):
    """An env that promises `agents_act_together` but drops an agent mid-episode gets a
    clear error, not a silently wrong episode."""
    runner, jobs = team_runner_and_jobs
    row = runner._planned_rows[0]
    step = type(row).step

    def drop_an_agent(self, action):
        observation, reward, terminated, truncated, info = step(self, action)
        if self is row:
            observation = {k: v for k, v in observation.items() if k != AGENTS[1]}
        return observation, reward, terminated, truncated, info

    monkeypatch.setattr(type(row), "step", drop_an_agent)
    with pytest.raises(RuntimeError, match="agents_act_together"):
        runner.sample_plan(jobs, episodes_per_task=1)


def test_rllibs_episode_marks_a_team_episode_whose_agents_are_all_truncated_terminated():
    """RLlib 2.60's `MultiAgentEpisode.add_env_step` declares an episode terminated once every
    agent is done, also when every agent was truncated (a time limit), and then every
    agent's episode too: bootstrapping from it would treat a time limit as a terminal state.
    MAML's direct team loop keeps the env's ends (the test above); MAML's advantages
    bootstrap with 0 either way, so its updates are the same. If this fails, RLlib fixed it."""
    episode = MultiAgentEpisode()
    episode.add_env_reset(observations={a: np.zeros(2) for a in AGENTS})
    ends = {a: True for a in AGENTS} | {"__all__": True}
    episode.add_env_step(
        observations={a: np.ones(2) for a in AGENTS},
        actions={a: 0 for a in AGENTS},
        rewards={a: 1.0 for a in AGENTS},
        terminateds={a: False for a in AGENTS} | {"__all__": False},
        truncateds=ends,
    )
    assert episode.is_truncated and episode.is_terminated
    assert all(episode.agent_episodes[a].is_terminated for a in AGENTS)


def test_team_loop_transforms_each_row_with_its_agents_action_space():
    """A module batch whose rows belong to agents with different action spaces: each row
    gets its own agent's transform (one call per distinct space)."""
    from rllib_marl_meta.algorithms.plan_sampling import _for_env

    wide = gym.spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
    narrow = gym.spaces.Box(-0.5, 0.5, shape=(2,), dtype=np.float32)
    transforms = {
        name: action_transform(True, True, space)
        for name, space in {"wide": wide, "narrow": narrow}.items()
    }
    actions = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    names = ["wide", "narrow", "narrow", "wide", "narrow"]
    for_env = _for_env(actions, [transforms[n] for n in names])
    for row, name in enumerate(names):
        np.testing.assert_array_equal(for_env[row], transforms[name](actions[row : row + 1])[0])
    assert np.abs(for_env[[1, 2, 4]]).max() <= 0.5 < np.abs(for_env[[0, 3]]).max()


def test_only_envs_whose_class_promises_it_take_the_direct_team_loop(team_runner_and_jobs):
    """CooperativeNavigation's class promises `agents_act_together`; the same env made
    turn-based (PettingZoo's parallel-to-AEC, as RLlib's `PettingZooEnv` sees it) does not."""
    from pettingzoo.utils.conversions import parallel_to_aec
    from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv

    from rllib_marl_meta.algorithms.plan_sampling import PlannedSubEnv, _agents_act_together
    from rllib_marl_meta.envs.cooperative_navigation import CooperativeNavigation

    runner, _ = team_runner_and_jobs
    assert all(_agents_act_together(row) for row in runner._planned_rows)
    assert runner._can_sample_directly()
    turn_based = PettingZooEnv(parallel_to_aec(CooperativeNavigation({"horizon": 10})))
    assert not _agents_act_together(PlannedSubEnv(turn_based, 0, multi_agent=True))
