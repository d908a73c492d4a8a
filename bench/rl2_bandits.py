"""RL² against classic bandit algorithms on the RL² paper's Bernoulli bandits, same tasks.

For each setting (k arms, n pulls per trial; p ~ U[0, 1]^k) RL² trains on BernoulliBandit
trials of n one-pull episodes for ``--timesteps`` pulls, then meta-tests on ``--tasks`` new
tasks (hidden state carried, no gradient step). UCB1, Thompson sampling (Beta(1, 1) prior),
epsilon-greedy and greedy (posterior means under Beta(1, 1)), random and the oracle (always the
best arm, in expectation) play the *same* tasks, implemented here in numpy. UCB1 is the textbook
version (bonus ``c * sqrt(ln t / n_i)``, c = sqrt(2), ``--ucb-c``), untuned, so it explores more
than the tuned UCB1 of the RL² paper on short horizons. The table shows
the mean return per trial +- its standard error over tasks.

The default budget (50,000 pulls per setting, 4 settings) runs in a few minutes on 2 CPUs and
is far below the RL² paper's; pass e.g. ``--timesteps 2000000`` for a real run.

    python bench/rl2_bandits.py [--settings 5x10,10x10,5x100,10x100] [--timesteps 50000]
        [--tasks 500] [--epsilon 0.1] [--ucb-c 1.414] [--num-env-runners 0] [--seed 0]
        [--lr 1e-3] [--trials-per-batch 20] [--trials-per-minibatch 5] [--lambda 0.95]
        [--num-epochs 10] [--cell-size 64] [--entropy-coeff 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray
import torch

import rllib_marl_meta  # noqa: F401  (registers BernoulliBandit and RL2)
from rllib_marl_meta.algorithms.rl2 import RL2Config

# --- Baselines: vectorised over tasks, one trial of n pulls per task. ---------------------------


def _pick(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Argmax per row, ties broken uniformly at random."""
    noise = rng.random(scores.shape) * 1e-9
    return np.argmax(scores + noise * (scores == scores.max(axis=1, keepdims=True)), axis=1)


def play(
    policy: str,
    probs: np.ndarray,
    n: int,
    rng: np.random.Generator,
    epsilon: float = 0.1,
    ucb_c: float = np.sqrt(2.0),
) -> np.ndarray:
    """Returns the per-task total reward of ``policy`` over ``n`` pulls on ``probs`` (T, k)."""
    num_tasks, k = probs.shape
    rows = np.arange(num_tasks)
    successes = np.zeros((num_tasks, k))
    pulls = np.zeros((num_tasks, k))
    total = np.zeros(num_tasks)
    for t in range(n):
        if policy == "random":
            arm = rng.integers(k, size=num_tasks)
        elif policy == "ucb1":
            mean = successes / np.maximum(pulls, 1)
            bonus = ucb_c * np.sqrt(np.log(max(t, 1)) / np.maximum(pulls, 1))
            arm = _pick(np.where(pulls == 0, np.inf, mean + bonus), rng)
        elif policy == "thompson":
            arm = _pick(rng.beta(1.0 + successes, 1.0 + pulls - successes), rng)
        elif policy in ("greedy", "epsilon_greedy"):
            arm = _pick((1.0 + successes) / (2.0 + pulls), rng)
            if policy == "epsilon_greedy":
                explore = rng.random(num_tasks) < epsilon
                arm = np.where(explore, rng.integers(k, size=num_tasks), arm)
        else:
            raise ValueError(policy)
        reward = (rng.random(num_tasks) < probs[rows, arm]).astype(np.float64)
        successes[rows, arm] += reward
        pulls[rows, arm] += 1
        total += reward
    return total


BASELINES = ("ucb1", "thompson", "epsilon_greedy", "greedy", "random")


def _fmt(values: np.ndarray) -> str:
    sem = values.std(ddof=1) / np.sqrt(len(values))
    return f"{values.mean():.2f}±{sem:.2f}"


# --- RL² ------------------------------------------------------------------------------------------


def train_rl2(k: int, n: int, args: argparse.Namespace):
    config = (
        RL2Config()
        .environment("BernoulliBandit", env_config={"num_arms": k})
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=10)
        .debugging(seed=args.seed)
        .training(
            episodes_per_trial=n,
            max_seq_len=min(n, 100),
            lr=args.lr,
            train_batch_size_per_learner=max(2000, args.trials_per_batch * n),
            minibatch_size=max(500, args.trials_per_minibatch * n),
            num_epochs=args.num_epochs,
            lambda_=args.lambda_,
            cell_size=args.cell_size,
            entropy_coeff=args.entropy_coeff,
        )
    )
    algo = config.build_algo()
    start = time.perf_counter()
    steps = 0
    while steps < args.timesteps:
        result = algo.train()
        steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
    seconds = time.perf_counter() - start
    evaluation = algo.meta_test(num_tasks=args.tasks, seed=args.seed + 1)
    algo.stop()
    return evaluation, int(steps), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="5x10,10x10,5x100,10x100", help="k x n, ...")
    parser.add_argument("--timesteps", type=int, default=50_000, help="RL² pulls per setting")
    parser.add_argument("--tasks", type=int, default=500, help="meta-test tasks per setting")
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--ucb-c", type=float, default=float(np.sqrt(2.0)), help="UCB1 bonus c")
    parser.add_argument("--num-env-runners", type=int, default=0)
    # RL²'s settings (defaults: the runs in the README's first tables).
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--trials-per-batch", type=int, default=20, help="at least 2000 pulls")
    parser.add_argument("--trials-per-minibatch", type=int, default=5, help="at least 500 pulls")
    parser.add_argument("--lambda", dest="lambda_", type=float, default=0.95, help="GAE lambda")
    parser.add_argument("--num-epochs", type=int, default=10, help="PPO epochs per batch")
    parser.add_argument("--cell-size", type=int, default=64, help="GRU units")
    parser.add_argument("--entropy-coeff", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(num_cpus=max(2, args.num_env_runners + 1), include_dashboard=False)

    header = ["k", "n", "RL²", *BASELINES, "oracle", "RL² pulls", "RL² train s"]
    rows = []
    for setting in args.settings.split(","):
        k, n = (int(x) for x in setting.lower().split("x"))
        evaluation, steps, seconds = train_rl2(k, n, args)
        probs = np.stack([np.asarray(task["probs"]) for task in evaluation.tasks])
        rng = np.random.default_rng(args.seed + 2)
        baseline = {name: play(name, probs, n, rng, args.epsilon, args.ucb_c) for name in BASELINES}
        row = [str(k), str(n), _fmt(np.asarray(evaluation.returns).sum(axis=0))]
        row += [_fmt(baseline[name]) for name in BASELINES]
        row += [f"{n * probs.max(axis=1).mean():.2f}", str(steps), f"{seconds:.0f}"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    ray.shutdown()

    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\nMean trial return ± sem over {args.tasks} tasks (same tasks for all columns):")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    main()
