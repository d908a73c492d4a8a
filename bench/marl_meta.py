"""Multi-agent meta-RL: MAML and RL² against independent-PPO baselines, on held-out tasks.

Team return (sum over agents) before and after adaptation, at a fixed env-step budget. Every
method uses one module per agent (independent learners, ``policy_mapping_fn: agent id``) and
the same network for the feed-forward methods, and all are tested on the same held-out tasks:

- ``MAML``: meta-trained for ``--budget`` env steps, then adapted with K = 1..``--max-steps``
  inner steps (vanilla PG, ``inner_lr``, ``episodes_per_task`` fresh episodes per step);
- ``RL²``: per-agent GRU policies trained for ``--budget`` env steps on trials of
  ``--max-steps`` + 1 episodes; the columns are the inner episodes of a test trial (no gradient
  steps: RL² adapts through its hidden state), averaged per task over ``episodes_per_task``
  trials, as many episodes as each of MAML's points;
- ``random init + K steps``: the untrained network, adapted like MAML;
- ``pretrained PPO + K steps``: independent PPO trained for ``--budget`` env steps on the whole
  distribution (a new task every episode), its weights then adapted with MAML's inner update;
- ``PPO from scratch``: independent PPO trained on each test task with the samples MAML adapts
  with (``episodes_per_task`` episodes per update, K updates); on the first ``--scratch-tasks``
  test tasks; column k is the return of the batch sampled after k PPO updates;
- ``oracle``: independent PPO trained for ``--oracle-budget`` env steps on one test task; on the
  first ``--oracle-tasks`` test tasks; the return of its last training batch.

Prints one markdown table: mean ± standard error over test tasks of the per-task mean team
return at each point, the change from the first to the last point (paired by task) and the
training wall time of each method. ``--env-config '{"observe_landmarks": true}'`` (JSON, merged
into the env config) runs CooperativeNavigation with the landmarks observed.

    python bench/marl_meta.py --env CooperativeNavigation --algo both    # about 10 minutes
    python bench/marl_meta.py --env MPESpread --algo both --budget 60000    # about 8 minutes
    python bench/marl_meta.py --env DistributedOptimization --algo both
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np
import ray
import torch
from _training import rl2_curve, train_until, trained_weights
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.tune.registry import register_env

import rllib_marl_meta  # noqa: F401  (registers the envs and algorithms)
from rllib_marl_meta.algorithms.maml import TEAM_TRAINING, MAMLConfig
from rllib_marl_meta.algorithms.rl2 import RL2Config
from rllib_marl_meta.envs import make_env, to_rllib_env
from rllib_marl_meta.meta_learner import held_out_seed
from rllib_marl_meta.tasks import NewTaskEachEpisodeParallel, Task, require_task_env

# MAML.meta_test and RL2.meta_test draw their held-out tasks with
# `sample_tasks(n, seed=held_out_seed(seed))`; the baselines get the same tasks (checked).
TEST_SEED = 1

MODEL = {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": False}


@dataclass
class Setting:
    env_config: dict
    horizon: int
    maml: dict  # MAML training settings
    ppo: dict = field(
        default_factory=lambda: dict(
            train_batch_size_per_learner=2000, minibatch_size=250, num_epochs=5, lr=3e-4
        )
    )
    rl2: dict = field(
        default_factory=lambda: dict(
            train_batch_size_per_learner=2000, minibatch_size=500, num_epochs=5, lr=1e-3
        )
    )


SETTINGS = {
    "CooperativeNavigation": Setting(
        # The team starts near the origin (spawn_range 0.1), as the MAML paper's navigation
        # agent does; the landmarks and the top speed are the task.
        env_config={"num_agents": 2, "horizon": 20, "spawn_range": 0.1},
        horizon=20,
        maml=dict(TEAM_TRAINING),
    ),
    "DistributedOptimization": Setting(
        # The notebook's team (4 agents, D = 20, the sum as objective); hidden target in
        # [-5, 5]; 20-step episodes.
        env_config={"horizon": 20},
        horizon=20,
        maml=dict(TEAM_TRAINING),
    ),
    "MPESpread": Setting(
        env_config={"N": 3, "max_cycles": 25},
        horizon=25,
        maml=dict(TEAM_TRAINING, inner_lr=0.1),
    ),
}


# --- envs ---------------------------------------------------------------------------------------


def register_bench_envs(env: str) -> tuple[str, str]:
    """Registers the env drawing a new task per episode and the env fixed to ``config["task"]``."""
    dist_name, fixed_name = f"{env}-new-task-each-episode", f"{env}-fixed-task"
    register_env(
        dist_name, lambda cfg: to_rllib_env(NewTaskEachEpisodeParallel(make_env(env, cfg)))
    )
    register_env(fixed_name, lambda cfg: to_rllib_env(make_env(env, cfg)))
    return dist_name, fixed_name


def test_tasks(env: str, setting: Setting, n: int) -> list[Task]:
    task_env = require_task_env(make_env(env, setting.env_config))
    return task_env.sample_tasks(n, seed=held_out_seed(TEST_SEED))


def as_config_task(task: Task) -> dict:
    """A task as plain Python values (env_config travels through Ray's config checks)."""
    return {k: np.asarray(v).tolist() for k, v in task.items()}


def agent_ids(env: str, setting: Setting) -> list[str]:
    return list(make_env(env, setting.env_config).possible_agents)


def per_agent(config, agents: list[str]):
    return config.multi_agent(
        policies=set(agents), policy_mapping_fn=lambda agent_id, episode, **kw: agent_id
    )


# --- results ------------------------------------------------------------------------------------


@dataclass
class Row:
    method: str
    steps: int | str
    returns: list[list[float] | None]  # per point: one value per task (None: not measured)
    seconds: float

    def cells(self, num_points: int) -> list[str]:
        out = ["–" if r is None else mean_sem(r) for r in self.returns]
        out += ["–"] * (num_points - len(out))
        first, last = self.returns[0], self.returns[-1]
        # The change from the first to the last point, paired by task.
        gain = "–" if first is None else mean_sem(np.asarray(last) - np.asarray(first), sign=True)
        step = self.returns[1] if len(self.returns) > 1 else None
        one_step = "–" if first is None or step is None else ci95(np.subtract(step, first))
        return out + [gain, one_step]

    def markdown(self, num_points: int) -> str:
        steps = f"{self.steps:,}" if isinstance(self.steps, int) else self.steps
        tasks = len(next(r for r in self.returns if r is not None))
        cells = " | ".join(self.cells(num_points))
        return f"| {self.method} | {steps} | {tasks} | {cells} | {self.seconds:.0f} s |"


def ci95(values) -> str:
    """Mean and its 95% confidence interval (Student's t) of per-task values."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return f"{values.mean():+.2f} [{values.mean() - half:+.2f}, {values.mean() + half:+.2f}]"


def mean_sem(values, sign: bool = False) -> str:
    """``mean ± standard error`` of ``values`` (one per task)."""
    values = np.asarray(values, dtype=np.float64)
    sem = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():{'+' if sign else ''}.2f} ± {sem:.2f}"


class RecordReturns(RLlibCallback):
    """Records the team return of every complete episode sampled (local EnvRunner only)."""

    batches: list[list[float]] = []

    def on_sample_end(self, *, samples, **kwargs) -> None:
        RecordReturns.batches.append([float(e.get_return()) for e in samples if e.is_done])


# --- methods ------------------------------------------------------------------------------------


def maml_algo(env: str, setting: Setting, agents: list[str], seed: int):
    """MAML meta-trained with one inner step (``inner_adaptation_steps`` = 1, the default)."""
    config = (
        MAMLConfig()
        .environment(env, env_config=setting.env_config)
        .env_runners(num_envs_per_env_runner=5)
        .rl_module(model_config=MODEL)
        .debugging(seed=seed)
        .training(**setting.maml)
    )
    return per_agent(config, agents).build_algo()


def maml_meta_test(maml, tasks: list[Task], max_steps: int) -> list[list[float]]:
    out = maml.meta_test(num_tasks=len(tasks), seed=TEST_SEED, steps=max_steps)
    check_same_tasks(tasks, out.tasks)
    return out.returns


def check_same_tasks(mine: list[Task], theirs: list[Task]) -> None:
    for a, b in zip(mine, theirs, strict=True):
        assert all(np.allclose(a[k], b[k]) for k in a), "test tasks differ"


def ppo_config(env_name: str, env_config: dict, agents: list[str], seed: int, **training):
    config = (
        PPOConfig()
        .environment(env_name, env_config=env_config)
        .rl_module(model_config=MODEL)
        .debugging(seed=seed)
        .training(**training)
    )
    return per_agent(config, agents)


def pretrained_ppo(dist_name: str, setting: Setting, agents, budget: int, seed: int):
    config = ppo_config(dist_name, setting.env_config, agents, seed, **setting.ppo)
    return trained_weights(config.env_runners(num_env_runners=0, num_envs_per_env_runner=5), budget)


def ppo_on_task(
    fixed_name: str,
    setting: Setting,
    agents,
    task: Task,
    seed: int,
    episodes: int,
    iterations: int,
    **training,
) -> list[list[float]]:
    """PPO from scratch on one task; the episode returns of each of ``iterations`` batches.

    Batch ``i`` (0-based) is sampled with the policy after ``i`` PPO updates.
    """
    env_config = {**setting.env_config, "task": as_config_task(task)}
    batch = episodes * setting.horizon  # Whole episodes: the horizon is fixed.
    num_envs = 5 if episodes % 5 == 0 else 1  # Every sub-env samples whole episodes.
    ppo = (
        ppo_config(
            fixed_name,
            env_config,
            agents,
            seed,
            train_batch_size_per_learner=batch,
            **training,
        )
        .env_runners(
            num_env_runners=0,
            num_envs_per_env_runner=num_envs,
            rollout_fragment_length=batch // num_envs,
        )
        .callbacks(RecordReturns)
        .build_algo()
    )
    try:
        RecordReturns.batches = []
        for _ in range(iterations):
            ppo.train()
        batches = list(RecordReturns.batches)
    finally:
        ppo.stop()
    assert len(batches) == iterations and all(len(b) == episodes for b in batches), [
        len(b) for b in batches
    ]
    return batches


def rl2_algo(
    env: str,
    setting: Setting,
    agents,
    seed: int,
    episodes_per_trial: int,
    central_critic: bool = False,
    shared_module: bool = False,
):
    trial_steps = setting.horizon * episodes_per_trial
    training = dict(setting.rl2)
    model_config = training.pop("model_config", {})  # For `rl_module()`, not `training()`.
    config = (
        RL2Config()
        .environment(env, env_config=setting.env_config)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=8)
        .rl_module(model_config=model_config)
        .debugging(seed=seed)
        .training(
            episodes_per_trial=episodes_per_trial,
            max_seq_len=trial_steps,
            central_critic=central_critic,
            **training,
        )
    )
    if shared_module:
        config = config.multi_agent(
            policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kw: "shared"
        )
        return config.build_algo()
    return per_agent(config, agents).build_algo()


def scratch_row(fixed_name: str, setting: Setting, agents, tasks, K: int, args) -> Row:
    """PPO from scratch on each task, ``episodes_per_task`` episodes per update, K updates."""
    episodes = setting.maml["episodes_per_task"]
    start = time.perf_counter()
    per_task = [
        ppo_on_task(
            fixed_name,
            setting,
            agents,
            task,
            args.seed,
            episodes,
            K + 1,
            minibatch_size=max(episodes * setting.horizon // 4, 1),
            num_epochs=10,
            lr=1e-3,
        )
        for task in tasks
    ]
    seconds = time.perf_counter() - start
    returns = [[float(np.mean(b[k])) for b in per_task] for k in range(K + 1)]
    label = f"(b) PPO from scratch ({episodes} episodes/update)"
    return Row(label, f"{K * episodes * setting.horizon:,}/task", returns, seconds)


def oracle_row(fixed_name: str, setting: Setting, agents, tasks, K: int, args) -> Row:
    """PPO trained for ``--oracle-budget`` env steps on each task; its last batch's return."""
    batch = setting.ppo["train_batch_size_per_learner"]
    iterations = max(1, math.ceil((args.oracle_budget or args.budget) / batch)) + 1
    training = {k: v for k, v in setting.ppo.items() if k != "train_batch_size_per_learner"}
    start = time.perf_counter()
    finals = []
    for task in tasks:
        episodes = batch // setting.horizon
        batches = ppo_on_task(
            fixed_name, setting, agents, task, args.seed, episodes, iterations, **training
        )
        finals.append(float(np.mean(batches[-1])))
    seconds = time.perf_counter() - start
    steps = (iterations - 1) * batch
    return Row(
        "(c) oracle: PPO on the test task", f"{steps:,}/task", [None] * K + [finals], seconds
    )


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(SETTINGS), default="CooperativeNavigation")
    parser.add_argument("--algo", choices=["maml", "rl2", "both"], default="both")
    parser.add_argument("--budget", type=int, default=150_000, help="env steps per method")
    parser.add_argument("--test-tasks", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=3, help="K, adaptation steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch-tasks", type=int, default=5)
    parser.add_argument("--oracle-tasks", type=int, default=2)
    parser.add_argument("--oracle-budget", type=int, help="env steps per task (default: --budget)")
    parser.add_argument("--no-baselines", action="store_true", help="MAML / RL² rows only")
    parser.add_argument("--env-config", type=json.loads, default={}, help="JSON, merged in")
    parser.add_argument("--inner-lr", type=float, help="override the MAML setting")
    parser.add_argument("--episodes-per-task", type=int, help="override the MAML setting")
    parser.add_argument("--meta-batch-size", type=int, help="override the MAML setting")
    parser.add_argument(
        "--rl2-central-critic", action="store_true", help="RL² value heads see the global state"
    )
    parser.add_argument(
        "--rl2-shared-module",
        action="store_true",
        help="RL²: one module (one GRU) for all agents instead of one per agent",
    )
    parser.add_argument(
        "--rl2-config",
        type=json.loads,
        default={},
        help="JSON, merged into the RL² setting (training keys, and `model_config`)",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    setting = SETTINGS[args.env]
    setting.env_config.update(args.env_config)
    setting.rl2.update(args.rl2_config)
    for name in ("inner_lr", "episodes_per_task", "meta_batch_size"):
        if getattr(args, name) is not None:
            setting.maml[name] = getattr(args, name)
    agents = agent_ids(args.env, setting)
    dist_name, fixed_name = register_bench_envs(args.env)
    tasks = test_tasks(args.env, setting, args.test_tasks)
    K = args.max_steps
    rows: list[Row] = []
    start_all = time.perf_counter()

    maml = None
    if args.algo in ("maml", "both") or not args.no_baselines:
        maml = maml_algo(args.env, setting, agents, args.seed)
    try:
        if maml is not None and not args.no_baselines:
            start = time.perf_counter()
            rows.append(Row("random init + K steps", 0, maml_meta_test(maml, tasks, K), 0.0))
            print(f"random init meta-test: {time.perf_counter() - start:.0f} s", flush=True)
        if args.algo in ("maml", "both"):
            start = time.perf_counter()
            steps = train_until(maml, args.budget)
            seconds = time.perf_counter() - start
            rows.append(Row("MAML", steps, maml_meta_test(maml, tasks, K), seconds))
            print(rows[-1].markdown(K + 1), flush=True)
        if not args.no_baselines:
            start = time.perf_counter()
            weights, steps = pretrained_ppo(dist_name, setting, agents, args.budget, args.seed)
            seconds = time.perf_counter() - start
            maml.learner_group.set_weights(weights)  # Same network: fine-tune PPO's weights.
            rows.append(
                Row("(a) pretrained PPO + K steps", steps, maml_meta_test(maml, tasks, K), seconds)
            )
            print(rows[-1].markdown(K + 1), flush=True)
    finally:
        if maml is not None:
            maml.stop()

    if args.algo in ("rl2", "both"):
        rl2 = rl2_algo(
            args.env,
            setting,
            agents,
            args.seed,
            K + 1,
            args.rl2_central_critic,
            args.rl2_shared_module,
        )
        try:
            start = time.perf_counter()
            steps = train_until(rl2, args.budget, rl2_curve(K + 1))
            seconds = time.perf_counter() - start
            # Several trials per task, so each task's point is a mean over as many episodes
            # as MAML's (``episodes_per_task``).
            trials = setting.maml["episodes_per_task"]
            result = rl2.meta_test(len(tasks), seed=TEST_SEED, trials_per_task=trials)
        finally:
            rl2.stop()
        check_same_tasks(tasks, result.tasks)
        name = "RL², one module for all agents" if args.rl2_shared_module else "RL²"
        rows.append(Row(f"{name} (inner episodes 1..K+1)", steps, result.returns, seconds))
        print(rows[-1].markdown(K + 1), flush=True)

    if not args.no_baselines and args.scratch_tasks > 0:
        rows.append(scratch_row(fixed_name, setting, agents, tasks[: args.scratch_tasks], K, args))
        print(rows[-1].markdown(K + 1), flush=True)
    if not args.no_baselines and args.oracle_tasks > 0:
        rows.append(oracle_row(fixed_name, setting, agents, tasks[: args.oracle_tasks], K, args))
        print(rows[-1].markdown(K + 1), flush=True)

    labels = ["pre / ep 1"] + [f"k={k} / ep {k + 1}" for k in range(1, K + 1)]
    print()
    print(
        f"{args.env} {setting.env_config}, {len(agents)} agents, per-agent modules"
        f"{' (RL²: one module for all agents)' if args.rl2_shared_module else ''}; "
        f"team return (sum over agents), mean ± s.e. over test tasks; "
        f"total wall time {time.perf_counter() - start_all:.0f} s"
    )
    print(
        f"| method | training env steps | test tasks | {' | '.join(labels)} | last − first "
        "| second − first, 95% CI | train wall time |"
    )
    print("|" + " --- |" * (len(labels) + 6))
    for row in rows:
        print(row.markdown(K + 1))


if __name__ == "__main__":
    main()
