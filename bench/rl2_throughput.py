"""RL²'s cost per training iteration against plain RLlib PPO with an LSTM, same env, same run.

Both algorithms run PPO on BernoulliBandit with equally long recurrent sequences:

* RL²: trials of ``--n`` one-pull episodes (trial wrapper, augmented observations, metrics
  callback, RL²'s catalog), ``rnn_cell="lstm"``;
* PPO: RLlib's ``PPOConfig`` with ``use_lstm=True`` on the raw env with ``--n`` pulls per
  episode, so the episodes are as long as RL²'s trials.

Same network (a 64-unit dense layer, LSTM 64, separate critic), batch, minibatch, epochs,
``max_seq_len``, ``batch_mode="complete_episodes"`` and EnvRunner layout. After ``--warmup``
iterations each, the two algorithms' iterations alternate, so both see the same machine load;
the wall time of each ``train()`` (sampling + learner update) is measured here, and the medians
give the ratio RL² / PPO (target <= 1.05). Sampling and learner times are split out the same
way.

    python bench/rl2_throughput.py [--iters 10] [--warmup 2] [--n 10] [--arms 5]
        [--batch 2000] [--num-env-runners 0] [--rnn-cell lstm]
"""

from __future__ import annotations

import argparse
import statistics

import ray
import torch
from _timing import alternate_iterations
from ray.rllib.algorithms.ppo import PPOConfig

import rllib_marl_meta  # noqa: F401  (registers BernoulliBandit and RL2)
from rllib_marl_meta.algorithms.rl2 import RL2Config


def _common(config, args: argparse.Namespace):
    return (
        config.env_runners(
            num_env_runners=args.num_env_runners,
            num_envs_per_env_runner=10,
            batch_mode="complete_episodes",  # RL²'s default; PPO gets the same.
        )
        .debugging(seed=0)
        .training(
            lr=1e-3,
            gamma=0.99,
            lambda_=0.95,
            clip_param=0.2,
            num_epochs=10,
            use_kl_loss=False,
            train_batch_size_per_learner=args.batch,
            minibatch_size=500,
        )
    )


def build(args: argparse.Namespace):
    rl2 = _common(
        RL2Config().environment("BernoulliBandit", env_config={"num_arms": args.arms}), args
    ).training(episodes_per_trial=args.n, rnn_cell=args.rnn_cell, cell_size=64, max_seq_len=args.n)
    ppo = _common(
        PPOConfig().environment(
            "BernoulliBandit", env_config={"num_arms": args.arms, "pulls_per_episode": args.n}
        ),
        args,
    ).rl_module(
        model_config={
            "use_lstm": True,
            "lstm_cell_size": 64,
            "max_seq_len": args.n,
            "fcnet_hiddens": [64],
        }
    )
    return {"RL2": rl2.build_algo(), "PPO+LSTM": ppo.build_algo()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=10, help="measured iterations each")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--n", type=int, default=10, help="pulls per trial / episode")
    parser.add_argument("--arms", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--num-env-runners", type=int, default=0)
    parser.add_argument("--rnn-cell", default="lstm", choices=["lstm", "gru"], help="RL²'s cell")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(num_cpus=max(2, args.num_env_runners + 1), include_dashboard=False)

    algos = build(args)
    times = alternate_iterations(algos, args.iters, args.warmup)
    steps = {name: t.pop("steps")[-1] for name, t in times.items()}
    for algo in algos.values():
        algo.stop()
    ray.shutdown()

    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    print(
        f"\nBernoulliBandit k={args.arms}, {args.n}-step sequences, batch {args.batch}, "
        f"{args.iters} alternating iterations (median seconds per iteration):"
    )
    print("| algorithm | env steps/iter | train() s | sampling s | learner s |")
    print("|---|---|---|---|---|")
    for name, m in med.items():
        print(
            f"| {name} | {steps[name]} | {m['total']:.3f} | {m['sample']:.3f} | {m['learn']:.3f} |"
        )
    ratio = {k: med["RL2"][k] / med["PPO+LSTM"][k] for k in ("total", "sample", "learn")}
    print(
        f"\nRL2 / PPO+LSTM: train() {ratio['total']:.3f} (target <= 1.05), "
        f"sampling {ratio['sample']:.3f}, learner {ratio['learn']:.3f}"
    )


if __name__ == "__main__":
    main()
