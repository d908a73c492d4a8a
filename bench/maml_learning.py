"""MAML against the MAML paper's baselines, at the same env-step budget, on held-out tasks.

Methods (all adapted with the same inner update: ``K`` vanilla policy-gradient steps with
``inner_lr``, each on fresh episodes of the test task):

- ``MAML``: meta-trained for ``--budget`` env steps;
- ``pretrained PPO``: RLlib PPO trained for ``--budget`` env steps on the whole distribution (a
  new task every episode), then fine-tuned with the same K steps;
- ``random init``: the untrained network, fine-tuned with the same K steps.

With ``--rl2`` (envs in ``RL2_SETTINGS``; ``--rl2-only`` skips MAML and PPO), RL² trains for
the same budget on trials of ``episodes_per_trial`` inner episodes of one task and is
meta-tested on the same held-out tasks: its adaptation is the return of inner episode 2 minus
episode 1, with no gradient step.

Prints the mean ± standard error over ``--test-tasks`` held-out tasks of the return before
adaptation and after each of K = 1..``--max-steps`` steps.

    python bench/maml_learning.py --env PointNavigation2D [--budget 150000]
    python bench/maml_learning.py --env CartPoleMass [--budget 300000]
    python bench/maml_learning.py --env PendulumMass --budget 800000 --max-steps 1
    python bench/maml_learning.py --env MetaWorldML1 --budget 300000 --max-steps 1
    python bench/maml_learning.py --env MetaWorldML1 --env-config '{"env_name": "push-v3"}'
    python bench/maml_learning.py --env HalfCheetahDirection --budget 3000000 --max-steps 2
    python bench/maml_learning.py --env PointNavigation2D --max-steps 1 --rl2
    python bench/maml_learning.py --env MetaWorldML1 --rl2-only --budget 1000000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import ray
from _training import rl2_curve, train_until, trained_weights
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.connectors.env_to_module import MeanStdFilter
from ray.tune.registry import register_env

import rllib_marl_meta  # noqa: F401
from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.rl2 import RL2Config
from rllib_marl_meta.envs import make_env
from rllib_marl_meta.meta_learner import MetaTestResult
from rllib_marl_meta.tasks import NewTaskEachEpisode

SETTINGS = {
    # env config, MAML training settings, inner_lr
    "PointNavigation2D": ({"horizon": 20}, dict(meta_batch_size=10, episodes_per_task=5), 0.1),
    "CartPoleMass": (
        {"max_episode_steps": 200},
        dict(meta_batch_size=10, episodes_per_task=5),
        0.1,
    ),
    # Meta-World ML1 reach (extra `metaworld`): 150-step episodes; success is reported too.
    "MetaWorldML1": (
        {"env_name": "reach-v3", "horizon": 150},
        dict(meta_batch_size=10, episodes_per_task=5),
        0.1,
    ),
    # The tuned example's settings (linear baseline, small outer lr) at a tenth of its batch.
    "PendulumMass": (
        {"max_episode_steps": 200},
        dict(meta_batch_size=10, episodes_per_task=10, baseline="linear", lr=1e-3, gamma=0.99),
        0.1,  # 0.05 (the tuned example's) gave +12 [-34, +58] at 800k steps, 0.1 +39 [+4, +74].
    ),
    # MuJoCo locomotion (extra `mujoco`), ProMP's horizon of 100 at a quarter of its batch.
    "HalfCheetahDirection": (
        {"horizon": 100},
        dict(meta_batch_size=10, episodes_per_task=10, baseline="linear", lr=1e-3, gamma=0.99),
        0.1,
    ),
    "HalfCheetahVelocity": (
        {"horizon": 100},
        dict(meta_batch_size=10, episodes_per_task=10, baseline="linear", lr=1e-3, gamma=0.99),
        0.1,
    ),
}
# RL²'s settings: the env's episodes make up trials of `episodes_per_trial`; a trial is cut into
# `max_seq_len` sequences for backprop through time. GRU 64 (the default). `model_config` goes to
# `rl_module()`; `normalize_observations` adds RLlib's MeanStdFilter (it also scales the previous
# reward that RL² observes).
RL2_SETTINGS = {
    # RL2Config's update (10 epochs of 128-step minibatches): at 300k steps it adapted more than
    # 5 epochs of 1,000-step minibatches did at 1M steps, in less wall time (README).
    "PointNavigation2D": dict(
        training=dict(
            episodes_per_trial=2, max_seq_len=40, lr=1e-3, train_batch_size_per_learner=4000
        ),
    ),
    # RLlib's tuned Pendulum PPO (lr 3e-4, gamma 0.95, 6 epochs, observation filter), with a
    # separate critic GRU and no value clipping. It did not learn the swing-up in 800k steps,
    # nor with RLlib's lambda_ 0.1 at 384k (README).
    "PendulumMass": dict(
        training=dict(
            episodes_per_trial=2,
            max_seq_len=100,
            lr=3e-4,
            gamma=0.95,
            vf_clip_param=1e5,
            train_batch_size_per_learner=4000,
            minibatch_size=500,
            num_epochs=6,
        ),
        model_config={"vf_share_layers": False},
        normalize_observations=True,
    ),
    # Meta-World rewards reach 10 per step: a separate critic GRU, PPO's lr of this bench.
    "MetaWorldML1": dict(
        training=dict(
            episodes_per_trial=2,
            max_seq_len=150,
            lr=3e-4,
            train_batch_size_per_learner=6000,
            minibatch_size=1500,
            num_epochs=5,
        ),
        model_config={"vf_share_layers": False},
    ),
}
MODEL = {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": False}


def maml_config(env: str, seed: int, inner_lr: float | None = None) -> MAMLConfig:
    env_config, training, default_inner_lr = SETTINGS[env]
    inner_lr = default_inner_lr if inner_lr is None else inner_lr
    return (
        MAMLConfig()
        .environment(env, env_config=env_config)
        .env_runners(num_envs_per_env_runner=5)
        .rl_module(model_config=MODEL)
        .debugging(seed=seed)
        .training(**{"maml_optimizer_steps": 5, "lr": 3e-3, **training}, inner_lr=inner_lr)
    )


def pretrained_ppo_weights(env: str, budget: int, seed: int) -> tuple[dict, int]:
    env_config, _, _ = SETTINGS[env]
    register_env(f"{env}-new-task-each-episode", lambda cfg: NewTaskEachEpisode(make_env(env, cfg)))
    config = (
        PPOConfig()
        .environment(f"{env}-new-task-each-episode", env_config=env_config)
        .env_runners(num_envs_per_env_runner=5)
        .rl_module(model_config=MODEL)
        .debugging(seed=seed)
        .training(train_batch_size_per_learner=2000, minibatch_size=250, num_epochs=5, lr=3e-4)
    )
    return trained_weights(config, budget)


def rl2_result(env: str, args: argparse.Namespace) -> tuple[MetaTestResult, int, float]:
    """RL² trained for the budget; its meta-test on the held-out tasks, steps, wall seconds.

    Prints the training curve (the mean training return of each inner episode) every 10
    iterations.
    """
    setting = RL2_SETTINGS[env]
    runners = dict(num_env_runners=1, num_envs_per_env_runner=8)
    if setting.get("normalize_observations"):
        runners["env_to_module_connector"] = lambda *_, **__: MeanStdFilter()
    config = (
        RL2Config()
        .environment(env, env_config=SETTINGS[env][0])
        .env_runners(**runners)
        .rl_module(model_config=setting.get("model_config", {}))
        .debugging(seed=args.seed)
        .training(**setting["training"])
    )

    algo = config.build_algo()
    try:
        start = time.perf_counter()
        steps = train_until(algo, args.budget, rl2_curve(config.episodes_per_trial))
        seconds = time.perf_counter() - start
        # As many trials per task as MAML has episodes per task at each point of its curve.
        trials = SETTINGS[env][1]["episodes_per_task"]
        return algo.meta_test(args.test_tasks, seed=1, trials_per_task=trials), steps, seconds
    finally:
        algo.stop()


def row(name: str, steps: int, result: MetaTestResult) -> str:
    cells = " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(result.mean, result.stderr))
    line = f"| {name} | {steps:,} | {cells} | {gain_ci95(result.returns)} |"
    if result.success:  # Envs with a success flag: mean success rate at each point, and gain.
        line += " " + " | ".join(f"{np.mean(s):.2f}" for s in result.success)
        line += f" | {gain_ci95(result.success)} |"
    return line


def gain_ci95(per_point: list[list[float]]) -> str:
    """Point 2 minus point 1 (adapt_1 - pre; RL²: episode_2 - episode_1), paired by task:
    mean [95% confidence interval, Student's t]."""
    from scipy import stats

    gains = np.subtract(per_point[1], per_point[0])
    half = stats.t.ppf(0.975, len(gains) - 1) * gains.std(ddof=1) / np.sqrt(len(gains))
    return f"{gains.mean():+.2f} [{gains.mean() - half:+.2f}, {gains.mean() + half:+.2f}]"


def maml_rows(args: argparse.Namespace) -> None:
    """Trains MAML and pretrained PPO; prints their table with random init's."""
    rows = []
    maml = maml_config(args.env, args.seed, args.inner_lr).build_algo()
    try:
        random_init = maml.meta_test(args.test_tasks, seed=1, steps=args.max_steps)
        rows.append(row("random init + K steps", 0, random_init))
        start = time.perf_counter()
        steps = train_until(maml, args.budget)
        maml_seconds = time.perf_counter() - start
        rows.append(row("MAML", steps, maml.meta_test(args.test_tasks, 1, args.max_steps)))

        start = time.perf_counter()
        weights, ppo_steps = pretrained_ppo_weights(args.env, args.budget, args.seed)
        ppo_seconds = time.perf_counter() - start
        maml.learner_group.set_weights(weights)  # Same network: fine-tune PPO's weights.
        pretrained = maml.meta_test(args.test_tasks, seed=1, steps=args.max_steps)
        rows.append(row("pretrained PPO + K steps", ppo_steps, pretrained))
    finally:
        maml.stop()
    labels = " | ".join(random_init.labels)
    print(f"{args.env}: {args.test_tasks} held-out tasks, mean ± s.e. of task returns")
    success = [f"success {label}" for label in random_init.labels] if random_init.success else []
    success += ["success adapt_1 − pre, 95% CI"] if success else []
    print(f"| method | training env steps | {labels} | adapt_1 − pre, 95% CI |", end="")
    print("".join(f" {column} |" for column in success))
    print("|" + " --- |" * (3 + len(random_init.labels) + len(success)))
    print("\n".join(rows))
    print(f"training wall time: MAML {maml_seconds:.0f} s, PPO {ppo_seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(SETTINGS), default="PointNavigation2D")
    parser.add_argument("--budget", type=int, default=150_000, help="env steps per method")
    parser.add_argument("--test-tasks", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inner-lr", type=float, help="override the setting's inner_lr")
    parser.add_argument("--env-config", type=json.loads, default={}, help="JSON, merged in")
    parser.add_argument("--rl2", action="store_true", help="also train and meta-test RL²")
    parser.add_argument("--rl2-only", action="store_true", help="RL² alone (no MAML, no PPO)")
    parser.add_argument(
        "--rl2-config", type=json.loads, default={}, help="JSON, merged into RL²'s training"
    )
    args = parser.parse_args()
    args.rl2 = args.rl2 or args.rl2_only
    if args.rl2 and args.env not in RL2_SETTINGS:
        parser.error(f"--rl2: no RL² setting for {args.env}; one of {sorted(RL2_SETTINGS)}")
    SETTINGS[args.env][0].update(args.env_config)  # Both methods read the env's settings here.
    if args.rl2:
        RL2_SETTINGS[args.env]["training"].update(args.rl2_config)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    if not args.rl2_only:
        maml_rows(args)
    if args.rl2:
        rl2, rl2_steps, rl2_seconds = rl2_result(args.env, args)
        columns = [*rl2.labels, "episode_2 − episode_1, 95% CI"]
        if rl2.success:
            columns += [f"success {label}" for label in rl2.labels]
            columns += ["success episode_2 − episode_1, 95% CI"]
        print(f"\n| method | training env steps | {' | '.join(columns)} |")
        print("|" + " --- |" * (2 + len(columns)))
        print(row("RL² (inner episodes)", rl2_steps, rl2))
        print(f"training wall time: RL² {rl2_seconds:.0f} s")


if __name__ == "__main__":
    main()
